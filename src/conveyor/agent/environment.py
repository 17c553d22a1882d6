"""One environment on this host: its router, the release serving, the previous release kept warm
for quick rollback, and the operations (deploys) that move between them, one at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.agent.routing import HISTORY_SECONDS, LATENCY_BUCKETS, Backend, ReleaseCounters, Router
from conveyor.agent.run_as import RunAs
from conveyor.agent.supervisor import HealthConfig, Instance, InstanceState, ReleaseSpec

DRAIN_TIMEOUT = 30.0
log = logging.getLogger("conveyor.agent")
STOP_GRACE = 10.0
COMPLETE_AFTER = 1.0  # s past a window's last second before its counts are final (HAProxy's log)


@dataclass
class ReleaseSet:
    release: ReleaseSpec
    instances: list[Instance] = field(default_factory=list)
    warm_until: float | None = None  # monotonic deadline while kept warm after being replaced

    def all_ready(self) -> bool:
        return bool(self.instances) and all(i.state == InstanceState.READY for i in self.instances)

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.release.version,
            "sha": self.release.sha,
            "workdir": self.release.workdir,
            "instances": [i.as_json() for i in self.instances],
            "warm_for_seconds": None if self.warm_until is None else round(self.warm_until - time.monotonic(), 1),
        }


@dataclass(frozen=True)
class DeployPlan:
    release: ReleaseSpec
    replicas: int = 1
    strategy: str = "rolling"  # rolling | blue_green | recreate
    max_surge: int = 1
    quick_rollback: float = 900.0
    health: HealthConfig = field(default_factory=HealthConfig)


@dataclass
class Operation:
    id: str
    plan: DeployPlan
    state: str = "running"  # running | succeeded | failed | cancelled
    message: str = ""
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task[None] | None = None

    def say(self, line: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {line}")

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "message": self.message,
            "log": self.log[-200:],
            "version": self.plan.release.version,
            "started": self.started,
            "finished": self.finished,
        }


class DeployFailed(Exception):
    pass


class Environment:
    def __init__(self, key: str, router: Router) -> None:
        self.key, self.router = key, router
        self.counting_since = time.time()  # per-release windows before this are unknown
        self.active: ReleaseSet | None = None
        self.warm: ReleaseSet | None = None
        self.serving: list[Instance] = []  # the rotation, before readiness filtering
        self.maintenance = False
        self.retry_after = 120
        self.run_as: RunAs | None = None  # the user instances run as (the agent's agent_run_as)
        self.operations: dict[str, Operation] = {}
        self._lock = asyncio.Lock()
        self._sync_pending = False
        self._counter = 0

    # --- rotation ---------------------------------------------------------------------------

    def changed(self) -> None:
        """An instance changed state: bring the router's rotation up to date (coalesced)."""
        if not self._sync_pending:
            self._sync_pending = True
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._sync()))

    async def _sync(self) -> None:
        self._sync_pending = False
        try:
            await self._set_rotation()
        except Exception:  # logged, and the next change tries again
            log.exception("could not update the rotation of %s", self.key)

    async def _set_rotation(self) -> None:
        await self.router.set_backends(
            [Backend(i.id, i.host, i.port, i.release.version) for i in self.serving if i.state == InstanceState.READY]
        )

    async def _serve(self, instances: list[Instance]) -> None:
        self.serving = instances
        await self._set_rotation()  # a rollout must know the switch happened: errors go to it

    async def _retire(self, instances: list[Instance], stop: bool) -> None:
        """Take instances out of rotation, wait for their in-flight requests, maybe stop them."""
        await self._serve([i for i in self.serving if i not in instances])
        await asyncio.gather(*(self.router.drain(i.id, DRAIN_TIMEOUT) for i in instances))
        if stop:
            await asyncio.gather(*(i.stop(STOP_GRACE) for i in instances))

    def _new_instance(self, plan: DeployPlan) -> Instance:
        self._counter += 1
        instance_id = f"{self.key}-{plan.release.version}-{self._counter}"
        return Instance(instance_id, plan.release, plan.health, self.changed, run_as=self.run_as)

    # --- operations -------------------------------------------------------------------------

    def submit(self, op_id: str, plan: DeployPlan) -> Operation:
        """Start an operation, or return the one with this id (a retried request attaches to it)."""
        existing = self.operations.get(op_id)
        if existing is not None:
            return existing
        op = Operation(op_id, plan)
        self.operations[op_id] = op
        op.task = asyncio.create_task(self._run(op))
        return op

    async def _run(self, op: Operation) -> None:
        try:
            async with self._lock:  # one operation at a time; a cancel while waiting here counts too
                op.say(f"deploying {op.plan.release.version} ({op.plan.strategy}, {op.plan.replicas} replica(s))")
                op.message = await self._deploy(op)
                op.state = "succeeded"
        except DeployFailed as exc:
            op.state, op.message = "failed", str(exc)
        except asyncio.CancelledError:
            op.state, op.message = "cancelled", "cancelled; the previous release keeps serving"
        except Exception as exc:  # the agent must survive a bug in one operation
            op.state, op.message = "failed", f"{type(exc).__name__}: {exc}"
        op.say(f"{op.state}: {op.message}")
        op.finished = time.time()

    def is_warm(self, version: str, sha: str) -> bool:
        warm = self.warm
        return bool(warm and (warm.release.version, warm.release.sha) == (version, sha) and warm.all_ready())

    def switch(self, op_id: str, version: str, sha: str, quick_rollback: float = 900.0) -> Operation | None:
        """Put the warm release back in the rotation (a quick rollback), or None when it is not warm.

        The release it replaces stays warm for ``quick_rollback`` seconds, so a failed rollback
        (a smoke test that fails on the older release) goes back by another switch."""
        existing = self.operations.get(op_id)
        if existing is not None:
            return existing
        if not self.is_warm(version, sha):
            return None
        assert self.warm is not None
        plan = DeployPlan(self.warm.release, replicas=len(self.warm.instances), quick_rollback=quick_rollback)
        return self.submit(op_id, plan)

    def cancel(self, op_id: str) -> Operation | None:
        op = self.operations.get(op_id)
        if op and op.task and not op.task.done():
            op.task.cancel()
        return op

    async def _deploy(self, op: Operation) -> str:
        plan, release = op.plan, op.plan.release
        active = self.active
        if (
            active
            and (active.release.version, active.release.sha) == (release.version, release.sha)
            and (active.all_ready())
        ):
            return f"{release.version} is already serving"
        if (
            self.warm
            and self.warm.release.version == release.version
            and self.warm.release.sha == release.sha
            and self.warm.all_ready()
        ):
            return await self._switch_to_warm(op)
        if plan.strategy == "blue_green":
            return await self._blue_green(op)
        if plan.strategy == "recreate":
            return await self._recreate(op)
        return await self._rolling(op)

    async def _switch_to_warm(self, op: Operation) -> str:
        warm, old = self.warm, self.active
        assert warm is not None
        op.say(f"{warm.release.version} is warm: switching traffic to it")
        await self._serve(list(warm.instances))
        warm.warm_until = None
        self.active, self.warm = warm, None
        if old and op.plan.quick_rollback > 0 and old.all_ready():
            await self._retire(old.instances, stop=False)
            old.warm_until = time.monotonic() + op.plan.quick_rollback
            self.warm = old
            op.say(f"{old.release.version} stays warm for {op.plan.quick_rollback:.0f}s for quick rollback")
        elif old:
            await self._retire(old.instances, stop=True)
        return f"switched to warm {warm.release.version}"

    async def _start_ready(self, op: Operation, count: int, started: list[Instance]) -> list[Instance]:
        batch = [self._new_instance(op.plan) for _ in range(count)]
        started += batch
        await asyncio.gather(*(i.start() for i in batch))
        op.say(f"started {', '.join(f'{i.id} on :{i.port}' for i in batch)}; waiting for health checks")
        ready = await asyncio.gather(*(i.wait_ready(op.plan.health.timeout) for i in batch))
        failed = [i for i, ok in zip(batch, ready, strict=True) if not ok]
        if failed:
            report = "\n".join(i.failure_report() for i in failed)
            raise DeployFailed(
                f"{op.plan.release.version} did not become healthy within {op.plan.health.timeout:.0f}s "
                f"and got no traffic; the previous release keeps serving.\n{report}"
            )
        op.say(f"{', '.join(i.id for i in batch)} ready")
        return batch

    async def _abort(self, started: list[Instance], old: list[Instance]) -> None:
        """Undo a half-done rollout: the old instances serve again, the new ones go."""
        await self._serve([i for i in old if i.state != InstanceState.STOPPED])
        await asyncio.gather(*(self.router.drain(i.id, DRAIN_TIMEOUT) for i in started))
        await asyncio.gather(*(i.stop(STOP_GRACE) for i in started))

    async def _finish(self, op: Operation, new: list[Instance], old: ReleaseSet | None) -> None:
        previous_warm = self.warm
        self.active = ReleaseSet(op.plan.release, new)
        self.warm = None
        if old and op.plan.quick_rollback > 0:
            old.warm_until = time.monotonic() + op.plan.quick_rollback
            self.warm = old
            op.say(f"{old.release.version} stays warm for {op.plan.quick_rollback:.0f}s for quick rollback")
        elif old:
            await asyncio.gather(*(i.stop(STOP_GRACE) for i in old.instances))
        if previous_warm and previous_warm is not old:
            await asyncio.gather(*(i.stop(STOP_GRACE) for i in previous_warm.instances))

    async def _rolling(self, op: Operation) -> str:
        old_set, started = self.active, list[Instance]()
        old = list(old_set.instances) if old_set else []
        serving_old = list(old)
        new: list[Instance] = []
        try:
            while len(new) < op.plan.replicas:
                count = min(op.plan.max_surge, op.plan.replicas - len(new))
                batch = await self._start_ready(op, count, started)
                new += batch
                leaving = serving_old[:count]
                serving_old = serving_old[count:]
                await self._serve([*new, *serving_old])  # new in, old out, never below the healthy count
                if leaving:
                    await asyncio.gather(*(self.router.drain(i.id, DRAIN_TIMEOUT) for i in leaving))
                    op.say(f"drained {', '.join(i.id for i in leaving)}")
            if serving_old:
                await self._serve(new)
                await asyncio.gather(*(self.router.drain(i.id, DRAIN_TIMEOUT) for i in serving_old))
        except (DeployFailed, asyncio.CancelledError):
            await asyncio.shield(self._abort(started, old))
            raise
        await self._finish(op, new, old_set)
        return f"{op.plan.release.version} serving on {len(new)} instance(s)"

    async def _blue_green(self, op: Operation) -> str:
        old_set, started = self.active, list[Instance]()
        old = list(old_set.instances) if old_set else []
        try:
            new = await self._start_ready(op, op.plan.replicas, started)
        except (DeployFailed, asyncio.CancelledError):
            await asyncio.shield(self._abort(started, old))
            raise
        await self._serve(new)
        op.say(f"switched all traffic to {op.plan.release.version}")
        await asyncio.gather(*(self.router.drain(i.id, DRAIN_TIMEOUT) for i in old))
        await self._finish(op, new, old_set)
        return f"{op.plan.release.version} serving on {len(new)} instance(s)"

    async def _recreate(self, op: Operation) -> str:
        """Stop everything, then start the new release: the naive baseline (drops requests)."""
        old_set = self.active
        if old_set:
            await self._retire(old_set.instances, stop=True)
        started: list[Instance] = []
        new = await self._start_ready(op, op.plan.replicas, started)
        await self._serve(new)
        self.active = ReleaseSet(op.plan.release, new)
        return f"{op.plan.release.version} serving on {len(new)} instance(s) (recreated)"

    # --- upkeep -----------------------------------------------------------------------------

    async def expire_warm(self) -> None:
        warm = self.warm
        if warm and warm.warm_until is not None and time.monotonic() > warm.warm_until and not self._lock.locked():
            self.warm = None
            await asyncio.gather(*(i.stop(STOP_GRACE) for i in warm.instances))

    async def shutdown(self) -> None:
        for op in self.operations.values():
            if op.task and not op.task.done():
                op.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await op.task
        # the router first: its pooled connections would hold each app's drain open; then every
        # instance of both releases at once (each gets its own grace period, not one after another)
        await self.router.stop()
        instances = [i for rs in (self.active, self.warm) if rs for i in rs.instances]
        await asyncio.gather(*(i.stop(STOP_GRACE) for i in instances))

    def output(self, lines: int) -> list[dict[str, Any]]:
        """Each running instance's recent output: the serving release's first, then the warm one's."""
        out = []
        for role, rs in (("active", self.active), ("warm", self.warm)):
            for inst in rs.instances if rs else []:
                out.append({**inst.output(lines), "role": role})
        return out

    def window(self, release: str, since: float, until: float) -> dict[str, Any]:
        """The release's traffic over the seconds starting in [since, until) (ReleaseWindow of
        agent/protocol.py): zero for a release the router has not seen; only the part since this
        environment started counting, and at most HISTORY_SECONDS back, is known."""
        now = time.time()
        # the second counting began in holds all there is of it: the router counted nothing before
        known = max(since, math.floor(self.counting_since), math.floor(now) - HISTORY_SECONDS)
        counters = self.router.counters.get(release)
        window = counters.window(known, until) if counters is not None else ReleaseCounters().window(known, until)
        return {
            "release": release,
            "since": since,
            "until": until,
            "recorded_from": math.ceil(known),
            "complete": now >= math.ceil(until) + COMPLETE_AFTER,
            "requests": window.requests,
            "errors": window.errors,
            "failed": window.failed,
            "latency_buckets": list(window.latency_buckets),
            "bucket_bounds": list(LATENCY_BUCKETS),
            "seconds": window.seconds,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "port": self.router.port,
            "maintenance": self.maintenance,
            "active": self.active.as_json() if self.active else None,
            "warm": self.warm.as_json() if self.warm else None,
            "rotation": [i.id for i in self.serving if i.state == InstanceState.READY],
            "counters": {release: c.as_json() for release, c in self.router.counters.items()},
        }


RouterFactory = Callable[[str, str, int], Router]
