"""The volume life cycle driven by the unchanged `openstack` CLI.

Runs once per target of `target` (lifecycle_targets.py), in file order: each
step checks the state it leaves (status, size, names, properties) and later
steps build on the volumes, snapshots and types of earlier ones.

  * all-in-one: `scoria serve`; the CLI runs with `--os-auth-type none
    --os-endpoint http://127.0.0.1:PORT/v3`, i.e. exactly as a user without
    Keystone would run it.
  * keystone-deployment: `scoria api`, `scoria scheduler` and `scoria volume`
    on PostgreSQL and RabbitMQ behind a real Keystone; the CLI signs in as
    Keystone's admin with a password and finds Scoria in the catalog.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from conftest import TRANSITIONAL, CommandFailed, norm, parse_property_table, parse_table, wait_for

# Things created by earlier steps of the current target's walk, by name: id.
STATE: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def state_of_one_target(target):
    """Every target's walk starts from nothing."""
    STATE.clear()
    yield
    STATE.clear()


@pytest.fixture(scope="module")
def osc(target):
    """`osc("volume", "show", "v1")` -> parsed `-f json` output, against the target."""
    return target.osc


def need(*names: str) -> None:
    missing = [n for n in names if n not in STATE]
    if missing:
        pytest.fail(f"an earlier step did not create {', '.join(missing)}", pytrace=False)


def show_volume(osc, name: str) -> dict[str, Any]:
    return osc("volume", "show", name)


def wait_volume(osc, name: str, status: str = "available", timeout: float = 120) -> dict[str, Any]:
    """Poll `openstack volume show NAME` until it settles; assert its status."""
    seen: list = [None]

    def settled():
        seen[0] = v = show_volume(osc, name)
        return v if v["status"] not in TRANSITIONAL else None

    vol = wait_for(settled, timeout=timeout, what=f"volume {name} to settle",
                   detail=lambda: f"volume: {seen[0]}")
    assert vol["status"] == status, f"volume {name}: status {vol['status']!r}, wanted {status!r}\n{vol}"
    return vol


def wait_snapshot(osc, name: str, status: str = "available", timeout: float = 120) -> dict[str, Any]:
    seen: list = [None]

    def settled():
        seen[0] = s = osc("volume", "snapshot", "show", name)
        return s if s["status"] not in TRANSITIONAL else None

    snap = wait_for(settled, timeout=timeout, what=f"snapshot {name} to settle",
                    detail=lambda: f"snapshot: {seen[0]}")
    assert snap["status"] == status, f"snapshot {name}: status {snap['status']!r}, wanted {status!r}\n{snap}"
    return snap


def rows(osc, *args: str, **kw: Any) -> list[dict[str, Any]]:
    return [norm(r) for r in osc(*args, **kw)]


def by_name(table: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    found = [r for r in table if r.get("name") == name]
    assert len(found) <= 1, f"more than one row named {name}: {found}"
    return found[0] if found else None


# --------------------------------------------------------------------------


def test_version_documents(target):
    r = requests.get(target.base_url + "/", timeout=10, allow_redirects=False)
    assert r.status_code == 300, r.text
    version = r.json()["versions"][0]
    assert version["id"] == "v3.0"
    assert version["min_version"] == "3.0"
    assert version["version"].startswith("3."), version
    assert r.headers.get("x-openstack-request-id"), dict(r.headers)
    r = requests.get(target.endpoint + "/", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["versions"][0]["version"] == version["version"]


def test_volume_create_show_list(osc):
    created = osc("volume", "create", "--size", "1", "v1")
    assert created["name"] == "v1"
    assert created["size"] == 1
    STATE["v1"] = created["id"]

    vol = wait_volume(osc, "v1")
    assert vol["id"] == STATE["v1"]
    assert vol["size"] == 1
    assert vol["name"] == "v1"
    assert vol["availability_zone"] == "nova"
    assert vol["os-vol-host-attr:host"].endswith("@file#file"), vol

    listed = rows(osc, "volume", "list")
    row = by_name(listed, "v1")
    assert row is not None, listed
    assert row["id"] == STATE["v1"] and row["status"] == "available" and row["size"] == 1, row

    listed = rows(osc, "volume", "list", "--long")
    row = by_name(listed, "v1")
    assert row is not None, listed
    assert row["id"] == STATE["v1"] and row["status"] == "available" and row["size"] == 1, row
    assert "type" in row and "properties" in row, row


def test_volume_set_and_unset(osc):
    need("v1")
    osc("volume", "set", "--name", "v1b", "--property", "a=1", "--property", "b=2", "v1", fmt=None)
    vol = show_volume(osc, "v1b")
    assert vol["id"] == STATE["v1"]
    assert vol["name"] == "v1b"
    assert vol["properties"] == {"a": "1", "b": "2"}, vol
    STATE["v1b"] = STATE.pop("v1")

    listed = rows(osc, "volume", "list", "--long")
    row = by_name(listed, "v1b")
    assert row is not None and by_name(listed, "v1") is None, listed
    assert row["properties"] == {"a": "1", "b": "2"}, row

    osc("volume", "unset", "--property", "a", "v1b", fmt=None)
    vol = show_volume(osc, "v1b")
    assert vol["properties"] == {"b": "2"}, vol
    assert vol["status"] == "available"


def test_snapshot_create_list_show_set(osc):
    need("v1b")
    created = osc("volume", "snapshot", "create", "--volume", "v1b", "s1")
    assert created["name"] == "s1"
    STATE["s1"] = created["id"]

    snap = wait_snapshot(osc, "s1")
    assert snap["id"] == STATE["s1"]
    assert snap["volume_id"] == STATE["v1b"]
    assert snap["size"] == 1

    listed = rows(osc, "volume", "snapshot", "list")
    row = by_name(listed, "s1")
    assert row is not None, listed
    assert row["id"] == STATE["s1"] and row["status"] == "available" and row["size"] == 1, row

    osc("volume", "snapshot", "set", "--name", "s1b", "--property", "k=v", "s1", fmt=None)
    snap = osc("volume", "snapshot", "show", "s1b")
    assert snap["id"] == STATE["s1"]
    assert snap["name"] == "s1b"
    assert snap["properties"] == {"k": "v"}, snap
    assert snap["status"] == "available"
    STATE["s1b"] = STATE.pop("s1")

    listed = rows(osc, "volume", "snapshot", "list", "--long")
    row = by_name(listed, "s1b")
    assert row is not None and by_name(listed, "s1") is None, listed


def test_volume_from_snapshot(osc):
    need("s1b")
    created = osc("volume", "create", "--snapshot", "s1b", "v2")
    STATE["v2"] = created["id"]
    vol = wait_volume(osc, "v2")
    assert vol["size"] == 1
    assert vol["snapshot_id"] == STATE["s1b"], vol


def test_volume_from_source(osc):
    need("v1b")
    created = osc("volume", "create", "--source", "v1b", "v3")
    STATE["v3"] = created["id"]
    vol = wait_volume(osc, "v3")
    assert vol["size"] == 1
    assert vol["source_volid"] == STATE["v1b"], vol


def test_volume_extend(osc):
    need("v1b")
    osc("volume", "set", "--size", "2", "v1b", fmt=None)

    def extended():
        v = show_volume(osc, "v1b")
        if v["status"].startswith("error"):
            return v
        return v if (v["status"] == "available" and v["size"] == 2) else None

    vol = wait_for(extended, timeout=120, what="v1b to be available with size 2",
                   detail=lambda: f"volume: {show_volume(osc, 'v1b')}")
    assert vol["status"] == "available" and vol["size"] == 2, vol
    assert vol["properties"] == {"b": "2"}, vol


def test_volume_types(osc):
    created = osc("volume", "type", "create", "--property", "volume_backend_name=file", "gold")
    assert created["name"] == "gold"
    STATE["gold"] = created["id"]
    # A scoped key: as in Cinder, the capabilities filter ignores extra specs
    # with a scope other than `capabilities:`, while an unscoped `x=y` would
    # have to be a capability the backend reports (see the `nowhere` step).
    osc("volume", "type", "set", "--property", "e2e:x=y", "gold", fmt=None)

    shown = osc("volume", "type", "show", "gold")
    assert shown["id"] == STATE["gold"]
    assert shown["name"] == "gold"
    assert shown["properties"] == {"volume_backend_name": "file", "e2e:x": "y"}, shown

    listed = rows(osc, "volume", "type", "list")
    assert by_name(listed, "gold") is not None, listed

    created = osc("volume", "create", "--type", "gold", "--size", "1", "v4")
    STATE["v4"] = created["id"]
    vol = wait_volume(osc, "v4")
    assert vol["type"] == "gold", vol
    assert vol["size"] == 1
    assert vol["os-vol-host-attr:host"].endswith("@file#file"), vol


def test_no_valid_backend_is_an_error_with_a_message(osc):
    created = osc("volume", "type", "create", "--property", "volume_backend_name=nosuch", "nowhere")
    STATE["nowhere"] = created["id"]
    created = osc("volume", "create", "--type", "nowhere", "--size", "1", "v5")
    STATE["v5"] = created["id"]
    vol = wait_volume(osc, "v5", status="error")
    assert vol["type"] == "nowhere"

    def message_for_v5():
        msgs = rows(osc, "volume", "message", "list", volume_api_version="3.3")
        return [m for m in msgs if m.get("resource_uuid") == STATE["v5"]]

    found = wait_for(message_for_v5, timeout=60, what="a user message about volume v5")
    msg = found[0]
    assert msg["message_level"] == "ERROR", msg
    assert msg["resource_type"] == "VOLUME", msg
    assert "backend" in msg["user_message"].lower(), msg
    assert msg["event_id"].startswith("VOLUME_"), msg


def test_volume_type_delete(osc, target):
    need("gold", "v4")
    # In use by v4: refused, and the type is still there.
    p = target.osc_fails("volume", "type", "delete", "gold")
    assert "in use" in (p.stderr + p.stdout).lower(), p.stderr
    listed = rows(osc, "volume", "type", "list")
    assert by_name(listed, "gold") is not None, listed

    # Unused: deleted.
    osc("volume", "type", "create", "spare")
    osc("volume", "type", "delete", "spare", fmt=None)
    listed = rows(osc, "volume", "type", "list")
    assert by_name(listed, "spare") is None, listed
    assert by_name(listed, "gold") is not None, listed


def test_service_list(osc):
    def services_up():
        svc = rows(osc, "volume", "service", "list")
        binaries = {s["binary"] for s in svc if s["status"] == "enabled" and s["state"] == "up"}
        return svc if {"cinder-scheduler", "cinder-volume"} <= binaries else None

    svc = wait_for(services_up, timeout=60, what="cinder-scheduler and cinder-volume up")
    volume_services = [s for s in svc if s["binary"] == "cinder-volume"]
    assert any(s["host"].endswith("@file") for s in volume_services), svc
    assert all(s["zone"] == "nova" for s in svc), svc


def test_backend_pool_list(osc):
    pools = wait_for(
        lambda: rows(osc, "volume", "backend", "pool", "list", "--long"),
        timeout=60,
        what="a pool in `volume backend pool list --long`",
    )
    pool = [p for p in pools if p["name"].endswith("@file#file")]
    assert len(pool) == 1, pools
    caps = pool[0]["capabilities"]
    assert isinstance(caps, dict), pool
    for key in ("total_capacity_gb", "free_capacity_gb", "reserved_percentage",
                "volume_backend_name", "storage_protocol", "driver_version"):
        assert key in caps, f"{key} missing from capabilities {caps}"
    assert caps["volume_backend_name"] == "file", caps
    assert float(caps["total_capacity_gb"]) > 0, caps
    assert 0 <= float(caps["free_capacity_gb"]) <= float(caps["total_capacity_gb"]), caps

    names = rows(osc, "volume", "backend", "pool", "list")
    assert [p["name"] for p in names] == [pool[0]["name"]], names


def test_availability_zone_list(osc):
    zones = rows(osc, "availability", "zone", "list", "--volume")
    assert {"zone_name": "nova", "zone_status": "available"} in zones, zones


def test_quota_show(osc, target):
    quotas = rows(osc, "quota", "show", "--volume", target.project)
    limits = {q["resource"]: q["limit"] for q in quotas}
    for key in ("volumes", "gigabytes", "snapshots"):
        assert key in limits, f"{key} missing from {quotas}"
        assert isinstance(limits[key], int) and (limits[key] == -1 or limits[key] > 0), limits


def test_cinderclient(target):
    project = target.project
    out = target.cinder("create", "--name", "c1", "1", project=project)
    created = parse_property_table(out)
    vid = created["id"]
    assert created["name"] == "c1", created
    assert created["size"] == "1", created

    def settled():
        props = parse_property_table(target.cinder("show", vid, project=project))
        return props if props["status"] not in TRANSITIONAL else None

    props = wait_for(settled, timeout=120, what="cinder show c1 to settle")
    assert props["status"] == "available", props
    assert props["name"] == "c1" and props["size"] == "1", props

    table = parse_table(target.cinder("list", project=project))
    header = [h.lower() for h in table[0]]
    listed = [dict(zip(header, r)) for r in table[1:]]
    assert any(r["id"] == vid and r["status"] == "available" and r["name"] == "c1" for r in listed), listed

    target.cinder("delete", vid, project=project)

    def gone():
        t = parse_table(target.cinder("list", project=project))
        return all(vid not in r for r in t[1:])

    wait_for(gone, timeout=120, what="c1 to disappear from `cinder list`")


def test_delete_everything(osc):
    need("s1b")
    osc("volume", "snapshot", "delete", "s1b", fmt=None)
    wait_for(lambda: rows(osc, "volume", "snapshot", "list") == [], timeout=120,
             what="the snapshot list to be empty")

    names = [n for n in ("v1b", "v2", "v3", "v4", "v5") if n in STATE]
    osc("volume", "delete", *names, fmt=None)
    wait_for(lambda: rows(osc, "volume", "list") == [], timeout=120,
             what="the volume list to be empty")

    types = [n for n in ("gold", "nowhere") if n in STATE]
    osc("volume", "type", "delete", *types, fmt=None)
    listed = rows(osc, "volume", "type", "list")
    for t in types:
        assert by_name(listed, t) is None, listed

    assert rows(osc, "volume", "list", "--long") == []
    assert rows(osc, "volume", "snapshot", "list") == []
    with pytest.raises(CommandFailed):
        osc("volume", "show", "v1b")
