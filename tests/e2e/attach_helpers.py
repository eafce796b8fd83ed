"""Helpers shared by the attach tests (issue 4): python-cinderclient as Nova
uses it, connectors as os-brick builds them, volume types that route to a
backend, config files for several backends, and checks of a volume's attach
state as the API shows it.

The volume API does not show `attach_status`: it shows through the volume's
`attachments[]` (which lists attached attachments only, as
`{server_id, attachment_id, device, ...}`) and through the attachments API
(3.27+), whose detail is `{id, status, instance, volume_id, attached_at,
detached_at, attach_mode, connection_info}`.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import requests
from cinderclient import client as cinder_client_module
from cinderclient import exceptions as cinder_exc
from cinderclient.contrib import noauth
from keystoneauth1 import session as ks_session

from conftest import ScoriaServer

# The initiator name qemu's and libiscsi's userspace initiators present
# unless told otherwise; connectors use it so that an export limited to the
# connector's initiator still admits the test's initiator.
INITIATOR = "iqn.2008-11.org.linux-kvm"

ATTACHMENT_KEYS = {
    "id", "status", "instance", "volume_id", "attached_at", "detached_at",
    "attach_mode", "connection_info",
}


def new_uuid() -> str:
    return str(uuid.uuid4())


def connector(host: str = "compute-1", mountpoint: str | None = "/dev/vdb", **extra: Any) -> dict:
    """A connector as Nova's compute (os-brick) sends it."""
    c = {
        "platform": "x86_64",
        "os_type": "linux",
        "ip": "127.0.0.1",
        "host": host,
        "multipath": False,
        "enforce_multipath": False,
        "initiator": INITIATOR,
        "do_local_attach": False,
        "system uuid": "4a3a43a8-7f4f-4a0c-9c9b-5f1b0c2f3e10",
    }
    if mountpoint:
        c["mountpoint"] = mountpoint
    c.update(extra)
    return c


# ----------------------------------------------------------- cinderclient


def cinder(server: ScoriaServer, version: str, user: str = "nova-e2e") -> Any:
    """python-cinderclient at `version`, the way Nova builds it but signed in
    with Cinder's noauth plugin (token `user:project`) to server's project."""
    auth = noauth.CinderNoAuthPlugin(user, server.project, endpoint=server.endpoint)
    sess = ks_session.Session(auth=auth)
    return cinder_client_module.Client(version, session=sess, retries=0)


def client_error(fn: Callable[[], Any]) -> cinder_exc.ClientException:
    """Run fn, which must fail with an HTTP error; return the exception."""
    try:
        result = fn()
    except cinder_exc.ClientException as e:
        return e
    raise AssertionError(f"the call should have failed but returned {result!r}")


def as_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return dict(obj._info)


# ------------------------------------------------------------- HTTP reads


def attachment(server: ScoriaServer, attachment_id: str, version: str = "3.44") -> dict | None:
    """GET /attachments/{id} at `version`: the detail, or None on 404."""
    r = server.get(f"/attachments/{attachment_id}", microversion=version)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"GET /attachments/{attachment_id} -> {r.status_code}: {r.text}"
    return r.json()["attachment"]


def attachments_of(server: ScoriaServer, volume_id: str, version: str = "3.44") -> list[dict]:
    """GET /attachments/detail?volume_id=... (project-scoped list)."""
    body = server.api("GET", "/attachments/detail", 200, microversion=version,
                      params={"volume_id": volume_id})
    found = body["attachments"]
    return [a for a in found if a["volume_id"] == volume_id]


def vol(server: ScoriaServer, volume_id: str, version: str | None = None) -> dict:
    r = server.get(f"/volumes/{volume_id}", microversion=version)
    assert r.status_code == 200, f"GET /volumes/{volume_id} -> {r.status_code}: {r.text}"
    return r.json()["volume"]


def assert_volume(
    server: ScoriaServer,
    volume_id: str,
    status: str,
    attached: list[tuple[str, str | None]] | None = None,
    step: str = "",
) -> dict:
    """The volume is `status` right now, and its `attachments[]` lists exactly
    the `(server_id, attachment_id)` pairs of `attached` (None: not checked;
    an attachment id of None matches any)."""
    v = vol(server, volume_id)
    where = f" after {step}" if step else ""
    assert v["status"] == status, (
        f"volume {volume_id}{where}: status {v['status']!r}, wanted {status!r}: {v}")
    if attached is not None:
        shown = v.get("attachments")
        assert isinstance(shown, list), f"volume {volume_id}{where}: attachments is {shown!r}"
        got = sorted((a.get("server_id"), a.get("attachment_id")) for a in shown)
        want_servers = sorted(s for s, _ in attached)
        assert sorted(s for s, _ in got) == want_servers, (
            f"volume {volume_id}{where}: attachments[] lists servers "
            f"{[s for s, _ in got]}, wanted {want_servers}: {shown}")
        for server_id, att_id in attached:
            if att_id is None:
                continue
            assert (server_id, att_id) in got, (
                f"volume {volume_id}{where}: attachments[] has no attachment {att_id} of "
                f"server {server_id}: {shown}")
        for a in shown:
            assert a.get("volume_id", volume_id) == volume_id, shown
    return v


def assert_attachment(
    server: ScoriaServer,
    attachment_id: str,
    status: str,
    step: str = "",
    **fields: Any,
) -> dict:
    """GET /attachments/{id} shows `status` (and `fields`) right now."""
    where = f" after {step}" if step else ""
    a = attachment(server, attachment_id)
    assert a is not None, f"attachment {attachment_id}{where}: GET answers 404"
    missing = ATTACHMENT_KEYS - set(a)
    assert not missing, f"attachment {attachment_id}{where}: keys {sorted(missing)} missing: {a}"
    assert a["status"] == status, (
        f"attachment {attachment_id}{where}: status {a['status']!r}, wanted {status!r}: {a}")
    for k, v in fields.items():
        assert a.get(k) == v, f"attachment {attachment_id}{where}: {k} = {a.get(k)!r}, wanted {v!r}: {a}"
    return a


def flat_connection_info(ci: Any, what: str) -> dict:
    """The attachments API's connection_info: the driver's `data` flattened
    with `driver_volume_type` (no nested `data`)."""
    assert isinstance(ci, dict) and ci, f"{what}: connection_info is {ci!r}"
    assert "driver_volume_type" in ci, f"{what}: no driver_volume_type in {ci}"
    assert "data" not in ci, (
        f"{what}: the attachments API shows connection_info flattened "
        f"(the driver's data keys next to driver_volume_type), not nested under 'data': {ci}")
    return ci


def fault_message(r: requests.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text
    if isinstance(body, dict) and len(body) == 1:
        inner = next(iter(body.values()))
        if isinstance(inner, dict) and "message" in inner:
            return str(inner["message"])
    return r.text


# ------------------------------------------------------- types and volumes


def create_type(server: ScoriaServer, name: str, **extra_specs: str) -> dict:
    body = server.api("POST", "/types", 200, json={"volume_type": {"name": name}})
    vt = body["volume_type"]
    if extra_specs:
        server.api("POST", f"/types/{vt['id']}/extra_specs", 200,
                   json={"extra_specs": dict(extra_specs)})
    shown = server.api("GET", f"/types/{vt['id']}", 200)["volume_type"]
    assert shown["extra_specs"] == dict(extra_specs), shown
    return shown


def action(server: ScoriaServer, volume_id: str, name: str, arg: Any = None,
           version: str | None = None) -> requests.Response:
    return server.post(f"/volumes/{volume_id}/action", json={name: arg}, microversion=version)


# ------------------------------------------------------------ concurrency


def together(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run the calls in threads released at the same moment; return their
    results in order (an exception in a call is raised here)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int, fn: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[i] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), f"a concurrent call did not finish within {timeout} s"
    for e in errors:
        if e is not None:
            raise e
    return results


# ---------------------------------------------------------- config files


def backend_section(name: str, driver: str, **options: Any) -> str:
    lines = [f"[{name}]", f"volume_driver = {driver}", f"volume_backend_name = {name}"]
    lines += [f"{k} = {v}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def config(*sections: tuple[str, str, dict], nova_url: str | None = None) -> Callable[[Path], str]:
    """A config-file builder for `server_factory(config=...)`: backends given
    as (name, driver, options); a `file` backend keeps its volumes in
    DATA_DIR/volumes (where ScoriaServer.volume_file looks) unless told."""

    def build(data_dir: Path) -> str:
        names = [s[0] for s in sections]
        text = "[DEFAULT]\n" f"enabled_backends = {','.join(names)}\n\n"
        for name, driver, options in sections:
            opts = dict(options)
            if driver == "file":
                opts.setdefault("file_volumes_dir", str(data_dir / "volumes"))
            text += backend_section(name, driver, **opts) + "\n"
        if nova_url:
            text += f"[nova]\nendpoint_override = {nova_url}\n"
        return text

    return build
