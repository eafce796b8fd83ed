"""Bad input gets a 4xx in Cinder's fault format, and leaves nothing behind.

Every refused request must answer with
    {"<faultName>": {"code": N, "message": "<what is wrong>"}}
and an `x-openstack-request-id` header; afterwards the server still answers
and no volume, snapshot, type or backend file was half-made.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

import pytest
import requests

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
}

UNKNOWN_ID = str(uuid.uuid4())


def assert_fault(
    r: requests.Response,
    codes: int | Iterable[int],
    mentions: Iterable[str] = (),
) -> str:
    """Check a fault response; return its message."""
    codes = {codes} if isinstance(codes, int) else set(codes)
    where = f"{r.request.method} {r.request.url} -> {r.status_code} {r.text[:1000]!r}"
    assert r.status_code in codes, f"wanted {sorted(codes)}: {where}"
    rid = r.headers.get("x-openstack-request-id", "")
    assert rid.startswith("req-"), f"no x-openstack-request-id header: {dict(r.headers)}; {where}"
    assert "json" in r.headers.get("Content-Type", ""), f"fault is not JSON: {where}"
    body = r.json()
    assert isinstance(body, dict) and len(body) == 1, f"fault body must have one key: {where}"
    name, fault = next(iter(body.items()))
    assert name == FAULT_NAMES.get(r.status_code, "computeFault"), f"fault name {name!r}: {where}"
    assert isinstance(fault, dict), where
    assert fault.get("code") == r.status_code, f"fault code: {where}"
    message = fault.get("message")
    assert isinstance(message, str) and message.strip(), f"empty fault message: {where}"
    mentions = list(mentions)
    if mentions:
        assert any(m.lower() in message.lower() for m in mentions), (
            f"message {message!r} names none of {mentions}: {where}"
        )
    return message


def census(server) -> dict[str, Any]:
    """What exists: volumes, snapshots, types (by API) and backend files."""
    files = sorted(p.name for p in server.volumes_dir.iterdir()) if server.volumes_dir.exists() else []
    return {
        "volumes": sorted((v["id"], v["status"], v["size"]) for v in server.volumes()),
        "snapshots": sorted((s["id"], s["status"]) for s in server.snapshots()),
        "types": sorted(t["id"] for t in server.api("GET", "/types", 200)["volume_types"]),
        "files": files,
    }


@pytest.fixture
def unchanged(server):
    """Asserts, after the test, that the server answers and nothing changed."""
    before = census(server)
    yield before
    r = requests.get(server.base_url + "/", timeout=10, allow_redirects=False)
    assert r.status_code in (200, 300), f"server no longer answers GET /: {r.status_code}"
    assert server.running, "the server process died"
    after = census(server)
    assert after == before, f"state changed:\nbefore {before}\nafter  {after}"


def post_volumes(server, data: Any = None, raw: str | bytes | None = None) -> requests.Response:
    if raw is not None:
        return server.post("/volumes", data=raw, headers={"Content-Type": "application/json"})
    return server.post("/volumes", json=data)


# ---------------------------------------------------------- create volume

CREATE_CASES = [
    # id, body (dict, or str for a raw body), codes, words the message names
    ("malformed-json", '{"volume": {"size": 1', 400, ["json", "body", "malformed", "parse"]),
    ("not-json", "size=1", 400, ["json", "body", "malformed", "parse"]),
    ("body-is-array", "[1, 2]", 400, ["body", "object", "volume"]),
    ("body-is-string", '"volume"', 400, ["body", "object", "volume"]),
    ("body-is-null", "null", 400, ["body", "object", "volume"]),
    ("volume-is-string", {"volume": "big"}, 400, ["volume", "body", "object"]),
    ("no-volume-key", {"size": 1}, 400, ["volume"]),
    ("size-abc", {"volume": {"size": "abc"}}, 400, ["size"]),
    ("size-float", {"volume": {"size": 1.5}}, 400, ["size"]),
    ("size-bool", {"volume": {"size": True}}, 400, ["size"]),
    ("size-missing", {"volume": {"name": "nosize"}}, 400, ["size"]),
    ("size-zero", {"volume": {"size": 0}}, 400, ["size"]),
    ("size-negative", {"volume": {"size": -1}}, 400, ["size"]),
    ("size-huge", {"volume": {"size": 10**12}}, (400, 413), ["size", "gigabyte", "quota"]),
    ("name-int", {"volume": {"size": 1, "name": 123}}, 400, ["name"]),
    ("name-too-long", {"volume": {"size": 1, "name": "n" * 256}}, 400, ["name"]),
    ("metadata-not-object", {"volume": {"size": 1, "metadata": ["a"]}}, 400, ["metadata"]),
    ("metadata-value-int", {"volume": {"size": 1, "metadata": {"k": 1}}}, 400, ["metadata", "k"]),
    ("unknown-type", {"volume": {"size": 1, "volume_type": "no-such-type"}}, 404, ["no-such-type"]),
    ("unknown-snapshot", {"volume": {"snapshot_id": UNKNOWN_ID}}, 404, [UNKNOWN_ID]),
    ("unknown-source", {"volume": {"source_volid": UNKNOWN_ID}}, 404, [UNKNOWN_ID]),
    ("unknown-zone", {"volume": {"size": 1, "availability_zone": "atlantis"}}, 400, ["atlantis"]),
]


@pytest.mark.parametrize(
    "body,codes,mentions",
    [pytest.param(b, c, m, id=i) for i, b, c, m in CREATE_CASES],
)
def test_create_volume_refused(server, unchanged, body, codes, mentions):
    if isinstance(body, str):
        r = post_volumes(server, raw=body)
    else:
        r = post_volumes(server, body)
    assert_fault(r, codes, mentions)


def test_huge_body_refused(server, unchanged):
    body = json.dumps({"volume": {"size": 1, "name": "big", "description": "x" * (3 * 1024 * 1024)}})
    r = post_volumes(server, raw=body)
    assert_fault(r, (400, 413))


# ------------------------------------------------------------ unknown ids


UNKNOWN_ID_CASES = [
    ("GET", "/volumes/{}", None),
    ("PUT", "/volumes/{}", {"volume": {"name": "x"}}),
    ("DELETE", "/volumes/{}", None),
    ("POST", "/volumes/{}/action", {"os-extend": {"new_size": 2}}),
    ("GET", "/volumes/{}/metadata", None),
    ("GET", "/snapshots/{}", None),
    ("PUT", "/snapshots/{}", {"snapshot": {"name": "x"}}),
    ("DELETE", "/snapshots/{}", None),
    ("POST", "/snapshots", {"snapshot": {"volume_id": "{}"}}),
    ("GET", "/types/{}", None),
    ("DELETE", "/types/{}", None),
]


@pytest.mark.parametrize(
    "method,path,body",
    [
        pytest.param(m, p, b, id=f"{m}-{p.replace('/{}', '').strip('/').replace('/', '-')}")
        for m, p, b in UNKNOWN_ID_CASES
    ],
)
def test_unknown_ids(server, unchanged, method, path, body):
    if body is not None:
        body = json.loads(json.dumps(body).replace("{}", UNKNOWN_ID))
    r = server.request(method, path.format(UNKNOWN_ID), json=body)
    assert_fault(r, 404, [UNKNOWN_ID])


def test_not_a_uuid(server, unchanged):
    assert_fault(server.get("/volumes/not-a-volume"), 404, ["not-a-volume"])


# ------------------------------------------------------ state and actions


@pytest.fixture
def volume(server):
    """An available volume of 1 GiB, deleted afterwards."""
    vol = server.create_volume(size=1, name="bad-input-target")
    yield vol
    if server.volume(vol["id"]):
        for s in server.snapshots():
            if s["volume_id"] == vol["id"]:
                server.api("DELETE", f"/snapshots/{s['id']}", 202)
                server.wait_snapshot_gone(s["id"])
        server.api("POST", f"/volumes/{vol['id']}/action", 202,
                   json={"os-reset_status": {"status": "available"}})
        server.api("DELETE", f"/volumes/{vol['id']}", 202)
        server.wait_volume_gone(vol["id"])


def action(server, vol_id: str, body: Any) -> requests.Response:
    return server.post(f"/volumes/{vol_id}/action", json=body)


def test_extend_in_wrong_state(server, volume):
    vid = volume["id"]
    r = action(server, vid, {"os-reset_status": {"status": "error"}})
    assert r.status_code == 202, r.text
    assert server.volume(vid)["status"] == "error"

    before = census(server)
    assert_fault(action(server, vid, {"os-extend": {"new_size": 2}}), 400, ["status", "error"])
    assert_fault(server.post("/snapshots", json={"snapshot": {"volume_id": vid}}), 400, ["status", "error"])
    after = census(server)
    assert after == before, f"state changed:\nbefore {before}\nafter  {after}"
    vol = server.volume(vid)
    assert vol["status"] == "error" and vol["size"] == 1, vol


@pytest.mark.parametrize(
    "body,mentions",
    [
        pytest.param({"os-extend": {"new_size": 1}}, ["size"], id="extend-same-size"),
        pytest.param({"os-extend": {"new_size": 0}}, ["size"], id="extend-smaller"),
        pytest.param({"os-extend": {"new_size": "abc"}}, ["size"], id="extend-not-int"),
        pytest.param({"os-extend": {}}, ["size"], id="extend-no-size"),
        pytest.param({"os-frobnicate": {}}, ["os-frobnicate"], id="unknown-action"),
        pytest.param({"os-extend": {"new_size": 2}, "os-set_bootable": {"bootable": True}},
                     ["body", "action", "one"], id="two-actions"),
        pytest.param({"os-reset_status": {"status": "sleepy"}}, ["sleepy", "status"],
                     id="reset-to-unknown-status"),
    ],
)
def test_bad_actions(server, volume, body, mentions):
    vid = volume["id"]
    before = census(server)
    assert_fault(action(server, vid, body), 400, mentions)
    assert census(server) == before
    vol = server.volume(vid)
    assert vol["status"] == "available" and vol["size"] == 1, vol


def test_bad_update(server, volume):
    vid = volume["id"]
    assert_fault(server.put(f"/volumes/{vid}", json={"volume": {"name": 5}}), 400, ["name"])
    assert_fault(server.put(f"/volumes/{vid}", json={"volume": "x"}), 400, ["volume", "body"])
    assert server.volume(vid)["name"] == "bad-input-target"


def test_delete_volume_with_snapshot_refused(server, volume):
    vid = volume["id"]
    snap = server.create_snapshot(vid, name="keeps-volume")
    assert_fault(server.delete(f"/volumes/{vid}"), 400, ["snapshot"])
    assert server.volume(vid)["status"] == "available"
    assert server.snapshot(snap["id"])["status"] == "available"


def test_duplicate_type_refused(server):
    name = "dup-" + uuid.uuid4().hex[:8]
    t = server.api("POST", "/types", 200, json={"volume_type": {"name": name}})["volume_type"]
    try:
        before = census(server)
        assert_fault(server.post("/types", json={"volume_type": {"name": name}}), 409, [name])
        assert_fault(server.post("/types", json={"volume_type": {}}), 400, ["name"])
        assert census(server) == before
    finally:
        server.api("DELETE", f"/types/{t['id']}", 202)


# ---------------------------------------------------------- microversions


def test_microversion_out_of_range(server, unchanged):
    r = server.get("/volumes", headers={"OpenStack-API-Version": "volume 3.999"})
    assert_fault(r, 406, ["3.999"])


@pytest.mark.parametrize("value", ["volume 3.x", "volume 3", "volume three", "volume 3.1.1"])
def test_microversion_malformed(server, unchanged, value):
    r = server.get("/volumes", headers={"OpenStack-API-Version": value})
    assert_fault(r, 400, [value.split(" ", 1)[1], "version"])


def test_microversion_negotiation(server):
    r = server.get("/volumes", headers={"OpenStack-API-Version": "volume 3.0"})
    assert r.status_code == 200, r.text
    assert r.headers.get("OpenStack-API-Version") == "volume 3.0", dict(r.headers)
    assert "OpenStack-API-Version" in r.headers.get("Vary", ""), dict(r.headers)

    r = server.get("/volumes")
    assert r.status_code == 200
    assert r.headers.get("OpenStack-API-Version") == "volume 3.0", dict(r.headers)

    top = requests.get(server.base_url + "/", timeout=10, allow_redirects=False).json()
    highest = top["versions"][0]["version"]
    r = server.get("/volumes", headers={"OpenStack-API-Version": "volume latest"})
    assert r.status_code == 200
    assert r.headers.get("OpenStack-API-Version") == f"volume {highest}", dict(r.headers)

    # Messages exist from 3.3 on.
    r = server.get("/messages", headers={"OpenStack-API-Version": "volume 3.3"})
    assert r.status_code == 200, r.text
    assert r.headers.get("x-openstack-request-id", "").startswith("req-")
