"""Starting the server: secure by default, signals passed on, the documented variables
honoured by `paydelay serve`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from serving import launcher


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_a_public_address_without_a_token_is_refused_in_one_line(host):
    with pytest.raises(launcher.InsecureBind) as err:
        launcher.check_bind(host, {})
    assert "\n" not in str(err.value) and "PAYDELAY_API_TOKEN" in str(err.value)
    assert launcher.check_bind(host, {"PAYDELAY_API_TOKEN": "t"}) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_without_a_token_is_served_with_a_warning(host):
    warning = launcher.check_bind(host, {})
    assert warning and "PAYDELAY_API_TOKEN" in warning
    assert launcher.check_bind(host, {"PAYDELAY_API_TOKEN": "t"}) is None


_CHILD = """
import signal, sys, time
def bye(*a):
    time.sleep(0.3)  # a graceful shutdown takes a moment
    open(sys.argv[1], "w").write("stopped")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
open(sys.argv[1], "w").write("ready")
while True:
    time.sleep(0.1)
"""

_PARENT = """
import sys
from serving.launcher import serve_foreground
sys.exit(serve_foreground([sys.executable, "-c", sys.argv[2], sys.argv[1]], {}))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_foreground_forwards_signals_and_exits_after_its_server(tmp_path, sig):
    mark = tmp_path / "child"
    env = {**os.environ, "PYTHONPATH": str(launcher.ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, str(mark), _CHILD], env=env)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (mark.exists() and mark.read_text()):
        time.sleep(0.05)
    assert mark.read_text() == "ready"
    parent.send_signal(sig)
    assert parent.wait(timeout=20) == 0
    assert mark.read_text() == "stopped"  # the server had exited before its parent did


def test_the_server_command_gives_each_server_its_own_prometheus_directory():
    cmd = launcher.command(1234)
    assert cmd[:2] == [sys.executable, "-c"] and "prometheus_multiproc_dir.set" in cmd[2]
    assert "mkdtemp" in cmd[2] and cmd[3:] == ["serve", launcher.SERVICE, "--host",
                                               "127.0.0.1", "--port", "1234"]


@pytest.fixture()
def served(monkeypatch):
    """`paydelay serve` with the server start replaced by a record of what it would run."""
    import paydelay_cli
    from serving import launcher

    calls = []
    # the CLI imports serving.launcher when `serve` runs: replace the function there
    monkeypatch.setattr(launcher, "serve_foreground",
                        lambda cmd, env: calls.append((cmd, env)) or 0)
    for key in ("PAYDELAY_MODEL", "PAYDELAY_WORKERS", "PAYDELAY_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    def run(*args, **env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        result = CliRunner().invoke(paydelay_cli.app, ["serve", *args])
        return result, (calls[-1] if calls else None)

    return run


def test_serve_honours_paydelay_model_and_workers(served):
    result, (cmd, env) = served(PAYDELAY_MODEL="challenger", PAYDELAY_WORKERS="3",
                                PAYDELAY_TRACKING_URI="sqlite:////tmp/x.db",
                                PAYDELAY_STORE_PATH="/tmp/store", PAYDELAY_CONFIG="/tmp/c.toml",
                                PAYDELAY_RELEASE="rel:1")
    assert result.exit_code == 0, result.output
    assert env["PAYDELAY_MODEL"] == "challenger" and env["PAYDELAY_WORKERS"] == "3"
    for key, value in (("PAYDELAY_TRACKING_URI", "sqlite:////tmp/x.db"),
                       ("PAYDELAY_STORE_PATH", "/tmp/store"),
                       ("PAYDELAY_CONFIG", "/tmp/c.toml"), ("PAYDELAY_RELEASE", "rel:1")):
        assert env[key] == value
    assert "challenger" in result.output and "PAYDELAY_API_TOKEN is not set" in result.output


def test_serve_options_win_over_the_variables(served):
    result, (cmd, env) = served("--model", "3", "--workers", "2", PAYDELAY_MODEL="challenger",
                                PAYDELAY_WORKERS="4")
    assert result.exit_code == 0 and env["PAYDELAY_MODEL"] == "3"
    assert env["PAYDELAY_WORKERS"] == "2"


def test_serve_refuses_a_public_host_without_a_token(served):
    result, call = served("--host", "0.0.0.0")
    assert result.exit_code == 2 and call is None
    assert "refusing to serve 0.0.0.0 without a token" in result.output
    result, (cmd, env) = served("--host", "0.0.0.0", PAYDELAY_API_TOKEN="t")
    assert result.exit_code == 0 and cmd[cmd.index("--host") + 1] == "0.0.0.0"
