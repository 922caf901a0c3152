"""Start the BentoML service as a child process on loopback and wait until it is ready.

Used by `paydelay serve`/`paydelay demo` and the end-to-end tests, so the service is always
started the same way: `bentoml serve serving.service:PaydelayService`, configured only by
environment variables (which model, which MLflow store, which token). The MLflow store travels
as $PAYDELAY_TRACKING_URI when one is named for the service, else as the MLflow variables the
caller's environment holds ($MLFLOW_TRACKING_URI, $MLFLOW_REGISTRY_URI): the service resolves
them exactly as the CLI does (training.registry.resolve_tracking_uri).

- Each server gets its own Prometheus multiprocess directory (BentoML's default, one per
  BENTOML_HOME, is wiped by every server that starts: a second server on the host would make
  the first report the other's counters). The child is a tiny Python wrapper around BentoML's
  CLI (`_WRAPPER`, no import of this repository, so it also serves a Bento from anywhere) that
  points BentoML at a fresh temporary directory and removes it on exit.
- Secure by default: `check_bind` refuses a non-loopback host without a token (one line) and
  warns on loopback without one.
- `serve_foreground` (paydelay serve) forwards SIGTERM / SIGINT / SIGHUP to the server's
  process group and returns only once the server has exited.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from training.registry import TRACKING_ENV

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "serving.service:PaydelayService"
TOKEN_ENV = "PAYDELAY_API_TOKEN"
STOP_TIMEOUT_S = 30.0

# The server process: BentoML's CLI with a Prometheus directory of its own.
_WRAPPER = """
import shutil, sys, tempfile
from bentoml._internal.configuration.containers import BentoMLContainer
prom = tempfile.mkdtemp(prefix="paydelay-prometheus-")
BentoMLContainer.prometheus_multiproc_dir.set(prom)
try:
    from bentoml_cli.cli import cli
    cli(sys.argv[1:], prog_name="bentoml")
finally:
    shutil.rmtree(prom, ignore_errors=True)
"""


class InsecureBind(SystemExit):
    """Refusing to serve a non-loopback address without a token."""


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, env: dict) -> str | None:
    """Refuse (InsecureBind, one line) a non-loopback host without a token; the warning to print
    for loopback without a token, else None."""
    if env.get(TOKEN_ENV):
        return None
    if not is_loopback(host):
        raise InsecureBind(f"refusing to serve {host} without a token: set {TOKEN_ENV} (clients "
                           "send Authorization: Bearer <token>) or bind 127.0.0.1")
    return (f"warning: {TOKEN_ENV} is not set: /score, /rerank and /explain are open to "
            f"anyone who can reach {host}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(tracking_uri: str | None = None, token: str | None = None,
               model: str | None = None, workers: int = 1, extra: dict | None = None) -> dict:
    """The server's environment: this process's, with the given settings (None removes a
    variable: tests pass exactly what they mean; `paydelay serve` passes the variables on).
    `tracking_uri` is the MLflow store named for the service (tracking and registry both); None
    leaves MLflow's own variables, if any, to decide."""
    env = {**os.environ, "PAYDELAY_WORKERS": str(workers), "PYTHONPATH": str(ROOT),
           "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true"}
    for key, value in ((TRACKING_ENV, tracking_uri), ("PAYDELAY_API_TOKEN", token),
                       ("PAYDELAY_MODEL", model)):
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env | (extra or {})


def command(port: int, host: str = "127.0.0.1", target: str = SERVICE) -> list[str]:
    """`bentoml serve` of the service from source (default) or of a built Bento's tag, with a
    Prometheus directory of its own."""
    return [sys.executable, "-c", _WRAPPER, "serve", target, "--host", host,
            "--port", str(port)]


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


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal the server's whole process group (BentoML forks workers), SIGKILL if it has not
    exited after STOP_TIMEOUT_S."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def serve_foreground(cmd: list[str], env: dict) -> int:
    """Run the server in the foreground (paydelay serve): SIGTERM, SIGINT and SIGHUP are passed
    on to its process group as SIGTERM; returns its exit code once it has exited."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)

    def forward(signum, frame):  # noqa: ARG001
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT,
                                                       signal.SIGHUP)}
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # pragma: no cover - the handler replaces it
                forward(signal.SIGINT, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop(proc)


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
