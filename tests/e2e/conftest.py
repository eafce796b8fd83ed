"""Shared fixtures and helpers for Scoria's end-to-end tests.

Every test talks to a real `scoria serve` process started on a temporary data
directory and a free port of 127.0.0.1, either through the real OpenStack
command line clients (`openstack`, `cinder`) or through plain HTTP
(`requests`).

Environment:
  SCORIA_BIN        the server binary (default: <repo>/target/debug/scoria)
  SCORIA_E2E_KEEP   when set, data directories are kept after the tests
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3
MiB = 1024**2

# Statuses a volume or snapshot passes through on its way somewhere else.
TRANSITIONAL = {
    "creating",
    "deleting",
    "extending",
    "downloading",
    "uploading",
    "attaching",
    "detaching",
    "retyping",
    "backing-up",
    "restoring-backup",
    "reserved",
}

# Servers alive right now, so that a failing test can show their logs.
_LIVE_SERVERS: list["ScoriaServer"] = []


# ------------------------------------------------------------------ helpers


def wait_for(
    fn: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str | None = None,
    detail: Callable[[], Any] | None = None,
) -> Any:
    """Call fn until it returns something truthy; return that value.

    Fails the test when `timeout` seconds pass first, showing the last value
    fn returned (and what `detail()` says, if given). Exceptions raised by fn
    propagate: they are real failures.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f} s waiting for "
                f"{what or getattr(fn, '__name__', 'condition')}; "
                f"last value: {last!r}"
                + (f"; {detail()}" if detail else "")
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scoria_binary() -> Path:
    configured = os.environ.get("SCORIA_BIN")
    path = Path(configured) if configured else REPO_ROOT / "target" / "debug" / "scoria"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"scoria binary not found at {path}: run `cargo build` first "
            "(or set SCORIA_BIN)",
            pytrace=False,
        )
    return path


def client_env() -> dict[str, str]:
    """The environment for the CLI clients: no OS_* leaking in from outside."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("OS_") or k.upper().startswith("CINDER_"))
    }
    env["PYTHONWARNINGS"] = "ignore"
    # The venv's executables first, so that `openstack` and `cinder` are the
    # versions tests/requirements.txt asks for.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def venv_tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found: install tests/requirements.txt", pytrace=False)
    return found


def tail(path: Path, max_bytes: int = 64 * 1024) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    text = data.decode("utf-8", "replace")
    if size > max_bytes:
        text = f"[... {size - max_bytes} earlier bytes not shown ...]\n" + text
    return text


class CommandFailed(AssertionError):
    pass


def run_cmd(cmd: list[str], timeout: float = 180,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs a client command in client_env(), plus `env`."""
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**client_env(), **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def describe(cmd: list[str], p: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(cmd)}\nexit code: {p.returncode}\n"
        f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}"
    )


def norm(row: dict[str, Any]) -> dict[str, Any]:
    """'Zone Name' -> 'zone_name': column headers of `-f json` lists as keys."""
    return {k.strip().lower().replace(" ", "_"): v for k, v in row.items()}


# ------------------------------------------------------------------- server


class ScoriaServer:
    """One `scoria serve` process on a data directory of its own."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        log_path: Path,
        config: str | Callable[[Path], str] | None = None,
    ):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.expected_exit = False
        self.project = uuid.uuid4().hex
        self.token = f"e2e-user:{self.project}"
        # An INI file (cinder.conf option names) passed as `--config-file`:
        # its text, or a function of the data directory returning it (for
        # absolute paths such as file_volumes_dir). None: no config file.
        self.config_path: Path | None = None
        if config is not None:
            text = config(data_dir) if callable(config) else config
            self.config_path = data_dir / "scoria.conf"
            self.config_path.write_text(text)

    # -- addresses
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/v3"

    @property
    def volumes_dir(self) -> Path:
        return self.data_dir / "volumes"

    def volume_file(self, volume_id: str) -> Path:
        return self.volumes_dir / f"volume-{volume_id}"

    def snapshot_file(self, snapshot_id: str) -> Path:
        return self.volumes_dir / f"snapshot-{snapshot_id}"

    # -- life cycle
    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.expected_exit = False
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        # A hint only: nothing relies on stats arriving this fast.
        env.setdefault("SCORIA_STATS_INTERVAL", "2")
        log = open(self.log_path, "ab")
        log.write(
            f"\n===== e2e: start #{self.starts} of {self.binary} on port {self.port}, "
            f"data dir {self.data_dir} =====\n".encode()
        )
        log.flush()
        try:
            self.proc = subprocess.Popen(
                [
                    str(self.binary),
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                ]
                + (["--config-file", str(self.config_path)] if self.config_path else []),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.data_dir.parent),
            )
        finally:
            log.close()
        if self not in _LIVE_SERVERS:
            _LIVE_SERVERS.append(self)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"scoria exited with code {self.proc.returncode} while starting; "
                    f"log:\n{tail(self.log_path)}"
                )
            try:
                requests.get(self.base_url + "/", timeout=2, allow_redirects=False)
                return
            except requests.RequestException as e:
                last_error = e
            time.sleep(0.2)
        raise AssertionError(
            f"scoria did not answer GET / within {timeout:.0f} s ({last_error}); "
            f"log:\n{tail(self.log_path)}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the process to exit; return its exit code.

        If it has not exited after `timeout` seconds it is SIGKILLed and the
        test fails (a SIGTERM must stop the server by itself).
        """
        assert self.proc is not None
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
                raise AssertionError(
                    f"scoria did not exit within {timeout:.0f} s of signal {sig}; "
                    f"log:\n{tail(self.log_path)}"
                )
        return self.proc.returncode

    def stop(self) -> int:
        return self.kill(signal.SIGTERM)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.kill(sig)
        self.start()

    # -- HTTP
    def headers(self, microversion: str | None = None, **extra: str) -> dict[str, str]:
        h = {"X-Auth-Token": self.token, "Accept": "application/json"}
        if microversion:
            h["OpenStack-API-Version"] = f"volume {microversion}"
        h.update(extra)
        return h

    def request(
        self,
        method: str,
        path: str,
        *,
        microversion: str | None = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        h = self.headers(microversion)
        if headers:
            h.update(headers)
        kw.setdefault("timeout", 60)
        return requests.request(method, self.endpoint + path, headers=h, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    # -- API conveniences (JSON in, JSON out, asserting the status code)
    def api(self, method: str, path: str, expect: int | Iterable[int], **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        codes = {expect} if isinstance(expect, int) else set(expect)
        assert r.status_code in codes, (
            f"{method} {path} {kw.get('json', '')} -> {r.status_code} "
            f"(wanted {sorted(codes)}): {r.text[:2000]}"
        )
        if r.content and "json" in r.headers.get("Content-Type", ""):
            return r.json()
        return None

    def volume(self, volume_id: str) -> dict | None:
        r = self.get(f"/volumes/{volume_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"GET /volumes/{volume_id} -> {r.status_code}: {r.text}"
        return r.json()["volume"]

    def snapshot(self, snapshot_id: str) -> dict | None:
        r = self.get(f"/snapshots/{snapshot_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"GET /snapshots/{snapshot_id} -> {r.status_code}: {r.text}"
        return r.json()["snapshot"]

    def volumes(self) -> list[dict]:
        return self.api("GET", "/volumes/detail", 200)["volumes"]

    def snapshots(self) -> list[dict]:
        return self.api("GET", "/snapshots/detail", 200)["snapshots"]

    def wait_volume(self, volume_id: str, status: str = "available", timeout: float = 120) -> dict:
        """Wait until the volume leaves transitional states; assert it is `status`."""
        seen: list = [None]

        def settled():
            seen[0] = v = self.volume(volume_id)
            return v if v and v["status"] not in TRANSITIONAL else None

        vol = wait_for(settled, timeout=timeout, what=f"volume {volume_id} to settle",
                       detail=lambda: f"volume: {seen[0]}")
        assert vol["status"] == status, f"volume {volume_id} ended {vol['status']!r}, wanted {status!r}: {vol}"
        return vol

    def wait_snapshot(self, snapshot_id: str, status: str = "available", timeout: float = 120) -> dict:
        seen: list = [None]

        def settled():
            seen[0] = s = self.snapshot(snapshot_id)
            return s if s and s["status"] not in TRANSITIONAL else None

        snap = wait_for(settled, timeout=timeout, what=f"snapshot {snapshot_id} to settle",
                        detail=lambda: f"snapshot: {seen[0]}")
        assert snap["status"] == status, f"snapshot {snapshot_id} ended {snap['status']!r}, wanted {status!r}: {snap}"
        return snap

    def wait_volume_gone(self, volume_id: str, timeout: float = 120) -> None:
        wait_for(lambda: self.volume(volume_id) is None, timeout=timeout,
                 what=f"volume {volume_id} to be deleted")

    def wait_snapshot_gone(self, snapshot_id: str, timeout: float = 120) -> None:
        wait_for(lambda: self.snapshot(snapshot_id) is None, timeout=timeout,
                 what=f"snapshot {snapshot_id} to be deleted")

    def create_volume(self, wait: bool = True, **fields: Any) -> dict:
        body = self.api("POST", "/volumes", 202, json={"volume": fields})
        vol = body["volume"]
        return self.wait_volume(vol["id"]) if wait else vol

    def create_snapshot(self, volume_id: str, wait: bool = True, **fields: Any) -> dict:
        fields["volume_id"] = volume_id
        body = self.api("POST", "/snapshots", 202, json={"snapshot": fields})
        snap = body["snapshot"]
        return self.wait_snapshot(snap["id"]) if wait else snap

    def messages(self) -> list[dict]:
        return self.api("GET", "/messages", 200, microversion="3.3")["messages"]

    # -- command line clients
    def osc(
        self,
        *args: str,
        fmt: str | None = "json",
        volume_api_version: str | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> Any:
        """Run `openstack --os-auth-type none --os-endpoint ... ARGS [-f FMT]`
        (with the extra environment `env`).

        Returns parsed JSON for fmt="json", stripped stdout otherwise; raises
        CommandFailed (with stdout and stderr) on a non-zero exit.
        """
        p, cmd = self.osc_run(*args, fmt=fmt, volume_api_version=volume_api_version,
                              timeout=timeout, env=env)
        if p.returncode != 0:
            raise CommandFailed(describe(cmd, p))
        if fmt == "json":
            try:
                return json.loads(p.stdout)
            except ValueError:
                raise CommandFailed("output is not JSON\n" + describe(cmd, p)) from None
        return p.stdout.strip()

    def osc_run(
        self,
        *args: str,
        fmt: str | None = None,
        volume_api_version: str | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> tuple[subprocess.CompletedProcess, list[str]]:
        cmd = [venv_tool("openstack"), "--os-auth-type", "none", "--os-endpoint", self.endpoint]
        if volume_api_version:
            cmd += ["--os-volume-api-version", volume_api_version]
        cmd += list(args)
        if fmt:
            cmd += ["-f", fmt]
        return run_cmd(cmd, timeout=timeout, env=env), cmd

    def osc_fails(self, *args: str, **kw: Any) -> subprocess.CompletedProcess:
        """Run an openstack command that must fail; return the finished process."""
        p, cmd = self.osc_run(*args, **kw)
        assert p.returncode != 0, "command should have failed but succeeded\n" + describe(cmd, p)
        return p

    def cinder(self, *args: str, project: str, user: str = "u1", timeout: float = 180) -> str:
        """Run python-cinderclient's `cinder` in noauth mode; return stdout."""
        cmd = [
            venv_tool("cinder"),
            "--os-auth-type", "noauth",
            "--os-user-id", user,
            "--os-project-id", project,
            "--os-endpoint", self.endpoint,
            *args,
        ]
        p = run_cmd(cmd, timeout=timeout)
        if p.returncode != 0:
            raise CommandFailed(describe(cmd, p))
        return p.stdout


def parse_table(text: str) -> list[list[str]]:
    """Rows of a prettytable as printed by cinderclient (header row first)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([c.strip() for c in line[1:-1].split("|")])
    return rows


def parse_property_table(text: str) -> dict[str, str]:
    """`cinder show`-style `| Property | Value |` table as a dict."""
    rows = parse_table(text)
    assert rows and [c.lower() for c in rows[0]] == ["property", "value"], text
    out: dict[str, str] = {}
    last = None
    for row in rows[1:]:
        if len(row) != 2:
            continue
        key, value = row
        if key:
            out[key] = value
            last = key
        elif last:  # a wrapped value continues on the next line
            out[last] += value
    return out


# ----------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def e2e_tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scoria-e2e")


class _ServerFactory:
    def __init__(self, base: Path):
        self.base = base
        self.servers: list[ScoriaServer] = []

    def __call__(
        self, name: str = "server", config: str | Callable[[Path], str] | None = None
    ) -> ScoriaServer:
        binary = scoria_binary()
        data_dir = Path(tempfile.mkdtemp(prefix=f"{name}-data-", dir=self.base))
        log_path = self.base / f"{data_dir.name}.log"
        srv = ScoriaServer(binary, data_dir, log_path, config=config)
        self.servers.append(srv)
        srv.start()
        return srv

    def close(self) -> None:
        problems = []
        for srv in self.servers:
            if srv.proc is not None:
                if srv.proc.poll() is not None and not srv.expected_exit:
                    problems.append(
                        f"scoria (port {srv.port}) exited unexpectedly with code "
                        f"{srv.proc.returncode}; log:\n{tail(srv.log_path)}"
                    )
                elif srv.proc.poll() is None:
                    try:
                        code = srv.stop()
                    except AssertionError as e:
                        problems.append(str(e))
                    else:
                        if code not in (0, -signal.SIGTERM):
                            problems.append(
                                f"scoria exited with code {code} after SIGTERM; "
                                f"log:\n{tail(srv.log_path)}"
                            )
            if srv in _LIVE_SERVERS:
                _LIVE_SERVERS.remove(srv)
            if not os.environ.get("SCORIA_E2E_KEEP"):
                shutil.rmtree(srv.data_dir, ignore_errors=True)
        self.servers.clear()
        if problems:
            raise AssertionError("\n\n".join(problems))


@pytest.fixture(scope="module")
def server(e2e_tmp) -> Iterable[ScoriaServer]:
    """One server shared by the tests of a module."""
    factory = _ServerFactory(e2e_tmp)
    try:
        yield factory("module")
    finally:
        factory.close()


@pytest.fixture(scope="module")
def server_factory(e2e_tmp) -> Iterable[_ServerFactory]:
    """Starts servers for a module, optionally with a config file:
    `server_factory("name", config=TEXT)`, or `config=fn` where
    `fn(data_dir)` returns the text; stops them all after the module."""
    factory = _ServerFactory(e2e_tmp)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="module")
def c30(server):
    """python-cinderclient at 3.0 on the module's server: Nova's legacy attach calls."""
    from attach_helpers import cinder

    return cinder(server, "3.0")


@pytest.fixture(scope="module")
def c344(server):
    """python-cinderclient at 3.44 on the module's server: Nova's attachments calls."""
    from attach_helpers import cinder

    return cinder(server, "3.44")


@pytest.fixture(scope="module")
def c354(server):
    """python-cinderclient at 3.54 (attachment `mode`) on the module's server."""
    from attach_helpers import cinder

    return cinder(server, "3.54")


@pytest.fixture(scope="module")
def nova_recorder():
    """Stands in for Nova's compute API (a real Nova cannot run here): it
    records every request Scoria or the CLI makes, answers events as Nova does
    (`"code": 200, "status": "completed"`) and server look-ups for the servers
    a test adds."""
    from nova_recorder import NovaRecorder

    rec = NovaRecorder()
    try:
        yield rec
    finally:
        rec.close()


@pytest.fixture
def fresh_server(e2e_tmp) -> Iterable[ScoriaServer]:
    """A server of the test's own (for tests that kill or restart it)."""
    factory = _ServerFactory(e2e_tmp)
    try:
        yield factory("fresh")
    finally:
        factory.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in list(_LIVE_SERVERS):
            report.sections.append(
                (f"scoria log (port {srv.port}, {srv.log_path})", tail(srv.log_path))
            )


@pytest.fixture(scope="module")
def osc(server) -> Callable[..., Any]:
    """`osc("volume", "show", "v1")` -> parsed `-f json` output (see ScoriaServer.osc)."""
    return server.osc


# Keystone fixtures (tests/e2e/keystone_fixture.py).
from keystone_fixture import keystone, keystone_scoria  # noqa: E402,F401

# Glance fixtures (tests/e2e/glance_fixture.py).
from glance_fixture import glance, glance_factory, glance_keystone  # noqa: E402,F401

# The targets of the CLI lifecycle walk (tests/e2e/lifecycle_targets.py).
from lifecycle_targets import target  # noqa: E402,F401
