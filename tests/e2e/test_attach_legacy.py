"""Legacy attach and detach (issue 4), replayed as Nova does it for old block
device mappings: python-cinderclient at 3.0 calling `volumes.reserve`,
`initialize_connection`, `attach`, `begin_detaching`, `roll_detaching`,
`terminate_connection`, `detach` and `unreserve` (the `os-*` volume actions).

After every step the volume's `status` is checked at once (Cinder completes
each of these calls before it answers; Nova relies on that), and its attach
state through `attachments[]` and the attachments API.

The server is a plain `scoria serve`: its one `file` backend connects hosts
with the `local` connection type (`data.device_path` is the volume's file).
"""

from __future__ import annotations

from pathlib import Path

from attach_helpers import (
    action,
    assert_attachment,
    assert_volume,
    attachment,
    attachments_of,
    client_error,
    connector,
    fault_message,
    new_uuid,
)
from conftest import GiB


def new_volume(server, name: str) -> str:
    return server.create_volume(size=1, name=name)["id"]


def check_connection_info(ci: dict, volume_id: str, mode: str = "rw") -> dict:
    """os-initialize_connection answers the un-flattened
    `{driver_volume_type, data: {...}}`; the file backend's is `local`."""
    assert isinstance(ci, dict), ci
    assert ci.get("driver_volume_type") == "local", f"connection_info: {ci}"
    data = ci.get("data")
    assert isinstance(data, dict), f"connection_info has no data dict: {ci}"
    assert data.get("access_mode") == mode, f"access_mode {data.get('access_mode')!r}, wanted {mode!r}: {ci}"
    assert data.get("volume_id") == volume_id, f"connection_info is about another volume: {ci}"
    path = data.get("device_path")
    assert path, f"no device_path in {ci}"
    assert Path(path).is_file(), f"device_path {path} is not a file: {ci}"
    assert Path(path).stat().st_size == GiB, f"{path} is not the 1 GiB volume: {ci}"
    return data


def test_legacy_attach_detach_walk(server, c30):
    vid = new_volume(server, "legacy-walk")
    instance = new_uuid()
    conn = connector(host="compute-legacy", mountpoint=None)
    assert_volume(server, vid, "available", attached=[], step="create")

    c30.volumes.reserve(vid)
    assert_volume(server, vid, "attaching", attached=[], step="os-reserve")

    ci = c30.volumes.initialize_connection(vid, conn)
    check_connection_info(dict(ci), vid)
    assert_volume(server, vid, "attaching", attached=[], step="os-initialize_connection")

    c30.volumes.attach(vid, instance, "/dev/vdb", mode="rw")
    v = assert_volume(server, vid, "in-use", attached=[(instance, None)], step="os-attach")
    shown = v["attachments"][0]
    assert shown["device"] == "/dev/vdb", f"attachments[] device: {shown}"
    assert shown.get("id") == vid and shown.get("volume_id") == vid, shown
    att_id = shown["attachment_id"]
    assert att_id, shown
    # The attachments API (3.27+) shows the legacy attachment too.
    a = assert_attachment(server, att_id, "attached", step="os-attach",
                          instance=instance, volume_id=vid, attach_mode="rw")
    assert a["attached_at"], f"attached_at is empty on an attached attachment: {a}"
    assert a["detached_at"] == "", f"detached_at of an attached attachment: {a}"
    assert [x["id"] for x in attachments_of(server, vid)] == [att_id]

    c30.volumes.begin_detaching(vid)
    assert_volume(server, vid, "detaching", attached=[(instance, att_id)], step="os-begin_detaching")
    assert_attachment(server, att_id, "attached", step="os-begin_detaching")

    c30.volumes.roll_detaching(vid)
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="os-roll_detaching")
    assert_attachment(server, att_id, "attached", step="os-roll_detaching")

    c30.volumes.begin_detaching(vid)
    assert_volume(server, vid, "detaching", attached=[(instance, att_id)], step="second os-begin_detaching")

    c30.volumes.terminate_connection(vid, conn)
    assert_volume(server, vid, "detaching", step="os-terminate_connection")

    c30.volumes.detach(vid, att_id)
    assert_volume(server, vid, "available", attached=[], step="os-detach")
    assert attachment(server, att_id) is None, "the detached attachment is still shown"
    assert attachments_of(server, vid) == []

    # The volume can be attached again, and deleted once detached.
    c30.volumes.reserve(vid)
    assert_volume(server, vid, "attaching", step="os-reserve after a detach")
    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", attached=[], step="os-unreserve")
    server.api("DELETE", f"/volumes/{vid}", 202)
    server.wait_volume_gone(vid)


def test_reserve_then_unreserve(server, c30):
    vid = new_volume(server, "legacy-unreserve")
    c30.volumes.reserve(vid)
    assert_volume(server, vid, "attaching", attached=[], step="os-reserve")
    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", attached=[], step="os-unreserve")
    assert attachments_of(server, vid) == []
    # Unreserve of an available volume changes nothing.
    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", attached=[], step="a second os-unreserve")


def test_attach_read_only_mode(server, c30):
    vid = new_volume(server, "legacy-ro")
    instance = new_uuid()
    c30.volumes.reserve(vid)
    c30.volumes.initialize_connection(vid, connector(mountpoint=None))
    c30.volumes.attach(vid, instance, "/dev/vdc", mode="ro")
    v = assert_volume(server, vid, "in-use", attached=[(instance, None)], step="os-attach mode ro")
    att_id = v["attachments"][0]["attachment_id"]
    assert_attachment(server, att_id, "attached", attach_mode="ro", instance=instance)
    c30.volumes.begin_detaching(vid)
    c30.volumes.terminate_connection(vid, connector(mountpoint=None))
    c30.volumes.detach(vid, att_id)
    assert_volume(server, vid, "available", attached=[], step="os-detach")


def test_readonly_volume_needs_ro_mode(server, c30):
    """A volume with the readonly flag connects `ro` and refuses an `rw` attach (400)."""
    vid = new_volume(server, "legacy-readonly")
    c30.volumes.update_readonly_flag(vid, True)
    c30.volumes.reserve(vid)
    ci = c30.volumes.initialize_connection(vid, connector(mountpoint=None))
    check_connection_info(dict(ci), vid, mode="ro")
    e = client_error(lambda: c30.volumes.attach(vid, new_uuid(), "/dev/vdb", mode="rw"))
    assert e.code == 400, f"rw attach of a read-only volume: {e.code} {e}"
    assert_volume(server, vid, "attaching", attached=[], step="a refused rw os-attach")
    c30.volumes.unreserve(vid)
    assert_volume(server, vid, "available", attached=[], step="os-unreserve")


def test_wrong_state_errors(server, c30):
    vid = new_volume(server, "legacy-states")
    instance = new_uuid()

    # begin_detaching of an available volume: 400, nothing changes.
    r = action(server, vid, "os-begin_detaching")
    assert r.status_code == 400, f"os-begin_detaching of an available volume: {r.status_code} {r.text}"
    assert "in-use" in fault_message(r), r.text
    assert_volume(server, vid, "available", attached=[], step="a refused os-begin_detaching")

    # reserve twice: the second one is refused (the volume is `attaching`).
    c30.volumes.reserve(vid)
    r = action(server, vid, "os-reserve")
    assert r.status_code == 400, f"os-reserve of an attaching volume: {r.status_code} {r.text}"
    assert "must be available to reserve" in fault_message(r), r.text
    assert_volume(server, vid, "attaching", step="a refused second os-reserve")

    c30.volumes.initialize_connection(vid, connector(mountpoint=None))
    c30.volumes.attach(vid, instance, "/dev/vdb")
    v = assert_volume(server, vid, "in-use", attached=[(instance, None)], step="os-attach")
    att_id = v["attachments"][0]["attachment_id"]

    # reserve of an in-use (non-multiattach) volume: 400.
    e = client_error(lambda: c30.volumes.reserve(vid))
    assert e.code == 400, f"os-reserve of an in-use volume: {e.code} {e}"
    assert "must be available to reserve" in str(e), str(e)
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="a refused os-reserve")

    # An in-use volume cannot be deleted.
    r = server.delete(f"/volumes/{vid}")
    assert r.status_code == 400, f"DELETE of an in-use volume: {r.status_code} {r.text}"
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="a refused delete")

    # roll_detaching of an in-use volume is a silent no-op.
    r = action(server, vid, "os-roll_detaching")
    assert r.status_code == 202, r.text
    assert_volume(server, vid, "in-use", attached=[(instance, att_id)], step="os-roll_detaching on in-use")

    c30.volumes.begin_detaching(vid)
    # begin_detaching of a detaching volume: 400.
    r = action(server, vid, "os-begin_detaching")
    assert r.status_code == 400, f"os-begin_detaching of a detaching volume: {r.status_code} {r.text}"
    assert_volume(server, vid, "detaching", step="a refused second os-begin_detaching")

    c30.volumes.terminate_connection(vid, connector(mountpoint=None))
    c30.volumes.detach(vid, att_id)
    assert_volume(server, vid, "available", attached=[], step="os-detach")


def test_actions_accept_any_argument(server):
    """Argument-less actions take any value, as the SDK sends `null` and others `{}`."""
    vid = new_volume(server, "legacy-args")
    for arg in (None, {}):
        r = action(server, vid, "os-reserve", arg)
        assert r.status_code == 202, f"os-reserve {arg!r}: {r.status_code} {r.text}"
        assert_volume(server, vid, "attaching", step=f"os-reserve {arg!r}")
        r = action(server, vid, "os-unreserve", arg)
        assert r.status_code == 202, f"os-unreserve {arg!r}: {r.status_code} {r.text}"
        assert_volume(server, vid, "available", step=f"os-unreserve {arg!r}")


def test_unknown_volume_is_404(server, c30):
    missing = new_uuid()
    for name, arg in [("os-reserve", None), ("os-begin_detaching", None),
                      ("os-initialize_connection", {"connector": connector()}),
                      ("os-attach", {"instance_uuid": new_uuid(), "mountpoint": "/dev/vdb"})]:
        r = action(server, missing, name, arg)
        assert r.status_code == 404, f"{name} of an unknown volume: {r.status_code} {r.text}"
