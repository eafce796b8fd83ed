"""Fixtures and helpers for end-to-end tests that need a real Glance.

Glance (the OpenStack image service, from PyPI; venv .venv-glance, built on
first use by tests/glance/setup_venv.sh) runs under gunicorn on a free
127.0.0.1 port, with a SQLite database and the `file` store in a scratch
directory; see tests/glance/glance_server.py for the details.

Fixtures
  `glance` (session; with pytest-xdist one per worker): an unauthenticated
      Glance. Every caller is admin and no token is needed (tokens and the
      X-Tenant-Id/X-Project-Id/X-Roles headers are ignored). A new image's
      `owner` is null unless it is set in the body of `POST /v2/images`
      (`owner=` of the helpers below; the caller is admin, so any string is
      accepted). Images of every owner and visibility are visible to, and
      downloadable by, every caller. A test that stops it must start it again.
  `glance_factory` (module): `glance_factory(name, **options)` starts more
      Glances with GlanceServer's options (`keystone=`,
      `throttle_bytes_per_s=`, `show_image_direct_url=`,
      `show_multiple_locations=`, `cinder_store=`, `debug=`), stopped
      after the module. (test_glance_cinder_store.py starts its Glance with
      the `cinder` store itself, to register it in the catalog.)
  `glance_keystone` (session): a Glance behind the `keystone` fixture's
      Keystone (keystonemiddleware with the service user `scoria`, Glance's
      default policies), in the catalog as service type `image`. A member's
      images belong to the member's project.

Both are `GlanceServer`s: `.url`, `.stop()` (quick: downloads in flight are
cut), `.start()` (same port, same images), `.kill()`, `.downloads(image_id)`
(served `GET /v2/images/{id}/file` so far, from its access log),
`.set_throttle(bytes_per_s)` (test hook pacing downloads), `.image_file(id)`
(the stored data), `.log_tail()`.

The real `openstack` CLI and an unauthenticated Glance
  `--os-auth-type none` gives the `none` auth plugin one endpoint
  (`--os-endpoint`) for every service. Beside an unauthenticated Scoria
  (`ScoriaServer.osc` passes `--os-endpoint <scoria>/v3`) the image service
  is pointed elsewhere by openstacksdk's per-service endpoint override, which
  it reads from the environment as OS_IMAGE_ENDPOINT_OVERRIDE:

      server.osc("image", "list", env=osc_image_env(glance))
      server.osc("volume", "create", "--image", image_id, "--size", "1", "v",
                 env=osc_image_env(glance))

  (`osc_image_env(glance)` is `{"OS_IMAGE_ENDPOINT_OVERRIDE": glance.url}`;
  `run_cmd` adds it after dropping the caller's own OS_* variables). Commands
  of the image group also build an identity client, which does version
  discovery on the `--os-endpoint` URL: Scoria's `GET /v3` version document
  satisfies it. For Glance alone, `osc_image_args(glance)` gives
  `--os-auth-type none --os-endpoint <glance>` (discovery then reads Glance's
  own version document). Checked with `image create --file`, `image list`,
  `image show`, `image save` and `image delete` (test_glance_fixture.py,
  beside a stand-in answering Scoria's version document), and `volume
  create --image NAME` looks NAME up in Glance.
  `--project X` on `image create` does set the owner, but only because the
  CLI falls back to X as an id when it cannot look the project up; use
  `owner=` of `upload_image` instead.

Images (REST helpers; `token` only matters for `glance_keystone`)
  `upload_image(glance, path, disk_format, ...)`: POST then PUT the data;
      returns the image once `active`.
  `create_queued_image(glance, ...)`: no data; stays `queued`.
  `get_image`, `delete_image`, `download_image`.
  `tamper_image(glance, id)`: changes bytes of the stored data (same size),
      so that what Glance serves no longer matches the image's `checksum`
      and `os_hash_value` (a hash-mismatch test). Glance itself does not
      check the data it serves.
  `wait_image`, `hashes(path)` (the `checksum` and `os_hash_value` Glance
      computes).
  `plant_image(glance, path, disk_format, stand_in, ...)`: an image whose
      data Glance would refuse at upload, stored as if it had been accepted
      (see there); for a qcow2 with a backing file, which Glance 33's format
      safety checks reject ("Image failed safety checks", a 415).

Disks (real qemu-img from PATH)
  `make_disk(path, size, kind)`: `raw` (sparse: random and zero regions),
  `qcow2` (converted from such a raw), `qcow2-backed` (an overlay with a
  qcow2 backing file). The returned `Disk` keeps the guest-visible content
  as a raw file (`.content`) to compare volumes with.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "glance"))
from glance_server import GlanceServer, ensure_venv  # noqa: E402

MiB = 1024**2
# Random and zero regions of make_disk's raw images: one REGION in every
# STRIDE holds data, the rest is a hole.
REGION = 1 * MiB
STRIDE = 3 * MiB


# ---------------------------------------------------------------- fixtures


def _start(server: GlanceServer) -> GlanceServer:
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"Glance did not start: {e}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def glance(tmp_path_factory) -> Iterable[GlanceServer]:
    """An unauthenticated Glance (every caller is admin)."""
    try:
        venv = ensure_venv()
    except subprocess.CalledProcessError as e:
        pytest.fail(f"building .venv-glance failed: {e}", pytrace=False)
    server = _start(GlanceServer(tmp_path_factory.mktemp("glance"), venv))
    yield server
    server.stop()


class GlanceFactory:
    """Starts Glances of a module's own (`GlanceServer` options as keyword
    arguments, e.g. `show_image_direct_url=True`); stops them afterwards."""

    def __init__(self, base: Path):
        self.base = base
        self.servers: list[GlanceServer] = []

    def __call__(self, name: str = "glance", **options) -> GlanceServer:
        try:
            venv = ensure_venv()
        except subprocess.CalledProcessError as e:
            pytest.fail(f"building .venv-glance failed: {e}", pytrace=False)
        workdir = self.base / f"{name}-{len(self.servers)}"
        server = GlanceServer(workdir, venv, **options)
        self.servers.append(server)
        return _start(server)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="module")
def glance_factory(tmp_path_factory) -> Iterable[GlanceFactory]:
    """`glance_factory(name, **GlanceServer options)`: more Glances, stopped
    after the module."""
    factory = GlanceFactory(tmp_path_factory.mktemp("glances"))
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def glance_keystone(keystone, tmp_path_factory) -> Iterable[GlanceServer]:
    """A Glance behind the `keystone` fixture, in its catalog as `image`."""
    try:
        venv = ensure_venv()
    except subprocess.CalledProcessError as e:
        pytest.fail(f"building .venv-glance failed: {e}", pytrace=False)
    server = _start(GlanceServer(tmp_path_factory.mktemp("glance-ks"), venv, keystone=keystone))
    server.register_in(keystone)
    yield server
    server.stop()


# ----------------------------------------------------------- CLI endpoints


def osc_image_env(glance: GlanceServer) -> dict[str, str]:
    """Extra environment for `openstack --os-auth-type none --os-endpoint
    <scoria>` (e.g. `ScoriaServer.osc(..., env=...)`) that sends the image
    commands, and the CLI's own image look-ups (`volume create --image NAME`
    finds NAME in Glance, then posts the volume to Scoria), to `glance`."""
    return {"OS_IMAGE_ENDPOINT_OVERRIDE": glance.url}


def osc_image_args(glance: GlanceServer) -> list[str]:
    """Options of `openstack` for an unauthenticated Glance on its own."""
    return ["--os-auth-type", "none", "--os-endpoint", glance.url]


# ------------------------------------------------------------------ images


def _headers(token: str | None, **extra: str) -> dict[str, str]:
    h = {"Accept": "application/json", **extra}
    if token is not None:
        h["X-Auth-Token"] = token
    return h


def _check(r: requests.Response, expect: int | tuple[int, ...], what: str) -> None:
    codes = (expect,) if isinstance(expect, int) else expect
    assert r.status_code in codes, (
        f"Glance: {what} -> {r.status_code} (wanted {list(codes)}): {r.text[:2000]}"
    )


def create_queued_image(
    glance: GlanceServer,
    disk_format: str = "raw",
    container_format: str = "bare",
    name: str | None = None,
    visibility: str | None = None,
    owner: str | None = None,
    properties: dict[str, str] | None = None,
    token: str | None = None,
) -> dict:
    """`POST /v2/images`: an image record without data (status `queued`).
    `properties` are extra (string) image properties; `owner` sets the owning
    project (allowed to an admin, so always in the unauthenticated mode)."""
    body: dict = {
        "name": name or f"img-{uuid.uuid4().hex[:8]}",
        "disk_format": disk_format,
        "container_format": container_format,
    }
    if visibility is not None:
        body["visibility"] = visibility
    if owner is not None:
        body["owner"] = owner
    body.update(properties or {})
    r = requests.post(f"{glance.url}/v2/images", json=body, headers=_headers(token), timeout=60)
    _check(r, 201, f"POST /v2/images {body}")
    return r.json()


def upload_image(
    glance: GlanceServer,
    path: Path | str,
    disk_format: str,
    container_format: str = "bare",
    name: str | None = None,
    visibility: str | None = None,
    owner: str | None = None,
    properties: dict[str, str] | None = None,
    token: str | None = None,
    timeout: float = 120,
) -> dict:
    """Creates an image and uploads the file at `path` as its data
    (`PUT /v2/images/{id}/file`); returns the image once it is `active`.
    Glance checks the data against `disk_format` (and refuses, e.g., a qcow2
    with a backing file: see `plant_image`)."""
    image = create_queued_image(glance, disk_format, container_format, name, visibility,
                                owner, properties, token)
    with open(path, "rb") as f:
        r = requests.put(
            f"{glance.url}/v2/images/{image['id']}/file",
            data=f,
            headers=_headers(token, **{"Content-Type": "application/octet-stream"}),
            timeout=timeout,
        )
    _check(r, 204, f"PUT /v2/images/{image['id']}/file ({path})")
    return wait_image(glance, image["id"], "active", token=token, timeout=timeout)


def get_image(glance: GlanceServer, image_id: str, token: str | None = None) -> dict | None:
    """`GET /v2/images/{id}`; None when Glance says 404."""
    r = requests.get(f"{glance.url}/v2/images/{image_id}", headers=_headers(token), timeout=60)
    if r.status_code == 404:
        return None
    _check(r, 200, f"GET /v2/images/{image_id}")
    return r.json()


def wait_image(glance: GlanceServer, image_id: str, status: str = "active",
               token: str | None = None, timeout: float = 120) -> dict:
    """Waits until the image has `status`; fails on `killed` or `deleted`."""
    deadline = time.monotonic() + timeout
    while True:
        image = get_image(glance, image_id, token)
        assert image is not None, f"Glance image {image_id} is gone"
        if image["status"] == status:
            return image
        assert image["status"] not in ("killed", "deleted"), f"Glance image ended {image}"
        assert time.monotonic() < deadline, (
            f"Glance image {image_id} not {status} after {timeout:.0f} s: {image}"
        )
        time.sleep(0.2)


def delete_image(glance: GlanceServer, image_id: str, token: str | None = None,
                 missing_ok: bool = False) -> None:
    """`DELETE /v2/images/{id}` (a 404 is fine with `missing_ok`)."""
    r = requests.delete(f"{glance.url}/v2/images/{image_id}", headers=_headers(token),
                        timeout=60)
    _check(r, (204, 404) if missing_ok else 204, f"DELETE /v2/images/{image_id}")


def download_image(glance: GlanceServer, image_id: str, dest: Path | str | None = None,
                   token: str | None = None, timeout: float = 300) -> bytes | Path:
    """`GET /v2/images/{id}/file`: the bytes, or, with `dest`, written to
    that file (returns its path). Counts in `glance.downloads(id)`."""
    url = f"{glance.url}/v2/images/{image_id}/file"
    with requests.get(url, headers=_headers(token, Accept="application/octet-stream"),
                      stream=True, timeout=timeout) as r:
        _check(r, 200, f"GET /v2/images/{image_id}/file")
        if dest is None:
            return r.content
        with open(dest, "wb") as f:
            for chunk in r.iter_content(1 * MiB):
                f.write(chunk)
    return Path(dest)


def hashes(path: Path | str) -> dict[str, str]:
    """What Glance computes of an image's data: `checksum` (MD5) and
    `os_hash_value` (SHA-512, Glance's default `os_hash_algo`)."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(1 * MiB):
            md5.update(chunk)
            sha512.update(chunk)
    return {"checksum": md5.hexdigest(), "os_hash_value": sha512.hexdigest()}


def tamper_image(glance: GlanceServer, image_id: str, offset: int = 0, length: int = 4096) -> None:
    """Inverts `length` bytes at `offset` of the image's stored data. Size,
    `checksum` and `os_hash_value` stay as they were, so Glance now serves
    bytes that do not match its own hashes."""
    stored = glance.image_file(image_id)
    assert stored.is_file(), f"no stored data for image {image_id} at {stored}"
    with open(stored, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        assert data, f"image {image_id} has no byte at {offset}"
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def _set_stored_data(glance: GlanceServer, image_id: str, path: Path | str,
                     virtual_size: int | None) -> None:
    """Replaces the stored data of an active image with the file at `path`
    and makes Glance's record of it (size, virtual size, hashes) agree."""
    shutil.copyfile(path, glance.image_file(image_id))
    h = hashes(path)
    db = sqlite3.connect(glance.workdir / "glance.sqlite", timeout=30)
    try:
        with db:
            n = db.execute(
                "UPDATE images SET size = ?, virtual_size = ?, checksum = ?, os_hash_value = ?"
                " WHERE id = ?",
                (Path(path).stat().st_size, virtual_size, h["checksum"], h["os_hash_value"],
                 image_id),
            ).rowcount
    finally:
        db.close()
    assert n == 1, f"image {image_id} is not in Glance's database"


def plant_image(
    glance: GlanceServer,
    path: Path | str,
    disk_format: str,
    stand_in: Path | str,
    virtual_size: int | None = None,
    **fields,
) -> dict:
    """An active image whose data is the file at `path`, which Glance would
    refuse at upload (e.g. a qcow2 with a backing file). It uploads
    `stand_in` (data Glance accepts in `disk_format`), then swaps the stored
    file for `path` and writes its size, `virtual_size` and hashes into
    Glance's database, as if `path` had been uploaded before Glance checked
    formats. `fields` as for `upload_image`."""
    image = upload_image(glance, stand_in, disk_format, **fields)
    _set_stored_data(glance, image["id"], path, virtual_size)
    return get_image(glance, image["id"], fields.get("token"))


# ------------------------------------------------------------------- disks


@dataclass(frozen=True)
class Disk:
    """A disk image made by `make_disk`."""

    path: Path  # the image file itself
    disk_format: str  # Glance's disk_format: raw or qcow2
    size: int  # virtual size in bytes
    content: Path  # a raw file with what a guest sees (the file itself for raw)
    backing: Path | None = None  # the backing file of a qcow2-backed overlay


def _qemu_img(*args: str) -> str:
    exe = shutil.which("qemu-img")
    if not exe:
        pytest.fail("qemu-img not found on PATH (tests/run.sh installs qemu-utils)",
                    pytrace=False)
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"qemu-img {' '.join(args)} failed ({p.returncode}):\n"
                             f"{p.stdout}{p.stderr}")
    return p.stdout


def _sparse_raw(path: Path, size: int, seed: int) -> None:
    """`size` bytes: random data in the first REGION of every STRIDE, holes
    (zeros) elsewhere."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in range(0, size, STRIDE):
            data = bytearray(rng.randbytes(min(REGION, size - offset)))
            if offset == 0 and len(data) >= 512:
                # No MBR boot signature by chance: Glance's format inspector
                # would take the image for a partition table.
                data[510:512] = b"\0\0"
            f.seek(offset)
            f.write(data)


def make_disk(path: Path | str, size: int, kind: str = "raw", seed: int | None = None) -> Disk:
    """A disk image of `size` bytes (virtual) at `path`.

    kind `raw`: a sparse raw file, random data in the first MiB of every 3
    MiB and holes between. `qcow2`: such a raw (kept as `<path>.content.raw`)
    converted with `qemu-img convert -O qcow2`. `qcow2-backed`: a qcow2
    overlay (`qemu-img create -f qcow2 -b <path>.base.qcow2 -F qcow2`) over a
    qcow2 converted from such a raw; the overlay itself holds no data.
    `seed` picks the random data (default: from the path).
    """
    path = Path(path)
    seed = seed if seed is not None else int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16)
    if kind == "raw":
        _sparse_raw(path, size, seed)
        return Disk(path, "raw", size, path)
    content = Path(f"{path}.content.raw")
    _sparse_raw(content, size, seed)
    if kind == "qcow2":
        _qemu_img("convert", "-f", "raw", "-O", "qcow2", str(content), str(path))
        return Disk(path, "qcow2", size, content)
    if kind == "qcow2-backed":
        base = Path(f"{path}.base.qcow2")
        _qemu_img("convert", "-f", "raw", "-O", "qcow2", str(content), str(base))
        _qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path))
        return Disk(path, "qcow2", size, content, backing=base)
    raise ValueError(f"unknown disk kind {kind!r} (raw, qcow2, qcow2-backed)")


def disk_info(path: Path | str) -> dict:
    """`qemu-img info --output=json` of a file."""
    return json.loads(_qemu_img("info", "--output=json", str(path)))
