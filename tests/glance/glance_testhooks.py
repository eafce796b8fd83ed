"""Test hooks for the Glance that tests/glance/glance_server.py runs.

A WSGI middleware put outermost in Glance's paste pipeline (so it sees every
request as the client sent it). It does two things, both for tests only:

* an access log: for every request a line `METHOD PATH STATUS` when the
  response starts, and a line `METHOD PATH STATUS end BYTES OUTCOME` when its
  body is finished, where OUTCOME is `complete` (the whole body was handed
  to the server) or `aborted` (the client went away, or the body failed
  half-way). A process killed in the middle of a response writes no end line.
  Each line is one write to a file opened for appending, so lines of
  concurrent requests never interleave.
* a download throttle: the body of `GET /v2/images/{id}/file` is paced to
  at most N bytes a second, N read (per request) from the file named by
  `throttle_file`; missing, empty or 0 means no throttle. It lets a test stop
  Glance in the middle of a download without a race.

Paste options (`[filter:testhooks]`): `access_log` (path, required),
`throttle_file` (path, optional).
"""

from __future__ import annotations

import os
import re
import time

DOWNLOAD_PATH = re.compile(r"^/v2/images/[^/]+/file/?$")


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8", "replace"))
    finally:
        os.close(fd)


def _throttle(path: str | None) -> int:
    if not path:
        return 0
    try:
        text = open(path).read().strip()
    except OSError:
        return 0
    return int(text) if text else 0


class _Body:
    """The response body, counted (and paced) on its way out."""

    def __init__(self, inner, hooks: "HooksMiddleware", request: str, status_code: list, rate: int):
        self.inner = inner
        self.hooks = hooks
        self.request = request
        self.status_code = status_code
        self.rate = rate
        self.sent = 0
        self.finished = False
        self.started = time.monotonic()

    def __iter__(self):
        for chunk in self.inner:
            if self.rate > 0 and chunk:
                # Never run ahead of `rate`: sleep until the bytes sent so far
                # (this chunk included) were due.
                due = self.started + (self.sent + len(chunk)) / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.sent += len(chunk)
            yield chunk
        self.finished = True

    def close(self):
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            outcome = "complete" if self.finished else "aborted"
            _append(self.hooks.access_log,
                    f"{self.request} {self.status_code[0]} end {self.sent} {outcome}")


class HooksMiddleware:
    def __init__(self, app, access_log: str, throttle_file: str | None = None):
        self.app = app
        self.access_log = access_log
        self.throttle_file = throttle_file

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        request = f"{environ.get('REQUEST_METHOD', '?')} {environ.get('SCRIPT_NAME', '')}{path}"
        status_code = ["-"]

        def start(status, headers, exc_info=None):
            status_code[0] = status.split(" ", 1)[0]
            _append(self.access_log, f"{request} {status_code[0]}")
            return start_response(status, headers, exc_info)

        rate = 0
        if environ.get("REQUEST_METHOD") == "GET" and DOWNLOAD_PATH.match(path):
            rate = _throttle(self.throttle_file)
        try:
            inner = self.app(environ, start)
        except BaseException:
            _append(self.access_log, f"{request} {status_code[0]} end 0 aborted")
            raise
        return _Body(inner, self, request, status_code, rate)


def filter_factory(global_conf, **local_conf):
    access_log = local_conf["access_log"]
    throttle_file = local_conf.get("throttle_file") or None

    def make(app):
        return HooksMiddleware(app, access_log, throttle_file)

    return make
