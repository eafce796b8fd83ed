"""Images end to end: volumes made from Glance images and volumes uploaded
into images, through the real `openstack` and `cinder` clients, a real
Glance (tests/glance) and the real qemu-img; bad images; a volume service
killed in the middle of a copy; the image-volume cache.

Each volume's bytes are compared with what a guest sees of the image
(`Disk.content`), and each uploaded image's bytes with the volume's.
"""

from __future__ import annotations

import filecmp
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import GiB, MiB, run_cmd, wait_for
from glance_fixture import (
    download_image,
    get_image,
    make_disk,
    osc_image_env,
    plant_image,
    tamper_image,
    upload_image,
)


def scoria_config(glance, backend_options: str = "", extra_default: str = ""):
    """A `scoria serve` configuration: one file backend `b1` and Glance."""

    def build(data_dir: Path) -> str:
        return (
            "[DEFAULT]\n"
            "enabled_backends = b1\n"
            f"glance_api_servers = {glance.url}\n"
            "glance_num_retries = 0\n"
            "enable_force_upload = true\n"
            f"{extra_default}\n"
            "[b1]\n"
            "volume_driver = file\n"
            "volume_backend_name = b1\n"
            f"file_volumes_dir = {data_dir / 'volumes'}\n"
            f"{backend_options}\n"
        )

    return build


@pytest.fixture(scope="module")
def srv(server_factory, glance):
    return server_factory("images", config=scoria_config(glance))


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """A raw and a qcow2 disk of 40 MiB with random and zero regions."""
    d = tmp_path_factory.mktemp("disks")
    return {
        "raw": make_disk(d / "disk.raw", 40 * MiB, "raw", seed=1),
        "qcow2": make_disk(d / "disk.qcow2", 40 * MiB, "qcow2", seed=2),
    }


def conversion_files(srv) -> list[Path]:
    """Temporary image files left in the server's conversion folder."""
    root = srv.data_dir / "conversion"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def assert_volume_holds(srv, volume_id: str, content: Path) -> None:
    """The volume starts with `content` and is zero after it."""
    vol = srv.volume_file(volume_id)
    want = content.read_bytes()
    with open(vol, "rb") as f:
        got = f.read(len(want))
        assert got == want, f"volume {volume_id} does not hold the image's bytes"
        while chunk := f.read(8 * MiB):
            assert chunk.count(0) == len(chunk), f"volume {volume_id} has data after the image"


def create_from_image(srv, glance, image_id: str, size: int = 1, name: str | None = None) -> dict:
    """`openstack volume create --image` (the CLI resolves the image in Glance)."""
    return srv.osc("volume", "create", "--image", image_id, "--size", str(size),
                   name or f"v-{uuid.uuid4().hex[:6]}", env=osc_image_env(glance))


def failure_message(srv, volume_id: str) -> str:
    """The user messages about a volume (of any project: the CLI's is not the server's)."""
    found = srv.api("GET", "/messages?all_tenants=1", 200, microversion="3.3")["messages"]
    msgs = [m for m in found if m["resource_uuid"] == volume_id]
    assert msgs, f"no user message for volume {volume_id}"
    return " ".join(m["user_message"] for m in msgs)


def wait_status(srv, volume_id: str, status: str, timeout: float = 60) -> None:
    """Waits for a status the volume passes through (wait_volume waits for a settled one)."""
    wait_for(lambda: srv.volume(volume_id)["status"] == status, timeout=timeout,
             what=f"volume {volume_id} {status}")


def wait_error_with(srv, volume_id: str, *words: str) -> str:
    srv.wait_volume(volume_id, "error")
    text = failure_message(srv, volume_id)
    for w in words:
        assert w in text, f"the user message {text!r} does not name {w!r}"
    return text


# ------------------------------------------------------------ image -> volume


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_volume_from_image_holds_its_bytes(srv, glance, disks, fmt):
    disk = disks[fmt]
    image = upload_image(glance, disk.path, fmt, name=f"img-{fmt}",
                         properties={"hw_disk_bus": "scsi", "os_distro": "cirros"})
    vol = create_from_image(srv, glance, image["name"])
    vol = srv.wait_volume(vol["id"])
    assert vol["bootable"] == "true"
    assert_volume_holds(srv, vol["id"], disk.content)
    meta = vol["volume_image_metadata"]
    assert meta["image_id"] == image["id"]
    assert meta["image_name"] == image["name"]
    assert meta["checksum"] == image["checksum"]
    assert meta["disk_format"] == fmt
    assert meta["container_format"] == "bare"
    assert meta["size"] == str(image["size"])
    assert meta["min_disk"] == "0" and meta["min_ram"] == "0"
    assert meta["hw_disk_bus"] == "scsi" and meta["os_distro"] == "cirros"
    assert all(isinstance(v, str) for v in meta.values())
    if fmt == "raw":
        # Zero regions stay holes: far less is allocated than the image's size.
        allocated = os.stat(srv.volume_file(vol["id"])).st_blocks * 512
        assert allocated < 30 * MiB, f"{allocated} bytes allocated for a 40 MiB sparse image"
    shown = srv.osc("volume", "show", vol["id"])
    assert shown["volume_image_metadata"]["image_id"] == image["id"]
    srv.osc("volume", "set", "--non-bootable", vol["id"], fmt=None)
    assert srv.volume(vol["id"])["bootable"] == "false"
    srv.osc("volume", "set", "--bootable", vol["id"], fmt=None)
    assert srv.volume(vol["id"])["bootable"] == "true"
    assert conversion_files(srv) == []


def test_clone_and_volume_from_snapshot_inherit_image_metadata(srv, glance, disks):
    image = upload_image(glance, disks["raw"].path, "raw")
    src = srv.wait_volume(create_from_image(srv, glance, image["id"])["id"])
    clone = srv.create_volume(source_volid=src["id"], size=1)
    snap = srv.create_snapshot(src["id"])
    from_snap = srv.create_volume(snapshot_id=snap["id"], size=1)
    for v in (clone, from_snap):
        shown = srv.volume(v["id"])
        assert shown["bootable"] == "true"
        assert shown["volume_image_metadata"] == src["volume_image_metadata"]


# ------------------------------------------------------------ volume -> image


def test_image_create_from_volume_then_save(srv, glance, disks, tmp_path):
    src = srv.wait_volume(create_from_image(srv, glance, upload_image(
        glance, disks["raw"].path, "raw", properties={"os_distro": "cirros"})["id"])["id"])
    name = f"up-{uuid.uuid4().hex[:6]}"
    made = srv.osc("image", "create", "--volume", src["id"], name, env=osc_image_env(glance))
    image_id = made.get("image_id") or made.get("id")
    assert image_id, made
    srv.wait_volume(src["id"], "available")
    image = wait_for(lambda: (i := get_image(glance, image_id)) and i["status"] == "active" and i,
                     timeout=120, what="uploaded image active")
    assert image["disk_format"] == "raw" and image["container_format"] == "bare"
    assert image.get("os_distro") == "cirros"
    out = tmp_path / "saved.raw"
    srv.osc("image", "save", "--file", str(out), image_id, fmt=None, env=osc_image_env(glance))
    assert filecmp.cmp(out, srv.volume_file(src["id"]), shallow=False)
    assert conversion_files(srv) == []


def test_cinder_upload_to_image_qcow2(srv, glance, disks, tmp_path):
    src = srv.wait_volume(create_from_image(srv, glance, upload_image(
        glance, disks["qcow2"].path, "qcow2")["id"])["id"])
    name = f"upq-{uuid.uuid4().hex[:6]}"
    srv.cinder("upload-to-image", "--disk-format", "qcow2", src["id"], name, project="p1")
    srv.wait_volume(src["id"], "available")
    found = wait_for(lambda: [i for i in glance_images(glance) if i.get("name") == name
                              and i["status"] == "active"], timeout=120, what="qcow2 image")
    image = found[0]
    assert image["disk_format"] == "qcow2"
    got = download_image(glance, image["id"], tmp_path / "up.qcow2")
    raw = tmp_path / "up.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(got), str(raw)],
                   check=True, timeout=300)
    assert filecmp.cmp(raw, srv.volume_file(src["id"]), shallow=False)


def glance_images(glance) -> list[dict]:
    import requests

    r = requests.get(f"{glance.url}/v2/images?limit=1000", timeout=60)
    r.raise_for_status()
    return r.json()["images"]


# ---------------------------------------------------------------- bad images


def test_hash_mismatch_fails_the_volume(srv, glance, disks):
    image = upload_image(glance, disks["raw"].path, "raw")
    tamper_image(glance, image["id"], offset=5 * MiB)
    vol = create_from_image(srv, glance, image["id"])
    wait_error_with(srv, vol["id"], "hash", "does not match")
    assert conversion_files(srv) == []


def test_qcow2_declared_raw_is_refused(srv, glance, disks):
    image = upload_image(glance, disks["qcow2"].path, "raw")
    vol = create_from_image(srv, glance, image["id"])
    wait_error_with(srv, vol["id"], "declares disk_format raw", "qcow2")


def test_qcow2_with_backing_file_is_refused(srv, glance, tmp_path):
    overlay = make_disk(tmp_path / "overlay.qcow2", 8 * MiB, "qcow2-backed", seed=3)
    stand_in = make_disk(tmp_path / "standin.qcow2", 8 * MiB, "qcow2", seed=4)
    image = plant_image(glance, overlay.path, "qcow2", stand_in.path, virtual_size=8 * MiB)
    vol = create_from_image(srv, glance, image["id"])
    wait_error_with(srv, vol["id"], "backing file")
    assert conversion_files(srv) == []


def test_virtual_size_larger_than_the_volume_is_refused(srv, glance, tmp_path):
    big = make_disk(tmp_path / "big.qcow2", 2 * GiB, "qcow2", seed=5)
    stand_in = make_disk(tmp_path / "standin2.qcow2", 8 * MiB, "qcow2", seed=6)
    # Planted without a virtual size, so that only the volume service can tell.
    image = plant_image(glance, big.path, "qcow2", stand_in.path, virtual_size=None)
    vol = create_from_image(srv, glance, image["id"], size=1)
    wait_error_with(srv, vol["id"], "virtual size")
    assert conversion_files(srv) == []


def test_glance_stopped_during_download(srv, glance, tmp_path):
    disk = make_disk(tmp_path / "slow.raw", 64 * MiB, "raw", seed=7)
    image = upload_image(glance, disk.path, "raw")
    glance.set_throttle(8 * MiB)
    try:
        vol = create_from_image(srv, glance, image["id"])
        wait_status(srv, vol["id"], "downloading")
        wait_for(lambda: glance.downloads(image["id"]) >= 1, timeout=30, what="download started")
        glance.stop()
        wait_error_with(srv, vol["id"], "broke off")
    finally:
        glance.start()
        glance.set_throttle(0)
    # Nothing else disturbed: the next image copies fine.
    ok = upload_image(glance, disk.path, "raw")
    v2 = srv.wait_volume(create_from_image(srv, glance, ok["id"])["id"])
    assert_volume_holds(srv, v2["id"], disk.content)


def test_backend_too_small_for_the_image(server_factory, glance, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        config = scoria_config(glance, backend_options="max_over_subscription_ratio = 1000\n")
        small = server_factory("small", config=lambda d: config(d).replace(
            f"file_volumes_dir = {d / 'volumes'}", f"file_volumes_dir = {mnt}"))
        disk = make_disk(tmp_path / "fill.raw", 64 * MiB, "raw", seed=8)
        image = upload_image(glance, disk.path, "raw")
        vol = create_from_image(small, glance, image["id"])
        wait_error_with(small, vol["id"], "No space left")
        assert conversion_files(small) == []
        small.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# ---------------------------------------------------- killed volume service


def test_kill_during_download_and_upload(server_factory, glance, tmp_path):
    node = server_factory("killed", config=scoria_config(glance))
    disk = make_disk(tmp_path / "gib.raw", 1 * GiB, "raw", seed=9)
    image = upload_image(glance, disk.path, "raw", timeout=600)
    glance.set_throttle(64 * MiB)
    try:
        vol = create_from_image(node, glance, image["id"], size=1)
        wait_status(node, vol["id"], "downloading")
        wait_for(lambda: glance.downloads(image["id"]) >= 1, timeout=30, what="download started")
        time.sleep(1)
        node.kill(signal.SIGKILL)
    finally:
        glance.set_throttle(0)
    node.start()
    v = node.wait_volume(vol["id"], "error")
    assert "restarted" in failure_message(node, v["id"])
    assert conversion_files(node) == []

    # An upload killed half way (1 GiB through qemu-img to qcow2 takes
    # seconds): the volume comes back, the image goes.
    src = node.wait_volume(create_from_image(node, glance, image["id"])["id"], timeout=300)
    name = f"killed-{uuid.uuid4().hex[:6]}"
    node.api("POST", f"/volumes/{src['id']}/action", 202,
             json={"os-volume_upload_image": {"image_name": name, "disk_format": "qcow2"}})
    assert node.volume(src["id"])["status"] == "uploading"
    node.kill(signal.SIGKILL)
    node.start()
    node.wait_volume(src["id"], "available")
    left = [i for i in glance_images(glance) if i.get("name") == name]
    assert all(i["status"] != "active" for i in left), left
    assert left == [], f"the half-made image is still in Glance: {left}"
    assert conversion_files(node) == []


# ------------------------------------------------------- image-volume cache

INTERNAL = ("internal-project", "internal-user")


@pytest.fixture(scope="module")
def cached(server_factory, glance):
    return server_factory("cache", config=scoria_config(
        glance,
        backend_options="image_volume_cache_enabled = true\nimage_volume_cache_max_count = 2\n",
        extra_default=(f"cinder_internal_tenant_project_id = {INTERNAL[0]}\n"
                       f"cinder_internal_tenant_user_id = {INTERNAL[1]}\n"),
    ))


def cache_volumes(srv) -> list[dict]:
    vols = srv.api("GET", "/volumes/detail?all_tenants=1", 200)["volumes"]
    return [v for v in vols if v.get("os-vol-tenant-attr:tenant_id") == INTERNAL[0]]


def test_cache_second_create_is_a_clone(cached, glance, disks):
    image = upload_image(glance, disks["qcow2"].path, "qcow2")
    first = cached.wait_volume(create_from_image(cached, glance, image["id"])["id"])
    second = cached.wait_volume(create_from_image(cached, glance, image["id"], size=2)["id"])
    assert glance.downloads(image["id"]) == 1, glance.access_log()[-10:]
    for v in (first, second):
        assert_volume_holds(cached, v["id"], disks["qcow2"].content)
        assert v["volume_image_metadata"]["image_id"] == image["id"]
    assert second["size"] == 2
    assert [v["name"] for v in cache_volumes(cached)].count(f"image-{image['id']}") == 1


def test_cache_concurrent_creates_download_once(cached, glance, tmp_path):
    disk = make_disk(tmp_path / "c8.raw", 24 * MiB, "raw", seed=11)
    image = upload_image(glance, disk.path, "raw")
    ids: list[str] = []
    lock = threading.Lock()

    def one():
        v = cached.create_volume(wait=False, size=1, imageRef=image["id"])
        with lock:
            ids.append(v["id"])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(ids) == 8
    for vid in ids:
        cached.wait_volume(vid)
        assert_volume_holds(cached, vid, disk.content)
    assert glance.downloads(image["id"]) == 1


def test_cache_evicts_least_recently_used(cached, glance, tmp_path):
    images = []
    for i in range(3):
        disk = make_disk(tmp_path / f"e{i}.raw", 4 * MiB, "raw", seed=20 + i)
        images.append(upload_image(glance, disk.path, "raw"))
        cached.wait_volume(create_from_image(cached, glance, images[-1]["id"])["id"])
    names = {v["name"] for v in cache_volumes(cached)}
    assert len(cache_volumes(cached)) <= 2, names
    assert f"image-{images[0]['id']}" not in names
    assert f"image-{images[2]['id']}" in names


def test_cache_entry_dropped_when_the_image_changes(cached, glance, tmp_path):
    import requests

    disk = make_disk(tmp_path / "chg.raw", 4 * MiB, "raw", seed=30)
    image = upload_image(glance, disk.path, "raw")
    cached.wait_volume(create_from_image(cached, glance, image["id"])["id"])
    time.sleep(1.1)  # Glance's updated_at has a resolution of one second
    r = requests.patch(f"{glance.url}/v2/images/{image['id']}",
                       json=[{"op": "add", "path": "/os_distro", "value": "changed"}],
                       headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                       timeout=60)
    assert r.status_code == 200, r.text
    cached.wait_volume(create_from_image(cached, glance, image["id"])["id"])
    assert glance.downloads(image["id"]) == 2


def test_failed_upload_of_a_protected_image_leaves_no_image(srv, glance):
    vol = srv.create_volume(size=1)
    srv.volume_file(vol["id"]).unlink()  # the backend lost the data: the upload must fail
    name = f"prot-{uuid.uuid4().hex[:6]}"
    body = {"os-volume_upload_image": {"image_name": name, "protected": True}}
    made = srv.api("POST", f"/volumes/{vol['id']}/action", 202, json=body,
                   microversion="3.1")["os-volume_upload_image"]
    assert made["protected"] is True
    srv.wait_volume(vol["id"], "available")
    assert "could not be uploaded" in failure_message(srv, vol["id"])
    wait_for(lambda: get_image(glance, made["image_id"]) is None, timeout=60,
             what="the protected half-made image to be deleted")
