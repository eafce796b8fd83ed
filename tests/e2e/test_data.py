"""Data survives: bytes written into a volume's file are found at the same
offsets in its snapshot, in a volume made from that snapshot, in a clone, and
in the volume itself after an extend.

The `file` backend keeps each volume as the sparse raw file
DATA_DIR/volumes/volume-<id> (snapshots: snapshot-<id>), so the test writes
and reads those files directly and drives the server through its HTTP API.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import GiB, MiB, wait_for

BLOCK = 4096


def offsets(size_gib: int) -> list[int]:
    return [0, MiB + 3, size_gib * GiB - BLOCK]


def make_patterns(tag: bytes, size_gib: int) -> dict[int, bytes]:
    pats = {}
    for off in offsets(size_gib):
        head = tag + b"@" + str(off).encode() + b":"
        pats[off] = head + os.urandom(BLOCK - len(head))
    return pats


def write_at(path: Path, patterns: dict[int, bytes]) -> None:
    with open(path, "r+b") as f:
        for off, data in patterns.items():
            f.seek(off)
            f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_at(path: Path, off: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(length)


def assert_patterns(path: Path, patterns: dict[int, bytes], what: str) -> None:
    assert path.is_file(), f"{what}: {path} does not exist"
    for off, data in patterns.items():
        got = read_at(path, off, len(data))
        assert got == data, (
            f"{what}: bytes at offset {off} of {path} differ "
            f"(got {got[:32]!r}..., wanted {data[:32]!r}...)"
        )


def assert_size(path: Path, size_gib: int, what: str) -> None:
    actual = path.stat().st_size
    assert actual == size_gib * GiB, f"{what}: {path} is {actual} bytes, wanted {size_gib} GiB"


def test_data_survives_snapshot_clone_and_extend(server):
    src = server.create_volume(size=1, name="data-src")
    src_file = server.volume_file(src["id"])
    assert_size(src_file, 1, "new volume")
    assert read_at(src_file, 0, BLOCK) == bytes(BLOCK), "a new volume must read as zeros"

    original = make_patterns(b"ORIGINAL", 1)
    write_at(src_file, original)

    snap = server.create_snapshot(src["id"], name="data-snap")
    assert snap["size"] == 1
    snap_file = server.snapshot_file(snap["id"])
    assert_patterns(snap_file, original, "snapshot")

    # A clone of the original content, taken before the source changes.
    clone = server.create_volume(source_volid=src["id"], name="data-clone")
    assert clone["size"] == 1 and clone["source_volid"] == src["id"], clone
    clone_file = server.volume_file(clone["id"])
    assert_size(clone_file, 1, "clone")
    assert_patterns(clone_file, original, "clone")

    # Overwrite the source at the same offsets.
    changed = make_patterns(b"CHANGED!", 1)
    write_at(src_file, changed)
    assert_patterns(snap_file, original, "snapshot after the source was overwritten")
    assert_patterns(clone_file, original, "clone after the source was overwritten")

    # A bigger volume from the snapshot holds the snapshot's bytes.
    from_snap = server.create_volume(snapshot_id=snap["id"], size=2, name="data-from-snap")
    assert from_snap["size"] == 2 and from_snap["snapshot_id"] == snap["id"], from_snap
    from_snap_file = server.volume_file(from_snap["id"])
    assert_size(from_snap_file, 2, "volume from snapshot")
    assert_patterns(from_snap_file, original, "volume from snapshot")
    assert read_at(from_snap_file, GiB + 12345, BLOCK) == bytes(BLOCK), (
        "the part of a volume from snapshot beyond the snapshot's size must read as zeros"
    )

    # Extend keeps the (changed) data and adds zeros.
    server.api("POST", f"/volumes/{src['id']}/action", 202, json={"os-extend": {"new_size": 2}})
    vol = wait_for(
        lambda: (v := server.volume(src["id"]))
        and (v["status"].startswith("error") or (v["status"] == "available" and v["size"] == 2))
        and v,
        timeout=120,
        what="the extended volume to be available with size 2",
        detail=lambda: f"volume: {server.volume(src['id'])}",
    )
    assert vol["status"] == "available" and vol["size"] == 2, vol
    assert_size(src_file, 2, "extended volume")
    assert_patterns(src_file, changed, "extended volume")
    assert read_at(src_file, GiB, BLOCK) == bytes(BLOCK), "the extension must read as zeros"

    # The copies still hold the original bytes.
    assert_patterns(snap_file, original, "snapshot at the end")
    assert_patterns(clone_file, original, "clone at the end")

    # Deleting removes the files.
    server.api("DELETE", f"/snapshots/{snap['id']}", 202)
    server.wait_snapshot_gone(snap["id"])
    assert not snap_file.exists(), f"{snap_file} still exists after the snapshot was deleted"
    for v, path in ((src, src_file), (clone, clone_file), (from_snap, from_snap_file)):
        server.api("DELETE", f"/volumes/{v['id']}", 202)
    for v, path in ((src, src_file), (clone, clone_file), (from_snap, from_snap_file)):
        server.wait_volume_gone(v["id"])
        assert not path.exists(), f"{path} still exists after volume {v['id']} was deleted"
