"""A real Keystone (from PyPI) on 127.0.0.1 for Scoria's tests.

`KeystoneServer` writes a keystone.conf into a scratch directory (SQLite,
Fernet keys beside it, no memcached), runs `keystone-manage db_sync`,
`fernet_setup`, `credential_setup` and `bootstrap`, serves the identity API
with gunicorn on a free loopback port, and then provisions what the tests
use through the REST API:

  * projects `service` and `demo`, a role `service`;
  * user `scoria` (roles admin and service in `service`): Scoria's
    `[keystone_authtoken]` credentials;
  * users `demo-member` (role member in `demo`) and `demo-reader` (role
    reader in `demo`), plus the bootstrap `admin` (admin in `admin`);
  * `register_scoria(url)`: Scoria in the catalog as services `cinder`
    (type block-storage) and `cinderv3` (type volumev3), with public,
    internal and admin endpoints in RegionOne;
  * `register_service(name, type, url)`: any other service the same way
    (Glance's `GlanceServer.register_in(keystone)` uses it for `image`);
    `public_url(type)` reads a service's public endpoint back;
  * `add_user(creds, roles)`: more users (e.g. the one whose project keeps
    the volumes of Glance's `cinder` store).

The Keystone executables come from the venv built by setup_venv.sh
(.venv-keystone); this module itself only needs `requests`.

By hand (until Ctrl-C):
  .venv/bin/python tests/keystone/keystone_server.py [--scoria-url URL]
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VENV = REPO_ROOT / ".venv-keystone"
REGION = "RegionOne"
# Scoria's two catalog entries: openstacksdk/OSC look for block-storage,
# Nova and glance_store for volumev3.
SCORIA_SERVICES = (("cinder", "block-storage"), ("cinderv3", "volumev3"))


@dataclass(frozen=True)
class Credentials:
    """A user with a password, scoped to a project (all in domain Default)."""

    username: str
    password: str
    project_name: str
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"

    def auth_body(self) -> dict:
        """The body of `POST /v3/auth/tokens` for these credentials."""
        return {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.username,
                            "domain": {"name": self.user_domain_name},
                            "password": self.password,
                        }
                    },
                },
                "scope": {
                    "project": {
                        "name": self.project_name,
                        "domain": {"name": self.project_domain_name},
                    }
                },
            }
        }

    def cli_args(self, auth_url: str) -> list[str]:
        """Ordinary password-auth options of the `openstack` command."""
        return [
            "--os-auth-type", "password",
            "--os-identity-api-version", "3",
            "--os-auth-url", auth_url,
            "--os-username", self.username,
            "--os-password", self.password,
            "--os-project-name", self.project_name,
            "--os-user-domain-name", self.user_domain_name,
            "--os-project-domain-name", self.project_domain_name,
        ]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Builds the Keystone venv if it is missing or stale (cached otherwise)."""
    subprocess.run(
        [str(REPO_ROOT / "tests" / "keystone" / "setup_venv.sh"), str(venv)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return venv


class KeystoneServer:
    """One Keystone process and its scratch directory."""

    def __init__(
        self,
        workdir: Path,
        venv: Path = DEFAULT_VENV,
        token_expiration: int = 3600,
    ):
        self.workdir = Path(workdir)
        self.venv = Path(venv)
        self.token_expiration = token_expiration
        self.port = free_port()
        self.conf = self.workdir / "keystone.conf"
        self.log_path = self.workdir / "keystone.log"
        self.proc: subprocess.Popen | None = None
        self.admin = Credentials("admin", secrets.token_hex(12), "admin")
        self.service_user = Credentials("scoria", secrets.token_hex(12), "service")
        self.member = Credentials("demo-member", secrets.token_hex(12), "demo")
        self.reader = Credentials("demo-reader", secrets.token_hex(12), "demo")
        self.project_ids: dict[str, str] = {}
        self._admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    # ------------------------------------------------------------ life cycle

    def start(self, timeout: float = 120.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_conf()
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        owner = ["--keystone-user", user, "--keystone-group", group]
        self._manage("db_sync")
        self._manage("fernet_setup", *owner)
        self._manage("credential_setup", *owner)
        self._manage(
            "bootstrap",
            "--bootstrap-username", self.admin.username,
            "--bootstrap-password", self.admin.password,
            "--bootstrap-project-name", self.admin.project_name,
            "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone",
            "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", self.auth_url,
            "--bootstrap-internal-url", self.auth_url,
            "--bootstrap-public-url", self.auth_url,
        )
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=str(self.conf), PYTHONWARNINGS="ignore")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(self.venv / "bin" / "gunicorn"),
                    "--bind", f"127.0.0.1:{self.port}",
                    "--workers", "2",
                    "--timeout", "120",
                    "--log-level", "warning",
                    "--pythonpath", str(Path(__file__).resolve().parent),
                    "wsgi_app:application",
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
            self._provision()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # gunicorn's master stops its workers on SIGTERM.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, max_bytes: int = 32 * 1024) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError as e:
            return f"<no Keystone log: {e}>"
        return data[-max_bytes:].decode("utf-8", "replace")

    def _write_conf(self) -> None:
        w = self.workdir
        for d in ("fernet-keys", "credential-keys"):
            (w / d).mkdir(mode=0o700, exist_ok=True)
        self.conf.write_text(
            f"""[DEFAULT]
use_stderr = true
debug = false

[database]
connection = sqlite:///{w / 'keystone.db'}

[token]
provider = fernet
expiration = {self.token_expiration}

[fernet_tokens]
key_repository = {w / 'fernet-keys'}

[fernet_receipts]
key_repository = {w / 'fernet-keys'}

[credential]
key_repository = {w / 'credential-keys'}

[identity]
# The fewest bcrypt rounds Keystone allows: tests sign in often.
password_hash_rounds = 4

[cache]
enabled = false
"""
        )

    def _manage(self, *args: str) -> None:
        cmd = [str(self.venv / "bin" / "keystone-manage"), "--config-file", str(self.conf), *args]
        p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        with open(self.log_path, "a") as log:
            log.write(f"===== keystone-manage {args[0]} (exit {p.returncode})\n{p.stdout}{p.stderr}")
        if p.returncode != 0:
            raise RuntimeError(
                f"keystone-manage {args[0]} failed with exit code {p.returncode}:\n"
                f"{p.stdout}\n{p.stderr}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Keystone (gunicorn) exited with code {self.proc.returncode}:\n"
                    + self.log_tail()
                )
            try:
                if requests.get(self.auth_url, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Keystone did not answer GET {self.auth_url} within {timeout:.0f} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.3)

    # ---------------------------------------------------------------- tokens

    def issue_token(self, creds: Credentials) -> tuple[str, dict]:
        """Signs `creds` in; returns the token and Keystone's token document."""
        r = requests.post(f"{self.auth_url}/auth/tokens", json=creds.auth_body(), timeout=30)
        if r.status_code != 201:
            raise RuntimeError(f"sign-in of {creds.username} failed: {r.status_code} {r.text}")
        return r.headers["X-Subject-Token"], r.json()["token"]

    def revoke_token(self, token: str) -> None:
        r = requests.delete(
            f"{self.auth_url}/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
            timeout=30,
        )
        if r.status_code != 204:
            raise RuntimeError(f"token revocation failed: {r.status_code} {r.text}")

    def _admin(self, method: str, path: str, expect: int, **kw) -> dict:
        """One identity API call as the bootstrap admin (token reused while it works)."""
        for fresh in (False, True):
            if fresh or self._admin_token is None:
                self._admin_token, _ = self.issue_token(self.admin)
            r = requests.request(
                method, self.auth_url + path,
                headers={"X-Auth-Token": self._admin_token}, timeout=30, **kw,
            )
            if r.status_code != 401:
                break
        if r.status_code != expect:
            raise RuntimeError(f"{method} {path} -> {r.status_code} (wanted {expect}): {r.text}")
        return r.json() if r.content else {}

    # ---------------------------------------------------------- provisioning

    def _one(self, collection: str, **query: str) -> dict | None:
        found = self._admin("GET", f"/{collection}", 200, params=query)[collection]
        return found[0] if found else None

    def _role(self, name: str) -> str:
        role = self._one("roles", name=name) or self._admin(
            "POST", "/roles", 201, json={"role": {"name": name}}
        )["role"]
        return role["id"]

    def _project(self, name: str) -> str:
        project = self._one("projects", name=name) or self._admin(
            "POST", "/projects", 201,
            json={"project": {"name": name, "domain_id": "default", "enabled": True}},
        )["project"]
        self.project_ids[name] = project["id"]
        return project["id"]

    def _user(self, creds: Credentials, roles: list[str]) -> None:
        project = self._project(creds.project_name)
        user = self._admin(
            "POST", "/users", 201,
            json={"user": {
                "name": creds.username,
                "password": creds.password,
                "domain_id": "default",
                "default_project_id": project,
                "enabled": True,
            }},
        )["user"]
        for role in roles:
            self._admin(
                "PUT", f"/projects/{project}/users/{user['id']}/roles/{self._role(role)}", 204
            )

    def add_user(self, creds: Credentials, roles: list[str]) -> None:
        """Creates the user `creds` (the project too, if it is new) with
        `roles` in its project; e.g. the user of Glance's `cinder` store."""
        self._user(creds, roles)

    def _provision(self) -> None:
        self._project(self.admin.project_name)
        self._role("service")
        self._user(self.service_user, ["admin", "service"])
        self._user(self.member, ["member"])
        self._user(self.reader, ["reader"])

    def register_scoria(self, endpoint: str) -> None:
        """Puts Scoria in the catalog at `endpoint` (e.g. `http://127.0.0.1:8776/v3/%(project_id)s`),
        replacing any endpoints registered before."""
        for name, kind in SCORIA_SERVICES:
            self.register_service(name, kind, endpoint, "Scoria block storage")

    def register_service(self, name: str, kind: str, endpoint: str, description: str = "") -> None:
        """Puts a service of type `kind` (created as `name` if the catalog has
        none of that type) in the catalog at `endpoint`, with public, internal
        and admin endpoints in RegionOne replacing any registered before."""
        service = self._one("services", type=kind) or self._admin(
            "POST", "/services", 201,
            json={"service": {"name": name, "type": kind, "enabled": True,
                              "description": description or name}},
        )["service"]
        for old in self._admin("GET", "/endpoints", 200,
                               params={"service_id": service["id"]})["endpoints"]:
            self._admin("DELETE", f"/endpoints/{old['id']}", 204)
        for interface in ("public", "internal", "admin"):
            self._admin(
                "POST", "/endpoints", 201,
                json={"endpoint": {
                    "service_id": service["id"],
                    "interface": interface,
                    "region_id": REGION,
                    "url": endpoint,
                    "enabled": True,
                }},
            )

    def public_url(self, kind: str) -> str | None:
        """The public endpoint in the catalog of the service of type `kind`
        (None when there is none), e.g. to put it back after a test
        registered another one."""
        service = self._one("services", type=kind)
        if service is None:
            return None
        for endpoint in self._admin("GET", "/endpoints", 200,
                                    params={"service_id": service["id"]})["endpoints"]:
            if endpoint["interface"] == "public":
                return endpoint["url"]
        return None

    def authtoken_section(self, token_cache_time: int | None = None) -> str:
        """Scoria's `[keystone_authtoken]` section for this Keystone."""
        c = self.service_user
        lines = [
            "[keystone_authtoken]",
            f"www_authenticate_uri = {self.auth_url}",
            f"auth_url = {self.url}",
            "auth_type = password",
            f"username = {c.username}",
            f"password = {c.password}",
            f"project_name = {c.project_name}",
            f"user_domain_name = {c.user_domain_name}",
            f"project_domain_name = {c.project_domain_name}",
        ]
        if token_cache_time is not None:
            lines.append(f"token_cache_time = {token_cache_time}")
        return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a throw-away Keystone on 127.0.0.1.")
    parser.add_argument("--scoria-url", help="register Scoria's endpoint, e.g. "
                        "http://127.0.0.1:8776/v3/%%(project_id)s")
    parser.add_argument("--workdir", help="scratch directory (default: a new temporary one)")
    parser.add_argument("--token-expiration", type=int, default=3600)
    args = parser.parse_args()
    venv = ensure_venv()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scoria-keystone-"))
    ks = KeystoneServer(workdir, venv, token_expiration=args.token_expiration)
    ks.start()
    if args.scoria_url:
        ks.register_scoria(args.scoria_url)
    print(f"Keystone: {ks.auth_url} (log {ks.log_path})")
    for c in (ks.admin, ks.service_user, ks.member, ks.reader):
        print(f"  {c.username} / {c.password} in project {c.project_name}")
    print(ks.authtoken_section(), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        ks.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
