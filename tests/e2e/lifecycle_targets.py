"""The targets the CLI lifecycle walk (test_cli_lifecycle.py) runs against.

`target` is a module-scoped fixture with two parameters, so that every test
of a module using it runs once per target, the whole walk for one target
before the other:

  * "all-in-one": one `scoria serve` (SQLite, in-process bus, noauth); the
    `openstack` CLI runs with `--os-auth-type none --os-endpoint URL` and
    `cinder` in noauth mode. The target is conftest's ScoriaServer.
  * "keystone-deployment": `scoria api`, `scoria scheduler` and `scoria volume`
    as separate OS processes on a fresh PostgreSQL database and RabbitMQ vhost
    (deployment.py), with `auth_strategy = keystone` against the real Keystone
    of the `keystone` session fixture, and Scoria registered in its catalog as
    block-storage and volumev3. `openstack` and `cinder` sign in as Keystone's
    `admin` (admin in project `admin`) with an ordinary password and find
    Scoria through the catalog: no endpoint override. The target is a
    KeystoneTarget, which offers what the walk uses of a ScoriaServer:
    `base_url`, `endpoint`, `project`, `osc`, `osc_run`, `osc_fails`, `cinder`.

A failing test's report carries the tail of the keystone deployment's logs
(every Scoria process and Keystone).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import CommandFailed, ScoriaServer, _ServerFactory, describe, run_cmd, venv_tool
from keystone_fixture import KEYSTONE_TOKEN_LIFETIME
from keystone_server import Credentials, KeystoneServer

pytest.register_assert_rewrite("deployment")
from deployment import Deployment, require_infrastructure  # noqa: E402

TARGETS = ["all-in-one", "keystone-deployment"]

# The deployment's one backend and its host: pools are `node1@file#file`,
# as the walk expects of any target (`...@file#file`).
BACKEND = "file"
HOST = "node1"


class KeystoneDeployment(Deployment):
    """A Deployment (PostgreSQL, RabbitMQ, separate processes) whose api
    checks tokens with Keystone; its own HTTP requests (readiness checks) carry
    a Keystone admin token."""

    def __init__(self, workdir: Path, keystone: KeystoneServer):
        super().__init__(workdir)
        self.keystone = keystone
        self.defaults["auth_strategy"] = "keystone"
        self._admin_token: tuple[str, float] | None = None

    def write_conf(self) -> Path:
        path = super().write_conf()
        with open(path, "a") as f:
            f.write("\n" + self.keystone.authtoken_section())
        return path

    def admin_token(self) -> str:
        # Tokens live KEYSTONE_TOKEN_LIFETIME seconds: sign in again at half-life.
        now = time.monotonic()
        if self._admin_token is None or now - self._admin_token[1] > KEYSTONE_TOKEN_LIFETIME / 2:
            self._admin_token = (self.keystone.issue_token(self.keystone.admin)[0], now)
        return self._admin_token[0]

    def request(self, method: str, path: str, **kw: Any):
        kw["headers"] = {"X-Auth-Token": self.admin_token(), **kw.get("headers", {})}
        return super().request(method, path, **kw)


class KeystoneTarget:
    """The keystone deployment as the lifecycle walk sees it: the `openstack`
    and `cinder` CLIs signed in with `creds`' password, Scoria from the catalog."""

    def __init__(self, dep: KeystoneDeployment, creds: Credentials):
        self.dep = dep
        self.keystone = dep.keystone
        self.creds = creds
        # A project name: the CLI resolves it through Keystone.
        self.project = creds.project_name

    @property
    def base_url(self) -> str:
        return self.dep.base_url

    @property
    def endpoint(self) -> str:
        return self.dep.endpoint

    def osc_run(
        self,
        *args: str,
        fmt: str | None = None,
        volume_api_version: str | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ):
        cmd = [venv_tool("openstack"), *self.creds.cli_args(self.keystone.auth_url)]
        if volume_api_version:
            cmd += ["--os-volume-api-version", volume_api_version]
        cmd += list(args)
        if fmt:
            cmd += ["-f", fmt]
        return run_cmd(cmd, timeout=timeout, env=env), cmd

    # The same output handling as the all-in-one's, around this osc_run.
    osc = ScoriaServer.osc
    osc_fails = ScoriaServer.osc_fails

    def cinder(self, *args: str, project: str, timeout: float = 180) -> str:
        """python-cinderclient's `cinder` signed in to `project` with a password;
        it finds Scoria in the catalog as volumev3."""
        c = self.creds
        cmd = [
            venv_tool("cinder"),
            "--os-auth-url", self.keystone.auth_url,
            "--os-username", c.username,
            "--os-password", c.password,
            "--os-user-domain-name", c.user_domain_name,
            "--os-project-name", project,
            "--os-project-domain-name", c.project_domain_name,
            *args,
        ]
        p = run_cmd(cmd, timeout=timeout)
        if p.returncode != 0:
            raise CommandFailed(describe(cmd, p))
        return p.stdout


class _LogsOnFailure:
    """A plugin, registered while a keystone deployment is up, that attaches
    its logs to the report of a failing test."""

    def __init__(self, dep: KeystoneDeployment):
        self.dep = dep

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.failed:
            for title, text in self.dep.logs():
                report.sections.append((f"scoria log: {title}", text))
            report.sections.append(
                (f"keystone log ({self.dep.keystone.log_path})", self.dep.keystone.log_tail())
            )


def _all_in_one(request) -> Iterator[ScoriaServer]:
    factory = _ServerFactory(request.getfixturevalue("e2e_tmp"))
    try:
        yield factory("lifecycle")
    finally:
        factory.close()


def _keystone_deployment(request) -> Iterator[KeystoneTarget]:
    require_infrastructure()
    keystone: KeystoneServer = request.getfixturevalue("keystone")
    workdir = request.getfixturevalue("tmp_path_factory").mktemp("lifecycle-keystone")
    dep = KeystoneDeployment(workdir, keystone)
    logs = _LogsOnFailure(dep)
    request.config.pluginmanager.register(logs)
    try:
        dep.create_infrastructure()
        dep.backend(BACKEND, volume_driver="file", volume_backend_name=BACKEND)
        dep.db_upgrade()
        dep.start_api()
        dep.start_scheduler(HOST)
        dep.start_volume(BACKEND, host=HOST)
        keystone.register_scoria(f"{dep.endpoint}/%(project_id)s")
        dep.wait_ready(schedulers=[HOST], volumes=[f"{HOST}@{BACKEND}"])
        yield KeystoneTarget(dep, keystone.admin)
    finally:
        try:
            dep.close()
        finally:
            request.config.pluginmanager.unregister(logs)


@pytest.fixture(scope="module", params=TARGETS)
def target(request) -> Iterator[ScoriaServer | KeystoneTarget]:
    """The Scoria under test, once per entry of TARGETS (see the module doc)."""
    if request.param == "all-in-one":
        yield from _all_in_one(request)
    else:
        yield from _keystone_deployment(request)
