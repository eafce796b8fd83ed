"""Scoria behind a real Keystone (`auth_strategy = keystone`).

The `openstack` CLI signs in with an ordinary password and finds Scoria in
Keystone's catalog (block-storage), with no endpoint override. Tokens are
checked the way keystonemiddleware does: missing, garbage, revoked or expired
tokens get 401 with `WWW-Authenticate`, a reader may only read, and an
unreachable Keystone is a 503, not a hang.

The tests run in file order: the last one waits for a token issued when the
deployment came up to expire (KEYSTONE_TOKEN_LIFETIME after it was issued).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests

from conftest import CommandFailed, describe, run_cmd, venv_tool, wait_for
from keystone_fixture import SCORIA_TOKEN_CACHE_TIME, KeystoneScoria, random_name
from keystone_server import free_port


@pytest.fixture(scope="module")
def early_token(keystone_scoria: KeystoneScoria) -> tuple[str, datetime]:
    """A member token issued before the other tests run, and its expiry."""
    token, body = keystone_scoria.keystone.issue_token(keystone_scoria.keystone.member)
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    r = keystone_scoria.request("GET", "/volumes", token)
    assert r.status_code == 200, r.text
    return token, expires


def cli(dep: KeystoneScoria, creds, *args: str, fmt: str | None = "json"):
    """`openstack` with password auth and the catalog; the finished process."""
    cmd = [venv_tool("openstack"), *creds.cli_args(dep.keystone.auth_url), *args]
    if fmt:
        cmd += ["-f", fmt]
    return run_cmd(cmd), cmd


def cli_ok(dep: KeystoneScoria, creds, *args: str, fmt: str | None = "json"):
    p, cmd = cli(dep, creds, *args, fmt=fmt)
    if p.returncode != 0:
        raise CommandFailed(describe(cmd, p) + "\n" + dep.logs())
    return json.loads(p.stdout) if fmt == "json" else p.stdout


def assert_unauthorized(r, dep: KeystoneScoria) -> None:
    assert r.status_code == 401, f"{r.status_code}: {r.text}"
    assert r.json()["unauthorized"]["code"] == 401, r.text
    assert r.headers["WWW-Authenticate"] == f'Keystone uri="{dep.keystone.auth_url}"'


def test_version_documents_need_no_token(keystone_scoria, early_token):
    for path in ("/", "/v3/"):
        r = requests.get(f"http://127.0.0.1:{keystone_scoria.port}{path}", timeout=30)
        assert r.status_code in (200, 300), f"{path}: {r.status_code} {r.text}"


def test_member_volume_lifecycle_through_the_catalog(keystone_scoria):
    dep, member = keystone_scoria, keystone_scoria.keystone.member
    name = random_name("ks-vol")
    vol = cli_ok(dep, member, "volume", "create", "--size", "1", name)
    vid = vol["id"]

    def status():
        return cli_ok(dep, member, "volume", "show", vid)["status"]

    final = wait_for(lambda: (s := status()) != "creating" and s, timeout=120,
                     what=f"volume {vid} to leave creating")
    assert final == "available", dep.logs()
    listed = cli_ok(dep, member, "volume", "list")
    assert vid in [v["ID"] for v in listed]
    # The volume belongs to the member's project: the token's project is the URL's.
    token = dep.token(member)
    project = dep.keystone.project_ids["demo"]
    r = dep.request("GET", f"/{project}/volumes/{vid}", token)
    assert r.status_code == 200, r.text
    other = dep.keystone.project_ids["service"]
    assert dep.request("GET", f"/{other}/volumes/{vid}", token).status_code == 400
    cli_ok(dep, member, "volume", "delete", vid, fmt=None)
    wait_for(lambda: vid not in [v["ID"] for v in cli_ok(dep, member, "volume", "list")],
             timeout=120, what=f"volume {vid} to be deleted")


def test_reader_lists_but_may_not_create(keystone_scoria):
    dep, reader = keystone_scoria, keystone_scoria.keystone.reader
    assert isinstance(cli_ok(dep, reader, "volume", "list"), list)
    p, cmd = cli(dep, reader, "volume", "create", "--size", "1", random_name("ro"))
    assert p.returncode != 0, describe(cmd, p)
    assert "Policy doesn't allow volume:create to be performed" in p.stderr, describe(cmd, p)
    assert "403" in p.stderr, describe(cmd, p)
    r = dep.request("POST", "/volumes", dep.token(reader), json={"volume": {"size": 1}})
    assert r.status_code == 403 and r.json()["forbidden"]["code"] == 403, r.text


def test_members_may_not_force_detach(keystone_scoria):
    dep = keystone_scoria
    vid = "8a0e2f5c-3b1d-4c6e-9f7a-1b2c3d4e5f60"
    r = dep.request("POST", f"/volumes/{vid}/action", dep.token(dep.keystone.member),
                    json={"os-force_detach": {}})
    assert r.status_code == 403, r.text
    assert "volume_admin_actions:force_detach" in r.json()["forbidden"]["message"], r.text


def test_missing_and_garbage_tokens_get_401(keystone_scoria):
    dep = keystone_scoria
    assert_unauthorized(dep.request("GET", "/volumes", None), dep)
    assert_unauthorized(dep.request("GET", "/volumes/detail", "garbage"), dep)
    assert_unauthorized(dep.request("POST", "/volumes", "user:project",
                                    json={"volume": {"size": 1}}), dep)


def test_service_token(keystone_scoria):
    dep = keystone_scoria
    user = dep.token(dep.keystone.member)
    service = dep.token(dep.keystone.service_user)
    ok = dep.request("GET", "/volumes", user, headers={"X-Service-Token": service})
    assert ok.status_code == 200, ok.text
    bad = dep.request("GET", "/volumes", user, headers={"X-Service-Token": "garbage"})
    assert_unauthorized(bad, dep)


def test_project_lookup_shim_is_off(keystone_scoria):
    dep = keystone_scoria
    r = dep.request("GET", "/projects/abc", dep.token(dep.keystone.admin))
    assert r.status_code == 404, r.text


def test_revoked_token_is_refused_once_the_cache_time_passes(keystone_scoria):
    dep = keystone_scoria
    token = dep.token(dep.keystone.member)
    assert dep.request("GET", "/volumes", token).status_code == 200
    dep.keystone.revoke_token(token)
    # Like keystonemiddleware, Scoria trusts a validation for token_cache_time.
    time.sleep(SCORIA_TOKEN_CACHE_TIME + 1)
    assert_unauthorized(dep.request("GET", "/volumes", token), dep)


def test_unreachable_keystone_is_a_503(keystone_scoria):
    dep = keystone_scoria
    port = free_port()
    conf = dep.write_conf(dep.workdir / "dead-keystone.conf", port=port,
                          auth_url=f"http://127.0.0.1:{free_port()}")
    api = dep.spawn("api-dead-keystone", "api", "--config-file", str(conf))
    dep.wait_api(port, api)
    started = time.monotonic()
    r = requests.get(f"http://127.0.0.1:{port}/v3/volumes",
                     headers={"X-Auth-Token": dep.token(dep.keystone.member)}, timeout=60)
    assert r.status_code == 503, r.text
    assert "identity service" in r.json()["serviceUnavailable"]["message"], r.text
    assert time.monotonic() - started < 30


def test_expired_token_gets_401(keystone_scoria, early_token):
    dep = keystone_scoria
    token, expires = early_token
    wait = (expires - datetime.now(timezone.utc)).total_seconds() + 1
    if wait > 0:
        time.sleep(wait)
    assert_unauthorized(dep.request("GET", "/volumes", token), dep)
