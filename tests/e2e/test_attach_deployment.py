"""Attach workflows in deployment mode (issue 4 on issue 3's layout):
`scoria api`, `scoria scheduler` and `scoria volume` as separate processes on
PostgreSQL and RabbitMQ, so the connection set-up travels from the api to the
volume service over the broker.

1. Nova's new-style flow (attachment create → update with a connector →
   complete → begin_detaching → attachment delete) and the legacy flow
   (reserve → initialize_connection → attach → begin_detaching →
   terminate_connection → detach), with the volume's status checked after
   every step.
2. The volume process killed (SIGKILL) and started again while a volume is
   attached: the attachment and the volume's `in-use` survive, and the
   volume detaches afterwards.
"""

from __future__ import annotations

import signal
import uuid

import pytest

from attach_helpers import connector
from conftest import TRANSITIONAL, wait_for

pytest.register_assert_rewrite("deployment")
from deployment import Deployment  # noqa: E402

pytest_plugins = ["deployment"]


def start(dep: Deployment):
    dep.backend("files")
    dep.db_upgrade()
    dep.start_api()
    dep.start_scheduler("sched1")
    volume = dep.start_volume("files", host="node1")
    dep.wait_ready(schedulers=["sched1"], volumes=["node1@files"])
    return volume


def new_volume(dep: Deployment, name: str) -> str:
    r = dep.create_volume(name=name)
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    v = wait_for(lambda: (lambda v: v if v and v["status"] not in TRANSITIONAL else None)(dep.volume(vid)),
                 timeout=60, what=f"volume {name} to settle")
    assert v["status"] == "available", v
    return vid


def status(dep: Deployment, vid: str, want: str, step: str) -> dict:
    v = dep.volume(vid)
    assert v["status"] == want, f"after {step}: status {v['status']!r}, wanted {want!r}: {v}"
    return v


def act(dep: Deployment, vid: str, name: str, arg=None, expect: int = 202):
    return dep.api_call("POST", f"/volumes/{vid}/action", expect, json={name: arg})


def test_attach_flows_over_the_broker(deployment):
    dep = deployment
    start(dep)

    # New style, at 3.44.
    vid = new_volume(dep, "dep-new")
    instance = str(uuid.uuid4())
    a = dep.api_call("POST", "/attachments", 200, microversion="3.44",
                     json={"attachment": {"volume_uuid": vid, "instance_uuid": instance}})["attachment"]
    assert a["status"] == "reserved" and a["connection_info"] == {}, a
    status(dep, vid, "reserved", "attachment create")
    a = dep.api_call("PUT", f"/attachments/{a['id']}", 200, microversion="3.44",
                     json={"attachment": {"connector": connector()}})["attachment"]
    assert a["status"] == "attaching", a
    assert a["connection_info"].get("driver_volume_type") == "local", a
    assert a["connection_info"].get("access_mode") == "rw", a
    status(dep, vid, "attaching", "attachment update")
    dep.api_call("POST", f"/attachments/{a['id']}/action", 204, microversion="3.44",
                 json={"os-complete": None})
    v = status(dep, vid, "in-use", "attachment complete")
    assert [(x["server_id"], x["attachment_id"]) for x in v["attachments"]] == [(instance, a["id"])], v
    act(dep, vid, "os-begin_detaching")
    status(dep, vid, "detaching", "os-begin_detaching")
    dep.api_call("DELETE", f"/attachments/{a['id']}", 200, microversion="3.44")
    v = status(dep, vid, "available", "attachment delete")
    assert v["attachments"] == [], v

    # Legacy, at 3.0.
    vid = new_volume(dep, "dep-legacy")
    conn = connector(mountpoint=None)
    act(dep, vid, "os-reserve")
    status(dep, vid, "attaching", "os-reserve")
    ci = act(dep, vid, "os-initialize_connection", {"connector": conn}, expect=200)["connection_info"]
    assert ci["driver_volume_type"] == "local" and ci["data"]["access_mode"] == "rw", ci
    act(dep, vid, "os-attach", {"instance_uuid": instance, "mountpoint": "/dev/vdb", "mode": "rw"})
    v = status(dep, vid, "in-use", "os-attach")
    att = v["attachments"][0]["attachment_id"]
    act(dep, vid, "os-begin_detaching")
    status(dep, vid, "detaching", "os-begin_detaching")
    act(dep, vid, "os-terminate_connection", {"connector": conn})
    act(dep, vid, "os-detach", {"attachment_id": att})
    status(dep, vid, "available", "os-detach")


def test_attachment_survives_a_volume_process_crash(deployment):
    dep = deployment
    volume = start(dep)
    vid = new_volume(dep, "dep-crash")
    instance = str(uuid.uuid4())
    a = dep.api_call("POST", "/attachments", 200, microversion="3.44",
                     json={"attachment": {"volume_uuid": vid, "instance_uuid": instance,
                                          "connector": connector()}})["attachment"]
    dep.api_call("POST", f"/attachments/{a['id']}/action", 204, microversion="3.44",
                 json={"os-complete": None})
    status(dep, vid, "in-use", "attachment complete")

    code = volume.kill(signal.SIGKILL)
    assert code == -signal.SIGKILL, code
    volume.start()
    dep.wait_ready(schedulers=["sched1"], volumes=["node1@files"])

    v = status(dep, vid, "in-use", "a restart of the volume process")
    assert [(x["server_id"], x["attachment_id"]) for x in v["attachments"]] == [(instance, a["id"])], v
    shown = dep.api_call("GET", f"/attachments/{a['id']}", 200, microversion="3.44")["attachment"]
    assert shown["status"] == "attached", shown
    assert shown["connection_info"].get("driver_volume_type") == "local", shown

    dep.api_call("DELETE", f"/attachments/{a['id']}", 200, microversion="3.44")
    status(dep, vid, "available", "attachment delete after the restart")
    dep.api_call("DELETE", f"/volumes/{vid}", 202)
