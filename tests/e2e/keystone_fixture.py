"""Fixtures for end-to-end tests authenticated by a real Keystone.

`keystone` (session): Keystone from PyPI (venv .venv-keystone, built on
first use by tests/keystone/setup_venv.sh) served on a free 127.0.0.1 port,
with the users of tests/keystone/keystone_server.py: `admin`, the service
user `scoria`, `demo-member` and `demo-reader`. Its tokens live
KEYSTONE_TOKEN_LIFETIME seconds so that expiry can be observed.

`keystone_scoria` (module): a Scoria deployment (`scoria api`, `scoria
scheduler`, `scoria volume`; SQLite, RabbitMQ on 127.0.0.1:5672 in a vhost
of its own, one `file` backend) with `auth_strategy = keystone`, registered
in Keystone's catalog as block-storage and volumev3.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterable

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "keystone"))
from keystone_server import Credentials, KeystoneServer, ensure_venv, free_port  # noqa: E402

# Short enough that a test can watch a token expire. keystoneauth signs in
# again before every request once a token has less than 120 s left, so a
# shorter life makes each `openstack` command sign in a dozen times.
KEYSTONE_TOKEN_LIFETIME = 150
# Scoria's `token_cache_time`: how long a revoked token may still be accepted.
SCORIA_TOKEN_CACHE_TIME = 5
RABBIT = "guest:guest@127.0.0.1:5672"


@pytest.fixture(scope="session")
def keystone(tmp_path_factory) -> Iterable[KeystoneServer]:
    """A running Keystone; `.auth_url`, `.admin`, `.service_user`, `.member`,
    `.reader` (Credentials), `.issue_token()`, `.revoke_token()`, `.stop()`."""
    venv = ensure_venv()
    ks = KeystoneServer(
        tmp_path_factory.mktemp("keystone"), venv, token_expiration=KEYSTONE_TOKEN_LIFETIME
    )
    try:
        ks.start()
    except RuntimeError as e:
        pytest.fail(f"Keystone did not start: {e}", pytrace=False)
    yield ks
    ks.stop()


def _rabbitmqctl(*args: str) -> bool:
    if not shutil.which("rabbitmqctl"):
        return False
    p = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    return p.returncode == 0


class KeystoneScoria:
    """Scoria's deployment processes sharing one INI file, authenticated by Keystone."""

    def __init__(self, keystone: KeystoneServer, workdir: Path):
        self.keystone = keystone
        self.workdir = workdir
        self.port = free_port()
        self.vhost = f"scoria-ks-{uuid.uuid4().hex[:8]}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf_path = workdir / "scoria.conf"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def write_conf(
        self, path: Path | None = None, port: int | None = None, auth_url: str | None = None
    ) -> Path:
        """The deployment's INI file (another api's, with `port`/`auth_url` given)."""
        path = path or self.conf_path
        authtoken = self.keystone.authtoken_section(token_cache_time=SCORIA_TOKEN_CACHE_TIME)
        if auth_url:
            authtoken = "\n".join(
                f"auth_url = {auth_url}" if line.startswith("auth_url =") else line
                for line in authtoken.splitlines()
            ) + "\n"
        path.write_text(
            f"""[DEFAULT]
auth_strategy = keystone
transport_url = rabbit://{RABBIT}/{self.vhost}
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {port or self.port}
host = keystone-e2e-{self.vhost}
enabled_backends = file1
backend_stats_polling_interval = 2
report_interval = 2

[database]
connection = sqlite:///{self.workdir / 'scoria.db'}

[file1]
volume_driver = file
volume_backend_name = FILE1
file_volumes_dir = {self.workdir / 'volumes'}

{authtoken}"""
        )
        return path

    def start(self) -> None:
        if not _rabbitmqctl("add_vhost", self.vhost) or not _rabbitmqctl(
            "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"
        ):
            pytest.fail(f"cannot create the RabbitMQ vhost {self.vhost} with rabbitmqctl",
                        pytrace=False)
        (self.workdir / "volumes").mkdir(exist_ok=True)
        start_scoria_with_keystone(self.write_conf(), self)
        self.keystone.register_scoria(f"{self.endpoint}/%(project_id)s")

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """Starts `scoria ARGS`, logging to <workdir>/<name>.log."""
        from conftest import scoria_binary  # conftest imports this module

        log = open(self.workdir / f"{name}.log", "ab")
        try:
            proc = subprocess.Popen(
                [str(scoria_binary()), *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=str(self.workdir),
            )
        finally:
            log.close()
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        from conftest import tail

        return "\n".join(
            f"--- {name}.log ---\n{tail(self.workdir / f'{name}.log', 16 * 1024)}"
            for name in self.procs
        )

    def wait_api(self, port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"scoria exited with code {proc.returncode}:\n{self.logs()}")
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"scoria api did not answer on port {port}:\n{self.logs()}")
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        _rabbitmqctl("delete_vhost", self.vhost)

    # -- HTTP as a Keystone user
    def token(self, creds: Credentials) -> str:
        return self.keystone.issue_token(creds)[0]

    def request(self, method: str, path: str, token: str | None, **kw) -> requests.Response:
        headers = {"Accept": "application/json", **kw.pop("headers", {})}
        if token is not None:
            headers["X-Auth-Token"] = token
        return requests.request(method, self.endpoint + path, headers=headers, timeout=60, **kw)


def start_scoria_with_keystone(conf_path: Path, dep: KeystoneScoria) -> None:
    """Migrates the database and starts api, scheduler and volume from `conf_path`;
    returns once the api answers and the backend's pool is visible to an admin."""
    conf = ["--config-file", str(conf_path)]
    upgrade = dep.spawn("db-upgrade", "db", "upgrade", *conf)
    if upgrade.wait(timeout=120) != 0:
        raise AssertionError(f"scoria db upgrade failed:\n{dep.logs()}")
    api = dep.spawn("api", "api", *conf)
    dep.spawn("scheduler", "scheduler", *conf)
    dep.spawn("volume", "volume", *conf)
    try:
        dep.wait_api(dep.port, api)
    except AssertionError:
        if "auth_strategy = keystone is not supported" in dep.logs():
            pytest.skip("this scoria binary does not support auth_strategy = keystone yet")
        raise
    admin = dep.token(dep.keystone.admin)
    deadline = time.monotonic() + 60
    while True:
        r = dep.request("GET", "/scheduler-stats/get_pools", admin)
        if r.status_code == 200 and r.json().get("pools"):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no pool after 60 s (last answer {r.status_code} {r.text[:500]}):\n{dep.logs()}"
            )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def keystone_scoria(keystone, tmp_path_factory) -> Iterable[KeystoneScoria]:
    dep = KeystoneScoria(keystone, tmp_path_factory.mktemp("keystone-scoria"))
    try:
        dep.start()
        yield dep
    finally:
        dep.stop()


def random_name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"
