"""Concurrent attachment creates and multiattach volumes (issue 4).

* A volume that is not multiattach, attached by two concurrent requests
  (attachment create for two different instances, released together by a
  barrier; several rounds, fresh volumes): exactly one wins (200), the other
  gets 400 "... status must be available or downloading to reserve ...", and
  the volume has exactly one attachment, the winner's.
* A multiattach volume (a volume type with `multiattach="<is> True"`, made by
  the admin; noauth callers are admins) accepts two concurrent creates; both
  complete → `in-use` with two attachments; deleting one leaves the volume
  `in-use` with the other; deleting the second makes it `available`.

The server is a plain `scoria serve` (its `file` backend supports
multiattach); requests go over plain HTTP at 3.44, as Nova's would.
"""

from __future__ import annotations

import pytest
import requests

from attach_helpers import (
    assert_attachment,
    assert_volume,
    attachments_of,
    connector,
    create_type,
    fault_message,
    new_uuid,
    together,
)

ROUNDS = 10
RESERVE_REFUSED = "status must be available or downloading to reserve"


@pytest.fixture(scope="module")
def multi_type(server):
    return create_type(server, "multiattach", multiattach="<is> True")


def post_attachment(server, volume_id: str, instance: str, conn: dict | None) -> requests.Response:
    return server.post("/attachments", microversion="3.44",
                       json={"attachment": {"volume_uuid": volume_id, "instance_uuid": instance,
                                            "connector": conn}})


@pytest.mark.parametrize("with_connector", [False, True], ids=["reserve", "with-connector"])
def test_concurrent_attach_of_a_single_attach_volume(server, with_connector):
    outcomes = []
    for round_no in range(ROUNDS):
        vid = server.create_volume(size=1, name=f"race-{round_no}")["id"]
        assert vid and server.volume(vid)["multiattach"] is False
        instances = [new_uuid(), new_uuid()]
        conns = [connector(host=f"compute-{i}") if with_connector else None for i in range(2)]
        responses = together(
            *[lambda i=i: post_attachment(server, vid, instances[i], conns[i]) for i in range(2)]
        )
        codes = [r.status_code for r in responses]
        outcomes.append(codes)
        assert sorted(codes) == [200, 400], (
            f"round {round_no}: two concurrent attachment creates on a single-attach volume "
            f"answered {codes}: {[r.text[:300] for r in responses]}")
        winner = codes.index(200)
        loser = 1 - winner
        assert RESERVE_REFUSED in fault_message(responses[loser]), responses[loser].text
        won = responses[winner].json()["attachment"]
        assert won["instance"] == instances[winner], won

        listed = attachments_of(server, vid)
        assert [a["id"] for a in listed] == [won["id"]], (
            f"round {round_no}: the volume has attachments {listed}, wanted only the winner's")
        assert listed[0]["instance"] == instances[winner], listed
        assert_volume(server, vid, "attaching" if with_connector else "reserved", attached=[],
                      step=f"round {round_no}")

        server.api("DELETE", f"/attachments/{won['id']}", 200, microversion="3.44")
        assert_volume(server, vid, "available", attached=[], step=f"round {round_no} delete")
        server.api("DELETE", f"/volumes/{vid}", 202)


def test_multiattach_type_makes_multiattach_volumes(server, multi_type):
    v = server.create_volume(size=1, name="multi-flag", volume_type="multiattach")
    assert v["multiattach"] is True, v
    assert v["volume_type"] == "multiattach", v
    plain = server.create_volume(size=1, name="plain-flag")
    assert plain["multiattach"] is False, plain


def test_concurrent_attach_of_a_multiattach_volume(server, multi_type):
    for round_no in range(2):
        vid = server.create_volume(size=1, name=f"multi-{round_no}", volume_type="multiattach")["id"]
        instances = [new_uuid(), new_uuid()]
        conns = [connector(host=f"compute-{i}", mountpoint=f"/dev/vd{'bc'[i]}") for i in range(2)]
        responses = together(
            *[lambda i=i: post_attachment(server, vid, instances[i], conns[i]) for i in range(2)]
        )
        codes = [r.status_code for r in responses]
        assert codes == [200, 200], (
            f"round {round_no}: concurrent creates on a multiattach volume answered {codes}: "
            f"{[r.text[:300] for r in responses]}")
        atts = [r.json()["attachment"] for r in responses]
        for a, inst in zip(atts, instances):
            assert a["status"] == "attaching" and a["instance"] == inst, a
            assert a["connection_info"].get("driver_volume_type") == "local", a
        assert {a["id"] for a in attachments_of(server, vid)} == {a["id"] for a in atts}
        assert_volume(server, vid, "attaching", attached=[], step="two creates")

        together(*[lambda a=a: server.api("POST", f"/attachments/{a['id']}/action", 204,
                                          microversion="3.44", json={"os-complete": None})
                   for a in atts])
        v = assert_volume(server, vid, "in-use",
                          attached=[(instances[0], atts[0]["id"]), (instances[1], atts[1]["id"])],
                          step="two completes")
        devices = {a["server_id"]: a["device"] for a in v["attachments"]}
        assert devices == {instances[0]: "/dev/vdb", instances[1]: "/dev/vdc"}, v["attachments"]
        for a in atts:
            assert_attachment(server, a["id"], "attached")

        # A third attachment of an in-use multiattach volume is fine, too.
        third = post_attachment(server, vid, new_uuid(), None)
        assert third.status_code == 200, f"third create on an in-use multiattach volume: {third.text}"
        third_id = third.json()["attachment"]["id"]
        assert_volume(server, vid, "in-use", step="a third (reserved) attachment")
        server.api("DELETE", f"/attachments/{third_id}", 200, microversion="3.44")

        remaining = server.api("DELETE", f"/attachments/{atts[0]['id']}", 200, microversion="3.44")
        assert [a["id"] for a in remaining["attachments"]] == [atts[1]["id"]], (
            f"the delete answer lists the volume's remaining attachments: {remaining}")
        assert_volume(server, vid, "in-use", attached=[(instances[1], atts[1]["id"])],
                      step="delete of the first")
        assert [a["id"] for a in attachments_of(server, vid)] == [atts[1]["id"]]
        assert_attachment(server, atts[1]["id"], "attached")

        server.api("DELETE", f"/attachments/{atts[1]['id']}", 200, microversion="3.44")
        assert_volume(server, vid, "available", attached=[], step="delete of the second")
        assert attachments_of(server, vid) == []
        server.api("DELETE", f"/volumes/{vid}", 202)
        server.wait_volume_gone(vid)


def test_legacy_reserve_of_an_in_use_multiattach_volume(server, multi_type):
    """os-reserve accepts `in-use` for a multiattach volume, and os-detach of
    one of two attachments leaves it `in-use`."""
    vid = server.create_volume(size=1, name="multi-legacy", volume_type="multiattach")["id"]
    instances = [new_uuid(), new_uuid()]
    for i, inst in enumerate(instances):
        server.api("POST", f"/volumes/{vid}/action", 202, json={"os-reserve": None})
        assert_volume(server, vid, "attaching", step=f"os-reserve #{i + 1}")
        server.api("POST", f"/volumes/{vid}/action", 200,
                   json={"os-initialize_connection": {"connector": connector(host=f"h{i}", mountpoint=None)}})
        server.api("POST", f"/volumes/{vid}/action", 202,
                   json={"os-attach": {"instance_uuid": inst, "mountpoint": f"/dev/vd{'bc'[i]}", "mode": "rw"}})
        assert_volume(server, vid, "in-use", step=f"os-attach #{i + 1}")
    v = assert_volume(server, vid, "in-use", attached=[(instances[0], None), (instances[1], None)])
    first = next(a["attachment_id"] for a in v["attachments"] if a["server_id"] == instances[0])
    server.api("POST", f"/volumes/{vid}/action", 202, json={"os-detach": {"attachment_id": first}})
    assert_volume(server, vid, "in-use", attached=[(instances[1], None)], step="os-detach of one")
    v = server.volume(vid)
    second = v["attachments"][0]["attachment_id"]
    server.api("POST", f"/volumes/{vid}/action", 202, json={"os-detach": {"attachment_id": second}})
    assert_volume(server, vid, "available", attached=[], step="os-detach of both")
