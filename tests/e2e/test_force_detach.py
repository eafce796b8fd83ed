"""`os-force_detach` (administrators): the way out of an attachment stuck in
any state, as openstacksdk sends it (`block_storage.detach_volume(volume,
attachment, force=True, connector=...)`).

The named attachment (or the volume's only one) loses its export and is
removed, and the volume's status follows what is left: `available` when
nothing is. Without an attachment id a volume with several attachments is
refused, as Cinder does. The server is a plain `scoria serve` (noauth: every
caller is an administrator; the 403 for members is in test_keystone.py).
"""

from __future__ import annotations

import openstack.connection
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from attach_helpers import (
    action,
    as_dict,
    assert_volume,
    attachment,
    attachments_of,
    connector,
    create_type,
    fault_message,
    new_uuid,
)


def sdk(server) -> openstack.connection.Connection:
    """openstacksdk on the server, with a noauth token (`user:project`) and
    the project's endpoint (it negotiates the microversion itself)."""
    auth = token_endpoint.Token(f"{server.endpoint}/{server.project}", f"sdk-e2e:{server.project}")
    return openstack.connection.Connection(
        session=ks_session.Session(auth=auth), block_storage_api_version="3"
    )


def new_volume(server, name: str, **kw) -> str:
    return server.create_volume(size=1, name=name, **kw)["id"]


def test_a_connected_but_never_completed_attachment_is_removed(server, c344):
    vid = new_volume(server, "fd-stuck")
    a = as_dict(c344.attachments.create(vid, connector(), instance_id=new_uuid()))
    assert_volume(server, vid, "attaching", [], step="create with a connector")
    assert a["connection_info"]["device_path"], a["connection_info"]

    sdk(server).block_storage.detach_volume(vid, a["id"], force=True, connector=connector())
    assert attachment(server, a["id"]) is None
    assert attachments_of(server, vid) == []
    assert_volume(server, vid, "available", [], step="os-force_detach")


def test_an_attached_volume_without_attachment_id(server, c344):
    vid = new_volume(server, "fd-in-use")
    instance = new_uuid()
    a = as_dict(c344.attachments.create(vid, connector(), instance_id=instance))
    c344.attachments.complete(a["id"])
    assert_volume(server, vid, "in-use", [(instance, a["id"])], step="complete")

    r = action(server, vid, "os-force_detach", {})
    assert r.status_code == 202, r.text
    assert attachments_of(server, vid) == []
    assert_volume(server, vid, "available", [], step="os-force_detach")
    # The volume can be attached again.
    again = as_dict(c344.attachments.create(vid, connector(), instance_id=instance))
    c344.attachments.complete(again["id"])
    assert_volume(server, vid, "in-use", [(instance, again["id"])], step="attach again")


def test_a_legacy_reservation_is_released(server, c30):
    vid = new_volume(server, "fd-reserved")
    c30.volumes.reserve(vid)
    assert_volume(server, vid, "attaching", [], step="os-reserve")
    r = action(server, vid, "os-force_detach", {"connector": connector()})
    assert r.status_code == 202, r.text
    assert_volume(server, vid, "available", [], step="os-force_detach")


def test_one_of_several_attachments(server, c344):
    create_type(server, "fd-multi", multiattach="<is> True")
    vid = new_volume(server, "fd-multi", volume_type="fd-multi")
    servers = [new_uuid(), new_uuid()]
    atts = []
    for i, instance in enumerate(servers):
        a = as_dict(c344.attachments.create(vid, connector(host=f"compute-{i}"),
                                            instance_id=instance))
        c344.attachments.complete(a["id"])
        atts.append(a)
    both = [(servers[0], atts[0]["id"]), (servers[1], atts[1]["id"])]
    assert_volume(server, vid, "in-use", both, step="two attachments")

    r = action(server, vid, "os-force_detach", {})
    assert r.status_code == 400, r.text
    assert "needs an attachment_id" in fault_message(r), r.text
    assert_volume(server, vid, "in-use", both, step="refused force-detach")

    # A connector picks the attachment on its host.
    r = action(server, vid, "os-force_detach", {"connector": connector(host="compute-1")})
    assert r.status_code == 202, r.text
    assert_volume(server, vid, "in-use", [both[0]], step="force-detach of compute-1")
    sdk(server).block_storage.detach_volume(vid, atts[0]["id"], force=True)
    assert_volume(server, vid, "available", [], step="force-detach of the last")


def test_bad_arguments(server):
    vid = new_volume(server, "fd-bad")
    r = action(server, vid, "os-force_detach", {"attachment_id": new_uuid()})
    assert r.status_code == 404, r.text
    assert "could not be found" in fault_message(r), r.text
    r = action(server, vid, "os-force_detach", {"connector": "compute-1"})
    assert r.status_code == 400, r.text
    assert "'connector' of os-force_detach must be an object" in fault_message(r), r.text
    r = action(server, vid, "os-force_detach", "now")
    assert r.status_code == 400, r.text
    assert_volume(server, vid, "available", [], step="refused force-detaches")
