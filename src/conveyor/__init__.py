"""Conveyor: a self-hosted release platform."""

__version__ = "0.1.0"
