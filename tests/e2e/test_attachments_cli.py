"""`openstack volume attachment create/set/complete/list/show/delete`
(issue 4), the unchanged CLI against a plain `scoria serve`, at
`--os-volume-api-version 3.54`.

`volume attachment create` looks the server up in Nova before it calls the
volume API, so the CLI runs with a compute endpoint
(`OS_COMPUTE_ENDPOINT_OVERRIDE`) pointing at a NovaRecorder (nova_recorder.py),
which stands in for Nova's compute API because a real Nova cannot run here
and knows the test's server ids.

The CLI's token is `notused` (auth type none), so its volumes and attachments
live in project `notused`; every volume used here is made by the CLI too.
"""

from __future__ import annotations

from typing import Any

import pytest

from attach_helpers import INITIATOR, new_uuid
from conftest import TRANSITIONAL, norm, wait_for

VERSION = "3.54"
RESERVE_REFUSED = "status must be available or downloading to reserve"


@pytest.fixture(scope="module")
def cli(server, nova_recorder):
    """run(*args, fmt="json", ok=True): `openstack --os-volume-api-version
    3.54 ARGS` against the server, with Nova's endpoint at the recorder."""

    nova = {"OS_COMPUTE_ENDPOINT_OVERRIDE": nova_recorder.url}

    def run(*args: str, fmt: str | None = "json", ok: bool = True) -> Any:
        if not ok:
            return server.osc_fails(*args, fmt=fmt, volume_api_version=VERSION, env=nova)
        return server.osc(*args, fmt=fmt, volume_api_version=VERSION, env=nova)

    return run


def volume_status(cli, name: str) -> dict:
    return cli("volume", "show", name)


def wait_available(cli, name: str) -> dict:
    v = wait_for(lambda: (lambda v: v if v["status"] not in TRANSITIONAL else None)(cli("volume", "show", name)),
                 timeout=120, what=f"volume {name} to settle")
    assert v["status"] == "available", v
    return v


def check_fields(shown: dict, **want: Any) -> None:
    keys = {"ID", "Volume ID", "Instance ID", "Status", "Attach Mode", "Attached At",
            "Detached At", "Properties"}
    assert keys <= set(shown), f"attachment output lacks {keys - set(shown)}: {shown}"
    for k, v in want.items():
        assert shown[k] == v, f"{k} = {shown[k]!r}, wanted {v!r}: {shown}"


def test_attachment_cli_walk(cli, nova_recorder):
    vol = cli("volume", "create", "--size", "1", "cli-att")
    vid = vol["id"]
    wait_available(cli, "cli-att")
    instance = nova_recorder.add_server(new_uuid())

    created = cli("volume", "attachment", "create", "cli-att", instance)
    check_fields(created, **{"Volume ID": vid, "Instance ID": instance, "Status": "reserved",
                             "Properties": {}, "Attached At": "", "Detached At": ""})
    att = created["ID"]
    assert volume_status(cli, "cli-att")["status"] == "reserved"

    updated = cli("volume", "attachment", "set", "--initiator", INITIATOR, "--ip", "127.0.0.1",
                  "--host", "cli-host", "--platform", "x86_64", "--os-type", "linux",
                  "--mountpoint", "/dev/vdc", att)
    check_fields(updated, **{"ID": att, "Status": "attaching", "Attach Mode": "rw"})
    props = updated["Properties"]
    assert props.get("driver_volume_type") == "local" and props.get("access_mode") == "rw", props
    assert props.get("volume_id") == vid, props
    assert volume_status(cli, "cli-att")["status"] == "attaching"

    out = cli("volume", "attachment", "complete", att, fmt=None)
    assert out == "", out
    shown = cli("volume", "attachment", "show", att)
    check_fields(shown, **{"ID": att, "Volume ID": vid, "Instance ID": instance,
                           "Status": "attached", "Attach Mode": "rw", "Detached At": ""})
    assert shown["Attached At"], shown
    assert shown["Properties"].get("driver_volume_type") == "local", shown
    v = volume_status(cli, "cli-att")
    assert v["status"] == "in-use", v

    rows = [norm(r) for r in cli("volume", "attachment", "list")]
    assert {"id": att, "volume_id": vid, "server_id": instance, "status": "attached"} in rows, rows
    rows = [norm(r) for r in cli("volume", "attachment", "list", "--volume-id", vid)]
    assert rows == [{"id": att, "volume_id": vid, "server_id": instance, "status": "attached"}], rows
    rows = [norm(r) for r in cli("volume", "attachment", "list", "--server-id", instance)]
    assert [r["id"] for r in rows] == [att], rows
    rows = [norm(r) for r in cli("volume", "attachment", "list", "--volume-id", vid,
                                 "--status", "reserved")]
    assert rows == [], rows

    # A second server cannot attach the (single-attach) in-use volume.
    other = nova_recorder.add_server(new_uuid())
    p = cli("volume", "attachment", "create", "cli-att", other, fmt=None, ok=False)
    assert RESERVE_REFUSED in p.stderr, p.stderr
    assert volume_status(cli, "cli-att")["status"] == "in-use"

    cli("volume", "attachment", "delete", att, fmt=None)
    rows = [norm(r) for r in cli("volume", "attachment", "list", "--volume-id", vid)]
    assert rows == [], rows
    assert volume_status(cli, "cli-att")["status"] == "available"
    p = cli("volume", "attachment", "show", att, fmt=None, ok=False)
    assert "could not be found" in p.stderr, p.stderr


def test_attachment_cli_connect_read_only(cli, nova_recorder):
    vol = cli("volume", "create", "--size", "1", "cli-ro")
    vid = vol["id"]
    wait_available(cli, "cli-ro")
    instance = nova_recorder.add_server(new_uuid())
    created = cli("volume", "attachment", "create", "--connect", "--initiator", INITIATOR,
                  "--ip", "127.0.0.1", "--host", "cli-host", "--mountpoint", "/dev/vdd",
                  "--mode", "ro", "cli-ro", instance)
    check_fields(created, **{"Volume ID": vid, "Instance ID": instance, "Status": "attaching",
                             "Attach Mode": "ro"})
    props = created["Properties"]
    assert props.get("driver_volume_type") == "local" and props.get("access_mode") == "ro", props
    att = created["ID"]
    assert volume_status(cli, "cli-ro")["status"] == "attaching"
    cli("volume", "attachment", "complete", att, fmt=None)
    assert volume_status(cli, "cli-ro")["status"] == "in-use"
    shown = cli("volume", "attachment", "show", att)
    check_fields(shown, **{"Status": "attached", "Attach Mode": "ro"})
    cli("volume", "attachment", "delete", att, fmt=None)
    assert volume_status(cli, "cli-ro")["status"] == "available"
    cli("volume", "delete", "cli-ro", fmt=None)
