"""ASGI middleware in front of the prediction endpoints: bearer token and request-size bound.

Pure ASGI (no BentoML import) so it is unit-tested with a fake app. Only the listed paths are
guarded; health, metrics, metadata and the OpenAPI pages stay open.

- Token: when a token is configured, a guarded request must send `Authorization: Bearer <token>`
  (compared in constant time) or gets 401 with a `WWW-Authenticate` header.
- Size: a body larger than `max_body_bytes` gets 413 before anything parses it, whether the
  client announces it in Content-Length or streams it (counted while reading).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable


def _json_response(status: int, error: str, headers: Iterable[tuple[bytes, bytes]] = ()):
    body = json.dumps({"error": error}).encode()
    start = {
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *headers],
    }
    return start, {"type": "http.response.body", "body": body}


class GuardMiddleware:
    """Bearer-token check and body-size limit on `paths` (exact, after stripping a trailing /)."""

    def __init__(self, app, paths: Iterable[str], token: str | None = None,
                 max_body_bytes: int = 4_000_000):
        self.app = app
        self.paths = {p.rstrip("/") for p in paths}
        self.token = token or None
        self.max_body_bytes = int(max_body_bytes)

    async def _send_error(self, send, status: int, error: str, headers=()) -> None:
        start, body = _json_response(status, error, headers)
        await send(start)
        await send(body)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.paths:
            return await self.app(scope, receive, send)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.token is not None:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), self.token.encode()):
                return await self._send_error(
                    send, 401, "missing or invalid bearer token (header Authorization: Bearer "
                    "<token>)", [(b"www-authenticate", b'Bearer realm="paydelay"')])
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
        # Read the body here, bounded, and replay it: the app then never sees an oversized body
        # (BentoML reads bodies whole and has no limit of its own).
        chunks, received = [], 0
        while True:
            message = await receive()
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

        return await self.app(scope, replay, send)
