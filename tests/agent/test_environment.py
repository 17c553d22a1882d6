"""environment.Environment with the built-in router and real demo-app instances: rolling and
blue-green rollouts under a steady client, aborts, the warm previous release, cancel, and the
operation ids that make a retried request attach to the running deploy."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import shlex
import shutil
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.conftest import Pacer

from conveyor.agent import environment as environment_module
from conveyor.agent.environment import DeployPlan, Environment, Operation
from conveyor.agent.router import BuiltinRouter
from conveyor.agent.supervisor import HealthConfig, Instance, InstanceState, ReleaseSpec
from conveyor.devserver import free_port

DEMO_APP = Path(__file__).resolve().parents[2] / "examples" / "demo-app" / "app.py"
DEMO = f"exec {shlex.quote(sys.executable)} app.py"  # PORT comes from the environment
FAST = HealthConfig(path="/healthz", interval=0.05, successes=2, failures=3, timeout=15)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


async def eventually(check: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo app, so no switch file in examples/ can leak into these tests."""
    path = tmp_path_factory.mktemp("demo-app")
    shutil.copy(DEMO_APP, path / "app.py")
    return path


@dataclass
class Rig:
    env: Environment
    router: BuiltinRouter
    app_dir: Path
    instances: list[Instance]

    def release(self, version: str, **switches: str) -> ReleaseSpec:
        return ReleaseSpec(
            version, f"sha-{version}", str(self.app_dir), DEMO, {"CONVEYOR_VERSION": version, **switches}
        )

    def plan(self, version: str, replicas: int = 2, **kwargs: object) -> DeployPlan:
        switches = kwargs.pop("switches", {})
        assert isinstance(switches, dict)
        return DeployPlan(self.release(version, **switches), replicas=replicas, health=FAST, **kwargs)  # type: ignore[arg-type]

    async def deploy(self, op_id: str, plan: DeployPlan) -> Operation:
        op = self.env.submit(op_id, plan)
        assert op.task is not None
        await asyncio.wait_for(asyncio.shield(op.task), 60)
        return op

    def of(self, version: str) -> list[Instance]:
        return [i for i in self.instances if i.release.version == version]

    def rotation(self) -> list[str]:
        rotation: list[str] = self.env.as_json()["rotation"]
        return rotation


@pytest.fixture
async def rig(app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    created: list[Instance] = []

    class RecordedInstance(Instance):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            created.append(self)

    monkeypatch.setattr(environment_module, "Instance", RecordedInstance)
    router = BuiltinRouter("web", "127.0.0.1", free_port())
    await router.start()
    env = Environment("web", router)
    made = Rig(env, router, app_dir, created)
    yield made
    await env.shutdown()
    for inst in created:
        assert inst.state == InstanceState.STOPPED, f"{inst.id} left {inst.state}"
        assert not port_open(inst.port), f"{inst.id} still listens on {inst.port}"


@dataclass
class Load:
    """Clients in threads sending GET /version through the router over keep-alive, ``rate``
    requests a second each, non-stop."""

    port: int
    threads: int = 2
    rate: float = 400.0
    versions: list[list[str]] = field(default_factory=list)  # per client, in order
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for n in range(self.threads):
            self.versions.append([])
            worker = threading.Thread(target=self._run, args=(self.versions[n],), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, seen: list[str]) -> None:
        conn: http.client.HTTPConnection | None = None
        pacer = Pacer(self.rate)
        while not self._stop.is_set():
            pacer.wait(self._stop)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
                conn.request("GET", "/version")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200:
                    seen.append(json.loads(body)["version"])
                else:
                    self.failures.append(f"{resp.status} {body[:200]!r}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except Exception as exc:
                self.failures.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def all_versions(self) -> set[str]:
        return {v for seen in self.versions for v in seen}

    async def more(self, count: int = 10) -> None:
        """Wait until every client got ``count`` more answers (or something failed)."""
        marks = [len(seen) for seen in self.versions]

        def enough() -> bool:
            return all(len(seen) >= m + count for seen, m in zip(self.versions, marks, strict=True))

        await eventually(lambda: enough() or self.failures, what=f"{count} more responses per client")

    async def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            await asyncio.to_thread(worker.join, 20)


async def sample_rotation(rig: Rig, op: Operation) -> list[list[str]]:
    """The rotation, sampled every couple of milliseconds until the operation ends."""
    assert op.task is not None
    samples = []
    while not op.task.done():
        samples.append(rig.rotation())
        await asyncio.sleep(0.002)
    samples.append(rig.rotation())
    return samples


def ids(instances: list[Instance]) -> list[str]:
    return sorted(i.id for i in instances)


# --- rollouts ------------------------------------------------------------------------------------


async def test_rolling_update_under_load_fails_no_request(rig: Rig) -> None:
    first = await rig.deploy("d1", rig.plan("v1"))
    assert first.state == "succeeded", first.message
    assert first.message == "v1 serving on 2 instance(s)"
    v1 = ids(rig.of("v1"))
    assert sorted(rig.rotation()) == v1 == ["web-v1-1", "web-v1-2"]

    load = Load(rig.router.port).start()
    await load.more()
    op = rig.env.submit("d2", rig.plan("v2", max_surge=1))
    samples = await sample_rotation(rig, op)
    await load.more()
    await load.stop()

    assert op.state == "succeeded", op.message
    assert op.message == "v2 serving on 2 instance(s)"
    assert load.failures == []
    assert load.all_versions() == {"v1", "v2"}
    assert all(seen[-1] == "v2" for seen in load.versions)
    assert len(samples) > 20
    assert min(len(s) for s in samples) >= 2, samples
    assert any({"v1", "v2"} <= {i.split("-")[1] for i in s} for s in samples), "a rolling update mixes versions"
    assert sorted(rig.rotation()) == ids(rig.of("v2")) == ["web-v2-3", "web-v2-4"]

    state = rig.env.as_json()
    assert state["active"]["version"] == "v2"
    assert state["warm"]["version"] == "v1"
    assert sorted(i["id"] for i in state["warm"]["instances"]) == v1
    assert 800 < state["warm"]["warm_for_seconds"] <= 900
    assert all(i.state == InstanceState.READY for i in rig.of("v1"))  # kept warm, still running
    assert state["counters"]["v1"]["failed"] == state["counters"]["v2"]["failed"] == 0
    assert state["counters"]["v2"]["requests"] > 0
    log = "\n".join(op.log)
    assert "drained web-v1-1" in log and "drained web-v1-2" in log
    assert "v1 stays warm for 900s for quick rollback" in log


async def test_blue_green_switches_all_traffic_at_once(rig: Rig) -> None:
    assert (await rig.deploy("d1", rig.plan("v1", strategy="blue_green"))).state == "succeeded"
    load = Load(rig.router.port).start()
    await load.more()
    op = rig.env.submit("d2", rig.plan("v2", strategy="blue_green"))
    samples = await sample_rotation(rig, op)
    await load.more()
    await load.stop()

    assert op.state == "succeeded", op.message
    assert load.failures == []
    for seen in load.versions:  # each client sees v1 until the switch, then only v2
        assert seen[0] == "v1" and seen[-1] == "v2"
        switch = seen.index("v2")
        assert set(seen[switch:]) == {"v2"}, "a client went back to v1 after the switch"
    for sample in samples:
        assert len(sample) == 2
        assert len({i.split("-")[1] for i in sample}) == 1, f"blue-green mixed versions: {sample}"
    assert any("switched all traffic to v2" in line for line in op.log)


async def test_failing_release_aborts_and_the_old_release_keeps_serving(rig: Rig) -> None:
    assert (await rig.deploy("d1", rig.plan("v1"))).state == "succeeded"
    v1 = sorted(rig.rotation())
    load = Load(rig.router.port).start()
    await load.more()
    bad = DeployPlan(
        rig.release("v2", DEMO_FAIL_HEALTH="1"),
        replicas=2,
        health=HealthConfig(interval=0.05, successes=2, timeout=1.0),
    )
    op = await rig.deploy("d2", bad)
    await load.more()
    await load.stop()

    assert op.state == "failed"
    assert op.message.startswith("v2 did not become healthy within 1s and got no traffic")
    assert '"status":"failing"' in op.message  # the health output of the failed instance
    (failed,) = rig.of("v2")
    assert f"instance {failed.id} (port {failed.port})" in op.message
    assert failed.state == InstanceState.STOPPED
    assert not port_open(failed.port)
    assert sorted(rig.rotation()) == v1
    assert rig.env.as_json()["active"]["version"] == "v1"
    assert load.failures == []
    assert load.all_versions() == {"v1"}


async def test_deploying_the_warm_release_is_a_switch(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1"))
    v1 = sorted(rig.rotation())
    assert (await rig.deploy("d2", rig.plan("v2"))).state == "succeeded"
    load = Load(rig.router.port).start()
    await load.more()
    back = await rig.deploy("d3", rig.plan("v1"))
    await load.more()
    await load.stop()

    assert back.state == "succeeded", back.message
    assert back.message == "switched to warm v1"
    assert len(rig.instances) == 4, "a switch to the warm release starts no instance"
    assert sorted(rig.rotation()) == v1
    state = rig.env.as_json()
    assert state["active"]["version"] == "v1"
    assert state["active"]["warm_for_seconds"] is None
    # the release switched away from stays warm, out of the rotation: a failed rollback goes back by a switch
    assert state["warm"]["version"] == "v2" and state["warm"]["warm_for_seconds"] > 0
    for inst in rig.of("v2"):
        assert inst.state == InstanceState.READY
        assert inst.id not in rig.rotation()
    assert load.failures == []
    assert all(seen[-1] == "v1" for seen in load.versions)

    again = await rig.deploy("d4", rig.plan("v2"))
    assert again.message == "switched to warm v2" and len(rig.instances) == 4
    assert rig.env.as_json()["warm"]["version"] == "v1"


async def test_a_switch_with_quick_rollback_zero_stops_the_release_it_leaves(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1"))
    assert (await rig.deploy("d2", rig.plan("v2"))).state == "succeeded"
    back = await rig.deploy("d3", rig.plan("v1", quick_rollback=0))
    assert back.message == "switched to warm v1"
    assert rig.env.as_json()["warm"] is None
    for inst in rig.of("v2"):
        assert inst.state == InstanceState.STOPPED
        assert not port_open(inst.port)


async def test_quick_rollback_zero_stops_the_old_release(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1", replicas=1))
    op = await rig.deploy("d2", rig.plan("v2", replicas=1, quick_rollback=0))
    assert op.state == "succeeded", op.message
    assert rig.env.warm is None
    assert rig.env.as_json()["warm"] is None
    (old,) = rig.of("v1")
    assert old.state == InstanceState.STOPPED
    assert not port_open(old.port)
    assert rig.rotation() == ["web-v2-2"]


async def test_expire_warm_stops_the_old_release_after_the_window(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1", replicas=1))
    op = await rig.deploy("d2", rig.plan("v2", replicas=1, quick_rollback=1.0))
    assert op.state == "succeeded", op.message
    warm = rig.env.warm
    assert warm is not None and warm.warm_until is not None
    await rig.env.expire_warm()
    assert rig.env.warm is warm, "expired before its window"
    (old,) = rig.of("v1")
    assert old.state == InstanceState.READY

    deadline = time.monotonic() + 10
    while rig.env.warm is not None:
        assert time.monotonic() < deadline, "the warm release was never expired"
        await rig.env.expire_warm()
        await asyncio.sleep(0.02)
    assert time.monotonic() > warm.warm_until
    assert old.state == InstanceState.STOPPED
    assert not port_open(old.port)
    assert rig.rotation() == ["web-v2-2"]


# --- operations ----------------------------------------------------------------------------------


async def test_submit_with_the_same_id_returns_the_same_operation(rig: Rig) -> None:
    op = rig.env.submit("deploy-42", rig.plan("v1", replicas=1))
    again = rig.env.submit("deploy-42", rig.plan("v9", replicas=3))
    assert again is op
    assert op.task is not None
    await op.task
    assert op.state == "succeeded"
    assert op.as_json()["version"] == "v1"
    assert op.as_json()["finished"] is not None
    assert len(rig.instances) == 1
    assert rig.env.submit("deploy-42", rig.plan("v1", replicas=1)) is op  # still, after it finished
    same = await rig.deploy("deploy-43", rig.plan("v1", replicas=1))
    assert same.message == "v1 is already serving"
    assert len(rig.instances) == 1


async def test_cancel_mid_rollout_restores_the_old_rotation(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1"))
    v1 = sorted(rig.rotation())
    load = Load(rig.router.port).start()
    await load.more()
    # the second new instance (web-v2-4) boots for ever, so the rollout stops half way
    stuck = ReleaseSpec(
        "v2",
        "sha-v2",
        str(rig.app_dir),
        f'case "$CONVEYOR_INSTANCE" in *-4) export DEMO_START_DELAY=60;; esac; {DEMO}',
        {"CONVEYOR_VERSION": "v2"},
    )
    op = rig.env.submit("d2", DeployPlan(stuck, replicas=2, max_surge=1, health=FAST))
    await eventually(lambda: any("started web-v2-4" in line for line in op.log), what="the second batch")
    assert sorted(rig.rotation()) == ["web-v1-2", "web-v2-3"]  # half way: one new in, one old out
    await load.more()

    cancelled = rig.env.cancel("d2")
    assert cancelled is op
    assert op.task is not None
    await asyncio.wait_for(op.task, 30)
    assert op.state == "cancelled"
    assert op.message == "cancelled; the previous release keeps serving"
    assert op.finished is not None
    assert sorted(rig.rotation()) == v1
    assert rig.env.as_json()["active"]["version"] == "v1"
    for inst in rig.of("v2"):
        assert inst.state == InstanceState.STOPPED
        assert not port_open(inst.port)
    mark = [len(seen) for seen in load.versions]
    await load.more()
    await load.stop()
    assert load.failures == []
    assert all(set(seen[n:]) == {"v1"} for seen, n in zip(load.versions, mark, strict=True))
    assert rig.env.cancel("no-such-op") is None


async def test_cancelling_a_queued_operation_marks_it_cancelled(rig: Rig) -> None:
    slow = rig.env.submit("slow", rig.plan("v1", replicas=1, switches={"DEMO_START_DELAY": "60"}))
    queued = rig.env.submit("queued", rig.plan("v2", replicas=1))
    await eventually(lambda: any("deploying v1" in line for line in slow.log), what="the first operation to start")
    assert queued.task is not None and slow.task is not None
    assert not queued.task.done() and not queued.log  # waiting for the environment's lock
    rig.env.cancel("queued")
    with contextlib.suppress(asyncio.CancelledError):
        await queued.task
    rig.env.cancel("slow")
    await slow.task
    assert slow.state == "cancelled"
    assert queued.state == "cancelled"
    assert queued.finished is not None


async def test_the_switch_endpoint_names_the_real_replica_count_and_keeps_the_other_release_warm(rig: Rig) -> None:
    await rig.deploy("d1", rig.plan("v1"))
    assert (await rig.deploy("d2", rig.plan("v2"))).state == "succeeded"
    op = rig.env.switch("back", "v1", "sha-v1", 600.0)
    assert op is not None and op.task is not None
    await asyncio.wait_for(asyncio.shield(op.task), 60)
    assert op.state == "succeeded", op.message
    assert "deploying v1" in op.log[0] and "2 replica(s)" in op.log[0], op.log
    assert rig.env.as_json()["warm"]["version"] == "v2"
    assert rig.env.switch("forth", "v1", "sha-v1") is None  # v1 serves: it is not warm
    forth = rig.env.switch("forth", "v2", "sha-v2")
    assert forth is not None and forth.task is not None
    await asyncio.wait_for(asyncio.shield(forth.task), 60)
    assert forth.message == "switched to warm v2" and len(rig.instances) == 4
