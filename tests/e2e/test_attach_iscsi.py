"""iSCSI exports (issue 4): a `file` backend with `target_helper = tgtadm`
exports volumes through the userspace target `tgt` (tgtd on 127.0.0.1:3260,
started by tests/run.sh), with CHAP credentials per attachment, and a real
userspace initiator uses them:

  * qemu-img (Debian's qemu-utils + qemu-block-extra: `iscsi://` URLs) writes
    a pattern through the target and reads it back;
  * libiscsi's tools (`iscsi-readcapacity16`, `iscsi-inq`) log in, read the
    capacity, and show that a wrong CHAP password is refused.

connection_info is `{driver_volume_type: "iscsi", data: {target_portal:
"127.0.0.1:3260", target_iqn, target_lun: 1, auth_method: "CHAP",
auth_username, auth_password, access_mode, volume_id, target_discovered}}`
(from os-initialize_connection; the attachments API shows the same keys
flattened). After a detach the target is gone from tgtd and logins fail.
When Scoria restarts it restores exports that vanished while it was down.

The tools are required: if any is missing the tests FAIL (never skip).
Connectors carry the initiator name qemu and the libiscsi tools (given `-i`)
present, so an export limited to the connector's initiator admits them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from attach_helpers import (
    INITIATOR,
    assert_attachment,
    assert_volume,
    cinder,
    config,
    connector,
    create_type,
    flat_connection_info,
    new_uuid,
)
from conftest import GiB, MiB, wait_for

TOOLS = ["tgtadm", "qemu-img", "iscsi-readcapacity16", "iscsi-inq", "iscsi-ls"]
PORTAL = "127.0.0.1:3260"
PATTERN_BYTES = 4 * MiB


# ------------------------------------------------------------------ tools


def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def show(p: subprocess.CompletedProcess) -> str:
    return (f"command: {' '.join(p.args)}\nexit code: {p.returncode}\n"
            f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")


@pytest.fixture(scope="module", autouse=True)
def iscsi_tools():
    """The initiator tools and a tgtd on 127.0.0.1:3260: missing ones fail the tests."""
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail(f"iSCSI test tools missing: {missing} (tests/run.sh installs tgt, "
                    "qemu-utils + qemu-block-extra and libiscsi-bin)", pytrace=False)
    p = run(["qemu-img", "--help"])
    formats = next((l for l in p.stdout.splitlines() if l.startswith("Supported formats:")), "")
    if " iscsi" not in formats:
        pytest.fail(f"qemu-img has no iscsi:// driver (install qemu-block-extra): {formats!r}",
                    pytrace=False)
    try:
        with socket.create_connection(("127.0.0.1", 3260), timeout=5):
            pass
    except OSError as e:
        pytest.fail(f"no iSCSI target (tgtd) listening on {PORTAL}: {e}", pytrace=False)
    p = run(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target"])
    if p.returncode != 0:
        pytest.fail(f"tgtadm cannot talk to tgtd:\n{show(p)}", pytrace=False)


def tgt_targets() -> dict[str, int]:
    """tgtd's targets: IQN -> tid."""
    p = run(["tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target"])
    assert p.returncode == 0, show(p)
    found = {}
    for line in p.stdout.splitlines():
        m = re.match(r"^Target (\d+): (\S+)$", line)
        if m:
            found[m.group(2)] = int(m.group(1))
    return found


def url(data: dict, user: str | None = "", password: str | None = "") -> str:
    """iscsi://user%password@portal/iqn/lun; user/password default to the
    CHAP credentials of `data`; None leaves them out."""
    if user == "":
        user = data["auth_username"]
    if password == "":
        password = data["auth_password"]
    cred = ""
    if user is not None:
        for v in (user, password or ""):
            assert not set(v) & set("%@/:? "), f"a CHAP credential cannot go into an iscsi:// URL: {v!r}"
        cred = user + (f"%{password}" if password is not None else "") + "@"
    return f"iscsi://{cred}{data['target_portal']}/{data['target_iqn']}/{data['target_lun']}"


def login(u: str) -> subprocess.CompletedProcess:
    """An iSCSI login plus INQUIRY (libiscsi's iscsi-inq)."""
    return run(["iscsi-inq", "-i", INITIATOR, u], timeout=30)


def assert_login_ok(u: str, what: str) -> None:
    p = login(u)
    assert p.returncode == 0 and "DIRECT_ACCESS" in p.stdout, f"{what}: login failed\n{show(p)}"


def assert_login_refused(u: str, what: str) -> None:
    p = login(u)
    assert p.returncode != 0, f"{what}: the login should have been refused\n{show(p)}"


def capacity(u: str) -> int:
    p = run(["iscsi-readcapacity16", "-i", INITIATOR, "-s", u], timeout=30)
    assert p.returncode == 0, show(p)
    return int(p.stdout.strip())


def write_through(u: str, src: Path) -> None:
    p = run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", str(src), u], timeout=120)
    assert p.returncode == 0, f"writing through the target failed\n{show(p)}"


def read_through(u: str, dst: Path, length: int) -> bytes:
    if dst.exists():
        dst.unlink()
    p = run(["qemu-img", "dd", "-f", "raw", "-O", "raw", f"if={u}", f"of={dst}",
             "bs=1M", f"count={length // MiB}"], timeout=120)
    assert p.returncode == 0, f"reading through the target failed\n{show(p)}"
    return dst.read_bytes()[:length]


def check_iscsi_data(data: dict, volume_id: str, mode: str, what: str) -> None:
    assert data.get("target_portal") == PORTAL, f"{what}: target_portal: {data}"
    iqn = data.get("target_iqn")
    assert isinstance(iqn, str) and iqn.startswith("iqn.") and volume_id in iqn, f"{what}: target_iqn: {data}"
    assert data.get("target_lun") == 1, f"{what}: target_lun: {data}"
    assert data.get("auth_method") == "CHAP", f"{what}: auth_method: {data}"
    assert data.get("auth_username") and data.get("auth_password"), f"{what}: CHAP credentials: {data}"
    assert data.get("access_mode") == mode, f"{what}: access_mode: {data}"
    assert data.get("volume_id") == volume_id, f"{what}: volume_id: {data}"
    assert isinstance(data.get("target_discovered"), bool), f"{what}: target_discovered: {data}"


# ---------------------------------------------------------------- server


@pytest.fixture(scope="module")
def server(server_factory):
    srv = server_factory(
        "attach-iscsi",
        config=config(("iscsi", "file", {
            "target_helper": "tgtadm",
            "target_ip_address": "127.0.0.1",
            "target_port": 3260,
        })),
    )
    create_type(srv, "iscsi", volume_backend_name="iscsi")
    create_type(srv, "iscsi-multi", volume_backend_name="iscsi", multiattach="<is> True")
    return srv


@pytest.fixture
def pattern(tmp_path) -> Path:
    p = tmp_path / "pattern.raw"
    p.write_bytes(os.urandom(PATTERN_BYTES))
    return p


def new_volume(server, name: str, size: int = 1) -> str:
    v = server.create_volume(size=size, name=name, volume_type="iscsi")
    assert "@iscsi" in (v.get("os-vol-host-attr:host") or ""), v
    return v["id"]


# ------------------------------------------------------------------ tests


def test_attachment_exports_over_iscsi(server, c344, pattern, tmp_path):
    vid = new_volume(server, "iscsi-new", size=2)
    instance = new_uuid()
    created = c344.attachments.create(vid, connector(host="compute-iscsi"), instance_id=instance)
    att = created["id"]
    data = flat_connection_info(created["connection_info"], "attachment create")
    assert data["driver_volume_type"] == "iscsi", data
    check_iscsi_data(data, vid, "rw", "attachment create")
    assert data.get("attachment_id") == att, data
    iqn = data["target_iqn"]
    assert iqn in tgt_targets(), f"{iqn} is not a target of tgtd: {tgt_targets()}"
    assert_attachment(server, att, "attaching")

    u = url(data)
    assert_login_ok(u, "the attachment's CHAP credentials")
    assert capacity(u) == 2 * GiB, "the LUN is not the volume's size"
    assert_login_refused(url(data, password="wrong" + data["auth_password"]), "a wrong CHAP password")
    assert_login_refused(url(data, user=None), "no CHAP credentials")

    c344.attachments.complete(att)
    assert_volume(server, vid, "in-use", attached=[(instance, att)], step="complete")

    write_through(u, pattern)
    got = read_through(u, tmp_path / "back.raw", PATTERN_BYTES)
    assert got == pattern.read_bytes(), "bytes read back through the target differ from those written"
    with open(server.volume_file(vid), "rb") as f:
        assert f.read(PATTERN_BYTES) == pattern.read_bytes(), "the target is not backed by the volume's file"

    # tgtd does not see a backing file grow, so this backend reports it cannot
    # extend attached volumes, and the api says so up front at 3.42.
    r = server.post(
        f"/volumes/{vid}/action",
        json={"os-extend": {"new_size": 3}},
        headers=server.headers(microversion="3.42"),
    )
    assert r.status_code == 400, r.text
    assert "cannot extend attached volumes" in r.json()["badRequest"]["message"], r.text
    assert_volume(server, vid, "in-use", attached=[(instance, att)], step="refused online extend")
    assert capacity(u) == 2 * GiB, "a refused extend changed the LUN"

    c344.attachments.delete(att)
    assert_volume(server, vid, "available", attached=[], step="attachment delete")
    assert iqn not in tgt_targets(), f"the target {iqn} is still there after the detach: {tgt_targets()}"
    assert_login_refused(u, "the detached attachment's credentials")

    # Attached again: a new export, the data is still there.
    again = c344.attachments.create(vid, connector(host="compute-iscsi"), instance_id=instance)
    d2 = flat_connection_info(again["connection_info"], "second attachment")
    check_iscsi_data(d2, vid, "rw", "second attachment")
    got = read_through(url(d2), tmp_path / "again.raw", PATTERN_BYTES)
    assert got == pattern.read_bytes(), "the data did not survive a detach and an attach"
    c344.attachments.delete(again["id"])
    assert d2["target_iqn"] not in tgt_targets()
    assert_volume(server, vid, "available", attached=[], step="second delete")


def test_read_only_attachment(server, tmp_path):
    vid = new_volume(server, "iscsi-ro")
    c354 = cinder(server, "3.54")
    a = c354.attachments.create(vid, connector(), instance_id=new_uuid(), mode="ro")
    assert a["attach_mode"] == "ro", a
    data = flat_connection_info(a["connection_info"], "create mode ro")
    check_iscsi_data(data, vid, "ro", "create mode ro")
    u = url(data)
    assert capacity(u) == GiB
    assert len(read_through(u, tmp_path / "ro.raw", MiB)) == MiB
    c354.attachments.delete(a["id"])
    assert data["target_iqn"] not in tgt_targets()
    assert_login_refused(u, "a deleted read-only attachment's credentials")


def test_multiattached_volume_has_credentials_per_attachment(server, c344, pattern, tmp_path):
    """Two hosts on one multiattach volume: one target, each attachment with
    its own CHAP credentials; detaching one leaves the other working."""
    v = server.create_volume(size=1, name="iscsi-multi", volume_type="iscsi-multi")
    vid = v["id"]
    assert v["multiattach"] is True, v
    instances = [new_uuid(), new_uuid()]
    atts = [c344.attachments.create(vid, connector(host=f"compute-m{i}"), instance_id=inst)
            for i, inst in enumerate(instances)]
    datas = [flat_connection_info(a["connection_info"], f"attachment {i}") for i, a in enumerate(atts)]
    for i, d in enumerate(datas):
        check_iscsi_data(d, vid, "rw", f"attachment {i}")
    assert datas[0]["target_iqn"] == datas[1]["target_iqn"], datas
    assert datas[0]["auth_username"] != datas[1]["auth_username"], "both attachments got the same CHAP user"
    for a in atts:
        c344.attachments.complete(a["id"])
    assert_volume(server, vid, "in-use", attached=[(instances[0], atts[0]["id"]), (instances[1], atts[1]["id"])])
    urls = [url(d) for d in datas]
    for i, u in enumerate(urls):
        assert_login_ok(u, f"attachment {i}'s credentials")
    # One host's user name does not log in with the other's password.
    if datas[0]["auth_password"] != datas[1]["auth_password"]:
        assert_login_refused(url(datas[0], password=datas[1]["auth_password"]), "user 0 with password 1")

    write_through(urls[0], pattern)
    assert read_through(urls[1], tmp_path / "other.raw", PATTERN_BYTES) == pattern.read_bytes(), (
        "the second host does not see what the first wrote")

    c344.attachments.delete(atts[0]["id"])
    assert_volume(server, vid, "in-use", attached=[(instances[1], atts[1]["id"])], step="delete of the first")
    assert datas[0]["target_iqn"] in tgt_targets(), "the shared target went with the first attachment"
    assert_login_refused(urls[0], "the deleted attachment's credentials")
    assert_login_ok(urls[1], "the remaining attachment's credentials")
    assert read_through(urls[1], tmp_path / "still.raw", PATTERN_BYTES) == pattern.read_bytes()

    c344.attachments.delete(atts[1]["id"])
    assert_volume(server, vid, "available", attached=[], step="delete of the second")
    assert datas[1]["target_iqn"] not in tgt_targets()
    assert_login_refused(urls[1], "the second deleted attachment's credentials")


def test_legacy_attach_over_iscsi(server, c30, pattern, tmp_path):
    vid = new_volume(server, "iscsi-legacy")
    instance = new_uuid()
    conn = connector(host="compute-legacy", mountpoint=None)
    c30.volumes.reserve(vid)
    ci = dict(c30.volumes.initialize_connection(vid, conn))
    assert ci.get("driver_volume_type") == "iscsi", ci
    data = ci.get("data")
    assert isinstance(data, dict), f"os-initialize_connection answers {{driver_volume_type, data}}: {ci}"
    check_iscsi_data(data, vid, "rw", "os-initialize_connection")
    iqn = data["target_iqn"]
    u = url(data)
    assert_login_ok(u, "os-initialize_connection's credentials")
    assert capacity(u) == GiB

    c30.volumes.attach(vid, instance, "/dev/vdb")
    v = assert_volume(server, vid, "in-use", attached=[(instance, None)], step="os-attach")
    att = v["attachments"][0]["attachment_id"]
    write_through(u, pattern)
    assert read_through(u, tmp_path / "back.raw", PATTERN_BYTES) == pattern.read_bytes()

    c30.volumes.begin_detaching(vid)
    c30.volumes.terminate_connection(vid, conn)
    c30.volumes.detach(vid, att)
    assert_volume(server, vid, "available", attached=[], step="os-detach")
    assert iqn not in tgt_targets(), f"the target {iqn} is still there after terminate + detach"
    assert_login_refused(u, "credentials of a terminated connection")


def test_exports_are_restored_when_scoria_restarts(server, c344, pattern, tmp_path):
    vid = new_volume(server, "iscsi-restore")
    instance = new_uuid()
    a = c344.attachments.create(vid, connector(host="compute-r"), instance_id=instance)
    c344.attachments.complete(a["id"])
    data = flat_connection_info(a["connection_info"], "attachment create")
    iqn = data["target_iqn"]
    u = url(data)
    write_through(u, pattern)

    server.stop()
    # The data path does not depend on Scoria: attached hosts keep their export.
    assert iqn in tgt_targets(), f"stopping Scoria removed the export {iqn} of an attached volume"
    assert_login_ok(u, "while Scoria is stopped")

    tid = tgt_targets()[iqn]
    p = run(["tgtadm", "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", str(tid), "--force"])
    assert p.returncode == 0, show(p)
    assert iqn not in tgt_targets()
    assert_login_refused(u, "after the target was deleted behind Scoria's back")

    server.start()
    wait_for(lambda: login(u).returncode == 0, timeout=60, interval=0.5,
             what=f"the export {iqn} to be restored with the same credentials after a restart",
             detail=lambda: f"targets: {tgt_targets()}; last login: {show(login(u))}")
    assert_login_ok(u, "after the restart")
    assert capacity(u) == GiB
    assert read_through(u, tmp_path / "restored.raw", PATTERN_BYTES) == pattern.read_bytes()
    assert_volume(server, vid, "in-use", attached=[(instance, a["id"])], step="restart")
    assert_attachment(server, a["id"], "attached", step="restart")

    c344.attachments.delete(a["id"])
    assert iqn not in tgt_targets()
    assert_volume(server, vid, "available", attached=[], step="delete")
