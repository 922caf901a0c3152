"""The BentoML service: declares the HTTP API and wires it to serving.handlers. Nothing else.

Endpoints
- POST /score    open items -> P(late), delay buckets, risk class, P10/P50/P90 payment dates,
                 expected amount at risk, cold-start flag, warnings; model versions.
- POST /rerank   worklist (+ optional capacity) -> the same, ordered by expected amount at risk,
                 with the SAP-style rule priority / rank beside it and the top reasons.
- POST /explain  one item -> every feature's contribution, the base value, the sentences.
- POST /latest_worklist  {"collector"} -> that collector's open items from the newest batch
                 scoring (items_<date>.parquet in the scores folder), in the /rerank request's
                 shape, with the batch's as_of, ledger and collectors; without a collector, only
                 those; 404 when no batch exists. POST: a collector's name never sits in a URL.
- GET  /metadata model versions, training window, headline metrics, feature-set version, limits.
- GET  /livez (503 once loading has failed for good: a supervisor restarts the service),
         /readyz (503 until the model is loaded), /metrics (Prometheus),
         /docs.json (the OpenAPI 3.1 document, serving.api_models.openapi_document),
         /docs and / (a plain page describing it; no third-party asset),
         /worklist (the collectors' worklist page, serving.page: it calls /latest_worklist,
         /rerank and /explain with the token the collector types).

Concurrent /score and /rerank requests reaching one worker are scored together (natural
batching, serving.batching): a lone request is not delayed, a queue is worked off in batches.

Errors, all in one shape (serving.api_models.ErrorResponse; serving.guards rewrites the
framework's): 400 malformed request (field path + problem), 401 missing / wrong bearer token
(only when $PAYDELAY_API_TOKEN is set; health, metrics, metadata and docs stay open), 404 no
batch-scored worklist (/latest_worklist), 405 not POST, 408 body not received in time, 409 the
request's ledger is not the model's, 413 body or item count over the limits, 415 not
application/json, 422 impossible item (serving.validation), 503 model not loaded. No request
content reaches the logs (serving.logging_safety); a 400 is one WARNING line.

Loading: retried with back-off (PAYDELAY_LOAD_ATTEMPTS, default 5; PAYDELAY_LOAD_BACKOFF_S,
default 2, doubling); after the last failure /livez answers 503. /metadata and the 503s name
the kind of failure, never an exception's text (the log has it).

Environment: PAYDELAY_CONFIG (TOML). Inside a Bento the service serves the release the Bento
carries (serving.release) and ignores PAYDELAY_MODEL / PAYDELAY_TRACKING_URI; from source:
PAYDELAY_RELEASE (an exported BentoML release) or PAYDELAY_MODEL (alias or version, default
@champion) from the MLflow store PAYDELAY_TRACKING_URI, else MLFLOW_TRACKING_URI /
MLFLOW_REGISTRY_URI, else models/mlflow.db (training.registry.resolve_tracking_uri);
PAYDELAY_STORE_PATH (fresher customer store),
PAYDELAY_API_TOKEN (bearer token; without it the service warns at start), PAYDELAY_WORKERS
(worker processes, default 1; one per core measured best, each loads its own copy of the model),
PAYDELAY_BODY_TIMEOUT_S (seconds to receive a request body, default 30), PAYDELAY_SCORES_DIR
(the batch scores folder /latest_worklist reads; default ServingConfig.scores_dir, else
data/processed/<the served model's ledger>/scores, where `paydelay score` writes).
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
import time
from datetime import datetime

from serving import logging_safety

logging_safety.install()  # before anything can log a request

import bentoml  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402

from serving import api_models as am  # noqa: E402
from serving.batching import NaturalBatcher  # noqa: E402
from serving.guards import REAL_PATH_KEY, GuardMiddleware  # noqa: E402
from serving.handlers import (Job, Refused, handle_explain,  # noqa: E402
                              latest_worklist, rerank_many, score_many, to_json)
from serving.handlers import metadata as metadata_of  # noqa: E402
from serving import loading  # noqa: E402
from serving import staleness_metrics  # noqa: E402
from serving.model import load_config_from_env  # noqa: E402
from serving.page import pages as worklist_pages  # noqa: E402
from serving.process import settle_heap  # noqa: E402

log = logging.getLogger("paydelay.service")
CONFIG = load_config_from_env()
API = am.ApiModels(CONFIG.serving)
GUARDED = ("/score", "/rerank", "/explain", "/latest_worklist")
TOKEN = os.environ.get(CONFIG.serving.token_env) or None
# The batch scores folder; None: batch scoring's default for the served model's ledger.
SCORES_DIR = os.environ.get("PAYDELAY_SCORES_DIR") or CONFIG.serving.scores_dir
LOAD_ATTEMPTS = max(1, int(os.environ.get("PAYDELAY_LOAD_ATTEMPTS") or 5))
LOAD_BACKOFF_S = float(os.environ.get("PAYDELAY_LOAD_BACKOFF_S") or 2.0)
BODY_TIMEOUT_S = float(os.environ.get("PAYDELAY_BODY_TIMEOUT_S") or 30.0)
OPENAPI = am.openapi_document(API, token_required=TOKEN is not None)
meta_app = FastAPI(title="paydelay metadata", docs_url=None, redoc_url=None, openapi_url=None)


def docs_page(doc: dict) -> bytes:
    """/docs: the OpenAPI document as a plain page (no script, no third-party asset)."""
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            request = body.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
            codes = ", ".join(op["responses"])
            rows.append(f"<tr><td>{method.upper()}</td><td>{html.escape(path)}</td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td>"
                        f"<td>{html.escape(request)}</td><td>{codes}</td></tr>")
    auth = ("Prediction endpoints need <code>Authorization: Bearer &lt;token&gt;</code>."
            if "securitySchemes" in doc["components"] else
            "No token is configured: prediction endpoints are open.")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>paydelay API</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}td,th{{padding:.2em .6em;
text-align:left;border-bottom:1px solid #ddd}}</style></head><body>
<h1>paydelay API</h1><p>{html.escape(doc["info"]["description"])}</p><p>{auth}</p>
<p>The OpenAPI {doc["openapi"]} document: <a href="/docs.json">/docs.json</a>.</p>
<table><tr><th>Method</th><th>Path</th><th>What</th><th>Request body</th><th>Responses</th></tr>
{"".join(rows)}</table></body></html>"""
    return page.encode()


PAGES = {"/docs.json": (b"application/json", json.dumps(OPENAPI).encode()),
         "/docs": (b"text/html; charset=utf-8", docs_page(OPENAPI))}
PAGES["/"] = PAGES["/docs"]
PAGES.update(worklist_pages())  # the collector's worklist page and its assets (serving.page)
if TOKEN is None:
    log.warning("%s is not set: %s are served without a token", CONFIG.serving.token_env,
                ", ".join(GUARDED))

# /metrics: BentoML labels request metrics with the raw path, so every unknown path would add
# series. Unknown paths (404 anyway) are counted as one path, so the label set stays bounded.
KNOWN_PATHS = frozenset({*GUARDED, *PAGES, "/metadata", "/livez", "/readyz", "/healthz",
                         "/metrics", "/schema.json"})
OTHER_PATH = "/__unknown__"


def metric_path(path: str) -> str:
    """The path a request is counted under in /metrics: its own when the service has it."""
    return path if path == "/" or path.rstrip("/") in KNOWN_PATHS else OTHER_PATH


def bound_metric_paths() -> None:
    from bentoml._internal.server.http import instruments  # noqa: PLC0415

    cls = instruments.RunnerTrafficMetricsMiddleware
    if getattr(cls, "_paydelay_bounded", False):
        return
    original = cls.__call__

    async def call(self, scope, receive, send):
        if scope.get("type") == "http" and metric_path(scope["path"]) != scope["path"]:
            # counted (and access-logged) as OTHER_PATH; serving.guards restores the real
            # path before routing, so a route missing from KNOWN_PATHS still works
            scope = {**scope, "path": OTHER_PATH, "raw_path": OTHER_PATH.encode(),
                     REAL_PATH_KEY: (scope["path"], scope.get("raw_path"))}
        return await original(self, scope, receive, send)

    cls.__call__ = call
    cls._paydelay_bounded = True


bound_metric_paths()


def _refusal(exc: Refused) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _load_category(exc: BaseException) -> str:
    """What /metadata and the 503s say about a failed load: a kind, never the text."""
    if isinstance(exc, FileNotFoundError):
        return "model store or model not found"
    return f"model could not be loaded ({type(exc).__name__})"


def _json(data: dict | bytes) -> Response:
    # The handlers build plain data shaped like the declared response models (tests check it);
    # serialising it directly skips building a pydantic object per item and reason.
    body = data if isinstance(data, bytes) else to_json(data)
    return Response(body, media_type="application/json")


def _answer(result) -> Response:
    return _refusal(result) if isinstance(result, Refused) else _json(result)


def _serialised(many):
    """A batch function whose results are JSON bytes (or the job's Refused), computed on the
    batch's worker thread rather than on the event loop."""
    def run(model, jobs: list[Job]) -> list:
        return [r if isinstance(r, Refused) else to_json(r) for r in many(model, jobs)]
    return run


@bentoml.asgi_app(meta_app, path="/")
@bentoml.service(
    name="paydelay",
    workers=int(os.environ.get("PAYDELAY_WORKERS", "1")),
    traffic={"timeout": 60},
    http={"cors": {"enabled": False}},
)
class PaydelayService:
    """Payment-delay risk, payment dates and worklist re-ranking for AR collections."""

    def __init__(self) -> None:
        logging_safety.install()
        self.model = None
        self.loading_error: str | None = None
        self.loading = {"attempts": 0, "max_attempts": LOAD_ATTEMPTS, "gave_up": False}
        # Concurrent /score and /rerank requests are scored together (serving.batching).
        max_items = max(CONFIG.serving.max_items, 2000)
        rerank_fn, score_fn = _serialised(rerank_many), _serialised(score_many)
        self.rerank_batcher = NaturalBatcher(lambda jobs: rerank_fn(self.model, jobs),
                                             size=lambda job: len(job.items), max_items=max_items)
        self.score_batcher = NaturalBatcher(lambda jobs: score_fn(self.model, jobs),
                                            size=lambda job: len(job.items), max_items=max_items)
        # Load in the background: /livez answers at once, /readyz turns 200 when loaded.
        threading.Thread(target=self._load, name="paydelay-model-loader", daemon=True).start()

    def _load(self) -> None:
        """Load the model, retrying with back-off; after the last attempt /livez fails."""
        delay = LOAD_BACKOFF_S
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            self.loading["attempts"] = attempt
            try:
                model = loading.load_serving_model(CONFIG)
                break
            except Exception as exc:  # /readyz stays 503; /metadata shows the kind only
                self.loading_error = _load_category(exc)
                last = attempt == LOAD_ATTEMPTS
                # No request is involved: the message (paths, what is missing) is for the
                # operator; it goes to the log only, never to a response.
                log.error("model loading failed (attempt %d of %d%s): %s: %s", attempt,
                          LOAD_ATTEMPTS, "; giving up, /livez now fails" if last else
                          f"; retrying in {delay:g} s", type(exc).__name__, str(exc)[:500])
                if last:
                    self.loading["gave_up"] = True
                    return
                time.sleep(delay)
                delay *= 2
        self.loading_error = None
        self.model = model
        settle_heap()
        log.info("model loaded: %s v%s, feature set %s, store of %d customers",
                 model.info.get("registered_model"), model.info.get("version"),
                 model.info.get("feature_set_version"), model.store.n_customers)

    def __is_ready__(self) -> bool:
        return self.model is not None

    def __is_alive__(self) -> bool:
        """False once loading has failed for good: a supervisor should restart the service."""
        return not self.loading["gave_up"]

    def _model(self):
        if self.model is None:
            raise Refused(503, (self.loading_error + "; see the server log")
                          if self.loading_error else
                          "model is loading; retry when /readyz is 200")
        staleness_metrics.refresh(self.model)  # Prometheus gauges: model / store age
        return self.model

    @bentoml.api(route="/score", input_spec=API.ScoreRequest)
    async def score(self, as_of: datetime | None, items: list,
                    ledger: str | None = None) -> am.ScoreResponse:
        """Score open items: P(late), delay buckets, risk class, P10/P50/P90 payment dates and
        expected amount at risk. Unknown customers are scored cold-start. 400 malformed,
        401 token, 413 too many items, 422 impossible item, 503 not ready."""
        try:
            self._model()
        except Refused as exc:
            return _refusal(exc)
        return _answer(await self.score_batcher.submit(Job(as_of, items, ledger=ledger)))

    @bentoml.api(route="/rerank", input_spec=API.RerankRequest)
    async def rerank(self, as_of: datetime | None, items: list, capacity: int | None = None,
                     ledger: str | None = None) -> am.RerankResponse:
        """Re-rank a worklist by expected amount at risk, with the rule strategy's priority and
        rank beside each item and its top reasons. Errors as /score."""
        try:
            self._model()
        except Refused as exc:
            return _refusal(exc)
        return _answer(await self.rerank_batcher.submit(Job(as_of, items, capacity, ledger)))

    @bentoml.api(route="/explain", input_spec=API.ExplainRequest)
    def explain(self, as_of: datetime | None, item,
                ledger: str | None = None) -> am.ExplainResponse:
        """Explain one item: every feature's SHAP contribution (log-odds), the base value and
        the sentences a collector reads. Errors as /score."""
        try:
            return _json(handle_explain(self._model(), as_of, item, ledger))
        except Refused as exc:
            return _refusal(exc)

    @bentoml.api(route="/latest_worklist", input_spec=API.LatestWorklistRequest)
    def latest_worklist(self, collector: str | None = None) -> API.LatestWorklistResponse:
        """A collector's open items from the newest batch scoring, in the /rerank request's
        shape (as_of, ledger, items), and the batch's collectors. 404 when no batch exists,
        other errors as /score."""
        try:
            return _json(latest_worklist(self._model(), collector, SCORES_DIR))
        except Refused as exc:
            return _refusal(exc)

    @meta_app.get("/metadata")
    def metadata(self) -> dict:
        """What is served: model versions, training window, headline metrics, feature set."""
        return metadata_of(self.model, self.loading_error, None if self.model else self.loading)


PaydelayService.add_asgi_middleware(
    GuardMiddleware, paths=GUARDED, token=TOKEN, max_body_bytes=CONFIG.serving.max_body_bytes,
    body_timeout_s=BODY_TIMEOUT_S, pages=PAGES)
