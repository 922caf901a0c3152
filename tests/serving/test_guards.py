"""The ASGI guard: bearer token on prediction paths, request body size bound."""

from __future__ import annotations

import asyncio
import json

from serving.guards import GuardMiddleware


async def _app(scope, receive, send):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok:%d" % len(body)})


def _call(mw, path: str, headers=(), chunks=(b"{}",)):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "path": path, "headers": [(k.lower(), v) for k, v in headers]}
    asyncio.run(mw(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body


def test_token_guards_only_the_prediction_paths():
    mw = GuardMiddleware(_app, paths=["/score", "/rerank"], token="s3cret")
    assert _call(mw, "/score")[0] == 401
    status, body = _call(mw, "/rerank", [(b"Authorization", b"Bearer wrong")])
    assert status == 401 and "bearer token" in json.loads(body)["error"]
    assert _call(mw, "/score", [(b"Authorization", b"Bearer s3cret")]) == (200, b"ok:2")
    assert _call(mw, "/score/", [(b"authorization", b"bearer s3cret")])[0] == 200
    assert _call(mw, "/metadata")[0] == 200 and _call(mw, "/readyz")[0] == 200


def test_without_a_token_the_paths_are_open():
    mw = GuardMiddleware(_app, paths=["/score"], token=None)
    assert _call(mw, "/score")[0] == 200


def test_oversized_bodies_get_413_announced_or_streamed():
    mw = GuardMiddleware(_app, paths=["/score"], max_body_bytes=10)
    status, body = _call(mw, "/score", [(b"content-length", b"11")], chunks=(b"x" * 11,))
    assert status == 413 and "limit of 10 bytes" in json.loads(body)["error"]
    assert _call(mw, "/score", chunks=(b"x" * 6, b"y" * 6))[0] == 413  # no content-length
    assert _call(mw, "/score", chunks=(b"x" * 5, b"y" * 5)) == (200, b"ok:10")
    assert _call(mw, "/score", [(b"content-length", b"abc")])[0] == 400
    # unguarded paths are not bounded by the guard
    assert _call(mw, "/other", chunks=(b"x" * 50,)) == (200, b"ok:50")
