"""Microversions 3.28–3.53 for the resources Scoria serves.

Each test asks for a behaviour at the microversion that introduced it and at
the one before, where the behaviour must be absent: pool filters (3.28, 3.35),
snapshot sort by name (3.30), filter validation and the filter table (3.31,
3.33), substring filters (3.34), the volume summary's metadata (3.36), limits
of another project (3.39), revert to the latest snapshot (3.40), `user_id` of
snapshots (3.41), `with_count` (3.45), `backend_state` of services (3.49), the
type list's `extra_specs` filter (3.52) and strict volume bodies (3.53).
Refused requests must answer with Cinder's fault body and change nothing.

`scoria serve` runs in noauth mode, where every caller is an administrator;
what only applies to other callers (3.31) is checked with a Keystone member
token against the `keystone_scoria` deployment.
"""

from __future__ import annotations

import json
import uuid

import pytest

from conftest import wait_for
from test_bad_input import assert_fault

OTHER_PROJECT = uuid.uuid4().hex


def names(items) -> list[str]:
    return [i["name"] for i in items]


def other_project(server) -> dict[str, str]:
    """Headers of a caller in a project no other test uses."""
    return {"X-Auth-Token": f"mv-user:{OTHER_PROJECT}"}


# ----------------------------------------------------------- the version cap


def test_cap_covers_the_implemented_versions(server):
    top = server.api("GET", "/volumes", 200, microversion="3.53")
    assert top is not None
    r = server.get("/volumes", microversion="latest")
    major, minor = r.headers["OpenStack-API-Version"].split()[1].split(".")
    assert (int(major), int(minor)) >= (3, 54), r.headers


# ------------------------------------------------------------- 3.28 / 3.35


def pools(server, mv: str, expect: int = 200, **params: str):
    body = server.api("GET", "/scheduler-stats/get_pools", expect, microversion=mv,
                      params={"detail": "True", **params})
    return body["pools"]


@pytest.fixture(scope="module")
def pool(server) -> dict:
    found = wait_for(lambda: pools(server, "3.27"), what="a pool to report")
    return found[0]


@pytest.fixture(scope="module")
def spec_types(server, pool):
    """Two types: one its backend's pool satisfies, one no pool does."""
    backend = pool["capabilities"]["volume_backend_name"]
    made = []
    for name, specs in [("mv-fits", {"volume_backend_name": backend, "multiattach": "<is> True"}),
                        ("mv-nowhere", {"volume_backend_name": "no-such-backend"})]:
        body = {"volume_type": {"name": name, "extra_specs": specs}}
        made.append(server.api("POST", "/types", 200, json=body)["volume_type"])
    yield made
    for t in made:
        server.api("DELETE", f"/types/{t['id']}", 202)


def test_pool_filters_by_name_and_capability(server, pool):
    everything = names(pools(server, "3.27"))
    assert names(pools(server, "3.27", name="nope", storage_protocol="nope")) == everything
    assert names(pools(server, "3.28", name=pool["name"])) == [pool["name"]]
    assert pools(server, "3.28", name="nope") == []
    protocol = pool["capabilities"]["storage_protocol"]
    assert pool["name"] in names(pools(server, "3.28", storage_protocol=protocol))
    assert pools(server, "3.28", storage_protocol="no-such-protocol") == []
    assert pool["name"] in names(pools(server, "3.28", thin_provisioning_support="True"))
    assert pools(server, "3.28", no_such_capability="1") == []


def test_pool_filter_by_volume_type(server, pool, spec_types):
    fits, nowhere = spec_types
    everything = names(pools(server, "3.27"))
    assert pool["name"] in names(pools(server, "3.35", volume_type=fits["name"]))
    assert pools(server, "3.35", volume_type=nowhere["id"]) == []
    # Before 3.35 the type is no filter at all.
    assert names(pools(server, "3.34", volume_type=nowhere["id"])) == everything
    r = server.get("/scheduler-stats/get_pools", microversion="3.35",
                   params={"volume_type": str(uuid.uuid4())})
    assert_fault(r, 404, ["could not be found"])


# ------------------------------------------------------------------ 3.52


def test_type_list_filters_by_extra_specs(server, spec_types):
    fits, nowhere = spec_types
    wanted = json.dumps({"volume_backend_name": "no-such-backend"})
    listed = server.api("GET", "/types", 200, microversion="3.52",
                        params={"extra_specs": wanted})["volume_types"]
    assert [t["id"] for t in listed] == [nowhere["id"]]
    python_literal = "{'multiattach': '<is> True'}"
    listed = server.api("GET", "/types", 200, microversion="3.52",
                        params={"extra_specs": python_literal})["volume_types"]
    assert [t["id"] for t in listed] == [fits["id"]]
    older = server.api("GET", "/types", 200, microversion="3.51",
                       params={"extra_specs": wanted})["volume_types"]
    assert {fits["id"], nowhere["id"]} <= {t["id"] for t in older}
    r = server.get("/types", microversion="3.52", params={"extra_specs": "k=v"})
    assert_fault(r, 400, ["extra_specs", "dictionary"])


# ------------------------------------------- snapshots: 3.30, 3.34, 3.41, 3.45


@pytest.fixture(scope="module")
def snapped(server):
    """A volume with three snapshots named out of order."""
    vol = server.create_volume(size=1, name="mv-snapped")
    snaps = [server.create_snapshot(vol["id"], name=n) for n in ("mv-b", "mv-a", "mv-c")]
    yield vol, snaps
    for s in snaps:
        server.api("DELETE", f"/snapshots/{s['id']}", 202)
    for s in snaps:
        server.wait_snapshot_gone(s["id"])
    server.api("DELETE", f"/volumes/{vol['id']}", 202)


def snapshot_list(server, mv: str, expect: int = 200, path: str = "/snapshots", **params):
    return server.api("GET", path, expect, microversion=mv, params=params)


def test_snapshot_sort_by_name_from_3_30(server, snapped):
    vol, _ = snapped
    listed = snapshot_list(server, "3.30", volume_id=vol["id"], sort="name:asc")["snapshots"]
    assert names(listed) == ["mv-a", "mv-b", "mv-c"]
    listed = snapshot_list(server, "3.29", volume_id=vol["id"], sort_key="display_name",
                           sort_dir="desc")["snapshots"]
    assert names(listed) == ["mv-c", "mv-b", "mv-a"]
    r = server.get("/snapshots", microversion="3.29", params={"sort": "name"})
    assert_fault(r, 400, ["sort key"])


def test_snapshot_like_filters_from_3_34(server, snapped):
    vol, _ = snapped
    both = {"volume_id": vol["id"], "name~": "MV-A"}
    listed = snapshot_list(server, "3.34", path="/snapshots/detail", **both)["snapshots"]
    assert names(listed) == ["mv-a"]
    # Before 3.34 `name~` is an unknown filter, which an administrator may send.
    listed = snapshot_list(server, "3.33", **both)["snapshots"]
    assert sorted(names(listed)) == ["mv-a", "mv-b", "mv-c"]
    r = server.get("/snapshots", microversion="3.34", params={"size~": "1"})
    assert_fault(r, 400, ["size~"])


def test_snapshot_name_filter_with_the_cli(server, snapped):
    rows = server.osc("volume", "snapshot", "list", "--all-projects", "--name", "mv-b", "--long")
    assert [r["Name"] for r in rows] == ["mv-b"]


def test_snapshot_user_id_from_3_41(server, snapped):
    _, snaps = snapped
    sid = snaps[0]["id"]
    shown = server.api("GET", f"/snapshots/{sid}", 200, microversion="3.41")["snapshot"]
    assert shown["user_id"] == server.token.split(":")[0]
    detail = snapshot_list(server, "3.41", path="/snapshots/detail", volume_id=snaps[0]["volume_id"])
    assert all("user_id" in s for s in detail["snapshots"])
    older = server.api("GET", f"/snapshots/{sid}", 200, microversion="3.40")["snapshot"]
    assert "user_id" not in older


def test_snapshot_count_from_3_45(server, snapped):
    vol, _ = snapped
    body = snapshot_list(server, "3.45", volume_id=vol["id"], with_count="true", limit="1")
    assert body["count"] == 3 and len(body["snapshots"]) == 1, body
    assert body["snapshots_links"][0]["rel"] == "next"
    assert "count" not in snapshot_list(server, "3.44", volume_id=vol["id"], with_count="true")
    r = server.get("/snapshots", microversion="3.45", params={"with_count": "maybe"})
    assert_fault(r, 400, ["with_count"])


# ----------------------------------------------- volumes: 3.34, 3.36, 3.45


@pytest.fixture(scope="module")
def other_volumes(server):
    """Two volumes with metadata in a project of their own."""
    made = []
    for name, meta in [("mvlike-alpha", {"tier": "gold", "app": "db"}),
                       ("mvlike-beta", {"tier": "silver"})]:
        body = {"volume": {"size": 1, "name": name, "metadata": meta}}
        vol = server.api("POST", "/volumes", 202, json=body, headers=other_project(server))
        made.append(vol["volume"])
    for v in made:
        server.wait_volume(v["id"])
    yield made
    for v in made:
        server.api("DELETE", f"/volumes/{v['id']}", 202)


def test_volume_like_filters_and_count(server, other_volumes):
    h = other_project(server)
    listed = server.api("GET", "/volumes", 200, microversion="3.34", headers=h,
                        params={"name~": "mvlike-"})["volumes"]
    assert sorted(names(listed)) == ["mvlike-alpha", "mvlike-beta"]
    listed = server.api("GET", "/volumes/detail", 200, microversion="3.34", headers=h,
                        params={"name~": "ALPHA", "status~": "vail"})["volumes"]
    assert names(listed) == ["mvlike-alpha"]
    # `%` and `_` are matched literally.
    assert server.api("GET", "/volumes", 200, microversion="3.34", headers=h,
                      params={"name~": "mvlike%"})["volumes"] == []
    body = server.api("GET", "/volumes/detail", 200, microversion="3.45", headers=h,
                      params={"name~": "mvlike-", "with_count": "True", "limit": "1"})
    assert body["count"] == 2 and len(body["volumes"]) == 1, body
    older = server.api("GET", "/volumes", 200, microversion="3.44", headers=h,
                       params={"with_count": "True"})
    assert "count" not in older
    r = server.get("/volumes", microversion="3.34", params={"bootable~": "t"})
    assert_fault(r, 400, ["bootable~"])


def test_volume_summary_metadata_from_3_36(server, other_volumes):
    h = other_project(server)
    summary = server.api("GET", "/volumes/summary", 200, microversion="3.36",
                         headers=h)["volume-summary"]
    assert summary == {"total_count": 2, "total_size": 2,
                       "metadata": {"app": ["db"], "tier": ["gold", "silver"]}}
    older = server.api("GET", "/volumes/summary", 200, microversion="3.35",
                       headers=h)["volume-summary"]
    assert "metadata" not in older


def test_volume_summary_with_the_cli(server, other_volumes):
    shown = server.osc("volume", "summary", volume_api_version="3.36")
    assert "metadata" in {k.lower().replace(" ", "_") for k in shown}, shown


# ------------------------------------------------------------------ 3.39


def test_limits_of_another_project_from_3_39(server, other_volumes):
    absolute = server.api("GET", "/limits", 200, microversion="3.39",
                          params={"project_id": OTHER_PROJECT})["limits"]["absolute"]
    assert absolute["totalVolumesUsed"] == 2
    own = server.api("GET", "/limits", 200, microversion="3.38",
                     params={"project_id": OTHER_PROJECT})["limits"]["absolute"]
    mine = server.api("GET", "/limits", 200, microversion="3.38")["limits"]["absolute"]
    assert own == mine


# ------------------------------------------------------------ 3.31 / 3.33


def test_resource_filters_from_3_33(server):
    table = server.api("GET", "/resource_filters", 200, microversion="3.33")["resource_filters"]
    by_resource = {entry["resource"]: entry["filters"] for entry in table}
    assert by_resource["volume"] == ["name", "status", "metadata", "bootable", "migration_status",
                                     "availability_zone", "group_id", "size", "created_at",
                                     "updated_at"]
    assert by_resource["snapshot"] == ["name", "status", "volume_id", "metadata",
                                       "availability_zone"]
    assert set(by_resource) >= {"message", "attachment"} and "backup" not in by_resource
    one = server.api("GET", "/resource_filters", 200, microversion="3.33",
                     params={"resource": "snapshot"})["resource_filters"]
    assert [e["resource"] for e in one] == ["snapshot"]
    none = server.api("GET", "/resource_filters", 200, microversion="3.33",
                      params={"resource": "backup"})
    assert none == {"resource_filters": []}
    assert_fault(server.get("/resource_filters", microversion="3.32"), 404)


def test_administrators_may_use_any_filter_at_3_31(server, other_volumes):
    h = other_project(server)
    listed = server.api("GET", "/volumes", 200, microversion="3.31", headers=h,
                        params={"no_such_filter": "1"})["volumes"]
    assert sorted(names(listed)) == ["mvlike-alpha", "mvlike-beta"]


# ------------------------------------------------------------------ 3.34


@pytest.fixture(scope="module")
def failed_create(server):
    """A volume no pool can hold, and the user message about it."""
    body = {"volume": {"size": 1_000_000_000, "name": "mv-too-big"}}
    vol = server.api("POST", "/volumes", 202, json=body)["volume"]
    server.wait_volume(vol["id"], status="error")
    msg = wait_for(lambda: [m for m in server.messages() if m["resource_uuid"] == vol["id"]],
                   what="a message about the failed create")[0]
    yield vol, msg
    server.api("DELETE", f"/volumes/{vol['id']}", 202)


def test_message_like_filters_from_3_34(server, failed_create):
    vol, msg = failed_create
    found = server.api("GET", "/messages", 200, microversion="3.34",
                       params={"resource_uuid~": vol["id"][4:20].upper()})["messages"]
    assert [m["id"] for m in found] == [msg["id"]]
    found = server.api("GET", "/messages", 200, microversion="3.34",
                       params={"event_id~": "no-such-event"})["messages"]
    assert found == []
    older = server.api("GET", "/messages", 200, microversion="3.33",
                       params={"event_id~": "no-such-event"})["messages"]
    assert msg["id"] in [m["id"] for m in older]
    r = server.get("/messages", microversion="3.34", params={"user_message~": "x"})
    assert_fault(r, 400, ["user_message~"])


# ------------------------------------------------------------------ 3.49


def test_backend_state_from_3_49(server, pool):
    services = server.api("GET", "/os-services", 200, microversion="3.49")["services"]
    volume = [s for s in services if s["binary"] == "cinder-volume"]
    assert volume and all(s["backend_state"] == "up" for s in volume), services
    assert all("backend_state" not in s for s in services if s["binary"] != "cinder-volume")
    older = server.api("GET", "/os-services", 200, microversion="3.48")["services"]
    assert all("backend_state" not in s for s in older)
    rows = server.osc("volume", "service", "list", "--long", volume_api_version="3.49")
    assert "up" in [r.get("Backend State") for r in rows], rows


# ------------------------------------------------------------------ 3.53


def volume_count(server) -> int:
    return len(server.volumes())


def test_strict_volume_create_from_3_53(server):
    before = volume_count(server)
    for body, unexpected in [({"volume": {"size": 1, "bogus": 1}}, "bogus"),
                             ({"volume": {"size": 1}, "extra": {}}, "extra")]:
        r = server.post("/volumes", json=body, microversion="3.53")
        message = assert_fault(r, 400, [f"'{unexpected}' was unexpected"])
        assert message.startswith("Additional properties are not allowed"), message
    assert volume_count(server) == before
    hinted = {"volume": {"size": 1, "name": "mv-hinted"}, "OS-SCH-HNT:scheduler_hints": {}}
    vol = server.api("POST", "/volumes", 202, json=hinted, microversion="3.53")["volume"]
    lax = server.api("POST", "/volumes", 202, microversion="3.52",
                     json={"volume": {"size": 1, "name": "mv-lax", "bogus": 1}})["volume"]
    for v in (vol, lax):
        server.wait_volume(v["id"])
        server.api("DELETE", f"/volumes/{v['id']}", 202)


def test_strict_volume_update_from_3_53(server):
    vol = server.create_volume(size=1, name="mv-update")
    path = f"/volumes/{vol['id']}"
    try:
        assert_fault(server.put(path, json={"volume": {}}, microversion="3.53"), 400,
                     ["not have enough properties"])
        r = server.put(path, json={"volume": {"name": "renamed", "bogus": 1}}, microversion="3.53")
        assert_fault(r, 400, ["'bogus' was unexpected"])
        assert server.volume(vol["id"])["name"] == "mv-update"
        body = {"volume": {"name": "renamed", "bogus": 1}}
        assert server.api("PUT", path, 200, json=body, microversion="3.52")["volume"]["name"] == "renamed"
    finally:
        server.api("DELETE", path, 202)


# ------------------------------------------------------------------ 3.40


def write_at(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read_at(path, offset: int, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(n)


def revert(server, vid: str, sid: str, mv: str = "3.40"):
    return server.post(f"/volumes/{vid}/action", json={"revert": {"snapshot_id": sid}},
                       microversion=mv)


def reset(server, kind: str, rid: str, status: str) -> None:
    server.api("POST", f"/{kind}/{rid}/action", 202, json={"os-reset_status": {"status": status}})


def states(server, vid: str, *sids: str) -> tuple:
    return (server.volume(vid)["status"], *[server.snapshot(s)["status"] for s in sids])


@pytest.fixture
def reverted(server):
    """A volume holding ORIGINAL at offset 4096, snapshot s1, then CHANGED."""
    vol = server.create_volume(size=1, name="mv-revert")
    path = server.volume_file(vol["id"])
    write_at(path, 4096, b"ORIGINAL")
    s1 = server.create_snapshot(vol["id"], name="mv-revert-1")
    write_at(path, 4096, b"CHANGED!")
    yield vol, s1, path
    for s in server.snapshots():
        if s["volume_id"] == vol["id"]:
            server.api("DELETE", f"/snapshots/{s['id']}", 202)
            server.wait_snapshot_gone(s["id"])
    server.api("DELETE", f"/volumes/{vol['id']}", 202)


def test_revert_with_the_cli(server, reverted):
    vol, s1, path = reverted
    server.osc("volume", "revert", s1["id"], fmt=None, volume_api_version="3.40")
    wait_for(lambda: states(server, vol["id"], s1["id"]) == ("available", "available"),
             what="the revert to finish", detail=lambda: states(server, vol["id"], s1["id"]))
    assert read_at(path, 4096, 8) == b"ORIGINAL"


def test_revert_refusals_change_nothing(server, reverted):
    vol, s1, path = reverted
    vid = vol["id"]
    assert_fault(revert(server, vid, s1["id"], mv="3.39"), 404)
    for arg in [{}, {"snapshot_id": 5}, {"snapshot_id": s1["id"], "x": 1}]:
        r = server.post(f"/volumes/{vid}/action", json={"revert": arg}, microversion="3.40")
        assert_fault(r, 400, ["snapshot_id", "unexpected"])
    s2 = server.create_snapshot(vid, name="mv-revert-2")
    assert_fault(revert(server, vid, s1["id"]), 400, ["not the latest"])
    assert_fault(revert(server, vid, str(uuid.uuid4())), 400, ["not the latest"])

    reset(server, "volumes", vid, "error")
    assert_fault(revert(server, vid, s2["id"]), 409, ["status must be 'available'"])
    assert states(server, vid, s1["id"], s2["id"]) == ("error", "available", "available")
    reset(server, "volumes", vid, "available")

    reset(server, "snapshots", s2["id"], "error")
    assert_fault(revert(server, vid, s2["id"]), 409, ["status must be 'available'"])
    assert states(server, vid, s1["id"], s2["id"]) == ("available", "available", "error")
    reset(server, "snapshots", s2["id"], "available")

    server.api("POST", f"/volumes/{vid}/action", 202, json={"os-extend": {"new_size": 2}})
    server.wait_volume(vid)
    assert_fault(revert(server, vid, s2["id"]), 400, ["size"])
    assert states(server, vid, s1["id"], s2["id"]) == ("available", "available", "available")
    assert read_at(path, 4096, 8) == b"CHANGED!"


def test_revert_interrupted_by_a_restart(fresh_server):
    srv = fresh_server
    vol = srv.create_volume(size=1, name="mv-interrupted")
    snap = srv.create_snapshot(vol["id"])
    reset(srv, "volumes", vol["id"], "reverting")
    reset(srv, "snapshots", snap["id"], "restoring")
    srv.restart()
    wait_for(lambda: states(srv, vol["id"], snap["id"]) == ("error", "available"),
             what="recovery of the interrupted revert",
             detail=lambda: states(srv, vol["id"], snap["id"]))
    messages = [m for m in srv.messages() if m["resource_uuid"] == vol["id"]]
    assert len(messages) == 1 and "restarted while reverting" in messages[0]["user_message"]


# ------------------------------------------- 3.31 for callers who are not admins


def test_member_filters_are_checked_from_3_31(keystone_scoria):
    dep = keystone_scoria
    token = dep.token(dep.keystone.member)

    def get(path: str, mv: str, **params: str):
        return dep.request("GET", path, token, params=params,
                           headers={"OpenStack-API-Version": f"volume {mv}"})

    for path in ("/volumes", "/volumes/detail", "/snapshots", "/messages"):
        assert get(path, "3.30", bogus="1").status_code == 200, path
        message = assert_fault(get(path, "3.31", bogus="1", limit="5"), 400, ["bogus"])
        assert message == "Invalid filters bogus are found in query options."
    assert_fault(get("/volumes", "3.31", project_id="x", host="h"), 400, ["project_id,host"])
    assert get("/volumes", "3.31", name="x", status="available", all_tenants="1",
               sort="name", limit="1").status_code == 200
    assert_fault(get("/volumes", "3.33", **{"name~": "x"}), 400, ["name~"])
    assert get("/volumes", "3.34", **{"name~": "x"}).status_code == 200
    assert get("/snapshots", "3.34", **{"volume_id~": "x"}).status_code == 200
    assert_fault(get("/snapshots", "3.44", with_count="true"), 400, ["with_count"])
    assert get("/snapshots", "3.45", with_count="true").json()["count"] == 0
