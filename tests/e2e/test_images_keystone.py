"""Images in the deployment behind Keystone: Scoria finds Glance in the
catalog (no `glance_api_servers`) and calls it with the user's token plus
its own service token (`[service_user] send_service_user_token`); Glance's
own policies decide what a project may see."""

from __future__ import annotations

import filecmp
import uuid
from pathlib import Path
from typing import Iterable

import pytest

from conftest import MiB, wait_for
from glance_fixture import download_image, get_image, make_disk, upload_image
from keystone_fixture import KeystoneScoria
from test_keystone import cli_ok


class GlanceKeystoneScoria(KeystoneScoria):
    """The Keystone deployment, with Scoria's service user for Glance."""

    def write_conf(self, path=None, port=None, auth_url=None) -> Path:
        written = super().write_conf(path, port, auth_url)
        c = self.keystone.service_user
        written.write_text(
            written.read_text()
            + f"""
[service_user]
send_service_user_token = true
auth_url = {self.keystone.url}
auth_type = password
username = {c.username}
password = {c.password}
project_name = {c.project_name}
user_domain_name = {c.user_domain_name}
project_domain_name = {c.project_domain_name}
"""
        )
        return written


@pytest.fixture(scope="module")
def dep(keystone, glance_keystone, tmp_path_factory) -> Iterable[GlanceKeystoneScoria]:
    d = GlanceKeystoneScoria(keystone, tmp_path_factory.mktemp("images-keystone"))
    try:
        d.start()
        yield d
    finally:
        d.stop()


def wait_status(dep, creds, vid: str, want: str) -> dict:
    vol = wait_for(
        lambda: (v := cli_ok(dep, creds, "volume", "show", vid))["status"]
        not in ("creating", "downloading", "uploading") and v,
        timeout=180, what=f"volume {vid} to settle",
    )
    assert vol["status"] == want, f"{vol}\n{dep.logs()}"
    return vol


def test_member_image_to_volume_and_back(dep, glance_keystone, tmp_path):
    member = dep.keystone.member
    token = dep.token(member)
    disk = make_disk(tmp_path / "m.raw", 24 * MiB, "raw", seed=41)
    image = upload_image(glance_keystone, disk.path, "raw", token=token)
    assert image["owner"] == dep.keystone.project_ids["demo"]
    vol = cli_ok(dep, member, "volume", "create", "--image", image["id"], "--size", "1",
                 f"ks-img-{uuid.uuid4().hex[:6]}")
    vol = wait_status(dep, member, vol["id"], "available")
    assert vol["volume_image_metadata"]["image_id"] == image["id"]
    data = dep.workdir / "volumes" / f"volume-{vol['id']}"
    with open(data, "rb") as f:
        assert f.read(disk.size) == disk.content.read_bytes()

    made = cli_ok(dep, member, "image", "create", "--volume", vol["id"],
                  f"ks-up-{uuid.uuid4().hex[:6]}")
    image_id = made.get("image_id") or made.get("id")
    wait_status(dep, member, vol["id"], "available")
    up = wait_for(lambda: (i := get_image(glance_keystone, image_id, token)) and
                  i["status"] == "active" and i, timeout=180, what="uploaded image active")
    assert up["owner"] == dep.keystone.project_ids["demo"]
    got = download_image(glance_keystone, image_id, tmp_path / "back.raw", token=token)
    assert filecmp.cmp(got, data, shallow=False)


def test_image_of_another_project_is_refused(dep, glance_keystone, tmp_path):
    admin_token = dep.token(dep.keystone.admin)
    disk = make_disk(tmp_path / "a.raw", 4 * MiB, "raw", seed=42)
    private = upload_image(glance_keystone, disk.path, "raw", visibility="private",
                           token=admin_token)
    member_token = dep.token(dep.keystone.member)
    before = dep.request("GET", "/volumes", member_token).json()["volumes"]
    r = dep.request("POST", "/volumes", member_token,
                    json={"volume": {"size": 1, "imageRef": private["id"]}})
    assert r.status_code in (400, 404), r.text
    fault = next(iter(r.json().values()))
    assert fault["message"] == (
        "Invalid image identifier or unable to access requested image."
    ), fault
    assert dep.request("GET", "/volumes", member_token).json()["volumes"] == before
