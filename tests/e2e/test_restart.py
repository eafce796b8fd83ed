"""Restart: stopping `scoria serve` while volumes are being created leaves none
of them in `creating` once it runs again.

A 1 GiB volume gets ~150 MiB of random data and a snapshot; a dozen volumes
are then created from that snapshot at once (each a full copy on a filesystem
without reflink, so they are still in flight) and the server is stopped right
after the 202s come back: by SIGKILL (crash) or by SIGTERM (graceful). After a
restart on the same data directory every volume must settle in `available`
(with the snapshot's bytes) or `error` (with a user message saying why).
"""

from __future__ import annotations

import hashlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import GiB, MiB, TRANSITIONAL, wait_for

DATA_BYTES = 150 * MiB
CONCURRENT = 12


def fill_random(path, nbytes: int) -> str:
    """Write nbytes of random data at the start of path; return their sha256."""
    digest = hashlib.sha256()
    chunk = 8 * MiB
    with open(path, "r+b") as f:
        written = 0
        while written < nbytes:
            data = os.urandom(min(chunk, nbytes - written))
            f.write(data)
            digest.update(data)
            written += len(data)
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def head_digest(path, nbytes: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = nbytes
        while left:
            data = f.read(min(8 * MiB, left))
            if not data:
                break
            digest.update(data)
            left -= len(data)
    return digest.hexdigest()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_restart_while_creating(fresh_server, sig):
    srv = fresh_server
    src = srv.create_volume(size=1, name="restart-src")
    src_digest = fill_random(srv.volume_file(src["id"]), DATA_BYTES)
    snap = srv.create_snapshot(src["id"], name="restart-snap")

    def create(i: int):
        return srv.post("/volumes", json={"volume": {"snapshot_id": snap["id"], "name": f"restart-{i}"}})

    with ThreadPoolExecutor(max_workers=CONCURRENT) as pool:
        responses = list(pool.map(create, range(CONCURRENT)))

    # Stop the server at once, while the copies are (most likely) running.
    code = srv.kill(sig)

    for r in responses:
        # 413 would be a quota refusal (a refused request makes nothing).
        assert r.status_code in (202, 413), f"POST /volumes -> {r.status_code}: {r.text}"
    accepted = {r.json()["volume"]["id"] for r in responses if r.status_code == 202}
    assert len(accepted) >= CONCURRENT // 2, [r.status_code for r in responses]

    if sig == signal.SIGTERM:
        assert code == 0, f"scoria exited with code {code} on SIGTERM (wanted a clean exit 0)"

    srv.start()

    busy: list = []

    def settled():
        vols = srv.volumes()
        busy[:] = [(v["id"], v["status"]) for v in vols if v["status"] in TRANSITIONAL]
        return vols if not busy else None

    vols = wait_for(
        settled,
        timeout=300,
        what="no volume in a transitional state after restart",
        detail=lambda: f"still transitional: {busy}",
    )
    ids = {v["id"] for v in vols}
    assert ids == accepted | {src["id"]}, (
        f"volumes after restart differ from the accepted ones: "
        f"missing {accepted - ids}, unexpected {ids - accepted - {src['id']}}"
    )

    states = {v["id"]: v["status"] for v in vols}
    bad = {i: s for i, s in states.items() if s not in ("available", "error")}
    assert not bad, f"volumes neither available nor error: {bad}"
    assert states[src["id"]] == "available"
    assert srv.snapshot(snap["id"])["status"] == "available"

    errored = [i for i, s in states.items() if s == "error"]
    if errored:
        messages = srv.messages()
        explained = {m.get("resource_uuid") for m in messages if m.get("user_message")}
        unexplained = [i for i in errored if i not in explained]
        assert not unexplained, (
            f"volumes in error with no user message: {unexplained}; messages: {messages}"
        )

    # Whatever says `available` holds the snapshot's bytes.
    for vid, status in states.items():
        if status != "available":
            continue
        path = srv.volume_file(vid)
        assert path.stat().st_size == GiB, f"{path}: {path.stat().st_size} bytes"
        assert head_digest(path, DATA_BYTES) == src_digest, f"{path} does not hold the snapshot's data"

    # Everything recovered can be deleted.
    for vid in accepted:
        srv.api("DELETE", f"/volumes/{vid}", 202)
    for vid in accepted:
        srv.wait_volume_gone(vid, timeout=180)
        assert not srv.volume_file(vid).exists(), f"file of deleted volume {vid} remains"
    srv.api("DELETE", f"/snapshots/{snap['id']}", 202)
    srv.wait_snapshot_gone(snap["id"])
    srv.api("DELETE", f"/volumes/{src['id']}", 202)
    srv.wait_volume_gone(src["id"])
    print(
        f"{sig.name}: {len(accepted)} accepted, "
        f"{sum(1 for s in states.values() if s == 'available') - 1} available, {len(errored)} error"
    )
