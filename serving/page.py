"""The collector's worklist page: fixed files the service answers to GET, nothing else.

`/worklist` (serving/static/worklist.html), `/worklist/app.js` and `/worklist/style.css`: a
plain page and a little JavaScript, no third-party asset, nothing fetched from elsewhere. The
page loads a worklist two ways and ranks both alike, posting the items to /rerank with the
bearer token the collector types (kept in the tab's sessionStorage, sent only in the
Authorization header, never in a URL):

- a worklist file: the CSV or JSON a worklist engine sends (the /rerank request body, or one
  row per item with the request's item fields as columns), ranked as of the as-of typed, else
  the file's, else now;
- the latest batch-scored worklist: batch scoring (training.batch_score, `paydelay score`)
  writes the open items' states with their collector beside its predictions; the page asks
  POST /latest_worklist whether a batch exists (the control stays disabled with a note saying
  why when none does, or when the token is missing), offers its collectors in a picker, and
  ranks the chosen collector's items as of the batch's date. The collector's name travels in
  the request body, never in a URL.

It shows the ranked list - open amount, days overdue, P(late), the chance of paying more than
30 days late or not at all (the contract's label, from /metadata), expected amount at risk, the
payment window, the rule strategy's rank, the top reasons with their weights - and, for one
invoice, a waterfall of every factor's weight from /explain. Data is written into the page as
text, never as HTML. The service serves these bytes through serving.guards' fixed pages (GET /
HEAD only), so the page needs no route of its own and no client data reaches a URL or a log.

The item fields and their types (features.pit.item_state.ITEM_STATE_COLUMNS) are written into
the page when it is built, so a CSV's cells are sent with the types the API expects.
"""

from __future__ import annotations

import json
from pathlib import Path

from features.pit.item_state import ITEM_STATE_COLUMNS

STATIC = Path(__file__).parent / "static"
PAGE_PATH = "/worklist"
_FILES = {PAGE_PATH: ("worklist.html", b"text/html; charset=utf-8"),
          f"{PAGE_PATH}/app.js": ("app.js", b"text/javascript; charset=utf-8"),
          f"{PAGE_PATH}/style.css": ("style.css", b"text/css; charset=utf-8")}


def page_html(fields: dict[str, str] | None = None) -> bytes:
    """The page with the item fields' types written in (a JSON block, '<' escaped)."""
    fields = dict(ITEM_STATE_COLUMNS if fields is None else fields)
    blob = json.dumps(fields).replace("<", "\\u003c")
    return (STATIC / "worklist.html").read_text().replace("__ITEM_FIELDS__", blob).encode()


def pages() -> dict[str, tuple[bytes, bytes]]:
    """path -> (content type, body) of the worklist page and its assets, for the service's
    fixed pages (serving.guards.GuardMiddleware)."""
    out = {}
    for path, (name, content_type) in _FILES.items():
        body = page_html() if name.endswith(".html") else (STATIC / name).read_bytes()
        out[path] = (content_type, body)
    return out


__all__ = ["pages", "page_html", "PAGE_PATH", "STATIC"]
