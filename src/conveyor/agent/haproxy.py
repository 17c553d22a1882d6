"""HAProxy as an environment's router (``router: haproxy``), driven through its runtime API.

One ``haproxy -db`` process per environment runs as a child of the agent, with a generated config
in a private runtime directory. Instances become dynamic servers of the backend ``be_app``
(``add server`` + ``enable server``); one that leaves the rotation is set to ``state drain`` (no
new requests, in-flight ones finish), and ``drain`` waits for its sessions to end, then puts it in
maintenance and deletes it. Maintenance mode is a map entry that a ``http-request return 503``
rule looks up. Per-release counters come from HAProxy's request log, which it writes to a pipe:
one line per request with its status, time and server, so they match the built-in router's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from conveyor.agent.routing import Backend, ReleaseCounters, register
from conveyor.errors import ConveyorError

SEARCH = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
INSTALL_FIX = "install it with `apt-get install haproxy` (2.6 or newer), or use `router: builtin`"
START_TIMEOUT = 10.0
STOP_GRACE = 5.0
COMMAND_TIMEOUT = 5.0
POLL = 0.05
DELETE_TRIES = 40  # x POLL: HAProxy refuses `del server` while connections to it are still closing
F_SETPIPE_SZ = 1031
# dynamic servers get no idle-connection pool in 2.6 unless asked: without these every request
# would open a new connection to the instance
SERVER_OPTIONS = "pool-purge-delay 5s pool-max-conn 64"
MAINTENANCE_PAGE = (
    "<!doctype html><title>Maintenance</title><h1>Down for maintenance</h1>"
    "<p>This service is down for maintenance. Please try again shortly.</p>"
)


class HAProxyError(ConveyorError):
    pass


def find_haproxy() -> str:
    found = shutil.which("haproxy") or next((p for p in SEARCH if os.access(p, os.X_OK)), None)
    if found is None:
        raise HAProxyError("`router: haproxy` needs HAProxy, and there is no haproxy on this host", INSTALL_FIX)
    return found


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _die_with_parent() -> None:  # runs in the child: HAProxy must not outlive a killed agent
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _LogPipe(asyncio.Protocol):
    def __init__(self, router: HAProxyRouter) -> None:
        self.router, self.rest = router, b""

    def data_received(self, data: bytes) -> None:
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            self.router.observe(line)


class HAProxyRouter:
    def __init__(self, name: str, host: str, port: int, max_body: int = 10 * 1024 * 1024) -> None:
        self.name, self.host, self.port, self.max_body = name, host, port, max_body
        self.counters: dict[str, ReleaseCounters] = {}
        self.dir: Path | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._logs: asyncio.BaseTransport | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = asyncio.Lock()
        self._wanted: dict[str, Backend] = {}  # the rotation asked for
        self._servers: dict[str, Backend] = {}  # servers HAProxy has, by backend id
        self._ready: set[str] = set()  # ... of which these take new requests
        self._releases: dict[str, str] = {}  # server name -> release, for the request log
        self._maintenance: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        binary = find_haproxy()
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)[:40]
        self.dir = Path(tempfile.mkdtemp(prefix=f"conveyor-haproxy-{os.getpid()}-{safe}-"))
        self._stopping = False
        try:
            async with self._lock:
                await self._launch(binary)
        except BaseException:
            await self.stop()
            raise

    async def _launch(self, binary: str) -> None:
        assert self.dir is not None
        (self.dir / "maintenance.map").write_text(f"on {self._maintenance}\n" if self._maintenance else "")
        (self.dir / "haproxy.cfg").write_text(self.config())
        read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, F_SETPIPE_SZ, 1 << 20)  # room for bursts of log lines
        try:
            with open(self.dir / "haproxy.err", "ab") as err:
                self._proc = await asyncio.create_subprocess_exec(
                    *(binary, "-db", "-f", str(self.dir / "haproxy.cfg")),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=err,
                    preexec_fn=_die_with_parent,
                )
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        self._logs, _ = await loop.connect_read_pipe(lambda: _LogPipe(self), os.fdopen(read_fd, "rb", buffering=0))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError, TimeoutError):
                if "Name: HAProxy" in await self.command("show info"):
                    break
            if self._proc.returncode is not None or time.monotonic() > deadline:
                said = (self.dir / "haproxy.err").read_text(errors="replace").strip().splitlines()
                raise HAProxyError(
                    f"HAProxy for {self.name} did not start on {_address(self.host, self.port)}: "
                    + (" | ".join(line for line in said if "ALERT" in line) or " | ".join(said[-3:]) or "no output"),
                    "is the port free, and is HAProxy 2.6 or newer (`haproxy -v`)?",
                )
            await asyncio.sleep(POLL)
        self._servers.clear()
        self._ready.clear()
        await self._apply()
        self._watch = asyncio.create_task(self._supervise(binary, self._proc))

    async def _supervise(self, binary: str, proc: asyncio.subprocess.Process) -> None:
        """HAProxy died under us: start it again with the same rotation, until that works."""
        code = await proc.wait()
        if not self._stopping:
            print(f"conveyor agent: HAProxy for {self.name} exited ({code}); starting it again", flush=True)
        while not self._stopping:
            if self._logs:
                self._logs.close()
            if self._proc and self._proc.returncode is None:
                self._proc.kill()  # a relaunch that did not answer
            await asyncio.sleep(0.5)
            with contextlib.suppress(HAProxyError, OSError):
                async with self._lock:
                    return await self._launch(binary)

    async def stop(self) -> None:
        self._stopping = True
        if self._watch and self._watch is not asyncio.current_task():
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
        proc, self._proc = self._proc, None
        # soft stop first (close the listener, let running requests finish), then firmer
        for sig, grace in ((signal.SIGUSR1, STOP_GRACE), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            if proc is None or proc.returncode is not None:
                break
            proc.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        if self._logs:
            self._logs.close()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def config(self) -> str:
        assert self.dir is not None
        d, bind = self.dir, _address(self.host, self.port)
        maintenance = f"str(on),map({d}/maintenance.map)"
        return f"""\
global
    stats socket {d}/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 10s
    hard-stop-after 10s
    nbthread 1
    noreuseport
defaults
    mode http
    log stdout format raw daemon
    log-format "%ST %Ta %ts %s"
    option http-keep-alive
    option forwardfor
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response
frontend fe_app
    bind {bind}
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {self.max_body} }}
    http-request return status 503 content-type "text/html; charset=utf-8" string "{MAINTENANCE_PAGE}" \
hdr Retry-After "%[{maintenance}]" if {{ {maintenance} -m found }}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)] if {{ req.hdr(host) -m found }} \
!{{ req.hdr(x-forwarded-host) -m found }}
    default_backend be_app
backend be_app
    balance roundrobin
    http-request return status 503 content-type text/plain string "no healthy instance to serve this request" \
if {{ nbsrv(be_app) eq 0 }}
"""

    # --- runtime API -------------------------------------------------------------------------

    async def command(self, line: str) -> str:
        """One runtime API command on its own connection; the answer is read until EOF."""
        if self.dir is None:
            raise HAProxyError(f"the HAProxy router for {self.name} is not running")
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.dir / "admin.sock"), COMMAND_TIMEOUT)
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.read(), COMMAND_TIMEOUT)).decode(errors="replace").strip()
        finally:
            writer.close()

    def _server(self, backend: Backend) -> str:
        return "be_app/" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{backend.id}-{backend.port}")

    async def _apply(self) -> None:
        """Bring HAProxy's servers in line with the wanted rotation (under the lock)."""
        if self._proc is None:
            return
        for backend in self._wanted.values():
            current = self._servers.get(backend.id)
            if current is not None and current != backend:  # same instance, new address
                await self._delete(current, busy=1)
                current = None
            ref = self._server(backend)
            if current is None:
                out = await self.command(f"add server {ref} {_address(backend.host, backend.port)} {SERVER_OPTIONS}")
                if "registered" not in out and "Already exists" not in out:
                    raise HAProxyError(f"HAProxy refused `add server {ref}`: {out}")
                self._servers[backend.id] = backend
                self._releases[ref.partition("/")[2]] = backend.release
            if backend.id not in self._ready:
                await self.command(f"enable server {ref}")
                self._ready.add(backend.id)
        for backend_id in list(self._ready - self._wanted.keys()):
            await self.command(f"set server {self._server(self._servers[backend_id])} state drain")
            self._ready.discard(backend_id)

    async def set_backends(self, backends: Sequence[Backend]) -> None:
        async with self._lock:
            self._wanted = {b.id: b for b in backends}
            await self._apply()

    async def _busy(self, ref: str) -> int | None:
        """Requests on the server or queued for it; None when HAProxy has no such server."""
        rows = (await self.command("show stat be_app 4 -1")).splitlines()
        if not rows or not rows[0].startswith("# "):
            raise HAProxyError(f"unexpected `show stat` answer from HAProxy: {rows[:1]}")
        header = rows[0][2:].split(",")
        svname, scur, qcur = header.index("svname"), header.index("scur"), header.index("qcur")
        for row in rows[1:]:
            fields = row.split(",")
            if len(fields) > scur and fields[svname] == ref.partition("/")[2]:
                return int(fields[scur] or 0) + int(fields[qcur] or 0)
        return None

    async def drain(self, backend_id: str, timeout: float) -> int:
        async with self._lock:
            backend = self._servers.get(backend_id)
            if backend is None or self._proc is None:
                return 0
            self._wanted.pop(backend_id, None)
            ref = self._server(backend)
            if backend_id in self._ready:  # still in the rotation: take it out first
                self._ready.discard(backend_id)
                await self.command(f"set server {ref} state drain")
        deadline = time.monotonic() + timeout
        busy = await self._busy(ref)
        while busy and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
            busy = await self._busy(ref)
        async with self._lock:
            if self._servers.get(backend_id) is not backend or backend_id in self._ready:
                return 0  # deleted by another drain, or back in the rotation meanwhile
            await self._delete(backend, busy or 0)
        return busy or 0

    async def _delete(self, backend: Backend, busy: int) -> None:
        """Maintenance, cut what still runs (only after a drain timed out), delete (under the lock)."""
        ref = self._server(backend)
        await self.command(f"set server {ref} state maint")
        if busy:
            await self.command(f"shutdown sessions server {ref}")
        for _ in range(DELETE_TRIES):
            out = await self.command(f"del server {ref}")
            if "deleted" in out or "No such server" in out:
                break
            await asyncio.sleep(POLL)  # its connections are still closing
        self._servers.pop(backend.id, None)
        self._ready.discard(backend.id)

    async def set_maintenance(self, on: bool, retry_after: int = 120) -> None:
        async with self._lock:
            was, self._maintenance = self._maintenance, retry_after if on else None
            if self._proc is None or self.dir is None:
                return
            path = self.dir / "maintenance.map"
            if not on:
                await self.command(f"clear map {path}")
            else:
                await self.command(f"{'set' if was else 'add'} map {path} on {retry_after}")

    # --- counters from the request log: "<status> <active ms> <termination state> <server>" ---

    def observe(self, line: bytes) -> None:
        try:
            status, ms, state, server = line.decode(errors="replace").split()
            release, code, seconds = self._releases[server], int(status), max(0, int(ms)) / 1000
        except (ValueError, KeyError):
            return  # not a request line, or no server of ours (maintenance, 413, no instance)
        counters = self.counters.setdefault(release, ReleaseCounters())
        if state[:1] in ("S", "s", "K") and state[1:2] in ("C", "H", "Q"):
            counters.fail()  # no answer from the instance at all
        elif code > 0:
            counters.observe(code, seconds)


register("haproxy", HAProxyRouter)
