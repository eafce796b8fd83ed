"""Glance's own `cinder` store on Scoria, with the real components.

A Glance (33, from PyPI) behind the same Keystone as a Scoria deployment
keeps its images in Scoria volumes: glance_store's `cinder` store
(`GlanceServer(..., cinder_store=...)`, tests/glance/glance_server.py)
signs in as a user of its own (project `glance-store-…`), creates a volume
`image-<image id>` through the block storage API that the catalog lists as
`volumev3`, attaches it to this host (Scoria's file driver hands out `local`
connections: the volume file's path, opened by os-brick's LocalConnector)
and writes the image into it. Scoria runs with `[DEFAULT]
allowed_direct_url_schemes = cinder`, so a volume made from such an image
(location `cinder://cinder1/<volume id>`, shown through
`show_image_direct_url` and `show_multiple_locations`) is a clone of that
volume inside Scoria, not a download from Glance.

The round trip, with the real `openstack` CLI as a member of project
`demo`:

  1. `image create --file disk.raw`: an active image whose data is in a new,
     available Scoria volume `image-<id>` of the store's project (its file
     holds the bytes; metadata glance_image_id, image_size, image_owner) and
     whose location is `cinder://cinder1/<that volume>`;
  2. `image save`: Glance reads the bytes back through a read-only
     attachment; the volume is left available, with no attachment;
  3. `volume create --image <id> --size 1`: available, holds the same bytes,
     and Glance served no `GET /v2/images/{id}/file` for it (Scoria's volume
     log says it cloned the image's own volume);
  4. `image delete`: the image volume is deleted in Scoria; the clone stays.

Scoria's file driver and glance_store: glance_store opens the attached
volume's `device_path` with `open(path, "wb")`, whose O_TRUNC is harmless on
a block device but cuts a file driver's volume file down to the bytes
written (here the image's 20 MiB of a 1 GiB volume). The test accepts that
for the image volume (glance_store reads no further than `image_size`) and
wants the clone at its full 1 GiB (the file driver grows a clone to the
volume's size).

Step 3 needs Scoria's API to take `imageRef` in `POST /volumes`; until it
does, the step fails with Scoria's 400.

A step that fails says which one, with the block storage calls glance_store
made (Glance runs with debug: keystoneauth's REQ/RESP lines) and the tails
of Glance's and Scoria's logs.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Iterable

import pytest

from conftest import MiB, describe, tail, wait_for
from glance_fixture import ensure_venv, get_image, make_disk
from keystone_fixture import random_name
from keystone_server import Credentials, KeystoneServer
from glance_server import CINDER_STORE, GlanceServer
from test_images_keystone import GlanceKeystoneScoria
from test_keystone import cli

GiB = 1024 * MiB
# Not a whole number of MiB: glance_store's reads stop at the volume's
# `image_size` metadata, not at the end of a chunk or of the volume.
IMAGE_SIZE = 20 * MiB + 12345
LOCATION = re.compile(rf"^cinder://(?:{CINDER_STORE}/)?([0-9a-f-]{{36}})$")


class CinderStoreScoria(GlanceKeystoneScoria):
    """The Keystone deployment with Scoria's service user for Glance, and
    `allowed_direct_url_schemes = cinder`: images of Glance's cinder store
    are cloned from their volumes."""

    def write_conf(self, path=None, port=None, auth_url=None) -> Path:
        written = super().write_conf(path, port, auth_url)
        text = written.read_text()
        assert text.startswith("[DEFAULT]\n"), text[:200]
        written.write_text(text.replace(
            "[DEFAULT]\n", "[DEFAULT]\nallowed_direct_url_schemes = cinder\n", 1))
        return written


@pytest.fixture(scope="module")
def store_user(keystone: KeystoneServer) -> Credentials:
    """The user glance_store signs in as (role member in a project of its
    own): the image volumes belong to its project."""
    suffix = secrets.token_hex(3)
    creds = Credentials(f"glance-store-{suffix}", secrets.token_hex(12),
                        f"glance-store-{suffix}")
    keystone.add_user(creds, ["member"])
    return creds


@pytest.fixture(scope="module")
def cinder_glance(keystone: KeystoneServer, store_user: Credentials,
                  tmp_path_factory) -> Iterable[GlanceServer]:
    """A Glance behind `keystone` whose default store is the cinder store, in
    the catalog as `image` for the module (the image endpoint that was there
    before is put back afterwards)."""
    try:
        venv = ensure_venv()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"building .venv-glance failed: {e}", pytrace=False)
    server = GlanceServer(tmp_path_factory.mktemp("glance-cinder"), venv, keystone=keystone,
                          cinder_store=store_user, show_image_direct_url=True,
                          show_multiple_locations=True, debug=True)
    try:
        server.start()
    except (RuntimeError, OSError) as e:
        pytest.fail(f"Glance with the cinder store did not start: {e}", pytrace=False)
    before = keystone.public_url("image")
    server.register_in(keystone)
    try:
        yield server
    finally:
        server.stop()
        if before:
            keystone.register_service("glance", "image", before)


@pytest.fixture(scope="module")
def dep(keystone, cinder_glance, tmp_path_factory) -> Iterable[CinderStoreScoria]:
    d = CinderStoreScoria(keystone, tmp_path_factory.mktemp("glance-cinder-scoria"))
    try:
        d.start()
        yield d
    finally:
        d.stop()


# ------------------------------------------------------------- diagnostics

_REQ = re.compile(r"keystoneauth\.session .*(REQ: curl|RESP: |RESP BODY: )")
_BLOCK_STORAGE_PATH = re.compile(r"/v3/[0-9a-f]{32}/|/v3/(volumes|attachments|types)")


def block_storage_calls(glance: GlanceServer, since: int = 0) -> str:
    """glance_store's requests to the block storage API and their answers
    (keystoneauth's debug lines in Glance's log, after byte `since`)."""
    try:
        text = glance.log_path.read_bytes()[since:].decode("utf-8", "replace")
    except OSError as e:
        return f"<no Glance log: {e}>"
    out, keep = [], False
    for line in text.splitlines():
        if _REQ.search(line):
            if "REQ: curl" in line:
                keep = bool(_BLOCK_STORAGE_PATH.search(line))
            if keep:
                out.append(re.sub(r"^\S+ \S+ \d+ DEBUG keystoneauth\.session \[[^\]]*\] ", "",
                                  line)[:3000])
    return "\n".join(out[-80:]) or "<none logged>"


def glance_errors(glance: GlanceServer, since: int = 0) -> str:
    """ERROR/WARNING lines and tracebacks of Glance's log after byte `since`."""
    try:
        text = glance.log_path.read_bytes()[since:].decode("utf-8", "replace")
    except OSError as e:
        return f"<no Glance log: {e}>"
    out = [line for line in text.splitlines()
           if (" ERROR " in line or " WARNING " in line or "Traceback" in line
               or line.startswith(("  ", "glance_store.", "cinderclient.", "os_brick.")))
           and "keystoneauth.session" not in line and "privsep log" not in line]
    return "\n".join(out[-120:]) or "<none>"


class Steps:
    """Runs the round trip's steps; a failing one fails the test with what
    glance_store asked of Scoria, what Glance said and Scoria's logs."""

    def __init__(self, dep: CinderStoreScoria, glance: GlanceServer):
        self.dep = dep
        self.glance = glance
        self.timings: list[tuple[str, float]] = []

    def run(self, name: str, fn):
        mark = self.glance.log_path.stat().st_size if self.glance.log_path.exists() else 0
        t0 = time.monotonic()
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - every failure gets the same report
            pytest.fail(
                f"step `{name}` failed: {e}\n\n"
                f"=== block storage calls of glance_store during the step ===\n"
                f"{block_storage_calls(self.glance, mark)}\n\n"
                f"=== Glance errors and warnings during the step ===\n"
                f"{glance_errors(self.glance, mark)}\n\n"
                f"=== Scoria logs ===\n{self.dep.logs()}\n\n"
                f"=== Glance access log (last lines) ===\n"
                + "\n".join(self.glance.access_log()[-30:]),
                pytrace=False,
            )
        self.timings.append((name, time.monotonic() - t0))
        return result


def ok(dep, creds, *args, fmt="json"):
    """`openstack ARGS` as `creds`; raises with the command's output."""
    p, cmd = cli(dep, creds, *args, fmt=fmt)
    if p.returncode != 0:
        raise AssertionError(describe(cmd, p))
    return json.loads(p.stdout) if fmt == "json" else p.stdout


def scoria_volume(dep: CinderStoreScoria, token: str, vid: str) -> dict | None:
    r = dep.request("GET", f"/volumes/{vid}", token)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"GET /volumes/{vid} -> {r.status_code}: {r.text}"
    return r.json()["volume"]


def holds(path: Path, data: bytes, size: int, exact: bool = True) -> None:
    """The file at `path` starts with `data`, zeros after it (checked over
    the next MiB), and is `size` bytes long (with `exact=False`: at least
    `len(data)` and at most `size`, the rest of the volume reading as zeros)."""
    assert path.is_file(), f"no volume file {path}"
    length = path.stat().st_size
    if exact:
        assert length == size, f"{path} is {length} bytes, not {size}"
    else:
        assert len(data) <= length <= size, f"{path} is {length} bytes (volume: {size})"
    with open(path, "rb") as f:
        head = f.read(len(data))
        rest = f.read(MiB)
    assert head == data, f"{path} does not hold the image's bytes"
    assert rest == bytes(len(rest)), f"{path} has non-zero bytes right after the image"


# ------------------------------------------------------------------- test


def test_image_in_scoria_volume_cloned_not_downloaded(dep, cinder_glance, store_user,
                                                       tmp_path):
    ks = dep.keystone
    member = ks.member
    glance = cinder_glance
    steps = Steps(dep, glance)
    disk = make_disk(tmp_path / "disk.raw", IMAGE_SIZE, "raw", seed=4242)
    data = disk.content.read_bytes()
    member_token = dep.token(member)
    store_token = dep.token(store_user)
    volumes = dep.workdir / "volumes"

    # 1. The image goes into a new Scoria volume.
    name = random_name("cinder-store-img")

    def create_image():
        made = ok(dep, member, "image", "create", "--file", str(disk.path),
                  "--disk-format", "raw", "--container-format", "bare", name)
        return made["id"]

    image_id = steps.run("openstack image create --file (glance_store writes a Scoria volume)",
                         create_image)

    def check_image():
        image = get_image(glance, image_id, token=member_token)
        assert image is not None, f"image {image_id} is not in Glance"
        assert image["status"] == "active", image
        assert image["size"] == IMAGE_SIZE, image
        assert image["owner"] == ks.project_ids["demo"], image
        assert image.get("stores") == CINDER_STORE, image
        urls = [loc["url"] for loc in image.get("locations", [])]
        assert len(urls) == 1, f"locations {image.get('locations')}"
        m = LOCATION.match(urls[0])
        assert m, f"location {urls[0]!r} is not cinder://{CINDER_STORE}/<volume id>"
        assert image.get("direct_url") == urls[0], image
        return m.group(1)

    vid = steps.run("the image is active at a cinder:// location", check_image)

    def check_image_volume():
        vol = scoria_volume(dep, store_token, vid)
        assert vol is not None, f"Scoria has no volume {vid} in the store's project"
        assert vol["name"] == f"image-{image_id}", vol
        assert vol["status"] == "available", vol
        assert vol["size"] == 1, vol
        assert vol["attachments"] == [], vol
        meta = vol["metadata"]
        assert meta.get("glance_image_id") == image_id, meta
        assert meta.get("image_size") == str(IMAGE_SIZE), meta
        assert meta.get("image_owner") == ks.project_ids["demo"], meta
        # os-update_readonly_flag, glance_store's last call of the upload.
        assert str(meta.get("readonly")).lower() == "true", meta
        if "os-vol-tenant-attr:tenant_id" in vol:
            assert vol["os-vol-tenant-attr:tenant_id"] == ks.project_ids[store_user.project_name]
        # Not the member's: the store's own project keeps it.
        assert scoria_volume(dep, member_token, vid) is None, "the member sees the image volume"
        # glance_store opens the attached volume's device_path with
        # open(path, "wb"): O_TRUNC, harmless on a block device, cuts the
        # file driver's volume file down to the bytes written (see the note
        # in the module docstring). Its clone below is grown back to 1 GiB.
        holds(volumes / f"volume-{vid}", data, GiB, exact=False)
        return vol

    steps.run("Scoria volume image-<id>: available, holds the image", check_image_volume)

    # 2. Glance reads the image back from the volume.
    out = tmp_path / "saved.raw"

    def save():
        ok(dep, member, "image", "save", "--file", str(out), image_id, fmt=None)
        got = out.read_bytes()
        assert len(got) == IMAGE_SIZE, f"image save gave {len(got)} bytes, not {IMAGE_SIZE}"
        assert got == data, "image save gave other bytes than uploaded"
        vol = wait_for(lambda: (v := scoria_volume(dep, store_token, vid))
                       and v["status"] == "available" and not v["attachments"] and v,
                       timeout=30, what=f"image volume {vid} available and detached again",
                       detail=lambda: scoria_volume(dep, store_token, vid))
        return vol

    steps.run("openstack image save (glance_store reads through a ro attachment)", save)

    # 3. A volume of the image is a clone of the image's volume.
    downloads_before = glance.downloads(image_id)

    def volume_from_image():
        made = ok(dep, member, "volume", "create", "--image", image_id, "--size", "1",
                  random_name("from-cinder-img"))
        vol = wait_for(
            lambda: (v := ok(dep, member, "volume", "show", made["id"]))["status"]
            not in ("creating", "downloading") and v,
            timeout=180, what=f"volume {made['id']} to settle")
        assert vol["status"] == "available", vol
        return vol

    new = steps.run("openstack volume create --image (cloned inside Scoria)", volume_from_image)

    def check_clone():
        assert new["volume_image_metadata"]["image_id"] == image_id, new
        holds(volumes / f"volume-{new['id']}", data, GiB)
        assert glance.downloads(image_id) == downloads_before, (
            f"Glance served GET /v2/images/{image_id}/file for the volume: a download, "
            f"not a clone\n" + "\n".join(glance.access_log()[-20:]))
        log = tail(dep.workdir / "volume.log", 256 * 1024)
        assert any("cloning the image's own volume" in line and new["id"] in line
                   and vid in line for line in log.splitlines()), (
            "Scoria's volume log does not say it cloned the image's volume")

    steps.run("the new volume holds the image, and Glance served no download", check_clone)

    # 4. Deleting the image deletes its volume.
    def delete_image():
        ok(dep, member, "image", "delete", image_id, fmt=None)
        assert get_image(glance, image_id, token=member_token) is None, "image still there"
        wait_for(lambda: scoria_volume(dep, store_token, vid) is None, timeout=60,
                 what=f"image volume {vid} deleted in Scoria",
                 detail=lambda: scoria_volume(dep, store_token, vid))
        assert not (volumes / f"volume-{vid}").exists(), "the image volume's file is left"
        vol = ok(dep, member, "volume", "show", new["id"])
        assert vol["status"] == "available", vol
        holds(volumes / f"volume-{new['id']}", data, GiB)

    steps.run("openstack image delete (the image volume goes)", delete_image)

    print("\ntimings: " + ", ".join(f"{n.split(' (')[0]}: {t:.1f} s" for n, t in steps.timings))
