"""A real Glance (from PyPI) on 127.0.0.1 for Scoria's tests.

`GlanceServer` writes its own glance-api.conf and glance-api-paste.ini into a
scratch directory, creates the SQLite database with `glance-manage db_sync`
(on the first start only), and serves the image API v2 with gunicorn (one
worker process, several threads, so that a slow download does not hold up
other requests) on a free loopback port. Glance 33's `glance-api` command
no longer serves (it only says so): gunicorn runs the WSGI application
glance.wsgi.api:application, which finds its configuration through
OS_GLANCE_CONFIG_DIR.

Images are stored by glance_store's `file` driver, configured as the one
store `file1` of `enabled_backends` (images show `"stores": "file1"`), in
<workdir>/images, one file per image named after its id (`image_file(id)`);
the database is <workdir>/glance.sqlite. No image cache, no
interoperable image import (`enabled_import_methods = []`): images are made
the classic way, `POST /v2/images` then `PUT /v2/images/{id}/file`.
`show_image_direct_url` and `show_multiple_locations` are off unless asked
for, as in Glance's defaults: image data is then reachable only through the
download API, which the access log counts.

The `cinder` store (`GlanceServer(..., keystone=ks, cinder_store=creds)`):
glance_store's `cinder` driver as a second store, `cinder1`, made the
default (`enabled_backends = file1:file, cinder1:cinder`): new images are
kept in volumes of the block storage service that Keystone's catalog lists
as `volumev3` (Scoria), one volume `image-<image id>` per image, made and
owned by the user `creds` (cinder_store_user_name and friends, which makes
glance_store sign in as that user whoever calls Glance: the volumes belong
to `creds`' project). The image's location is `cinder://cinder1/<volume
id>` and its `stores` is `cinder1`. glance_store reads and writes a volume
through an attachment (attachment create, update with this host's
connector, os-complete, then the attachment's `connection_info` given to
os-brick, then attachment delete); Scoria's file driver answers with
`driver_volume_type: local` and the file's path as `device_path`, which
os-brick's LocalConnector opens as it is. Root: glance_store's root helper
is hard-wired to `sudo glance-rootwrap <rootwrap_config>`, but as root
(these tests are) nothing calls it: oslo.concurrency drops the root helper
for root, glance_store's temporary_chown has nothing to change (Scoria's
volume files belong to root too), and os-brick's privileged calls (its
connector properties, e.g. the NVMe-oF host uuid) go to an oslo.privsep
daemon that `[privsep_osbrick] helper_command` starts directly (the venv's
privsep-helper) instead of through sudo, which this machine does not have.
So there is no rootwrap.conf and no sudo; `rootwrap_config` points at a
file that does not exist, so that a call through the root helper would
fail loudly. Needs the `cinder` extra of glance_store (requirements.txt).

`debug=True`: Glance logs at DEBUG, keystoneauth's `REQ: curl …`, `RESP:`
and `RESP BODY:` lines included (every HTTP request Glance makes: token
checks and glance_store's calls to the block storage API).

Two modes:

  * unauthenticated (the default; `[paste_deploy] flavor` empty): Glance's
    unauthenticated-context middleware gives every request an admin context
    with no user, no project and no roles. Glance's default policies want
    the admin (or service) role, so a policy file of this mode makes the
    rules `context_is_admin` and `service_api` pass for everyone. Tokens and
    the X-Tenant-Id/X-Project-Id/X-Roles headers are ignored, so a new
    image's `owner` is null unless the body of `POST /v2/images` sets `owner`
    (allowed: the caller is admin), and every caller sees and may change
    every image, whatever its owner and visibility (default `shared`).
  * behind Keystone (`GlanceServer(..., keystone=ks)`; `flavor = keystone`):
    keystonemiddleware's auth_token checks tokens against that Keystone with
    its service user (`ks.authtoken_section()`), and Glance's own policies
    apply: a member's images belong to its project. `register_in(ks)` puts
    Glance in the catalog as service type `image` (public, internal and
    admin endpoints in RegionOne).

Test hooks (tests/glance/glance_testhooks.py, outermost in the pipeline):

  * an access log, <workdir>/access.log: `METHOD PATH STATUS` when a
    response starts and `METHOD PATH STATUS end BYTES complete|aborted` when
    its body is done; `downloads(image_id)` counts the served
    `GET /v2/images/{id}/file`;
  * a download throttle, `throttle_bytes_per_s` (constructor) or
    `set_throttle(n)` (applies to downloads that start afterwards, no restart
    needed): the body of an image download is paced to n bytes a second, so
    that a test can stop Glance in the middle of it.

`stop()` is a quick shutdown (transfers in flight are cut after at most
GRACE seconds, as when a real Glance goes away), `start()` again serves the
same port and data, `kill()` is SIGKILL. Starting takes about 4 s the first
time (db_sync included), 2 s after that.

The Glance executables come from the venv built by setup_venv.sh
(.venv-glance); this module itself only needs `requests`.

By hand (until Ctrl-C or SIGTERM):
  .venv/bin/python tests/glance/glance_server.py [--keystone] [--throttle N]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DEFAULT_VENV = REPO_ROOT / ".venv-glance"

sys.path.insert(0, str(REPO_ROOT / "tests" / "keystone"))
from keystone_server import REGION, Credentials, KeystoneServer, free_port  # noqa: E402

# The one store (glance_store's `file` driver), as named in enabled_backends:
# images show it in their `stores` field.
STORE = "file1"
# Seconds gunicorn lets requests in flight finish when it is stopped; then
# its worker is killed. A worker thread does not notice a quick shutdown, so
# without this a throttled download would go on to its end.
GRACE = 1
# The `cinder` store, when there is one (the default store then).
CINDER_STORE = "cinder1"
# Threads of the one gunicorn worker: requests served at the same time.
THREADS = 8
_END_LINE = re.compile(r"^(\S+) (\S+) (\S+) end (\d+) (complete|aborted)$")


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Builds the Glance venv if it is missing or stale (cached otherwise)."""
    subprocess.run(
        [str(HERE / "setup_venv.sh"), str(venv)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return venv


class GlanceServer:
    """One Glance API process (gunicorn) and its scratch directory."""

    def __init__(
        self,
        workdir: Path,
        venv: Path = DEFAULT_VENV,
        keystone: KeystoneServer | None = None,
        throttle_bytes_per_s: int = 0,
        show_image_direct_url: bool = False,
        show_multiple_locations: bool = False,
        cinder_store: Credentials | None = None,
        cinder_volume_type: str | None = None,
        debug: bool = False,
    ):
        self.workdir = Path(workdir)
        self.venv = Path(venv)
        self.keystone = keystone
        self.show_image_direct_url = show_image_direct_url
        self.show_multiple_locations = show_multiple_locations
        if cinder_store is not None and keystone is None:
            raise ValueError("the cinder store signs in to the Keystone given as keystone=")
        self.cinder_store = cinder_store
        self.cinder_volume_type = cinder_volume_type
        self.debug = debug
        self.port = free_port()
        self.conf = self.workdir / "glance-api.conf"
        self.paste_ini = self.workdir / "glance-api-paste.ini"
        self.log_path = self.workdir / "glance.log"
        self.access_log_path = self.workdir / "access.log"
        self.throttle_path = self.workdir / "throttle"
        self.images_dir = self.workdir / "images"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.set_throttle(throttle_bytes_per_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def default_store(self) -> str:
        """The store new images go to (their `stores` field)."""
        return CINDER_STORE if self.cinder_store else STORE

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def image_file(self, image_id: str) -> Path:
        """Where the file store keeps the data of image `image_id`."""
        return self.images_dir / image_id

    # ------------------------------------------------------------ life cycle

    def start(self, timeout: float = 60.0) -> None:
        """Starts Glance (creating its database the first time); returns once
        `GET /versions` answers, raises RuntimeError with the log tail if it
        does not within `timeout` seconds."""
        assert not self.running, "Glance is already running"
        for d in ("images", "staging", "tasks", "locks", "mnt"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        self._write_conf()
        if not (self.workdir / "glance.sqlite").exists():
            self._manage("db_sync")
        self.starts += 1
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=str(self.workdir), PYTHONWARNINGS="ignore")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts} on port {self.port} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [
                    str(self.venv / "bin" / "gunicorn"),
                    "--bind", f"127.0.0.1:{self.port}",
                    "--workers", "1",
                    "--threads", str(THREADS),
                    "--timeout", "300",
                    "--graceful-timeout", str(GRACE),
                    "--log-level", "warning",
                    "--pythonpath", str(HERE),
                    "glance.wsgi.api:application",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.workdir),
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Stops Glance the quick way (SIGINT to gunicorn's master): requests
        in flight, downloads included, get at most GRACE seconds more and are
        then cut off; the access log has no end line for them."""
        self._signal(signal.SIGINT, timeout)

    def kill(self) -> None:
        """SIGKILL to Glance's whole process group (master and worker)."""
        self._signal(signal.SIGKILL, 30.0, group=True)

    def _signal(self, sig: int, timeout: float, group: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            if group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Nothing of the group may outlive the master (a worker would keep
        # serving the port).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def log_tail(self, max_bytes: int = 32 * 1024) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError as e:
            return f"<no Glance log: {e}>"
        return data[-max_bytes:].decode("utf-8", "replace")

    def _write_conf(self) -> None:
        w = self.workdir
        flavor = "keystone" if self.keystone else ""
        authtoken = self.keystone.authtoken_section() if self.keystone else ""
        # A deprecated option that warns whenever it is set: only when asked for.
        locations = "show_multiple_locations = true\n" if self.show_multiple_locations else ""
        # With debug, the HTTP requests Glance makes (keystoneauth's REQ/RESP
        # lines: glance_store's calls to the block storage API) are logged too.
        log_levels = (
            "default_log_levels = keystoneauth=DEBUG, keystonemiddleware=WARN, "
            "stevedore=WARN, sqlalchemy=WARN, urllib3.connectionpool=WARN, "
            "routes.middleware=WARN, oslo_policy=INFO, amqp=WARN\n"
            if self.debug else ""
        )
        backends, cinder = "", ""
        if self.cinder_store:
            c = self.cinder_store
            backends = f", {CINDER_STORE}:cinder"
            volume_type = (f"cinder_volume_type = {self.cinder_volume_type}\n"
                           if self.cinder_volume_type else "")
            cinder = f"""
[{CINDER_STORE}]
cinder_store_auth_address = {self.keystone.auth_url}
cinder_store_user_name = {c.username}
cinder_store_password = {c.password}
cinder_store_project_name = {c.project_name}
cinder_store_user_domain_name = {c.user_domain_name}
cinder_store_project_domain_name = {c.project_domain_name}
cinder_catalog_info = volumev3::publicURL
cinder_os_region_name = {REGION}
cinder_state_transition_timeout = 120
cinder_mount_point_base = {w / 'mnt'}
rootwrap_config = {w / 'no-rootwrap.conf'}
{volume_type}
[privsep_osbrick]
helper_command = {self.venv / 'bin' / 'privsep-helper'} --config-file {self.conf}
"""
        policy = ""
        if not self.keystone:
            # Glance's unauthenticated context says is_admin but has no
            # roles, and Glance's default policies ask for the admin role
            # (rule context_is_admin) or the service role: without this file
            # even `POST /v2/images` is forbidden. "@" always passes.
            policy_file = w / "policy-noauth.yaml"
            policy_file.write_text('"context_is_admin": "@"\n"service_api": "@"\n')
            policy = f"[oslo_policy]\npolicy_file = {policy_file}\n"
        self.conf.write_text(
            f"""[DEFAULT]
debug = {self.debug}
{log_levels}use_stderr = true
show_image_direct_url = {self.show_image_direct_url}
{locations}enabled_import_methods = []
enabled_backends = {STORE}:file{backends}

[glance_store]
default_backend = {self.default_store}

[{STORE}]
filesystem_store_datadir = {self.images_dir}
{cinder}
[os_glance_staging_store]
filesystem_store_datadir = {w / 'staging'}

[os_glance_tasks_store]
filesystem_store_datadir = {w / 'tasks'}

[database]
connection = sqlite:///{w / 'glance.sqlite'}

[paste_deploy]
flavor = {flavor}
config_file = {self.paste_ini}

[oslo_concurrency]
lock_path = {w / 'locks'}

{policy}
{authtoken}"""
        )
        # Paste looks up `glance-api` plus `-flavor`: glance-api (no auth) or
        # glance-api-keystone. The test hooks wrap everything.
        self.paste_ini.write_text(
            f"""[pipeline:glance-api]
pipeline = testhooks root-noauth

[pipeline:glance-api-keystone]
pipeline = testhooks root-keystone

[composite:root-noauth]
paste.composite_factory = glance.api:root_app_factory
/: api-noauth
/healthcheck: healthcheck

[composite:root-keystone]
paste.composite_factory = glance.api:root_app_factory
/: api-keystone
/healthcheck: healthcheck

[pipeline:api-noauth]
pipeline = versionnegotiation unauthenticated-context rootapp

[pipeline:api-keystone]
pipeline = versionnegotiation authtoken context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[app:healthcheck]
paste.app_factory = oslo_middleware:Healthcheck.app_factory
backends = disable_by_file
disable_by_file_path = {w / 'healthcheck_disable'}

[filter:testhooks]
paste.filter_factory = glance_testhooks:filter_factory
access_log = {self.access_log_path}
throttle_file = {self.throttle_path}

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:unauthenticated-context]
paste.filter_factory = glance.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
"""
        )

    def _manage(self, *args: str) -> None:
        cmd = [str(self.venv / "bin" / "glance-manage"), "--config-file", str(self.conf), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
        with open(self.log_path, "a") as log:
            log.write(f"===== glance-manage {args[0]} (exit {p.returncode})\n{p.stdout}{p.stderr}")
        if p.returncode != 0:
            raise RuntimeError(
                f"glance-manage {args[0]} failed with exit code {p.returncode}:\n"
                f"{p.stdout}\n{p.stderr}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Glance (gunicorn) exited with code {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            try:
                if requests.get(f"{self.url}/versions", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Glance did not answer GET {self.url}/versions within {timeout:.0f} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.3)

    # ------------------------------------------------------------ test hooks

    def set_throttle(self, bytes_per_s: int) -> None:
        """Paces image downloads that start from now on to `bytes_per_s`
        (0: as fast as possible). A test hook; works while Glance runs."""
        self.throttle_path.write_text(f"{int(bytes_per_s)}\n")

    def access_log(self) -> list[str]:
        """The access log's lines (see glance_testhooks.py for their form)."""
        try:
            return self.access_log_path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def downloads(self, image_id: str, complete: bool = False) -> int:
        """How many `GET /v2/images/{image_id}/file` Glance answered with 200
        or 206 so far (counted when the response starts); with
        `complete=True`, only those whose whole body went out."""
        path = f"/v2/images/{image_id}/file"
        n = 0
        for line in self.access_log():
            parts = line.split(" ")
            if len(parts) < 3 or parts[0] != "GET" or parts[1].rstrip("/") != path:
                continue
            if parts[2] not in ("200", "206"):
                continue
            if complete:
                m = _END_LINE.match(line)
                n += bool(m and m.group(5) == "complete")
            else:
                n += len(parts) == 3
        return n

    # --------------------------------------------------------------- catalog

    def register_in(self, keystone: KeystoneServer | None = None) -> None:
        """Puts this Glance in Keystone's catalog as service `glance`, type
        `image` (public, internal and admin endpoints in RegionOne)."""
        ks = keystone or self.keystone
        assert ks is not None, "no Keystone to register Glance in"
        ks.register_service("glance", "image", self.url, "Glance image service")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a throw-away Glance on 127.0.0.1.")
    parser.add_argument("--keystone", action="store_true",
                        help="also run a Keystone, authenticate through it and "
                        "register Glance in its catalog")
    parser.add_argument("--workdir", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--throttle", type=int, default=0, metavar="BYTES_PER_S",
                        help="pace image downloads (test hook)")
    args = parser.parse_args()
    venv = ensure_venv()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scoria-glance-"))
    ks = None
    if args.keystone:
        from keystone_server import ensure_venv as ensure_keystone_venv

        ks = KeystoneServer(workdir / "keystone", ensure_keystone_venv())
        ks.start()
        print(f"Keystone: {ks.auth_url}")
        for c in (ks.admin, ks.service_user, ks.member, ks.reader):
            print(f"  {c.username} / {c.password} in project {c.project_name}")
    glance = GlanceServer(workdir / "glance", venv, keystone=ks,
                          throttle_bytes_per_s=args.throttle)
    glance.start()
    if ks:
        glance.register_in(ks)
    print(f"Glance: {glance.url} (log {glance.log_path}, access log {glance.access_log_path})",
          flush=True)
    def quit(signum, frame):
        raise KeyboardInterrupt

    # SIGTERM too: a background job of a script ignores SIGINT.
    signal.signal(signal.SIGTERM, quit)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        glance.stop()
        if ks:
            ks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
