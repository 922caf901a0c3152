"""Start the BentoML service as a child process on loopback and wait until it is ready.

Used by `paydelay serve`/`paydelay demo` and the end-to-end tests, so the service is always
started the same way: `bentoml serve serving.service:PaydelayService`, configured only by
environment variables (which model, which MLflow store, which token).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:PaydelayService"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tracking_uri: str | None = None, token: str | None = None,
               model: str | None = None, workers: int = 1, extra: dict | None = None) -> dict:
    env = {**os.environ, "PAYDELAY_WORKERS": str(workers), "PYTHONPATH": str(ROOT),
           "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true"}
    for key, value in (("PAYDELAY_TRACKING_URI", tracking_uri), ("PAYDELAY_API_TOKEN", token),
                       ("PAYDELAY_MODEL", model)):
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env | (extra or {})


def command(port: int, host: str = "127.0.0.1", target: str = SERVICE) -> list[str]:
    """`bentoml serve` of the service from source (default) or of a built Bento's tag."""
    bentoml = Path(sys.executable).parent / "bentoml"
    return [str(bentoml), "serve", target, "--host", host, "--port", str(port)]


def wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Poll /readyz until 200, the process dies or the time is up."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get("/readyz").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    return False


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's whole process group (BentoML forks workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def running_server(env: dict, log_path: Path, port: int | None = None,
                   ready_timeout_s: float = 120, target: str = SERVICE,
                   cwd: str | Path = ROOT):
    """Yield the base URL of a ready server; its output goes to log_path; stopped on exit.
    `target` is what `bentoml serve` runs: the service from source (default, from `cwd`) or a
    Bento tag (a Bento runs its own copy of the code: pass a `cwd` outside the repository and
    an env without the repository on PYTHONPATH to be sure it does)."""
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command(port, target=target), cwd=cwd, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_ready(url, proc, ready_timeout_s):
            raise RuntimeError(f"the service did not become ready in {ready_timeout_s:.0f} s; "
                               f"its log ({log_path}) ends with:\n"
                               + log_path.read_text(errors="replace")[-3000:])
        yield url
    finally:
        stop(proc)
