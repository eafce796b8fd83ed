"""Attach failures by FAULT INJECTION (issue 4): a backend whose connection
setup fails.

One `scoria serve` runs two backends from a config file:
  * `files`: the ordinary `file` driver (the control: the same calls succeed);
  * `faulty`: the test-only `fake` driver under the fault-injection layer, with
    `fault_inject = initialize_connection`, so every connection setup on it fails
    with a backend error (creating and deleting volumes still works).
Volume types with `volume_backend_name` put volumes on one or the other.

What Cinder does and Nova relies on:
  * legacy: after `os-reserve` (`attaching`), a failing
    `os-initialize_connection` answers 500 and leaves the volume `attaching`;
    `os-unreserve` makes it `available` again;
  * attachment create with a connector answers 500 "Unable to create
    attachment for volume…" and leaves no attachment, the volume `available`;
  * attachment update answers 500 "Unable to update attachment…" and the
    attachment goes `error_attaching`; deleting it then works and the volume
    is `available` again.
"""

from __future__ import annotations

import pytest

from attach_helpers import (
    action,
    assert_attachment,
    assert_volume,
    attachment,
    attachments_of,
    client_error,
    config,
    connector,
    create_type,
    fault_message,
    new_uuid,
)


@pytest.fixture(scope="module")
def server(server_factory):
    """Fault injection: a `file` backend and a `fake` backend whose
    initialize_connection always fails."""
    srv = server_factory(
        "attach-faults",
        config=config(
            ("files", "file", {}),
            ("faulty", "fake", {"fault_inject": "initialize_connection", "fake_capacity_gb": 100}),
        ),
    )
    create_type(srv, "on-files", volume_backend_name="files")
    create_type(srv, "fault-injection-faulty", volume_backend_name="faulty")
    return srv


def faulty_volume(server, name: str) -> str:
    v = server.create_volume(size=1, name=name, volume_type="fault-injection-faulty")
    assert "@faulty" in (v.get("os-vol-host-attr:host") or ""), f"not on the faulty backend: {v}"
    return v["id"]


def files_volume(server, name: str) -> str:
    v = server.create_volume(size=1, name=name, volume_type="on-files")
    assert "@files" in (v.get("os-vol-host-attr:host") or ""), f"not on the files backend: {v}"
    return v["id"]


def test_control_the_file_backend_attaches(server, c344, c30):
    vid = files_volume(server, "control")
    instance = new_uuid()
    a = c344.attachments.create(vid, connector(), instance_id=instance)
    assert a["status"] == "attaching" and a["connection_info"].get("driver_volume_type") == "local", a
    c344.attachments.complete(a["id"])
    assert_volume(server, vid, "in-use", attached=[(instance, a["id"])], step="complete")
    c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="delete")

    c30.volumes.reserve(vid)
    ci = c30.volumes.initialize_connection(vid, connector(mountpoint=None))
    assert ci["driver_volume_type"] == "local", ci
    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", step="unreserve")


def test_legacy_initialize_connection_failure(server, c30):
    vid = faulty_volume(server, "legacy-init-fails")
    c30.volumes.reserve(vid)
    assert_volume(server, vid, "attaching", attached=[], step="os-reserve")

    r = action(server, vid, "os-initialize_connection", {"connector": connector(mountpoint=None)})
    assert r.status_code == 500, f"os-initialize_connection on a failing backend: {r.status_code} {r.text}"
    assert "computeFault" in r.json(), r.text
    assert_volume(server, vid, "attaching", attached=[], step="a failed os-initialize_connection")
    # The same through cinderclient, as Nova sees it.
    e = client_error(lambda: c30.volumes.initialize_connection(vid, connector(mountpoint=None)))
    assert e.code == 500, f"{e.code} {e}"
    assert_volume(server, vid, "attaching", attached=[], step="a second failed os-initialize_connection")

    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", attached=[], step="os-unreserve")
    assert attachments_of(server, vid) == []
    server.api("DELETE", f"/volumes/{vid}", 202)
    server.wait_volume_gone(vid)


def test_attachment_create_with_connector_failure(server, c344):
    vid = faulty_volume(server, "create-fails")
    instance = new_uuid()
    r = server.post("/attachments", microversion="3.44",
                    json={"attachment": {"volume_uuid": vid, "instance_uuid": instance,
                                         "connector": connector()}})
    assert r.status_code == 500, f"attachment create with connector on a failing backend: {r.status_code} {r.text}"
    msg = fault_message(r)
    assert msg.startswith("Unable to create attachment for volume"), msg
    assert attachments_of(server, vid) == [], "a failed create left an attachment"
    assert_volume(server, vid, "available", attached=[], step="a failed attachment create")

    e = client_error(lambda: c344.attachments.create(vid, connector(), instance_id=instance))
    assert e.code == 500, f"{e.code} {e}"
    assert attachments_of(server, vid) == []
    assert_volume(server, vid, "available", attached=[], step="a second failed attachment create")

    # Reserving still works: the failure was the backend's, not the volume's.
    a = c344.attachments.create(vid, None, instance_id=instance)
    assert a["status"] == "reserved", a
    c344.attachments.delete(a["id"])
    assert_volume(server, vid, "available", attached=[], step="delete of a reserved attachment")


def test_attachment_update_failure(server, c344):
    vid = faulty_volume(server, "update-fails")
    instance = new_uuid()
    att_id = c344.attachments.create(vid, None, instance_id=instance)["id"]
    assert_volume(server, vid, "reserved", attached=[], step="attachment create")

    r = server.put(f"/attachments/{att_id}", microversion="3.44",
                   json={"attachment": {"connector": connector()}})
    assert r.status_code == 500, f"attachment update on a failing backend: {r.status_code} {r.text}"
    msg = fault_message(r)
    assert msg.startswith("Unable to update attachment"), msg
    a = assert_attachment(server, att_id, "error_attaching", step="a failed update")
    assert a["attached_at"] == "", a
    # The volume is not attached (Cinder leaves it `reserved`; a status
    # recomputed from the remaining attachments would be `available`).
    v = server.volume(vid)
    assert v["status"] in ("reserved", "available"), f"volume after a failed update: {v}"
    assert v["attachments"] == [], v

    c344.attachments.delete(att_id)
    assert attachment(server, att_id) is None
    assert attachments_of(server, vid) == []
    assert_volume(server, vid, "available", attached=[], step="delete of the failed attachment")

    server.api("DELETE", f"/volumes/{vid}", 202)
    server.wait_volume_gone(vid)
