"""The admin commands on the database directly, as real processes (issue 11): users list, disable,
enable, roles, password; tokens list and revoke; all audited. A fresh CONVEYOR_HOME is made 0700
with the database and the audit key 0600, and `audit verify` prints the head and finds the newest
entries deleted."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from conveyor.auth.users import authenticate, check_password
from conveyor.errors import Unauthorized
from conveyor.store.db import Database


def run(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args], env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def ok(home: Path, *args: str, stdin: str | None = None) -> Any:
    done = run(home, *args, "--json", stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_admin_commands_cut_off_a_user_and_are_audited(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    ok(home, "users", "add", "ada", "--role", "admin")
    ok(home, "users", "add", "bob", "--role", "engineer", "--password", "bob's first password")
    assert home.stat().st_mode & 0o777 == 0o700
    for name in ("conveyor.db", "audit.key", "audit.head"):
        assert (home / name).stat().st_mode & 0o777 == 0o600, name
    leaked = ok(home, "tokens", "create", "bob", "--name", "laptop")["token"]
    kept = ok(home, "tokens", "create", "bob")["token"]
    db = Database(f"sqlite:///{home / 'conveyor.db'}")
    try:
        listed = ok(home, "tokens", "list", "--user", "bob")
        assert [t["prefix"] for t in listed] == [leaked[:10], kept[:10]] and leaked not in json.dumps(listed)
        revoked = run(home, "tokens", "revoke", str(listed[0]["id"]))
        assert revoked.returncode == 0 and f"({leaked[:10]}…) of bob revoked" in revoked.stdout
        assert run(home, "tokens", "revoke", str(listed[0]["id"])).returncode == 1  # already revoked
        with db.read() as conn:
            assert authenticate(conn, kept).name == "bob"
            try:
                authenticate(conn, leaked)
                raise AssertionError("a revoked token still works")
            except Unauthorized:
                pass
        assert ok(home, "users", "disable", "bob")["change"]["disabled"]["after"] is True
        with db.read() as conn:
            try:
                authenticate(conn, kept)
                raise AssertionError("a disabled user's token still works")
            except Unauthorized:
                pass
        ok(home, "users", "enable", "bob")
        ok(home, "users", "roles", "bob", "--role", "release_manager", "--role", "manager")
        ok(home, "users", "password", "bob", "--password-stdin", stdin="bob's second password\n")
        with db.read() as conn:
            assert authenticate(conn, kept).roles == ("release_manager", "manager")
            assert check_password(conn, "bob", "bob's second password").name == "bob"
        users = {u["name"]: u for u in ok(home, "users", "list")}
        assert users["bob"]["live_tokens"] == 1 and users["bob"]["disabled"] is False
        last_admin = run(home, "users", "disable", "ada")
        assert last_admin.returncode == 1 and "no enabled admin" in last_admin.stderr
        bad_role = run(home, "users", "roles", "bob", "--role", "root")
        assert bad_role.returncode == 1 and "'root'" in bad_role.stderr
    finally:
        db.dispose()
    entries = ok(home, "audit", "--limit", "100")
    actions = [(e["action"], e["subject"]) for e in reversed(entries)]
    assert actions == [
        ("user.added", "ada"),
        ("user.added", "bob"),
        ("token.created", "bob"),
        ("token.created", "bob"),
        ("token.revoked", "bob"),
        ("user.disabled", "bob"),
        ("user.enabled", "bob"),
        ("user.roles_changed", "bob"),
        ("user.password_changed", "bob"),
    ]
    assert all(e["actor"] == "cli" and "os_user" in e["details"] for e in entries)
    assert "second password" not in json.dumps(entries)

    verified = run(home, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit log intact" in verified.stdout and "head: entry" in verified.stdout
    head = ok(home, "audit", "verify")["head"]
    with sqlite3.connect(home / "conveyor.db") as conn:  # cut the newest two entries off
        conn.execute("DELETE FROM audit_log WHERE id > ?", (head["id"] - 2,))
    cut = run(home, "audit", "verify")
    assert cut.returncode == 1 and "the newest entries were deleted" in cut.stderr
    (home / "audit.head").unlink()  # the anchor removed too: the head kept elsewhere still tells
    expected = run(home, "audit", "verify", "--expect", head["hash"])
    assert expected.returncode == 1 and "is not in the log" in expected.stderr
