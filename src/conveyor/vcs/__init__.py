"""Version control: the git CLI wrapper and incoming webhook handling."""
