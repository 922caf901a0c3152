"""Bounded HTTP load run against a real `bentoml serve` on the loopback interface.

    .venv/bin/python benchmarks/bench_http.py --clients 16 --items 50 --duration 60

Without --url it trains a small model on a simulated ledger into a temporary MLflow store,
registers it, starts the BentoML service on 127.0.0.1 (a free port, `--workers` processes) and
stops it at the end. With --url it loads an already running server (loopback addresses only:
this is a benchmark, not a load generator for someone else's machine).

Each of `--clients` concurrent clients loops for `--duration` seconds: it posts a worklist of
`--items` open items (a random slice of the invoices open at the extract's time) to
`--endpoint` (/rerank by default, reasons included) and waits for the answer. A warm-up of
`--warmup` seconds is not counted. Prints p50 / p90 / p99 / max latency, throughput and the
errors by status; targets: p99 < 300 ms and no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(workdir: Path, registered, workers: int, token: str) -> tuple:
    import httpx

    port = _free_port()
    env = {**os.environ, "PAYDELAY_TRACKING_URI": registered.tracking_uri,
           "PAYDELAY_API_TOKEN": token, "PAYDELAY_WORKERS": str(workers),
           "BENTOML_HOME": str(workdir / "bentoml"), "PYTHONPATH": str(ROOT),
           "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true"}
    log = open(workdir / "server.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:PaydelayService",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    streak = 0  # every worker must be ready: fresh connections land on random workers
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {workdir / 'server.log'}")
        try:
            ok = httpx.get(f"{url}/readyz", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            ok = False
        streak = streak + 1 if ok else 0
        if streak >= 10 * workers:
            return proc, url, log
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"server not ready in 180 s; see {workdir / 'server.log'}")


def _worklists(registered, items: int, n: int, seed: int, endpoint: str) -> list[bytes]:
    from features.pit.item_state import item_state_at
    from features.pit.snapshots import scoring_snapshots
    from serving.api_models import items_payload

    state = item_state_at(registered.events, scoring_snapshots(registered.events))
    payload = items_payload(state)
    rng = np.random.default_rng(seed)
    as_of = registered.last_refresh.isoformat()
    bodies = []
    for _ in range(n):
        pick = rng.choice(len(payload), size=min(items, len(payload)), replace=False)
        body = {"as_of": as_of, "items": [payload[i] for i in pick]}
        if endpoint == "/rerank":
            body["capacity"] = 10
        bodies.append(json.dumps(body).encode())
    return bodies


async def _load(url: str, endpoint: str, bodies: list[bytes], clients: int, duration: float,
                warmup: float, token: str | None) -> dict:
    import httpx

    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits,
                                 trust_env=False) as client:
        async def worker(k: int) -> None:
            i = k
            while True:
                now = time.perf_counter()
                if now >= stop_at:
                    return
                body = bodies[i % len(bodies)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = await client.post(endpoint, content=body)
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append(t1 - t0)
                    statuses[code] = statuses.get(code, 0) + 1

        await asyncio.gather(*(worker(k) for k in range(clients)))
    lat = np.array(latencies) * 1e3
    ok = statuses.get("200", 0)
    return {
        "requests": int(len(lat)), "ok": ok,
        "errors": {k: v for k, v in statuses.items() if k != "200"},
        "throughput_rps": len(lat) / duration,
        "items_per_s": len(lat) / duration * len(json.loads(bodies[0])["items"]),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p90_ms": float(np.percentile(lat, 90)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_ms": float(lat.max()) if len(lat) else None,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server on the loopback interface")
    ap.add_argument("--token", default=None, help="bearer token for --url")
    ap.add_argument("--endpoint", default="/rerank", choices=("/rerank", "/score"))
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from serving.demo import demo_config, train_and_register

    proc = log = None
    token = args.token
    with tempfile.TemporaryDirectory(prefix="paydelay-bench-http-") as tmp:
        tmp = Path(tmp)
        registered = train_and_register(tmp / "model", demo_config(seed=args.seed))
        if args.url:
            host = urlparse(args.url).hostname
            if host not in LOOPBACK:
                raise SystemExit(f"refusing to load {host!r}: loopback addresses only")
            url = args.url
        else:
            token = token or "bench-token"
            proc, url, log = _start_server(tmp, registered, args.workers, token)
        try:
            bodies = _worklists(registered, args.items, 64, args.seed, args.endpoint)
            result = asyncio.run(_load(url, args.endpoint, bodies, args.clients,
                                       args.duration, args.warmup, token))
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
                log.close()
    out = {"endpoint": args.endpoint, "clients": args.clients, "items": args.items,
           "duration_s": args.duration, "workers": None if args.url else args.workers,
           "cpus": os.cpu_count(), **result}
    print(json.dumps(out, indent=1))
    verdict = (result["p99_ms"] is not None and result["p99_ms"] < 300
               and not result["errors"])
    print(f"p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, "
          f"{result['throughput_rps']:.1f} req/s, errors {result['errors'] or 'none'}: "
          f"{'meets' if verdict else 'misses'} the target (p99 < 300 ms, no errors)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
