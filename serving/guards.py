"""ASGI middleware in front of the service: what a request must be before anything parses it,
the one error shape, and the published documentation pages.

Pure ASGI (no BentoML import) so it is unit-tested with a fake app. On the guarded paths (the
prediction endpoints and /latest_worklist: serving.service.GUARDED), in this order:

- Method: anything but POST gets 405 with `Allow: POST`.
- Token: when a token is configured, `Authorization: Bearer <token>` (compared in constant time)
  or 401 with a `WWW-Authenticate` header.
- Content type: only `application/json` (charset, if given, utf-8); anything else - form data,
  multipart (with or without a boundary), text, none - gets 415 and the body is never read, so
  it can reach neither a parser nor a log.
- Size: a body larger than `max_body_bytes` gets 413 before anything parses it, whether the
  client announces it in Content-Length or streams it (counted while reading).
- Time: a body not received within `body_timeout_s` (a stalled or very slow upload) gets 408.
- Error shape: every error response of the app on these paths is rewritten into the API's one
  shape, {"error": str, "detail": [{"loc", "msg", "type"}]} (serving.api_models.ErrorResponse):
  the framework's own 400 (pydantic errors with links and, for unknown fields, the client's
  field name in `loc`) and 5xx included. A field name the API does not know is never echoed.

Every path: `pages` maps a path to a fixed (content type, body) answered to GET / HEAD (the
OpenAPI document at /docs.json, a plain documentation page at /docs and /), so the framework's
own pages (which load third-party assets) are never served.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Iterable, Mapping

# Set by serving.service's metrics wrapper on a path it counts under one label: the real one.
REAL_PATH_KEY = "paydelay.real_path"
ERROR_STATUSES = (400, 401, 404, 405, 408, 409, 413, 415, 422, 500, 503)
_UNKNOWN_FIELD = "unknown field (its name is not echoed): see the request schema at /docs.json"


def error_json(error: str, detail: list | None = None) -> bytes:
    return json.dumps({"error": error, "detail": list(detail or [])}).encode()


def _start(status: int, body: bytes, content_type: bytes = b"application/json",
           headers: Iterable[tuple[bytes, bytes]] = ()) -> dict:
    return {"type": "http.response.start", "status": status,
            "headers": [(b"content-type", content_type),
                        (b"content-length", str(len(body)).encode()), *headers]}


def _clean_detail(raw) -> list[dict]:
    """pydantic-style error entries -> {"loc", "msg", "type"}; unknown field names withheld,
    nothing else (input, ctx, url) kept."""
    out = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        loc = [p for p in entry.get("loc", []) if isinstance(p, (int, str))]
        kind = str(entry.get("type", "invalid"))
        msg = str(entry.get("msg", "invalid value"))
        if kind == "extra_forbidden":
            loc, msg = loc[:-1], _UNKNOWN_FIELD
        # pydantic names the member of a union it tried, e.g. 'function-plain[parse()]'
        loc = [p for p in loc if not (isinstance(p, str) and "[" in p)]
        out.append({"loc": loc, "msg": msg[:300], "type": kind[:60]})
    return out


def normalise_error(status: int, body: bytes) -> bytes:
    """Any error body -> the one error shape (idempotent)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, list):  # BentoML answers some 4xx with a one-element list
        data = next((d for d in data if isinstance(d, dict)), None)
    if status >= 500:
        return error_json("internal error (the server log has the details)" if status == 500
                          else str((data or {}).get("error") or "service unavailable"))
    detail = _clean_detail((data or {}).get("detail"))
    if status == 400 and isinstance(data, dict) and "url" in str(data.get("detail", "")):
        error = f"{len(detail)} invalid field(s)"  # pydantic's message names the model
    else:
        error = (data or {}).get("error") if isinstance(data, dict) else None
        error = str(error) if error else {404: "not found", 405: "method not allowed"}.get(
            status, "request refused")
    return error_json(error[:300], detail)


def _media_type(value: bytes | None) -> tuple[str, dict[str, str]]:
    if not value:
        return "", {}
    main, *params = value.decode("latin-1").split(";")
    parsed = {}
    for p in params:
        k, _, v = p.partition("=")
        parsed[k.strip().lower()] = v.strip().strip('"').lower()
    return main.strip().lower(), parsed


class GuardMiddleware:
    """Method, bearer token, content type, size and time bounds on `paths` (exact, after
    stripping a trailing /), the one error shape there; fixed `pages` on every path."""

    def __init__(self, app, paths: Iterable[str], token: str | None = None,
                 max_body_bytes: int = 4_000_000, body_timeout_s: float = 30.0,
                 pages: Mapping[str, tuple[bytes, bytes]] | None = None):
        self.app = app
        self.paths = {p.rstrip("/") for p in paths}
        self.token = token or None
        self.max_body_bytes = int(max_body_bytes)
        self.body_timeout_s = float(body_timeout_s)
        self.pages = dict(pages or {})

    @staticmethod
    async def _send_error(send, status: int, error: str, headers=(), detail=None) -> None:
        body = error_json(error, detail)
        await send(_start(status, body, headers=headers))
        await send({"type": "http.response.body", "body": body})

    async def _page(self, scope, send) -> None:
        content_type, body = self.pages[scope["path"]]
        await send(_start(200, body, content_type))
        await send({"type": "http.response.body",
                    "body": b"" if scope.get("method") == "HEAD" else body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if REAL_PATH_KEY in scope:  # counted under one metrics label: route the real path
            scope = dict(scope)
            scope["path"], raw = scope.pop(REAL_PATH_KEY)
            if raw is None:
                scope.pop("raw_path", None)
            else:
                scope["raw_path"] = raw
        path = scope["path"]
        if path in self.pages and scope.get("method") in ("GET", "HEAD"):
            return await self._page(scope, send)
        if path.rstrip("/") not in self.paths:
            return await self.app(scope, receive, send)
        if scope.get("method") != "POST":
            return await self._send_error(send, 405, "method not allowed: use POST",
                                          [(b"allow", b"POST")])
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.token.encode()):
                return await self._send_error(
                    send, 401, "missing or invalid bearer token (header Authorization: Bearer "
                    "<token>)", [(b"www-authenticate", b'Bearer realm="paydelay"')])
        media, params = _media_type(headers.get(b"content-type"))
        if media != "application/json" or params.get("charset", "utf-8") != "utf-8":
            return await self._send_error(
                send, 415, "unsupported content type: send the JSON body with Content-Type: "
                "application/json (curl: --json @file or -H 'Content-Type: application/json')")
        limit = self.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                return await self._send_error(send, 400, "Content-Length is not an integer")
            if announced > limit:
                return await self._send_error(
                    send, 413, f"request body of {announced} bytes exceeds the limit of {limit} "
                    "bytes; send fewer items per request")
        # Read the body here, bounded in size and time, and replay it: the app then never sees
        # an oversized body (BentoML reads bodies whole and has no limit of its own) and a
        # stalled upload does not hold a connection open.
        chunks, received = [], 0
        deadline = time.monotonic() + self.body_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(),
                                                 max(deadline - time.monotonic(), 0.001))
            except (asyncio.TimeoutError, TimeoutError):
                return await self._send_error(
                    send, 408, f"request body not received within {self.body_timeout_s:g} s",
                    [(b"connection", b"close")])
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            received += len(body)
            if received > limit:
                return await self._send_error(
                    send, 413, f"request body exceeds the limit of {limit} bytes; send fewer "
                    "items per request")
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return await self.app(scope, replay, _ErrorShaper(send))


class _ErrorShaper:
    """A `send` that rewrites error responses (status >= 400) into the one error shape."""

    def __init__(self, send):
        self.send = send
        self.start: dict | None = None
        self.parts: list[bytes] = []

    async def __call__(self, message) -> None:
        if message["type"] == "http.response.start":
            if message["status"] < 400:
                return await self.send(message)
            self.start = message
            return None
        if self.start is None or message["type"] != "http.response.body":
            return await self.send(message)
        self.parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return None
        status = self.start["status"]
        body = normalise_error(status, b"".join(self.parts))
        keep = [(k, v) for k, v in self.start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")]
        await self.send(_start(status, body, headers=keep))
        await self.send({"type": "http.response.body", "body": body})
        return None
