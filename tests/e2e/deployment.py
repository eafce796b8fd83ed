"""Fixtures for Scoria in deployment mode: separate `scoria api`, `scoria
scheduler` and `scoria volume` OS processes sharing one PostgreSQL database
and one RabbitMQ broker (issue 3).

Every test gets a `deployment` of its own:
  * a fresh PostgreSQL database on 127.0.0.1:5432 (user postgres, trust auth)
    and a fresh RabbitMQ vhost on 127.0.0.1:5672 (user guest), both dropped at
    teardown, so tests never see each other's rows or queues;
  * a free port for the api, a work directory with the INI file and one log
    file per process (the tail of every log is attached to a failing test's
    report);
  * backend directories, optionally tmpfs mounts of a given size (unmounted at
    teardown) so that the capacity weigher sees known totals;
  * a `ServiceProcess` handle per process: start / kill(signal) / stop /
    restart;
  * HTTP and `openstack` CLI helpers against the api, and `wait_ready()`,
    which waits until the os-services list shows every expected service up
    and get_pools lists every expected pool.

PostgreSQL and RabbitMQ are started by tests/run.sh; when they are not
reachable the tests fail (they are not skipped).

The module is loaded as a pytest plugin by test_deployment.py
(`pytest_plugins = ["deployment"]`), which registers its fixture and its
report hook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import pytest
import requests

from conftest import (
    TRANSITIONAL,
    CommandFailed,
    describe,
    free_port,
    norm,
    run_cmd,
    scoria_binary,
    tail,
    venv_tool,
    wait_for,
)

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
RABBIT_HOST, RABBIT_PORT = "127.0.0.1", 5672
RABBIT_USER = RABBIT_PASSWORD = "guest"

# The token the `openstack --os-auth-type none` CLI sends (keystoneauth's
# noauth plugin): user and project "notused". HTTP requests of the tests use
# the same, so both see the same volumes.
NOAUTH_TOKEN = "notused"

# Deployments alive right now, so that a failing test shows their logs.
_LIVE: list["Deployment"] = []


# --------------------------------------------------------- infrastructure


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_infrastructure() -> None:
    """Fail (never skip) when PostgreSQL or RabbitMQ is not there."""
    missing = []
    if not _port_open(PG_PORT, PG_HOST):
        missing.append(f"PostgreSQL on {PG_HOST}:{PG_PORT}")
    if not _port_open(RABBIT_PORT, RABBIT_HOST):
        missing.append(f"RabbitMQ on {RABBIT_HOST}:{RABBIT_PORT}")
    for tool in ("psql", "rabbitmqctl"):
        if not shutil.which(tool):
            missing.append(f"the `{tool}` command")
    if missing:
        pytest.fail(
            "deployment-mode tests need " + " and ".join(missing)
            + " (tests/run.sh installs and starts them)",
            pytrace=False,
        )


def psql(sql: str, database: str = "postgres") -> str:
    cmd = ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", database,
           "-v", "ON_ERROR_STOP=1", "-tAc", sql]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"psql failed: {describe(cmd, p)}")
    return p.stdout.strip()


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    cmd = ["rabbitmqctl", "-q", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise AssertionError(f"rabbitmqctl failed: {describe(cmd, p)}")
    return p.stdout


# ------------------------------------------------------------- processes


class ServiceProcess:
    """One Scoria OS process (`scoria <command> --config-file F ...`)."""

    def __init__(self, dep: "Deployment", name: str, args: list[str],
                 env: dict[str, str] | None = None):
        self.dep = dep
        self.name = name
        self.args = args
        self.env = dict(env or {})
        self.log_path = dep.workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # True once the test stopped or killed it on purpose.
        self.expected_exit = False

    def __repr__(self) -> str:
        return f"<{self.name} pid={self.pid} {'running' if self.running else 'stopped'}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "ServiceProcess":
        assert not self.running, f"{self.name} is already running"
        self.starts += 1
        self.expected_exit = False
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(self.env)
        cmd = [str(self.dep.binary), *self.args]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== e2e: start #{self.starts}: {' '.join(cmd)} "
                      f"(env {self.env}) =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         cwd=str(self.dep.workdir))
        return self

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60) -> int:
        """Send `sig`, wait for the exit, return the exit code (negative: by signal).

        A process still alive after `timeout` seconds is SIGKILLed and the
        test fails (a SIGTERM must stop a service by itself).
        """
        assert self.proc is not None, f"{self.name} was never started"
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise AssertionError(
                    f"{self.name} did not exit within {timeout:.0f} s of signal "
                    f"{signal.Signals(sig).name}; log:\n{tail(self.log_path, 16384)}")
        self._mark()
        return self.proc.returncode

    def stop(self, timeout: float = 60) -> int:
        return self.kill(signal.SIGTERM, timeout)

    def restart(self, sig: int = signal.SIGTERM) -> "ServiceProcess":
        self.kill(sig)
        return self.start()

    def _mark(self) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== e2e: {self.name} exited with code "
                      f"{self.proc.returncode} =====\n".encode())

    def assert_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with code {self.proc.returncode}; "
                f"log:\n{tail(self.log_path, 16384)}")


# ------------------------------------------------------------ deployment


class Deployment:
    """A Scoria deployment of one test: database, vhost, INI file, processes."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.binary = scoria_binary()
        self.tag = uuid.uuid4().hex[:10]
        self.database = f"scoria_e2e_{self.tag}"
        self.vhost = f"scoria-e2e-{self.tag}"
        self.port = free_port()
        self.conf_path = workdir / "scoria.conf"
        self.defaults: dict[str, Any] = {
            "transport_url": f"rabbit://{RABBIT_USER}:{RABBIT_PASSWORD}@"
                             f"{RABBIT_HOST}:{RABBIT_PORT}/{self.vhost}",
            "auth_strategy": "noauth",
            "osapi_volume_listen": "127.0.0.1",
            "osapi_volume_listen_port": self.port,
            "host": "node1",
            "backend_stats_polling_interval": 2,
            "report_interval": 2,
            "rpc_response_timeout": 5,
            "scheduler_max_attempts": 3,
        }
        self.backends: dict[str, dict[str, Any]] = {}
        self.processes: list[ServiceProcess] = []
        self.mounts: list[Path] = []
        self._db_created = False
        self._vhost_created = False
        self.token = NOAUTH_TOKEN

    # -- set-up
    def create_infrastructure(self) -> None:
        psql(f'CREATE DATABASE "{self.database}"')
        self._db_created = True
        rabbitmqctl("add_vhost", self.vhost)
        self._vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, RABBIT_USER, ".*", ".*", ".*")

    def tmpfs(self, name: str, size: str) -> Path:
        """A tmpfs of `size` (e.g. "40G"; virtual, nothing is allocated) mounted
        on <workdir>/<name>; unmounted at teardown."""
        path = self.workdir / name
        path.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs on {path} (tests need root): {p.stderr}",
                        pytrace=False)
        self.mounts.append(path)
        return path

    def backend(self, name: str, **options: Any) -> dict[str, Any]:
        """Declares backend `name` (a section of the INI file, in enabled_backends).

        A `file` backend gets a directory of its own unless `file_volumes_dir`
        is given.
        """
        options.setdefault("volume_driver", "file")
        if options["volume_driver"] == "file" and "file_volumes_dir" not in options:
            d = self.workdir / f"volumes-{name}"
            d.mkdir(exist_ok=True)
            options["file_volumes_dir"] = d
        self.backends[name] = options
        return options

    def write_conf(self) -> Path:
        lines = ["[DEFAULT]"]
        defaults = dict(self.defaults)
        defaults["enabled_backends"] = ", ".join(self.backends)
        lines += [f"{k} = {v}" for k, v in defaults.items()]
        lines += ["", "[database]",
                  f"connection = postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}"]
        for name, options in self.backends.items():
            lines += ["", f"[{name}]"] + [f"{k} = {v}" for k, v in options.items()]
        self.conf_path.write_text("\n".join(lines) + "\n")
        return self.conf_path

    def db_upgrade(self) -> None:
        self.write_conf()
        proc = self.process("db-upgrade", ["db", "upgrade"])
        proc.start()
        try:
            code = proc.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"scoria db upgrade hung; log:\n{tail(proc.log_path)}")
        proc.expected_exit = True
        assert code == 0, f"scoria db upgrade exited with {code}; log:\n{tail(proc.log_path)}"

    # -- processes
    def process(self, name: str, args: list[str], host: str | None = None) -> ServiceProcess:
        env = {"SCORIA_DEFAULT__HOST": host} if host else {}
        proc = ServiceProcess(self, name, [*args, "--config-file", str(self.conf_path)], env)
        self.processes.append(proc)
        return proc

    def start_api(self, name: str = "api", host: str = "api1") -> ServiceProcess:
        proc = self.process(name, ["api"], host).start()
        self.wait_api(proc)
        return proc

    def start_scheduler(self, host: str, name: str | None = None) -> ServiceProcess:
        return self.process(name or f"scheduler-{host}", ["scheduler"], host).start()

    def start_volume(self, backend: str, host: str, name: str | None = None) -> ServiceProcess:
        assert backend in self.backends, f"backend {backend} is not declared"
        return self.process(name or f"volume-{host}-{backend}",
                            ["volume", "--backend", backend], host).start()

    def assert_alive(self) -> None:
        for proc in self.processes:
            if not proc.expected_exit:
                proc.assert_alive()

    def wait_api(self, proc: ServiceProcess, timeout: float = 60) -> None:
        def answers():
            proc.assert_alive()
            try:
                requests.get(self.base_url + "/", timeout=2)
                return True
            except requests.RequestException:
                return False

        wait_for(answers, timeout=timeout, what=f"the api on port {self.port} to answer",
                 detail=lambda: f"log:\n{tail(proc.log_path, 8192)}")

    def wait_ready(self, schedulers: Iterable[str], volumes: Iterable[str],
                   timeout: float = 90) -> dict[str, str]:
        """Waits until os-services shows every scheduler host and every volume
        `host@backend` up, and get_pools lists a pool of every volume service;
        returns {`host@backend`: pool name}."""
        schedulers, volumes = set(schedulers), set(volumes)
        seen: dict[str, Any] = {}

        def ready():
            self.assert_alive()
            services = self.api_call("GET", "/os-services", 200)["services"]
            up = {(s["binary"], s["host"]) for s in services if s["state"] == "up"}
            pools = [p["name"] for p in self.api_call("GET", "/scheduler-stats/get_pools", 200)["pools"]]
            seen.update(services=services, pools=pools)
            want = {("cinder-scheduler", h) for h in schedulers} | {
                ("cinder-volume", h) for h in volumes}
            if not want <= up:
                return None
            by_backend = {p.split("#", 1)[0]: p for p in pools}
            if not volumes <= set(by_backend):
                return None
            return {h: by_backend[h] for h in volumes}

        return wait_for(ready, timeout=timeout, interval=0.5,
                        what=f"schedulers {sorted(schedulers)} and volume services "
                             f"{sorted(volumes)} up with their pools",
                        detail=lambda: f"last os-services/get_pools: {seen}")

    def heartbeat(self, binary: str, host: str) -> str:
        """`updated_at` of a service in os-services ("" when not listed)."""
        services = self.api_call("GET", "/os-services", 200, params={"binary": binary})["services"]
        return max((s["updated_at"] or "" for s in services if s["host"] == host), default="")

    # -- HTTP
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v3"

    def request(self, method: str, path: str, *, microversion: str | None = None,
                **kw: Any) -> requests.Response:
        headers = {"X-Auth-Token": self.token, "Accept": "application/json"}
        if microversion:
            headers["OpenStack-API-Version"] = f"volume {microversion}"
        headers.update(kw.pop("headers", {}))
        kw.setdefault("timeout", 60)
        return requests.request(method, self.endpoint + path, headers=headers, **kw)

    def api_call(self, method: str, path: str, expect: int | Iterable[int], **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        codes = {expect} if isinstance(expect, int) else set(expect)
        assert r.status_code in codes, (
            f"{method} {path} {kw.get('json', '')} -> {r.status_code} "
            f"(wanted {sorted(codes)}): {r.text[:2000]}")
        if r.content and "json" in r.headers.get("Content-Type", ""):
            return r.json()
        return None

    def create_volume(self, **fields: Any) -> requests.Response:
        fields.setdefault("size", 1)
        return self.request("POST", "/volumes", json={"volume": fields})

    def volume(self, volume_id: str) -> dict | None:
        r = self.request("GET", f"/volumes/{volume_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"GET /volumes/{volume_id} -> {r.status_code}: {r.text}"
        return r.json()["volume"]

    def volumes(self) -> list[dict]:
        """Every volume of every project (noauth callers are administrators)."""
        out: list[dict] = []
        marker = None
        while True:
            params = {"all_tenants": "1", "limit": "1000"}
            if marker:
                params["marker"] = marker
            page = self.api_call("GET", "/volumes/detail", 200, params=params)["volumes"]
            out += page
            if len(page) < 1000:
                return out
            marker = page[-1]["id"]

    def messages(self) -> list[dict]:
        return self.api_call("GET", "/messages", 200, microversion="3.3")["messages"]

    def wait_settled(self, expected: int | None = None, timeout: float = 180) -> list[dict]:
        """Waits until no volume is in a transitional status (and, if given,
        there are `expected` of them); returns them."""
        seen: list = [None]

        def settled():
            self.assert_alive()
            vols = self.volumes()
            seen[0] = vols
            if expected is not None and len(vols) < expected:
                return None
            if any(v["status"] in TRANSITIONAL for v in vols):
                return None
            return vols

        def detail():
            vols = seen[0] or []
            counts: dict[str, int] = {}
            for v in vols:
                counts[v["status"]] = counts.get(v["status"], 0) + 1
            stuck = [(v["id"], v["status"], v.get("os-vol-host-attr:host"))
                     for v in vols if v["status"] in TRANSITIONAL][:10]
            return f"{len(vols)} volumes by status {counts}; transitional: {stuck}"

        return wait_for(settled, timeout=timeout, interval=0.5, what="volumes to settle",
                        detail=detail)

    # -- the openstack CLI
    def osc_run(self, *args: str, fmt: str | None = "json",
                timeout: float = 180) -> tuple[subprocess.CompletedProcess, list[str]]:
        cmd = [venv_tool("openstack"), "--os-auth-type", "none",
               "--os-endpoint", self.endpoint, *args]
        if fmt:
            cmd += ["-f", fmt]
        return run_cmd(cmd, timeout=timeout), cmd

    def osc(self, *args: str, fmt: str | None = "json", timeout: float = 180) -> Any:
        p, cmd = self.osc_run(*args, fmt=fmt, timeout=timeout)
        if p.returncode != 0:
            raise CommandFailed(describe(cmd, p))
        if fmt == "json":
            try:
                return json.loads(p.stdout)
            except ValueError:
                raise CommandFailed("output is not JSON\n" + describe(cmd, p)) from None
        return p.stdout.strip()

    def service_list(self) -> list[dict]:
        return [norm(r) for r in self.osc("volume", "service", "list")]

    # -- RabbitMQ
    def connections(self) -> int:
        """Client connections open on this deployment's vhost."""
        out = rabbitmqctl("list_connections", "vhost")
        return sum(1 for line in out.splitlines() if line.strip() == self.vhost)

    def close_all_connections(self, why: str = "test") -> None:
        rabbitmqctl("close_all_connections", "-p", self.vhost, why)

    # -- logs and teardown
    def logs(self, max_bytes: int = 24 * 1024) -> list[tuple[str, str]]:
        seen: set[Path] = set()
        out = []
        for proc in self.processes:
            if proc.log_path in seen:
                continue
            seen.add(proc.log_path)
            state = "running" if proc.running else (
                f"exited {proc.proc.returncode}" if proc.proc else "never started")
            out.append((f"{proc.name} ({state}, {proc.log_path})",
                        tail(proc.log_path, max_bytes)))
        return out

    def close(self) -> None:
        problems: list[str] = []
        running = [p for p in self.processes if p.running]
        for proc in self.processes:
            if proc.proc is not None and not proc.running and not proc.expected_exit:
                problems.append(f"{proc.name} exited unexpectedly with code "
                                f"{proc.proc.returncode}; log:\n{tail(proc.log_path, 16384)}")
        for proc in running:
            proc.expected_exit = True
            proc.proc.send_signal(signal.SIGTERM)
        for proc in running:
            try:
                proc.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.proc.kill()
                proc.proc.wait(timeout=30)
                problems.append(f"{proc.name} did not stop within 60 s of SIGTERM; "
                                f"log:\n{tail(proc.log_path, 16384)}")
                continue
            proc._mark()
            if proc.proc.returncode != 0:
                problems.append(f"{proc.name} exited with code {proc.proc.returncode} "
                                f"after SIGTERM; log:\n{tail(proc.log_path, 16384)}")
        if self._vhost_created:
            try:
                rabbitmqctl("delete_vhost", self.vhost)
            except AssertionError as e:
                problems.append(str(e))
        if self._db_created:
            try:
                psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            except AssertionError as e:
                problems.append(str(e))
        for mount in reversed(self.mounts):
            p = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
            if p.returncode != 0:
                subprocess.run(["umount", "-l", str(mount)], capture_output=True)
        if problems:
            raise AssertionError("\n\n".join(problems))


def concurrently(fn, items, workers: int) -> list:
    """fn(item) for every item on `workers` threads; results in order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def deployment(tmp_path_factory) -> Iterable[Deployment]:
    """An empty deployment (database, vhost, work directory) for one test;
    the test declares backends, runs `db_upgrade()` and starts processes
    (`start_api()`, `start_scheduler(host)`, `start_volume(backend, host)`)."""
    require_infrastructure()
    dep = Deployment(tmp_path_factory.mktemp("deployment"))
    _LIVE.append(dep)
    try:
        dep.create_infrastructure()
        yield dep
    finally:
        _LIVE.remove(dep)
        dep.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for dep in list(_LIVE):
            for title, text in dep.logs():
                report.sections.append((f"scoria log: {title}", text))
