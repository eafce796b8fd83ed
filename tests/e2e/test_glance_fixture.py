"""The real Glance of glance_fixture.py works as the other tests rely on.

No Scoria here: uploads and downloads through Glance's REST API, the access
log's download count, a stop in the middle of a throttled download and a
start on the same data, tampered data, Glance's refusal of a qcow2 with a
backing file (and `plant_image` getting one in anyway), and the real
`openstack` CLI: unauthenticated (alone, and beside a Scoria-like
`--os-endpoint` with OS_IMAGE_ENDPOINT_OVERRIDE), and behind Keystone with a
member's password and the catalog.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import CommandFailed, describe, run_cmd, venv_tool, wait_for
from glance_fixture import (
    MiB,
    create_queued_image,
    delete_image,
    disk_info,
    download_image,
    get_image,
    hashes,
    make_disk,
    osc_image_args,
    osc_image_env,
    plant_image,
    tamper_image,
    upload_image,
)


def openstack(args: list[str], *cmd: str, env: dict[str, str] | None = None,
              fmt: str | None = "json"):
    """Runs `openstack ARGS CMD [-f FMT]`; parsed JSON (or stdout)."""
    full = [venv_tool("openstack"), *args, *cmd] + (["-f", fmt] if fmt else [])
    p = run_cmd(full, env=env)
    if p.returncode != 0:
        raise CommandFailed(describe(full, p))
    return json.loads(p.stdout) if fmt == "json" else p.stdout


def test_raw_image_round_trip(glance, tmp_path):
    disk = make_disk(tmp_path / "disk.raw", 8 * MiB, "raw")
    assert disk_info(disk.path)["actual-size"] < disk.size, "make_disk's raw should be sparse"
    image = upload_image(glance, disk.path, "raw", name="smoke-raw", owner="proj-a",
                         properties={"hw_disk_bus": "scsi"})
    assert image["status"] == "active"
    assert image["size"] == image["virtual_size"] == disk.size
    assert image["owner"] == "proj-a"
    assert image["hw_disk_bus"] == "scsi"
    assert {k: image[k] for k in ("checksum", "os_hash_value")} == hashes(disk.path)
    assert image["os_hash_algo"] == "sha512"
    assert glance.downloads(image["id"]) == 0
    assert download_image(glance, image["id"]) == disk.path.read_bytes()
    assert glance.downloads(image["id"]) == 1
    assert glance.downloads(image["id"], complete=True) == 1


def test_qcow2_image(glance, tmp_path):
    disk = make_disk(tmp_path / "disk.qcow2", 16 * MiB, "qcow2")
    _qemu_compare(disk.path, disk.content)
    image = upload_image(glance, disk.path, "qcow2")
    assert image["virtual_size"] == disk.size
    assert image["size"] == disk.path.stat().st_size < disk.size
    out = download_image(glance, image["id"], tmp_path / "out.qcow2")
    assert out.read_bytes() == disk.path.read_bytes()
    assert glance.downloads(image["id"]) == 1


def _qemu_compare(a, b) -> None:
    import subprocess

    p = subprocess.run(["qemu-img", "compare", str(a), str(b)], capture_output=True, text=True)
    assert p.returncode == 0, f"qemu-img compare {a} {b}: {p.stdout}{p.stderr}"


def test_queued_image_and_delete(glance):
    image = create_queued_image(glance, "qcow2", name="smoke-queued")
    assert image["status"] == "queued" and image["size"] is None
    assert image["owner"] is None and image["visibility"] == "shared"
    r = requests.get(f"{glance.url}/v2/images/{image['id']}/file", timeout=30)
    assert r.status_code == 204, f"{r.status_code} {r.text}"  # Glance: no data yet
    delete_image(glance, image["id"])
    assert get_image(glance, image["id"]) is None
    delete_image(glance, image["id"], missing_ok=True)


def test_unauthenticated_mode_ignores_project_headers(glance):
    r = requests.post(
        f"{glance.url}/v2/images",
        json={"name": "smoke-headers", "disk_format": "raw", "container_format": "bare"},
        headers={"X-Auth-Token": "e2e-user:proj-h", "X-Project-Id": "proj-h",
                 "X-Tenant-Id": "proj-h", "X-Roles": "member"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert r.json()["owner"] is None
    delete_image(glance, r.json()["id"])


def test_backing_file_refused_but_can_be_planted(glance, tmp_path):
    disk = make_disk(tmp_path / "overlay.qcow2", 8 * MiB, "qcow2-backed")
    assert disk_info(disk.path)["backing-filename"] == str(disk.backing)
    with pytest.raises(AssertionError, match="safety checks"):
        upload_image(glance, disk.path, "qcow2")
    image = plant_image(glance, disk.path, "qcow2", stand_in=disk.backing, virtual_size=disk.size)
    assert image["status"] == "active"
    assert image["size"] == disk.path.stat().st_size
    assert image["virtual_size"] == disk.size
    assert image["checksum"] == hashes(disk.path)["checksum"]
    data = download_image(glance, image["id"])
    assert data == disk.path.read_bytes()


def test_tampered_data_no_longer_matches_the_hashes(glance, tmp_path):
    disk = make_disk(tmp_path / "disk.raw", 4 * MiB, "raw")
    image = upload_image(glance, disk.path, "raw")
    tamper_image(glance, image["id"], offset=MiB)
    data = download_image(glance, image["id"])
    assert len(data) == image["size"] == disk.size
    assert hashlib.sha512(data).hexdigest() != image["os_hash_value"]
    assert hashlib.md5(data).hexdigest() != image["checksum"]
    assert get_image(glance, image["id"])["os_hash_value"] == image["os_hash_value"]


def test_stop_during_a_throttled_download_then_start_again(glance, tmp_path):
    disk = make_disk(tmp_path / "big.raw", 32 * MiB, "raw")
    image = upload_image(glance, disk.path, "raw")
    got = {"bytes": 0}

    def reader():
        try:
            with requests.get(f"{glance.url}/v2/images/{image['id']}/file",
                              stream=True, timeout=60) as r:
                for chunk in r.iter_content(64 * 1024):
                    got["bytes"] += len(chunk)
            got["end"] = "complete"
        except requests.RequestException as e:
            got["end"] = repr(e)

    glance.set_throttle(8 * MiB)
    try:
        t = threading.Thread(target=reader)
        t.start()
        wait_for(lambda: got["bytes"] >= 4 * MiB, timeout=30, what="the download to start")
        # Other requests are served meanwhile.
        assert get_image(glance, image["id"])["status"] == "active"
        glance.stop()
        t.join(timeout=30)
    finally:
        glance.set_throttle(0)
        if not glance.running:
            glance.start()
    assert got["end"] != "complete" and got["bytes"] < disk.size, got
    assert glance.downloads(image["id"]) == 1
    assert glance.downloads(image["id"], complete=True) == 0
    # Same port, same data.
    assert get_image(glance, image["id"])["status"] == "active"
    start = time.monotonic()
    assert download_image(glance, image["id"]) == disk.path.read_bytes()
    assert time.monotonic() - start < 10, "the throttle should be off again"
    assert glance.downloads(image["id"]) == 2
    assert glance.downloads(image["id"], complete=True) == 1


def test_openstack_cli_alone(glance, tmp_path):
    disk = make_disk(tmp_path / "cli.raw", 2 * MiB, "raw")
    args = osc_image_args(glance)
    created = openstack(args, "image", "create", "--file", str(disk.path),
                        "--disk-format", "raw", "--container-format", "bare", "smoke-cli")
    assert created["status"] == "active" and created["size"] == disk.size
    assert created["id"] in [row["ID"] for row in openstack(args, "image", "list")]
    openstack(args, "image", "save", "--file", str(tmp_path / "saved"), created["id"], fmt=None)
    assert (tmp_path / "saved").read_bytes() == disk.path.read_bytes()
    assert glance.downloads(created["id"]) == 1
    openstack(args, "image", "delete", created["id"], fmt=None)
    assert get_image(glance, created["id"]) is None


class _VersionsOnly(BaseHTTPRequestHandler):
    """Answers like Scoria's `GET /v3`: the block storage version document."""

    def do_GET(self):
        base = f"http://{self.headers['Host']}"
        body = json.dumps({"versions": [{
            "id": "v3.0", "status": "CURRENT", "version": "3.71", "min_version": "3.0",
            "updated": "2023-08-31T00:00:00Z",
            "links": [{"rel": "self", "href": f"{base}/v3/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.volume+json;version=3"}],
        }]}).encode()
        self.send_response(300 if self.path == "/" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_openstack_cli_beside_a_volume_endpoint(glance, tmp_path):
    """What `ScoriaServer.osc(..., env=osc_image_env(glance))` does: the image
    commands go to Glance although `--os-endpoint` is the volume endpoint."""
    fake = ThreadingHTTPServer(("127.0.0.1", 0), _VersionsOnly)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        args = ["--os-auth-type", "none", "--os-endpoint",
                f"http://127.0.0.1:{fake.server_address[1]}/v3"]
        env = osc_image_env(glance)
        disk = make_disk(tmp_path / "beside.raw", 2 * MiB, "raw")
        created = openstack(args, "image", "create", "--file", str(disk.path),
                            "--disk-format", "raw", "--container-format", "bare",
                            "smoke-beside", env=env)
        shown = openstack(args, "image", "show", "smoke-beside", env=env)
        assert shown["id"] == created["id"] and shown["status"] == "active"
        openstack(args, "image", "save", "--file", str(tmp_path / "saved"), created["id"],
                  env=env, fmt=None)
        assert (tmp_path / "saved").read_bytes() == disk.path.read_bytes()
    finally:
        fake.shutdown()
        fake.server_close()


def test_behind_keystone(glance_keystone, keystone, tmp_path):
    member = keystone.member
    args = member.cli_args(keystone.auth_url)
    disk = make_disk(tmp_path / "ks.raw", 2 * MiB, "raw")
    created = openstack(args, "image", "create", "--file", str(disk.path),
                        "--disk-format", "raw", "--container-format", "bare", "smoke-ks")
    assert created["owner"] == keystone.project_ids["demo"]
    openstack(args, "image", "save", "--file", str(tmp_path / "saved"), created["id"], fmt=None)
    assert (tmp_path / "saved").read_bytes() == disk.path.read_bytes()
    assert glance_keystone.downloads(created["id"]) == 1
    # No token: 401; a member's token through the REST helpers works.
    r = requests.get(f"{glance_keystone.url}/v2/images/{created['id']}", timeout=30)
    assert r.status_code == 401, r.text
    token, _ = keystone.issue_token(member)
    assert download_image(glance_keystone, created["id"], token=token) == disk.path.read_bytes()
    delete_image(glance_keystone, created["id"], token=token)


def test_direct_url_and_locations_when_asked_for(glance_factory, glance, tmp_path):
    disk = make_disk(tmp_path / "direct.raw", 1 * MiB, "raw")
    hidden = upload_image(glance, disk.path, "raw")
    assert "direct_url" not in hidden and "locations" not in hidden
    shown = glance_factory("direct", show_image_direct_url=True, show_multiple_locations=True)
    image = upload_image(shown, disk.path, "raw")
    url = f"file://{shown.image_file(image['id'])}"
    assert image["direct_url"] == url
    assert [loc["url"] for loc in image["locations"]] == [url]
    assert image["locations"][0]["metadata"] == {"store": "file1"}
