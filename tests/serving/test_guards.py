"""The ASGI guard: method, bearer token, content type, size and time bounds on the prediction
paths, the one error shape, and the fixed documentation pages."""

from __future__ import annotations

import asyncio
import json

import pytest

from serving.guards import GuardMiddleware, normalise_error

JSON = [(b"content-type", b"application/json")]
SENTINEL = "SENTINEL-7f3a"


async def _app(scope, receive, send):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok:%d" % len(body)})


def _call(mw, path: str, headers=JSON, chunks=(b"{}",), method="POST", stall=False):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or stall}
                for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        if stall:
            await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "path": path, "method": method,
             "headers": [(k.lower(), v) for k, v in headers]}
    asyncio.run(mw(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, body


def _error(body: bytes) -> dict:
    data = json.loads(body)
    assert set(data) == {"error", "detail"} and isinstance(data["detail"], list)
    return data


def test_token_guards_only_the_prediction_paths():
    mw = GuardMiddleware(_app, paths=["/score", "/rerank"], token="s3cret")
    assert _call(mw, "/score")[0] == 401
    status, body = _call(mw, "/rerank", [*JSON, (b"Authorization", b"Bearer wrong")])
    assert status == 401 and "bearer token" in _error(body)["error"]
    assert _call(mw, "/score", [*JSON, (b"Authorization", b"Bearer s3cret")]) == (200, b"ok:2")
    assert _call(mw, "/score/", [*JSON, (b"authorization", b"bearer s3cret")])[0] == 200
    assert _call(mw, "/metadata", method="GET")[0] == 200
    assert _call(mw, "/readyz", method="GET")[0] == 200


def test_without_a_token_the_paths_are_open():
    mw = GuardMiddleware(_app, paths=["/score"], token=None)
    assert _call(mw, "/score")[0] == 200


def test_only_post_is_allowed_on_prediction_paths():
    mw = GuardMiddleware(_app, paths=["/score"])
    status, body = _call(mw, "/score", method="GET")
    assert status == 405 and _error(body)["error"].startswith("method not allowed")


@pytest.mark.parametrize("ctype", [
    b"application/x-www-form-urlencoded",  # what curl -d sends
    b"multipart/form-data",  # no boundary: BentoML answered 500
    b"multipart/form-data; boundary=xyz",  # a boundary with a JSON body: 500 too
    b"text/plain", b"application/json; charset=latin-1", None,
    f"application/{SENTINEL}".encode(),
])
def test_anything_but_json_gets_415_without_reading_the_body(ctype):
    mw = GuardMiddleware(_app, paths=["/score"])
    headers = [] if ctype is None else [(b"content-type", ctype)]
    body = json.dumps({"items": [{"customer_id": SENTINEL}]}).encode()
    status, answer = _call(mw, "/score", headers, chunks=(body,))
    assert status == 415 and SENTINEL not in answer.decode()
    assert "application/json" in _error(answer)["error"]
    ok = _call(mw, "/score", [(b"content-type", b"Application/JSON; charset=UTF-8")])
    assert ok[0] == 200


def test_oversized_bodies_get_413_announced_or_streamed_in_one_shape():
    mw = GuardMiddleware(_app, paths=["/score"], max_body_bytes=10)
    status, body = _call(mw, "/score", [*JSON, (b"content-length", b"11")], chunks=(b"x" * 11,))
    assert status == 413 and "limit of 10 bytes" in _error(body)["error"]
    status, body = _call(mw, "/score", chunks=(b"x" * 6, b"y" * 6))  # no content-length
    assert status == 413 and _error(body)
    assert _call(mw, "/score", chunks=(b"x" * 5, b"y" * 5)) == (200, b"ok:10")
    assert _call(mw, "/score", [*JSON, (b"content-length", b"abc")])[0] == 400
    # unguarded paths are not bounded by the guard
    assert _call(mw, "/other", chunks=(b"x" * 50,)) == (200, b"ok:50")


def test_a_stalled_body_times_out_with_408():
    mw = GuardMiddleware(_app, paths=["/score"], body_timeout_s=0.2)
    status, body = _call(mw, "/score", chunks=(b'{"items": [',), stall=True)
    assert status == 408 and "not received within" in _error(body)["error"]


def test_framework_errors_are_rewritten_into_the_one_shape():
    """BentoML's 400 carries pydantic's links and the client's unknown field names; its other
    4xx are a one-element list; its 500 a bare error."""
    bentoml_400 = json.dumps({"error": "2 validation errors for ScoreRequest", "detail": [
        {"type": "extra_forbidden", "loc": ["items", 0, f"IBAN-{SENTINEL}"],
         "msg": "Extra inputs are not permitted", "url": "https://errors.pydantic.dev/x"},
        {"type": "int_type", "loc": ["items", 0, "n_contacts"], "msg": "Input should be a "
         "valid integer", "url": "https://errors.pydantic.dev/y"}]}).encode()

    async def framework(scope, receive, send):
        await receive()
        status, body = {"/score": (400, bentoml_400),
                        "/rerank": (415, b'[{"error": "nope"}]'),
                        "/explain": (500, b'{"error": "An unexpected error"}')}[scope["path"]]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    mw = GuardMiddleware(framework, paths=["/score", "/rerank", "/explain"])
    status, body = _call(mw, "/score")
    data = _error(body)
    assert status == 400 and SENTINEL not in body.decode() and "pydantic" not in body.decode()
    assert data == {"error": "2 invalid field(s)", "detail": [
        {"loc": ["items", 0], "msg": data["detail"][0]["msg"], "type": "extra_forbidden"},
        {"loc": ["items", 0, "n_contacts"], "msg": "Input should be a valid integer",
         "type": "int_type"}]}
    assert _error(_call(mw, "/rerank")[1]) == {"error": "nope", "detail": []}
    status, body = _call(mw, "/explain")
    assert status == 500 and _error(body)["error"].startswith("internal error")
    assert normalise_error(400, body) == normalise_error(400, normalise_error(400, body))


def test_fixed_pages_are_served_on_get_only():
    pages = {"/docs.json": (b"application/json", b'{"openapi": "3.1.0"}')}
    mw = GuardMiddleware(_app, paths=["/score"], pages=pages)
    assert _call(mw, "/docs.json", method="GET") == (200, b'{"openapi": "3.1.0"}')
    assert _call(mw, "/docs.json", method="POST")[0] == 200  # the app's, not the page


def test_a_path_counted_under_the_shared_metrics_label_is_routed_as_sent():
    from serving.guards import REAL_PATH_KEY

    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = GuardMiddleware(app, paths=["/score"], pages={"/page": (b"text/html", b"<p>")})
    sent = []

    async def send(msg):
        sent.append(msg)

    async def receive():
        return {"type": "http.request", "body": b""}

    for real in ("/page", "/new-route"):
        scope = {"type": "http", "method": "GET", "path": "/__unknown__", "headers": [],
                 REAL_PATH_KEY: (real, real.encode())}
        asyncio.run(mw(scope, receive, send))
    assert sent[0]["status"] == 200 and seen == ["/new-route"]
