"""The BentoML service: declares the HTTP API and wires it to serving.handlers. Nothing else.

Endpoints
- POST /score    open items -> P(late), delay buckets, risk class, P10/P50/P90 payment dates,
                 expected amount at risk, cold-start flag, warnings; model versions.
- POST /rerank   worklist (+ optional capacity) -> the same, ordered by expected amount at risk,
                 with the SAP-style rule priority / rank beside it and the top reasons.
- POST /explain  one item -> every feature's contribution, the base value, the sentences.
- GET  /metadata model versions, training window, headline metrics, feature-set version, limits.
- GET  /livez, /readyz (503 until the model is loaded), /metrics (Prometheus), /docs.json.

Concurrent /score and /rerank requests reaching one worker are scored together (natural
batching, serving.batching): a lone request is not delayed, a queue is worked off in batches.

Errors: 400 malformed request (pydantic: field path + problem), 401 missing / wrong bearer token
(only when $PAYDELAY_API_TOKEN is set; health, metrics, metadata and docs stay open), 413 body
or item count over the limits, 422 impossible item (serving.validation), 503 model not loaded.
No request content reaches the logs (serving.logging_safety).

Environment: PAYDELAY_CONFIG (TOML). Inside a Bento the service serves the release the Bento
carries (serving.release) and ignores PAYDELAY_MODEL / PAYDELAY_TRACKING_URI; from source:
PAYDELAY_RELEASE (an exported BentoML release) or PAYDELAY_MODEL (alias or version, default
@champion) with PAYDELAY_TRACKING_URI (MLflow store); PAYDELAY_STORE_PATH (fresher customer store),
PAYDELAY_API_TOKEN (bearer token), PAYDELAY_WORKERS (worker processes, default 1; one per
core measured best, each loads its own copy of the model).
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime

from serving import logging_safety

logging_safety.install()  # before anything can log a request

import bentoml  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from starlette.responses import JSONResponse, Response  # noqa: E402

from serving import api_models as am  # noqa: E402
from serving.batching import NaturalBatcher  # noqa: E402
from serving.guards import GuardMiddleware  # noqa: E402
from serving.handlers import (Job, Refused, handle_explain, rerank_many,  # noqa: E402
                              score_many, to_json)
from serving.handlers import metadata as metadata_of  # noqa: E402
from serving import loading  # noqa: E402
from serving.model import load_config_from_env  # noqa: E402
from serving.process import settle_heap  # noqa: E402

log = logging.getLogger("paydelay.service")
CONFIG = load_config_from_env()
API = am.ApiModels(CONFIG.serving)
GUARDED = ("/score", "/rerank", "/explain")
meta_app = FastAPI(title="paydelay metadata", docs_url=None, redoc_url=None, openapi_url=None)


def _refusal(exc: Refused) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


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
        try:
            model = loading.load_serving_model(CONFIG)
        except Exception as exc:  # kept for /metadata and /readyz stays 503
            # No request is involved here, so the message is safe to show (the scrubbed
            # traceback alone would withhold it).
            self.loading_error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.exception("model loading failed: %s", self.loading_error)
            return
        self.model = model
        settle_heap()
        log.info("model loaded: %s v%s, feature set %s, store of %d customers",
                 model.info.get("registered_model"), model.info.get("version"),
                 model.info.get("feature_set_version"), model.store.n_customers)

    def __is_ready__(self) -> bool:
        return self.model is not None

    def _model(self):
        if self.model is None:
            raise Refused(503, self.loading_error or "model is loading; retry when /readyz is 200")
        return self.model

    @bentoml.api(route="/score", input_spec=API.ScoreRequest)
    async def score(self, as_of: datetime | None, items: list) -> am.ScoreResponse:
        """Score open items: P(late), delay buckets, risk class, P10/P50/P90 payment dates and
        expected amount at risk. Unknown customers are scored cold-start. 400 malformed,
        401 token, 413 too many items, 422 impossible item, 503 not ready."""
        try:
            self._model()
        except Refused as exc:
            return _refusal(exc)
        return _answer(await self.score_batcher.submit(Job(as_of, items)))

    @bentoml.api(route="/rerank", input_spec=API.RerankRequest)
    async def rerank(self, as_of: datetime | None, items: list,
                     capacity: int | None = None) -> am.RerankResponse:
        """Re-rank a worklist by expected amount at risk, with the rule strategy's priority and
        rank beside each item and its top reasons. Errors as /score."""
        try:
            self._model()
        except Refused as exc:
            return _refusal(exc)
        return _answer(await self.rerank_batcher.submit(Job(as_of, items, capacity)))

    @bentoml.api(route="/explain", input_spec=API.ExplainRequest)
    def explain(self, as_of: datetime | None, item) -> am.ExplainResponse:
        """Explain one item: every feature's SHAP contribution (log-odds), the base value and
        the sentences a collector reads. Errors as /score."""
        try:
            return _json(handle_explain(self._model(), as_of, item))
        except Refused as exc:
            return _refusal(exc)

    @meta_app.get("/metadata")
    def metadata(self) -> dict:
        """What is served: model versions, training window, headline metrics, feature set."""
        return metadata_of(self.model, self.loading_error)


PaydelayService.add_asgi_middleware(
    GuardMiddleware, paths=GUARDED,
    token=os.environ.get(CONFIG.serving.token_env) or None,
    max_body_bytes=CONFIG.serving.max_body_bytes)
