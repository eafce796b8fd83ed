"""Extending an attached volume (issue 4; microversion 3.42).

At 3.42 `os-extend` works on an `in-use` volume: it goes `extending` and back
to `in-use` with the new size, the backing storage grows (with the `file`
backend's `local` connection the file at `connection_info.device_path`), and
Scoria tells Nova: `POST /os-server-external-events` with
`{"events": [{"name": "volume-extended", "server_uuid": <instance>, "tag":
<volume id>}]}`, one event per attached instance. Below 3.42 the same request
is refused with 400 "Volume <id> status must be 'available' to extend,
currently in-use.", and a `reserved` volume cannot be extended at any
version.

Nova is the `nova_recorder`, an HTTP peer of the test that records what
it receives and answers as Nova does (a real Nova cannot run here), set as
`[nova] endpoint_override` in the server's config file. The server runs two
backends: `files` (the `file` driver) and `slow`, the test-only `fake`
driver slowed by the fault-injection layer (`fault_delay_ms`), whose extend
takes long enough for the `extending` status to be seen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from attach_helpers import (
    action,
    assert_volume,
    cinder,
    client_error,
    config,
    connector,
    create_type,
    fault_message,
    flat_connection_info,
    new_uuid,
)
from conftest import GiB, wait_for
from nova_recorder import NovaRecorder

SLOW_MS = 2000


@pytest.fixture(scope="module")
def server(server_factory, nova_recorder):
    srv = server_factory(
        "extend-attached",
        config=config(
            ("files", "file", {}),
            ("slow", "fake", {"fault_delay_ms": SLOW_MS, "fake_capacity_gb": 100}),
            nova_url=nova_recorder.url,
        ),
    )
    create_type(srv, "on-files", volume_backend_name="files")
    create_type(srv, "fault-injection-slow", volume_backend_name="slow")
    create_type(srv, "multi-files", volume_backend_name="files", multiattach="<is> True")
    return srv


def attach(c344, server, vid: str, instance: str) -> dict:
    a = c344.attachments.create(vid, connector(host=f"host-{instance[:4]}"), instance_id=instance)
    c344.attachments.complete(a["id"])
    assert_volume(server, vid, "in-use", step="attach")
    return a


def wait_extended(server, vid: str, size: int, status: str = "in-use") -> dict:
    seen = [None]

    def done():
        seen[0] = v = server.volume(vid)
        if v["status"].startswith("error"):
            raise AssertionError(f"extend failed: {v}")
        return v if v["status"] == status and v["size"] == size else None

    return wait_for(done, timeout=90, what=f"volume {vid} to be {status} with size {size}",
                    detail=lambda: f"volume: {seen[0]}")


def wait_events(rec: NovaRecorder, vid: str, count: int) -> list[dict]:
    return wait_for(lambda: (lambda e: e if len(e) >= count else None)(rec.events_for(vid)),
                    timeout=60, what=f"{count} volume-extended event(s) for {vid} at the Nova recorder",
                    detail=lambda: f"requests received: {[(r.method, r.path, r.body) for r in rec.snapshot()]}")


def test_extend_in_use_file_volume(server, c344, nova_recorder):
    rec = nova_recorder
    vid = server.create_volume(size=1, name="grow-me", volume_type="on-files")["id"]
    instance = new_uuid()
    a = attach(c344, server, vid, instance)
    ci = flat_connection_info(a["connection_info"], "attachment create")
    path = Path(ci["device_path"])
    assert path.stat().st_size == GiB, path

    r = action(server, vid, "os-extend", {"new_size": 2}, version="3.42")
    assert r.status_code == 202, f"os-extend of an in-use volume at 3.42: {r.status_code} {r.text}"
    assert server.volume(vid)["status"] in ("extending", "in-use"), server.volume(vid)
    v = wait_extended(server, vid, 2)
    assert_volume(server, vid, "in-use", attached=[(instance, a["id"])], step="extend")
    assert v["size"] == 2
    assert path.stat().st_size == 2 * GiB, f"{path} did not grow: {path.stat().st_size} bytes"

    events = wait_events(rec, vid, 1)
    assert events == [{"name": "volume-extended", "server_uuid": instance, "tag": vid}], events
    post = next(p for p in rec.event_posts() if any(e.get("tag") == vid for e in p.body["events"]))
    assert post.path.split("?")[0] == "/v2.1/os-server-external-events", post.path
    assert "json" in post.headers.get("content-type", ""), post.headers

    c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="detach")


def test_extend_in_use_passes_through_extending(server, c344, nova_recorder):
    """On the slow fault-injection backend the interim status is seen."""
    vid = server.create_volume(size=1, name="slow-grow", volume_type="fault-injection-slow")["id"]
    instance = new_uuid()
    a = attach(c344, server, vid, instance)
    r = action(server, vid, "os-extend", {"new_size": 3}, version="3.42")
    assert r.status_code == 202, r.text
    v = server.volume(vid)
    assert v["status"] == "extending", f"right after os-extend (the backend takes {SLOW_MS} ms): {v}"
    # An extending volume cannot be extended again.
    r = action(server, vid, "os-extend", {"new_size": 4}, version="3.42")
    assert r.status_code == 400, f"os-extend of an extending volume: {r.status_code} {r.text}"
    wait_extended(server, vid, 3)
    assert_volume(server, vid, "in-use", attached=[(instance, a["id"])], step="extend")
    events = wait_events(nova_recorder, vid, 1)
    assert events == [{"name": "volume-extended", "server_uuid": instance, "tag": vid}], events
    c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="detach")


def test_extend_in_use_below_3_42_is_refused(server, c344, nova_recorder):
    vid = server.create_volume(size=1, name="old-client", volume_type="on-files")["id"]
    instance = new_uuid()
    a = attach(c344, server, vid, instance)
    for version in ("3.0", "3.41"):
        r = action(server, vid, "os-extend", {"new_size": 2}, version=version)
        assert r.status_code == 400, f"os-extend of an in-use volume at {version}: {r.status_code} {r.text}"
        msg = fault_message(r)
        want = f"Volume {vid} status must be 'available' to extend, currently in-use."
        assert want in msg, f"at {version}: {msg!r} does not say {want!r}"
        v = assert_volume(server, vid, "in-use", attached=[(instance, a["id"])], step=f"os-extend at {version}")
        assert v["size"] == 1, v
    # cinderclient as Nova's default 3.0 client sees the same.
    e = client_error(lambda: cinder(server, "3.0").volumes.extend(vid, 2))
    assert e.code == 400, e
    assert nova_recorder.events_for(vid) == []
    c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="detach")


def test_extend_reserved_volume_is_refused(server, c344):
    vid = server.create_volume(size=1, name="reserved-extend", volume_type="on-files")["id"]
    att = c344.attachments.create(vid, None, instance_id=new_uuid())
    assert_volume(server, vid, "reserved", step="reserve")
    r = action(server, vid, "os-extend", {"new_size": 2}, version="3.42")
    assert r.status_code == 400, f"os-extend of a reserved volume: {r.status_code} {r.text}"
    assert "currently reserved" in fault_message(r), r.text
    v = assert_volume(server, vid, "reserved", step="a refused os-extend")
    assert v["size"] == 1
    c344.attachments.delete(att["id"])


def test_extend_multiattached_volume_tells_every_instance(server, c344, nova_recorder):
    vid = server.create_volume(size=1, name="multi-grow", volume_type="multi-files")["id"]
    instances = [new_uuid(), new_uuid()]
    atts = [c344.attachments.create(vid, connector(host=f"h{i}"), instance_id=inst)
            for i, inst in enumerate(instances)]
    for a in atts:
        c344.attachments.complete(a["id"])
    assert_volume(server, vid, "in-use", attached=[(instances[0], atts[0]["id"]), (instances[1], atts[1]["id"])])
    cinder(server, "3.42").volumes.extend(vid, 2)
    wait_extended(server, vid, 2)
    events = wait_events(nova_recorder, vid, 2)
    assert sorted((e["name"], e["server_uuid"], e["tag"]) for e in events) == sorted(
        ("volume-extended", inst, vid) for inst in instances), events
    for a in atts:
        c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="detach")


def test_extend_of_an_available_volume_tells_nova_nothing(server, c344, nova_recorder):
    rec = nova_recorder
    idle = server.create_volume(size=1, name="idle-grow", volume_type="on-files")["id"]
    r = action(server, idle, "os-extend", {"new_size": 2}, version="3.42")
    assert r.status_code == 202, r.text
    wait_extended(server, idle, 2, status="available")
    assert server.volume_file(idle).stat().st_size == 2 * GiB

    # A later extend of an attached volume is reported; by then a (wrong)
    # report about the available volume would have arrived as well.
    vid = server.create_volume(size=1, name="busy-grow", volume_type="on-files")["id"]
    instance = new_uuid()
    a = attach(c344, server, vid, instance)
    action(server, vid, "os-extend", {"new_size": 2}, version="3.42")
    wait_extended(server, vid, 2)
    wait_events(rec, vid, 1)
    assert rec.events_for(idle) == [], f"Nova was told about a volume nobody has attached: {rec.events_for(idle)}"
    c344.attachments.delete(a["id"])
