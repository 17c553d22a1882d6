"""The `conveyor` command line: a client of the REST API, plus the commands that need the
database or the machine directly (server, validate, users, tokens, demo)."""
