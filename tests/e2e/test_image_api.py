"""The image side of the volume API against a real Glance (tests/glance):
`imageRef` on volume create (by id, URL or name; Cinder's checks of the
image), the image metadata actions with the real `openstack` client and over
HTTP, the `glance_metadata` list filter, `os-volume_upload_image`, a Scoria
without Glance or with Glance down, and, behind Keystone, images another
project cannot see.

The copying itself (image to volume, volume to image) is the volume
manager's: tests/e2e/test_images.py checks the bytes.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from conftest import free_port, wait_for
from glance_fixture import (
    create_queued_image,
    delete_image,
    get_image,
    make_disk,
    upload_image,
    wait_image,
)

MiB = 1024**2
FAULTS = {400: "badRequest", 403: "forbidden", 404: "itemNotFound", 409: "conflictingRequest",
          503: "serviceUnavailable"}
NOT_VISIBLE = "Invalid image identifier or unable to access requested image."


def config(glance_url: str | None, force_upload: bool = False):
    """A `scoria serve` configuration with one file backend and, when given,
    Glance at `glance_url`."""

    def build(data_dir: Path) -> str:
        lines = ["[DEFAULT]", "enabled_backends = b1", "glance_num_retries = 0"]
        if glance_url:
            lines.append(f"glance_api_servers = {glance_url}")
        lines.append(f"enable_force_upload = {'true' if force_upload else 'false'}")
        lines += ["[b1]", "volume_driver = file", "volume_backend_name = b1",
                  f"file_volumes_dir = {data_dir / 'volumes'}", ""]
        return "\n".join(lines)

    return build


@pytest.fixture(scope="module")
def srv(server_factory, glance):
    return server_factory("imgapi", config=config(glance.url))


@pytest.fixture(scope="module")
def forcing(server_factory, glance):
    """A server with `enable_force_upload = true`."""
    return server_factory("imgapi-force", config=config(glance.url, force_upload=True))


@pytest.fixture(scope="module")
def raw_disk(tmp_path_factory):
    return make_disk(tmp_path_factory.mktemp("imgapi") / "small.raw", 4 * MiB, "raw", seed=41)


@pytest.fixture(scope="module")
def image(glance, raw_disk):
    """An active raw image with a property, of a unique name."""
    return upload_image(glance, raw_disk.path, "raw", name=f"imgapi-{uuid.uuid4().hex[:8]}",
                        properties={"hw_disk_bus": "scsi"})


def fault(r: requests.Response, code: int) -> str:
    """Asserts a fault answer of `code` in Cinder's format; returns its message."""
    assert r.status_code == code, f"wanted {code}: {r.status_code} {r.text[:1500]}"
    body = r.json()
    assert list(body) == [FAULTS[code]], body
    assert body[FAULTS[code]]["code"] == code, body
    return body[FAULTS[code]]["message"]


def post_volume(srv, microversion: str | None = None, **fields) -> requests.Response:
    return srv.post("/volumes", json={"volume": fields}, microversion=microversion)


def action(srv, volume_id: str, body: dict, microversion: str | None = None) -> requests.Response:
    return srv.post(f"/volumes/{volume_id}/action", json=body, microversion=microversion)


def new_name(prefix: str = "v") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------- imageRef create


def test_create_by_id_shows_image_metadata_once_made(srv, image):
    r = post_volume(srv, size=1, imageRef=image["id"], name=new_name())
    assert r.status_code == 202, r.text
    made = r.json()["volume"]
    assert "volume_image_metadata" not in made, made
    assert made["status"] == "creating" and made["bootable"] == "false"
    vol = srv.wait_volume(made["id"])
    assert vol["bootable"] == "true"
    meta = vol["volume_image_metadata"]
    assert meta["image_id"] == image["id"] and meta["image_name"] == image["name"]
    assert meta["hw_disk_bus"] == "scsi"
    assert "image_source" not in vol["metadata"], vol["metadata"]
    listed = {v["id"]: v for v in srv.volumes()}
    assert listed[vol["id"]]["volume_image_metadata"] == meta
    summary = srv.api("GET", "/volumes", 200)["volumes"]
    assert all("volume_image_metadata" not in v for v in summary)
    updated = srv.api("PUT", f"/volumes/{vol['id']}", 200, json={"volume": {"name": new_name()}})
    assert "volume_image_metadata" not in updated["volume"]


def test_create_by_url_and_by_image_id_key(srv, glance, image):
    by_url = post_volume(srv, size=1, imageRef=f"{glance.url}/v2/images/{image['id']}")
    assert by_url.status_code == 202, by_url.text
    by_key = post_volume(srv, size=1, image_id=image["id"])
    assert by_key.status_code == 202, by_key.text
    for r in (by_url, by_key):
        vol = srv.wait_volume(r.json()["volume"]["id"])
        assert vol["volume_image_metadata"]["image_id"] == image["id"]


def test_create_by_name(srv, image):
    r = post_volume(srv, size=1, imageRef=image["name"])
    assert r.status_code == 202, r.text
    vol = srv.wait_volume(r.json()["volume"]["id"])
    assert vol["volume_image_metadata"]["image_id"] == image["id"]


def test_ambiguous_name_is_a_conflict(srv, glance, raw_disk):
    name = new_name("twin")
    for _ in range(2):
        upload_image(glance, raw_disk.path, "raw", name=name)
    before = len(srv.volumes())
    msg = fault(post_volume(srv, size=1, imageRef=name), 409)
    assert msg == f"Multiple matches found for '{name}', use an ID to be more specific."
    assert len(srv.volumes()) == before


@pytest.mark.parametrize("ref", ["0f3c9b2e-5d41-4c6a-9e7b-2a8d1c4f6e10", "no-such-image-name"])
def test_unknown_image(srv, ref):
    assert fault(post_volume(srv, size=1, imageRef=ref), 400) == NOT_VISIBLE


def test_queued_image_is_refused(srv, glance):
    queued = create_queued_image(glance)
    msg = fault(post_volume(srv, size=1, imageRef=queued["id"]), 400)
    assert msg == f"Invalid input received: Image {queued['id']} is not active."


def test_size_is_required_with_an_image(srv, image):
    msg = fault(post_volume(srv, imageRef=image["id"]), 400)
    assert "Volume size 'None' must be an integer and greater than 0" in msg


def test_volume_too_small_for_the_virtual_size(srv, glance, tmp_path):
    disk = tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "3G"], check=True)
    big = upload_image(glance, disk, "qcow2")
    assert big.get("virtual_size") == 3 * 1024**3, big
    msg = fault(post_volume(srv, size=2, imageRef=big["id"]), 400)
    assert msg == (f"Image {big['id']} is unacceptable: Image virtual size is 3GB and "
                   "doesn't fit in a volume of size 2GB.")


def test_min_disk(srv, glance, raw_disk):
    needy = upload_image(glance, raw_disk.path, "raw", properties={"min_disk": 3})
    msg = fault(post_volume(srv, size=2, imageRef=needy["id"]), 400)
    assert msg == ("Invalid input received: Volume size 2GB cannot be smaller than the image "
                   "minDisk size 3GB.")


@pytest.mark.parametrize("container", ["ovf", "ova", "docker"])
def test_only_bare_containers(srv, glance, raw_disk, container):
    boxed = upload_image(glance, raw_disk.path, "raw", container_format=container)
    msg = fault(post_volume(srv, size=1, imageRef=boxed["id"]), 400)
    assert f"container_format is '{container}'" in msg and "'bare'" in msg, msg


def test_one_source_only(srv, image):
    vol = srv.create_volume(size=1)
    msg = fault(post_volume(srv, size=1, imageRef=image["id"], source_volid=vol["id"]), 400)
    assert msg == ("Invalid input received: May specify only one of backup, imageRef, "
                   "snapshot, source volume")


def test_image_property_picks_the_volume_type(srv, glance, raw_disk):
    tname = new_name("imgtype")
    srv.api("POST", "/types", 200, json={"volume_type": {"name": tname}})
    typed = upload_image(glance, raw_disk.path, "raw",
                         properties={"cinder_img_volume_type": tname})
    r = post_volume(srv, size=1, imageRef=typed["id"])
    assert r.status_code == 202, r.text
    assert r.json()["volume"]["volume_type"] == tname
    srv.wait_volume(r.json()["volume"]["id"])
    # A type asked for wins over the image's.
    r = post_volume(srv, size=1, imageRef=typed["id"], volume_type="__DEFAULT__")
    assert r.status_code == 202 and r.json()["volume"]["volume_type"] == "__DEFAULT__", r.text
    srv.wait_volume(r.json()["volume"]["id"])
    missing = upload_image(glance, raw_disk.path, "raw",
                           properties={"cinder_img_volume_type": "no-such-type"})
    fault(post_volume(srv, size=1, imageRef=missing["id"]), 404)


def test_openstack_cli_volume_from_image_name(srv, glance, image):
    from glance_fixture import osc_image_env

    vol = srv.osc("volume", "create", "--image", image["name"], "--size", "1", new_name(),
                  env=osc_image_env(glance))
    vol = srv.wait_volume(vol["id"])
    shown = srv.osc("volume", "show", vol["id"])
    assert shown["volume_image_metadata"]["image_id"] == image["id"]
    assert shown["bootable"] in ("true", True)


# ---------------------------------------------------- without a usable Glance


def test_no_glance_configured(server_factory, image):
    plain = server_factory("noglance", config=config(None))
    msg = fault(post_volume(plain, size=1, imageRef=image["id"]), 400)
    assert "no image service is configured" in msg, msg
    vol = plain.create_volume(size=1)
    msg = fault(action(plain, vol["id"], {"os-volume_upload_image": {"image_name": "x"}}), 400)
    assert "no image service is configured" in msg, msg
    assert plain.volume(vol["id"])["status"] == "available"
    assert [v["id"] for v in plain.volumes()] == [vol["id"]]


def test_glance_down(server_factory, image):
    down = server_factory("glancedown", config=config(f"http://127.0.0.1:{free_port()}"))
    msg = fault(post_volume(down, size=1, imageRef=image["id"]), 503)
    assert msg.startswith("Connection to glance failed"), msg
    msg = fault(post_volume(down, size=1, imageRef="by-name"), 503)
    assert msg.startswith("Connection to glance failed"), msg
    vol = down.create_volume(size=1)
    fault(action(down, vol["id"], {"os-volume_upload_image": {"image_name": "x"}}), 503)
    assert down.volume(vol["id"])["status"] == "available"


# ------------------------------------------------------------ image metadata


def test_image_metadata_with_the_openstack_client(srv):
    vol = srv.create_volume(size=1, name=new_name())
    srv.osc("volume", "set", "--image-property", "os_distro=cirros",
            "--image-property", "hw_disk_bus=virtio", vol["id"], fmt=None)
    shown = srv.osc("volume", "show", vol["id"])
    assert shown["volume_image_metadata"] == {"os_distro": "cirros", "hw_disk_bus": "virtio"}
    srv.osc("volume", "unset", "--image-property", "hw_disk_bus", vol["id"], fmt=None)
    shown = srv.osc("volume", "show", vol["id"])
    assert shown["volume_image_metadata"] == {"os_distro": "cirros"}
    p = srv.osc_fails("volume", "unset", "--image-property", "nope", vol["id"])
    assert "Failed to unset image properties" in p.stderr, p.stderr


def test_image_metadata_actions_over_http(srv):
    vol = srv.create_volume(size=1)
    vid = vol["id"]
    # None yet: show and unset are 404s, and the view has no key.
    missing = f"Glance metadata for volume/snapshot {vid} cannot be found."
    assert fault(action(srv, vid, {"os-show_image_metadata": None}), 404) == missing
    assert fault(action(srv, vid, {"os-unset_image_metadata": {"key": "k"}}), 404) == missing
    assert "volume_image_metadata" not in srv.volume(vid)

    r = action(srv, vid, {"os-set_image_metadata": {"metadata": {"k1": "v1", "k2": "v2"}}})
    assert r.status_code == 200 and r.json() == {"metadata": {"k1": "v1", "k2": "v2"}}, r.text
    r = action(srv, vid, {"os-set_image_metadata": {"metadata": {"k2": "new", "k3": "v3"}}})
    assert r.json() == {"metadata": {"k1": "v1", "k2": "new", "k3": "v3"}}, r.text
    r = action(srv, vid, {"os-show_image_metadata": {}})
    assert r.status_code == 200 and r.json()["metadata"]["k2"] == "new", r.text
    r = action(srv, vid, {"os-unset_image_metadata": {"key": "k1"}})
    assert r.status_code == 200 and not r.content, r.text
    assert fault(action(srv, vid, {"os-unset_image_metadata": {"key": "k1"}}), 404) == missing
    assert srv.volume(vid)["volume_image_metadata"] == {"k2": "new", "k3": "v3"}

    bad = [
        ({"os-set_image_metadata": {}},
         "Invalid input for field/attribute os-set_image_metadata. Value: {}. "
         "'metadata' is a required property"),
        ({"os-set_image_metadata": {"metadata": {"k": 1}}},
         "Invalid input for field/attribute k. Value: 1. 1 is not of type 'string'"),
        ({"os-set_image_metadata": {"metadata": {"bad*key": "v"}}},
         "Invalid input for field/attribute metadata. Value: {'bad*key': 'v'}. 'bad*key' does "
         "not match any of the regexes: '^[a-zA-Z0-9-_:. /]{1,255}$'"),
        ({"os-unset_image_metadata": {}},
         "Invalid input for field/attribute os-unset_image_metadata. Value: {}. "
         "'key' is a required property"),
        ({"os-unset_image_metadata": {"key": "k2", "x": 1}},
         "Invalid input for field/attribute os-unset_image_metadata. Value: {'key': 'k2', "
         "'x': 1}. Additional properties are not allowed ('x' was unexpected)"),
    ]
    for body, want in bad:
        assert fault(action(srv, vid, body), 400) == want
    assert srv.volume(vid)["volume_image_metadata"] == {"k2": "new", "k3": "v3"}
    fault(action(srv, str(uuid.uuid4()), {"os-show_image_metadata": None}), 404)


def test_clone_and_snapshot_inherit_image_metadata_and_bootable(srv):
    src = srv.create_volume(size=1)
    action(srv, src["id"], {"os-set_image_metadata": {"metadata": {"os_distro": "debian"}}})
    assert action(srv, src["id"], {"os-set_bootable": {"bootable": True}}).status_code == 200
    snap = srv.create_snapshot(src["id"])
    # A later change of the volume does not reach the snapshot.
    action(srv, src["id"], {"os-set_image_metadata": {"metadata": {"late": "1"}}})
    clone = srv.create_volume(size=1, source_volid=src["id"])
    from_snap = srv.create_volume(size=1, snapshot_id=snap["id"])
    assert clone["bootable"] == from_snap["bootable"] == "true"
    assert clone["volume_image_metadata"] == {"os_distro": "debian", "late": "1"}
    assert from_snap["volume_image_metadata"] == {"os_distro": "debian"}
    plain = srv.create_volume(size=1)
    assert plain["bootable"] == "false" and "volume_image_metadata" not in plain


def test_glance_metadata_filter(srv):
    tag = uuid.uuid4().hex[:8]
    a = srv.create_volume(size=1)
    b = srv.create_volume(size=1)
    srv.create_volume(size=1)
    action(srv, a["id"], {"os-set_image_metadata": {"metadata": {"tag": tag, "os": "x"}}})
    action(srv, b["id"], {"os-set_image_metadata": {"metadata": {"tag": tag, "os": "y"}}})

    def listed(query: str, mv: str) -> set[str]:
        r = srv.get(f"/volumes/detail?{query}", microversion=mv)
        assert r.status_code == 200, r.text
        return {v["id"] for v in r.json()["volumes"]}

    assert listed(f"glance_metadata={{'tag': '{tag}'}}", "3.4") == {a["id"], b["id"]}
    assert listed(f"glance_metadata={{'tag': '{tag}', 'os': 'y'}}", "3.4") == {b["id"]}
    assert listed(f'glance_metadata={{"os": "y", "tag": "{tag}"}}', "3.54") == {b["id"]}
    assert listed(f"glance_metadata={{'tag': 'nothing-{tag}'}}", "3.4") == set()
    # Before 3.4 the filter does not exist and is ignored.
    assert len(listed(f"glance_metadata={{'tag': '{tag}'}}", "3.3")) >= 3
    r = srv.get("/volumes/detail?glance_metadata=tag", microversion="3.4")
    assert r.status_code == 400, r.text


# --------------------------------------------------------------------- upload


def test_upload_answer_and_the_new_image(srv, glance, image):
    src = srv.wait_volume(post_volume(srv, size=1, imageRef=image["id"]).json()["volume"]["id"])
    name = new_name("up")
    r = action(srv, src["id"], {"os-volume_upload_image": {
        "image_name": name, "disk_format": "qcow2", "visibility": "shared", "protected": False,
    }}, microversion="3.1")
    assert r.status_code == 202, r.text
    body = r.json()
    assert list(body) == ["os-volume_upload_image"], body
    up = body["os-volume_upload_image"]
    assert set(up) == {"id", "updated_at", "status", "display_description", "size", "volume_type",
                       "image_id", "container_format", "disk_format", "image_name", "protected",
                       "visibility"}, up
    assert up["id"] == src["id"] and up["status"] == "uploading" and up["size"] == 1
    assert up["image_name"] == name and up["disk_format"] == "qcow2"
    assert up["container_format"] == "bare"
    assert up["visibility"] == "shared" and up["protected"] is False
    assert up["volume_type"]["name"] == "__DEFAULT__" and "id" in up["volume_type"], up
    assert up["updated_at"]
    made = get_image(glance, up["image_id"])
    assert made is not None and made["name"] == name, made
    assert made["status"] in ("queued", "saving", "active"), made
    assert made["min_disk"] == 1 and made["visibility"] == "shared"
    # The source's image metadata travels as properties (not the core keys).
    assert made.get("hw_disk_bus") == "scsi", made
    assert "image_id" not in made and "image_name" not in made, made
    status = srv.volume(src["id"])["status"]
    assert status in ("uploading", "available"), status
    srv.wait_volume(src["id"], "available", timeout=180)
    wait_image(glance, up["image_id"], "active", timeout=180)


def test_upload_before_3_1(srv, glance):
    vol = srv.create_volume(size=1)
    r = action(srv, vol["id"], {"os-volume_upload_image": {"image_name": new_name("old")}})
    assert r.status_code == 202, r.text
    up = r.json()["os-volume_upload_image"]
    assert up["disk_format"] == "raw" and up["container_format"] == "bare"
    srv.wait_volume(vol["id"], "available", timeout=180)
    wait_image(glance, up["image_id"], "active", timeout=180)
    delete_image(glance, up["image_id"])
    msg = fault(action(srv, vol["id"], {"os-volume_upload_image": {
        "image_name": "x", "visibility": "private"}}), 400)
    assert "Additional properties are not allowed ('visibility' was unexpected)" in msg


def test_upload_refusals(srv):
    vol = srv.create_volume(size=1)
    vid = vol["id"]
    cases = [
        ({}, "'image_name' is a required property"),
        ({"image_name": "x", "disk_format": "iso"},
         "'iso' is not one of ['raw', 'vmdk', 'vdi', 'qcow2', 'vhd', 'vhdx', 'ploop']"),
        ({"image_name": "x", "force": "maybe"}, "Invalid input for field/attribute force."),
    ]
    for arg, want in cases:
        assert want in fault(action(srv, vid, {"os-volume_upload_image": arg}), 400)
    # An in-use volume needs force and enable_force_upload (off here: force is ignored).
    srv.api("POST", f"/volumes/{vid}/action", 202, json={"os-reset_status": {"status": "in-use"}})
    for force in (False, True):
        msg = fault(action(srv, vid, {"os-volume_upload_image": {
            "image_name": new_name(), "force": force}}), 400)
        assert msg == f"Invalid volume: Volume {vid} status must be available"
    srv.api("POST", f"/volumes/{vid}/action", 202, json={"os-reset_status": {"status": "error"}})
    msg = fault(action(srv, vid, {"os-volume_upload_image": {"image_name": "x"}}), 400)
    assert msg == f"Invalid volume: Volume {vid} status must be available"


def test_forced_upload_of_an_in_use_volume(forcing, glance):
    vol = forcing.create_volume(size=1)
    vid = vol["id"]
    forcing.api("POST", f"/volumes/{vid}/action", 202,
                json={"os-reset_status": {"status": "in-use"}})
    # Without force an in-use volume is refused even here.
    msg = fault(action(forcing, vid, {"os-volume_upload_image": {"image_name": "x"}}), 400)
    assert msg == f"Invalid volume: Volume {vid} status must be available"
    r = action(forcing, vid, {"os-volume_upload_image": {"image_name": new_name(), "force": True,
                                                          "disk_format": "qcow2"}})
    assert r.status_code == 202, r.text
    up = r.json()["os-volume_upload_image"]
    wait_for(lambda: forcing.volume(vid)["status"] != "uploading", timeout=180,
             what="upload to end")
    wait_image(glance, up["image_id"], "active", timeout=180)
    # With force, a volume in neither status is told both.
    forcing.api("POST", f"/volumes/{vid}/action", 202,
                json={"os-reset_status": {"status": "error"}})
    msg = fault(action(forcing, vid, {"os-volume_upload_image": {"image_name": "x",
                                                                  "force": True}}), 400)
    assert msg == f"Invalid volume: Volume {vid} status must be available or in-use"


# ------------------------------------------------------------ behind Keystone


@pytest.fixture(scope="module")
def ks_scoria(keystone, glance_keystone, tmp_path_factory):
    """A Keystone deployment of Scoria that finds Glance in the catalog."""
    from keystone_fixture import KeystoneScoria

    dep = KeystoneScoria(keystone, tmp_path_factory.mktemp("ks-imgapi"))
    try:
        dep.start()
        yield dep
    finally:
        dep.stop()


def test_images_of_other_projects_behind_keystone(ks_scoria, keystone, glance_keystone,
                                                  raw_disk):
    admin_token = ks_scoria.token(keystone.admin)
    member_token = ks_scoria.token(keystone.member)
    theirs = upload_image(glance_keystone, raw_disk.path, "raw", visibility="private",
                          token=admin_token)
    mine = upload_image(glance_keystone, raw_disk.path, "raw", visibility="private",
                        token=member_token)

    def create(token: str, ref: str) -> requests.Response:
        return ks_scoria.request("POST", "/volumes", token,
                                 json={"volume": {"size": 1, "imageRef": ref}})

    assert fault(create(member_token, theirs["id"]), 400) == NOT_VISIBLE
    r = create(member_token, mine["id"])
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]

    def settled():
        v = ks_scoria.request("GET", f"/volumes/{vid}", member_token).json()["volume"]
        return v if v["status"] not in ("creating", "downloading") else None

    vol = wait_for(settled, timeout=120, what="volume from a private image")
    assert vol["status"] == "available", (vol, ks_scoria.logs())
    assert vol["volume_image_metadata"]["image_id"] == mine["id"]
    # A reader may not create volumes at all.
    reader_token = ks_scoria.token(keystone.reader)
    assert fault(create(reader_token, mine["id"]), 403)
