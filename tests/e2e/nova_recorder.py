"""A recording stand-in for the parts of Nova's compute API that the attach
tests need, because a real Nova cannot run here.

`NovaRecorder` is a small HTTP server on 127.0.0.1 that
  * answers Nova's version document at `/v2.1` (openstacksdk discovers the
    compute API there before it looks a server up);
  * answers `GET /v2.1/servers/{id}` for the server ids the test registered
    with `add_server` (the `openstack volume attachment create` command looks
    the server up in Nova before it calls Cinder), 404 for any other;
  * records every `POST /v2.1/os-server-external-events` (what Cinder sends
    after extending an attached volume: `{"events": [{"name":
    "volume-extended", "server_uuid": ..., "tag": <volume id>}]}`) and answers
    200 with each event echoed back with `"code": 200, "status":
    "completed"`, as Nova does;
  * answers 404 to anything else (for instance Nova's
    `servers/{id}/os-volume_attachments/{volume}`, which Cinder may ask before
    an attachment delete: "no such attachment in Nova"), and records it too.

Every request is recorded (method, path, headers, parsed JSON body), so tests
assert on exactly what Scoria sent.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any
    raw: bytes = field(repr=False, default=b"")


class NovaRecorder:
    """A recording peer standing in for Nova's compute API (see the module
    docstring); `url` is the `/v2.1` endpoint to configure in Scoria's
    `[nova] endpoint_override` or openstacksdk's compute endpoint."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.servers: dict[str, str] = {}
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items()}
                rec = Recorded(self.command, self.path, headers, body, raw)
                with recorder._lock:
                    recorder.requests.append(rec)
                code, out = recorder._answer(rec)
                data = json.dumps(out).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-openstack-request-id", f"req-{uuid.uuid4()}")
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2.1"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_server(self, server_id: str, name: str | None = None) -> str:
        self.servers[server_id] = name or f"vm-{server_id[:8]}"
        return server_id

    # -- what was received
    def snapshot(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)

    def event_posts(self) -> list[Recorded]:
        return [
            r for r in self.snapshot()
            if r.method == "POST" and r.path.split("?")[0].rstrip("/").endswith("/os-server-external-events")
        ]

    def events(self) -> list[dict]:
        """Every event of every POST /os-server-external-events, in order."""
        out: list[dict] = []
        for r in self.event_posts():
            assert isinstance(r.body, dict) and isinstance(r.body.get("events"), list), (
                f"POST {r.path} body is not {{'events': [...]}}: {r.raw[:500]!r}")
            out.extend(r.body["events"])
        return out

    def events_for(self, volume_id: str) -> list[dict]:
        return [e for e in self.events() if e.get("tag") == volume_id]

    # -- answers
    def _answer(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0].rstrip("/")
        if rec.method == "GET" and path in ("/v2.1", ""):
            version = {
                "id": "v2.1",
                "status": "CURRENT",
                "version": "2.96",
                "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": f"{self.url}/"}],
            }
            return 200, ({"version": version} if path else {"versions": [version]})
        if rec.method == "POST" and path == "/v2.1/os-server-external-events":
            events = rec.body.get("events") if isinstance(rec.body, dict) else None
            if not isinstance(events, list):
                return 400, {"badRequest": {"code": 400, "message": "events missing"}}
            return 200, {"events": [dict(e, code=200, status="completed") for e in events]}
        parts = path.split("/")
        # /v2.1/servers/{id}
        if rec.method == "GET" and len(parts) == 4 and parts[2] == "servers":
            sid = parts[3]
            if sid in self.servers:
                return 200, {"server": {"id": sid, "name": self.servers[sid], "status": "ACTIVE"}}
            return 404, {"itemNotFound": {"code": 404, "message": f"Instance {sid} could not be found."}}
        # /v2.1/servers?name=... (a client's find-by-name fallback)
        if rec.method == "GET" and path == "/v2.1/servers":
            return 200, {"servers": []}
        return 404, {"itemNotFound": {"code": 404, "message": "not served by the e2e Nova recorder"}}
