"""A deployment's migrations: the SQL Conveyor will run and the lint's findings, and a release
manager's acknowledgement of them (docs/database.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["migrations"])
