"""New-style attach (issue 4): the attachments API replayed as Nova and
glance_store use it, through python-cinderclient at 3.44 (Nova's pin) and
3.54 (`mode`).

Nova: `attachments.create(volume, None, instance)` (reserve; volume
`reserved`, attachment `reserved`, connection_info `{}`) → compute's
`attachments.update(id, connector)` (volume and attachment `attaching`,
connection_info filled in) → `attachments.complete(id)` (volume `in-use`,
attachment `attached`) → `attachments.delete(id)` (volume `available`).

Every step's effect is checked at once: Cinder finishes these calls before it
answers. The attachments API shows connection_info flattened: the driver's
`data` keys next to `driver_volume_type` and `attachment_id`. The server is a
plain `scoria serve` whose `file` backend connects with the `local` type.
"""

from __future__ import annotations

from pathlib import Path

from attach_helpers import (
    ATTACHMENT_KEYS,
    as_dict,
    assert_attachment,
    assert_volume,
    attachment,
    attachments_of,
    client_error,
    connector,
    fault_message,
    flat_connection_info,
    new_uuid,
)
from conftest import GiB

RESERVE_REFUSED = "status must be available or downloading to reserve"


def new_volume(server, name: str) -> str:
    return server.create_volume(size=1, name=name)["id"]


def check_local_connection(ci: dict, volume_id: str, attachment_id: str, mode: str, what: str) -> None:
    ci = flat_connection_info(ci, what)
    assert ci["driver_volume_type"] == "local", f"{what}: {ci}"
    assert ci.get("access_mode") == mode, f"{what}: access_mode {ci.get('access_mode')!r}, wanted {mode!r}: {ci}"
    assert ci.get("volume_id") == volume_id, f"{what}: {ci}"
    assert ci.get("attachment_id") == attachment_id, f"{what}: attachment_id missing or wrong: {ci}"
    path = ci.get("device_path")
    assert path and Path(path).is_file(), f"{what}: device_path {path!r} is not a file: {ci}"
    assert Path(path).stat().st_size == GiB, f"{what}: {path} is not the 1 GiB volume"


def test_nova_attach_detach_walk(server, c344):
    vid = new_volume(server, "nova-walk")
    instance = new_uuid()

    created = c344.attachments.create(vid, None, instance_id=instance)
    assert ATTACHMENT_KEYS <= set(created), f"attachment create answer lacks keys: {created}"
    att_id = created["id"]
    assert created["status"] == "reserved", created
    assert created["instance"] == instance and created["volume_id"] == vid, created
    assert created["connection_info"] == {}, f"connection_info before a connector: {created}"
    assert created["attached_at"] == "" and created["detached_at"] == "", created
    assert_volume(server, vid, "reserved", attached=[], step="attachment create (no connector)")
    assert_attachment(server, att_id, "reserved", connection_info={}, instance=instance, volume_id=vid)
    # A reserved volume cannot be deleted, nor reserved again by the legacy call.
    r = server.delete(f"/volumes/{vid}")
    assert r.status_code == 400, f"DELETE of a reserved volume: {r.status_code} {r.text}"
    r = server.post(f"/volumes/{vid}/action", json={"os-reserve": None})
    assert r.status_code == 400, f"os-reserve of a reserved volume: {r.status_code} {r.text}"
    assert_volume(server, vid, "reserved", attached=[], step="a refused delete and os-reserve")

    # Nova finds it by instance and volume.
    found = c344.attachments.list(search_opts={"instance_id": instance, "volume_id": vid})
    assert [a.id for a in found] == [att_id], found

    updated = as_dict(c344.attachments.update(att_id, connector(host="compute-1", mountpoint="/dev/vdb")))
    assert updated["id"] == att_id, updated
    assert updated["status"] == "attaching", f"attachment after update: {updated}"
    check_local_connection(updated["connection_info"], vid, att_id, "rw", "update answer")
    assert updated["attach_mode"] == "rw", updated
    assert_volume(server, vid, "attaching", attached=[], step="attachment update")
    shown = assert_attachment(server, att_id, "attaching", step="attachment update")
    check_local_connection(shown["connection_info"], vid, att_id, "rw", "GET after update")

    resp = c344.attachments.complete(att_id)
    assert resp.status_code == 204, f"os-complete answered {resp.status_code}"
    v = assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="attachment complete")
    r = server.delete(f"/volumes/{vid}")
    assert r.status_code == 400, f"DELETE of an in-use volume: {r.status_code} {r.text}"
    listed = v["attachments"][0]
    assert listed["device"] == "/dev/vdb", f"attachments[] device (the connector's mountpoint): {listed}"
    assert listed.get("attached_at"), f"attachments[] attached_at: {listed}"
    a = assert_attachment(server, att_id, "attached", step="attachment complete", attach_mode="rw")
    assert a["attached_at"], f"attached_at empty after complete: {a}"
    assert a["detached_at"] == "", a

    # A second complete is harmless.
    c344.attachments.complete(att_id)
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="a second complete")

    summary = server.api("GET", "/attachments", 200, microversion="3.44",
                         params={"volume_id": vid})["attachments"]
    assert summary == [{"id": att_id, "status": "attached", "instance": instance, "volume_id": vid}], summary

    # Nova's detach: begin_detaching, (on a failure roll_detaching), then
    # the attachment delete.
    c344.volumes.begin_detaching(vid)
    assert_volume(server, vid, "detaching", attached=[(instance, att_id)], step="os-begin_detaching")
    assert_attachment(server, att_id, "attached", step="os-begin_detaching")
    c344.volumes.roll_detaching(vid)
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="os-roll_detaching")
    c344.volumes.begin_detaching(vid)
    assert_volume(server, vid, "detaching", attached=[(instance, att_id)], step="os-begin_detaching")

    c344.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="attachment delete")
    assert attachment(server, att_id) is None, "the deleted attachment is still shown"
    assert attachments_of(server, vid) == []
    # Nova ignores 404 on a repeated delete.
    e = client_error(lambda: c344.attachments.delete(att_id))
    assert e.code == 404, f"delete of a deleted attachment: {e.code} {e}"

    server.api("DELETE", f"/volumes/{vid}", 202)
    server.wait_volume_gone(vid)


def test_create_with_connector_then_complete(server, c344):
    vid = new_volume(server, "with-connector")
    instance = new_uuid()
    created = c344.attachments.create(vid, connector(mountpoint="/dev/vdc"), instance_id=instance)
    att_id = created["id"]
    assert created["status"] == "attaching", created
    assert created["attach_mode"] == "rw", created
    check_local_connection(created["connection_info"], vid, att_id, "rw", "create-with-connector answer")
    assert_volume(server, vid, "attaching", attached=[], step="attachment create with connector")
    assert_attachment(server, att_id, "attaching")

    c344.attachments.complete(att_id)
    v = assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="complete")
    assert v["attachments"][0]["device"] == "/dev/vdc", v["attachments"]

    r = server.delete(f"/attachments/{att_id}", microversion="3.44")
    assert r.status_code == 200, f"DELETE /attachments/{att_id}: {r.status_code} {r.text}"
    assert r.json() == {"attachments": []}, f"delete answer lists the remaining attachments: {r.text}"
    assert_volume(server, vid, "available", attached=[], step="attachment delete")


def test_delete_of_a_reserved_attachment(server, c344):
    vid = new_volume(server, "reserved-delete")
    att_id = c344.attachments.create(vid, None, instance_id=new_uuid())["id"]
    assert_volume(server, vid, "reserved", step="attachment create")
    c344.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="delete of the reserved attachment")
    assert attachment(server, att_id) is None


def test_empty_connector_only_reserves(server):
    """`connector: {}` (what the openstack CLI sends without --connect) reserves only."""
    vid = new_volume(server, "empty-connector")
    body = server.api("POST", "/attachments", 200, microversion="3.54",
                      json={"attachment": {"volume_uuid": vid, "instance_uuid": new_uuid(),
                                           "connector": {}}})
    a = body["attachment"]
    assert a["status"] == "reserved" and a["connection_info"] == {}, a
    assert_volume(server, vid, "reserved", step="attachment create with connector {}")
    server.api("DELETE", f"/attachments/{a['id']}", 200, microversion="3.54")
    assert_volume(server, vid, "available", step="attachment delete")


def test_mode_ro_at_3_54(server, c354):
    # With the connector in the same call.
    vid = new_volume(server, "mode-ro")
    instance = new_uuid()
    created = c354.attachments.create(vid, connector(), instance_id=instance, mode="ro")
    att_id = created["id"]
    assert created["attach_mode"] == "ro", created
    check_local_connection(created["connection_info"], vid, att_id, "ro", "create mode ro")
    c354.attachments.complete(att_id)
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="complete")
    assert_attachment(server, att_id, "attached", attach_mode="ro")
    c354.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="delete")

    # Reserved with mode ro, connected later (glance_store's read path).
    created = c354.attachments.create(vid, None, mode="ro")
    att_id = created["id"]
    assert created["status"] == "reserved", created
    assert created["instance"] in (None, ""), f"no instance was given: {created}"
    updated = as_dict(c354.attachments.update(att_id, connector(mountpoint="glance_store")))
    assert updated["attach_mode"] == "ro", updated
    check_local_connection(updated["connection_info"], vid, att_id, "ro", "update after create mode ro")
    c354.attachments.complete(att_id)
    a = assert_attachment(server, att_id, "attached", attach_mode="ro")
    assert a["instance"] in (None, ""), a
    assert_volume(server, vid, "in-use", step="complete without an instance")
    c354.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="delete")


def test_mode_is_refused_below_3_54(server):
    """Before 3.54 there is no `mode`: a request carrying it is refused (400)
    by the strict schema of attachment create, and nothing is reserved."""
    vid = new_volume(server, "mode-344")
    r = server.post("/attachments", microversion="3.44",
                    json={"attachment": {"volume_uuid": vid, "connector": None, "mode": "ro"}})
    assert r.status_code == 400, f"mode at 3.44: {r.status_code} {r.text}"
    assert_volume(server, vid, "available", attached=[], step="a refused create")


def test_readonly_volume_attaches_ro(server, c354):
    """The volume's readonly flag wins over the requested mode."""
    vid = new_volume(server, "readonly")
    c354.volumes.update_readonly_flag(vid, True)
    created = c354.attachments.create(vid, connector(), instance_id=new_uuid(), mode="rw")
    assert created["attach_mode"] == "ro", created
    check_local_connection(created["connection_info"], vid, created["id"], "ro", "readonly volume")
    c354.attachments.delete(created["id"])
    assert_volume(server, vid, "available", attached=[], step="delete")


def test_attach_to_in_use_volume_is_refused(server, c344):
    vid = new_volume(server, "in-use-refused")
    first = new_uuid()
    att_id = c344.attachments.create(vid, connector(), instance_id=first)["id"]
    c344.attachments.complete(att_id)
    assert_volume(server, vid, "in-use", attached=[(first, att_id)], step="complete")

    for conn in (None, connector(host="compute-2")):
        e = client_error(lambda: c344.attachments.create(vid, conn, instance_id=new_uuid()))
        assert e.code == 400, f"attachment create on an in-use volume: {e.code} {e}"
        assert RESERVE_REFUSED in str(e), f"message must carry {RESERVE_REFUSED!r} (glance_store retries on it): {e}"
        assert "in-use" in str(e), str(e)
        assert_volume(server, vid, "in-use", attached=[(first, att_id)], step="a refused create")
        assert [a["id"] for a in attachments_of(server, vid)] == [att_id]

    # The volume's own message text, as a raw fault body.
    r = server.post("/attachments", microversion="3.44",
                    json={"attachment": {"volume_uuid": vid, "instance_uuid": new_uuid()}})
    assert r.status_code == 400 and "badRequest" in r.json(), r.text
    msg = fault_message(r)
    assert msg.startswith("Invalid volume: ") and RESERVE_REFUSED in msg, msg

    c344.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="delete")


def test_same_instance_may_attach_again(server, c344):
    """A second attachment for the same instance is allowed on an in-use
    volume (Nova does this when it live-migrates or rebuilds a server)."""
    vid = new_volume(server, "same-instance")
    instance = new_uuid()
    first = c344.attachments.create(vid, connector(host="src"), instance_id=instance)["id"]
    c344.attachments.complete(first)
    second = c344.attachments.create(vid, None, instance_id=instance)
    assert second["status"] == "reserved", second
    assert {a["id"] for a in attachments_of(server, vid)} == {first, second["id"]}
    assert_volume(server, vid, "in-use", attached=[(instance, first)], step="second create, same instance")
    c344.attachments.delete(second["id"])
    assert_volume(server, vid, "in-use", attached=[(instance, first)], step="delete of the second")
    c344.attachments.delete(first)
    assert_volume(server, vid, "available", attached=[], step="delete of the first")


def test_wrong_state_and_version_errors(server, c344):
    vid = new_volume(server, "errors")

    # The attachments API does not exist before 3.27.
    for method, path, kw in [
        ("GET", "/attachments", {}),
        ("GET", "/attachments/detail", {}),
        ("POST", "/attachments", {"json": {"attachment": {"volume_uuid": vid}}}),
    ]:
        r = server.request(method, path, microversion="3.26", **kw)
        assert r.status_code == 404, f"{method} {path} at 3.26: {r.status_code} {r.text}"
    assert_volume(server, vid, "available", attached=[], step="POST /attachments at 3.26")

    att_id = c344.attachments.create(vid, connector(), instance_id=new_uuid())["id"]
    r = server.get(f"/attachments/{att_id}", microversion="3.26")
    assert r.status_code == 404, f"GET /attachments/id at 3.26: {r.status_code} {r.text}"

    # os-complete exists from 3.44 only.
    r = server.post(f"/attachments/{att_id}/action", microversion="3.43", json={"os-complete": None})
    assert r.status_code in (400, 404), f"os-complete at 3.43: {r.status_code} {r.text}"
    assert_attachment(server, att_id, "attaching", step="os-complete at 3.43")
    assert_volume(server, vid, "attaching", attached=[], step="os-complete at 3.43")

    # Unknown ids.
    for method, path, kw in [
        ("GET", f"/attachments/{new_uuid()}", {}),
        ("PUT", f"/attachments/{new_uuid()}", {"json": {"attachment": {"connector": connector()}}}),
        ("DELETE", f"/attachments/{new_uuid()}", {}),
        ("POST", f"/attachments/{new_uuid()}/action", {"json": {"os-complete": None}}),
    ]:
        r = server.request(method, path, microversion="3.44", **kw)
        assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
    r = server.post("/attachments", microversion="3.44",
                    json={"attachment": {"volume_uuid": new_uuid(), "instance_uuid": new_uuid()}})
    assert r.status_code == 404, f"attachment create for an unknown volume: {r.status_code} {r.text}"

    # Update needs a connector with at least one key.
    for body in ({"attachment": {}}, {"attachment": {"connector": {}}}):
        r = server.put(f"/attachments/{att_id}", microversion="3.44", json=body)
        assert r.status_code == 400, f"PUT {body}: {r.status_code} {r.text}"
    # Create needs volume_uuid.
    r = server.post("/attachments", microversion="3.44", json={"attachment": {"instance_uuid": new_uuid()}})
    assert r.status_code == 400, f"create without volume_uuid: {r.status_code} {r.text}"

    c344.attachments.delete(att_id)
    assert_volume(server, vid, "available", attached=[], step="delete")

    # A volume in error cannot be attached.
    err = new_volume(server, "in-error")
    server.api("POST", f"/volumes/{err}/action", 202, json={"os-reset_status": {"status": "error"}})
    r = server.post("/attachments", microversion="3.44",
                    json={"attachment": {"volume_uuid": err, "instance_uuid": new_uuid()}})
    assert r.status_code == 400, f"attachment create on a volume in error: {r.status_code} {r.text}"
    assert_volume(server, err, "error", attached=[], step="a refused create")
    assert attachments_of(server, err) == []
