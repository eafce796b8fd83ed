"""Deployment mode (issue 3): `scoria api`, `scoria scheduler` and `scoria
volume` as separate OS processes on PostgreSQL and RabbitMQ.

1. One api, two schedulers and two volume processes with backends of 40 and
   20 GiB: 60 volumes created concurrently through the `openstack` CLI all
   become available, spread as the capacity weigher says (about 40 / 20).
2. kill -9 of a volume process while 30 creates are in flight, then a
   restart: every volume ends `available`, or `error` with a user message;
   none stays `creating`; as many volumes as accepted requests.
3. All RabbitMQ connections of the vhost closed (twice) under load: the
   services reconnect by themselves; every accepted volume ends available and
   later requests succeed.
4. A call to a backend whose process is down (GET /capabilities) ends with a
   503 saying nobody answered, within rpc_response_timeout, while the api
   goes on answering; with the process back the call answers 200.

Slow creates come from the test-only `fake` driver under the fault-injection
layer (fault_delay_ms).
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import TRANSITIONAL, wait_for

pytest.register_assert_rewrite("deployment")
from deployment import Deployment, concurrently  # noqa: E402

pytest_plugins = ["deployment"]

HOST_ATTR = "os-vol-host-attr:host"


def by_status(vols: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for v in vols:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    return counts


def assert_settled_with_reasons(dep: Deployment, vols: list[dict]) -> None:
    """Every volume is `available`, or `error` with a user message about it."""
    messages = dep.messages()
    about = {}
    for m in messages:
        about.setdefault(m.get("resource_uuid"), []).append(m)
    bad = []
    for v in vols:
        if v["status"] == "available":
            continue
        if v["status"] == "error" and about.get(v["id"]):
            continue
        bad.append((v["id"], v["status"], v.get(HOST_ATTR), about.get(v["id"])))
    assert not bad, (
        f"volumes neither available nor in error with a user message "
        f"(id, status, host, messages): {bad}; all statuses: {by_status(vols)}")


def single_backend(dep: Deployment, delay_ms: int) -> dict[str, str]:
    """api + scheduler + one volume process of a `fake` backend
    whose every create takes `delay_ms`; returns {host@backend: pool}."""
    dep.backend("slow", volume_driver="fake", fake_capacity_gb=1000, fault_delay_ms=delay_ms)
    dep.db_upgrade()
    dep.start_api()
    dep.start_scheduler("sched1")
    dep.start_volume("slow", host="node1")
    return dep.wait_ready(schedulers=["sched1"], volumes=["node1@slow"])


# ------------------------------------------------------------------- 1


def test_concurrent_cli_creates_spread_by_capacity(deployment):
    dep = deployment
    big = dep.tmpfs("big", "40G")
    small = dep.tmpfs("small", "20G")
    dep.backend("big", file_volumes_dir=big, max_over_subscription_ratio="1.0")
    dep.backend("small", file_volumes_dir=small, max_over_subscription_ratio="1.0")
    dep.db_upgrade()
    dep.start_api()
    dep.start_scheduler("sched1")
    dep.start_scheduler("sched2")
    dep.start_volume("big", host="node1")
    dep.start_volume("small", host="node2")
    pools = dep.wait_ready(schedulers=["sched1", "sched2"], volumes=["node1@big", "node2@small"])

    caps = dep.api_call("GET", "/scheduler-stats/get_pools", 200, params={"detail": "true"})
    totals = {p["name"]: p["capabilities"].get("total_capacity_gb") for p in caps["pools"]}
    assert totals == {pools["node1@big"]: 40.0, pools["node2@small"]: 20.0}, totals

    count = 60

    def create(i: int):
        return dep.osc_run("volume", "create", "--size", "1", f"spread-{i:02d}")

    results = concurrently(create, range(count), workers=12)
    failed = [cmd[-4:] + [p.returncode, p.stderr[-500:]]
              for p, cmd in results if p.returncode != 0]
    assert not failed, f"{len(failed)} of {count} `openstack volume create` failed: {failed[:5]}"

    vols = dep.wait_settled(expected=count, timeout=240)
    assert len(vols) == count, f"{len(vols)} volumes, wanted {count}"
    not_available = [(v["name"], v["status"], v.get(HOST_ATTR)) for v in vols
                     if v["status"] != "available"]
    assert not not_available, (
        f"{len(not_available)} volumes did not become available: {not_available[:10]}; "
        f"messages: {dep.messages()[:5]}")

    on_big = sum(1 for v in vols if v[HOST_ATTR] == pools["node1@big"])
    on_small = sum(1 for v in vols if v[HOST_ATTR] == pools["node2@small"])
    spread = f"{on_big} on {pools['node1@big']}, {on_small} on {pools['node2@small']}"
    assert on_big + on_small == count, f"volumes on unexpected hosts: {spread}"
    # 1 GiB at a time onto the pool with the most free space, 40 and 20 GiB
    # to start with: 40 land on big and 20 on small.
    assert on_big > on_small, spread
    assert abs(on_big - 40) <= 4 and abs(on_small - 20) <= 4, spread

    rows = dep.service_list()
    shown = {(r["binary"], r["host"]): r for r in rows}
    for key in [("cinder-scheduler", "sched1"), ("cinder-scheduler", "sched2"),
                ("cinder-volume", "node1@big"), ("cinder-volume", "node2@small")]:
        assert key in shown, f"{key} not in `openstack volume service list`: {rows}"
        assert shown[key]["state"] == "up", f"{key} is not up: {shown[key]}"


# ------------------------------------------------------------------- 2


def test_kill_volume_process_while_creating(deployment):
    dep = deployment
    single_backend(dep, delay_ms=800)
    volume = next(p for p in dep.processes if p.name.startswith("volume-"))
    count = 30

    def create(i: int):
        return dep.create_volume(name=f"crash-{i:02d}")

    responses = concurrently(create, range(count), workers=10)
    code = volume.kill(signal.SIGKILL)
    assert code == -signal.SIGKILL, f"the volume process exited with {code} before the kill"

    unexpected = [(r.status_code, r.text[:300]) for r in responses
                  if r.status_code not in (202, 413)]
    assert not unexpected, f"POST /volumes answers other than 202/413: {unexpected}"
    accepted = {r.json()["volume"]["id"] for r in responses if r.status_code == 202}
    assert accepted, "no create was accepted"

    at_kill = dep.volumes()
    in_flight = [v["id"] for v in at_kill if v["status"] == "creating"]
    # Otherwise the test would prove nothing: it needs creates interrupted.
    assert in_flight, f"no create was in flight when the volume process died: {by_status(at_kill)}"

    volume.start()
    vols = dep.wait_settled(expected=len(accepted), timeout=180)
    assert {v["id"] for v in vols} == accepted, (
        f"{len(vols)} volumes for {len(accepted)} accepted requests; "
        f"extra: {sorted({v['id'] for v in vols} - accepted)}, "
        f"missing: {sorted(accepted - {v['id'] for v in vols})}")
    assert not [v for v in vols if v["status"] in TRANSITIONAL]
    assert_settled_with_reasons(dep, vols)


# ------------------------------------------------------------------- 3


def test_rabbitmq_connections_closed_under_load(deployment):
    dep = deployment
    # Creates take 1.5 s each, so the volume service has work in flight (and
    # unacknowledged deliveries) when its connection goes.
    pools = single_backend(dep, delay_ms=1500)
    connected = wait_for(dep.connections, timeout=30, what="RabbitMQ connections on the vhost")
    responses: list = []
    closes_done = threading.Event()

    def produce():
        # A steady stream of creates: at least 30, and on until both closes are done.
        i = 0
        while (i < 30 or not closes_done.is_set()) and i < 100:
            responses.append(dep.create_volume(name=f"bus-{i:02d}"))
            i += 1
            time.sleep(0.2)

    with ThreadPoolExecutor(max_workers=1) as pool:
        producer = pool.submit(produce)
        wait_for(lambda: len(responses) >= 5 or producer.done(), timeout=60,
                 what="the first creates")
        marks = [len(responses)]
        dep.close_all_connections("test")
        marks.append(len(responses))
        time.sleep(0.5)
        dep.close_all_connections("test")
        marks.append(len(responses))
        closes_done.set()
        producer.result()

    answers = [(r.status_code, r.text[:300]) for r in responses]
    # While the api reconnects a create may be refused with a 503; nothing else.
    unexpected = [a for a in answers if a[0] not in (202, 503)]
    assert not unexpected, f"POST /volumes answered {unexpected}"
    assert marks[0] < marks[-1] < len(responses), (
        f"creates were not being made while the connections were closed: "
        f"{len(responses)} creates, {marks} made before/between/after the closes")
    accepted = {r.json()["volume"]["id"] for r in responses if r.status_code == 202}
    assert len(accepted) >= marks[0], f"too few creates accepted: {answers}"

    # The services come back by themselves.
    wait_for(lambda: dep.connections() >= connected, timeout=90, interval=1,
             what=f"{connected} RabbitMQ connections on the vhost again",
             detail=lambda: f"{dep.connections()} now")
    dep.assert_alive()

    vols = dep.wait_settled(expected=len(accepted), timeout=180)
    by_id = {v["id"]: v for v in vols}
    not_available = [(i, by_id.get(i, {}).get("status")) for i in accepted
                     if by_id.get(i, {}).get("status") != "available"]
    assert not not_available, (
        f"accepted volumes that did not become available: {not_available}; "
        f"messages: {dep.messages()[:5]}")

    # Later requests succeed: a create (scheduler and volume service over the
    # bus) and a call answered by the volume service.
    r = dep.create_volume(name="after-close")
    assert r.status_code == 202, f"POST /volumes after the reconnect -> {r.status_code}: {r.text}"
    new_id = r.json()["volume"]["id"]

    def settled():
        v = dep.volume(new_id)
        return v if v and v["status"] not in TRANSITIONAL else None

    v = wait_for(settled, timeout=60, what="the volume created after the reconnect to settle")
    assert v["status"] == "available", v
    backend = next(iter(pools))
    caps = dep.api_call("GET", f"/capabilities/{backend}", 200)
    assert caps["volume_backend_name"] == "slow", caps


# ------------------------------------------------------------------- 4


def test_call_to_a_stopped_backend_fails_cleanly(deployment):
    dep = deployment
    dep.backend("alpha")
    dep.backend("beta")
    dep.db_upgrade()
    dep.start_api()
    dep.start_scheduler("sched1")
    dep.start_volume("alpha", host="node1")
    beta = dep.start_volume("beta", host="node1")
    dep.wait_ready(schedulers=["sched1"], volumes=["node1@alpha", "node1@beta"])

    caps = dep.api_call("GET", "/capabilities/node1@beta", 200)
    assert caps["volume_backend_name"] == "beta", caps

    code = beta.stop()
    assert code == 0, f"the volume process exited with {code} on SIGTERM (wanted 0)"

    # The call to the stopped backend runs on a thread; while it waits for an
    # answer that does not come, the api answers other requests (among them a
    # call to the backend that is up).
    done = threading.Event()

    def call_beta():
        try:
            return dep.request("GET", "/capabilities/node1@beta", timeout=120)
        finally:
            done.set()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(call_beta)
        while True:
            alpha = dep.request("GET", "/capabilities/node1@alpha", timeout=30)
            assert alpha.status_code == 200, (
                f"/capabilities/node1@alpha -> {alpha.status_code}: {alpha.text}")
            listing = dep.request("GET", "/volumes", timeout=30)
            assert listing.status_code == 200, f"GET /volumes -> {listing.status_code}: {listing.text}"
            if done.is_set():
                break
            time.sleep(0.2)
        r = pending.result()

    assert r.status_code == 503, f"/capabilities/node1@beta -> {r.status_code}: {r.text}"
    fault = r.json().get("serviceUnavailable")
    assert fault and fault.get("code") == 503, r.text
    message = fault.get("message", "")
    assert "answer" in message.lower() and "node1@beta" in message, (
        f"the message does not say that node1@beta did not answer: {message!r}")

    # Up again (a heartbeat newer than any of the stopped process), the same
    # call is answered.
    last_beat = dep.heartbeat("cinder-volume", "node1@beta")
    beta.start()
    wait_for(lambda: dep.heartbeat("cinder-volume", "node1@beta") > last_beat, timeout=60,
             what="a heartbeat of the restarted volume process")
    caps = dep.api_call("GET", "/capabilities/node1@beta", 200)
    assert caps["volume_backend_name"] == "beta", caps
