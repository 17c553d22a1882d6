"""Targets: where a service runs. One registry; built-ins use it too."""
