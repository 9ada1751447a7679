"""Child processes the command line starts (the dashboard's Streamlit server)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from inpars_core.errors import InparsError, InputFormatError

logger = logging.getLogger(__name__)


def run_forwarding_signals(
    command_line: list[str], env: dict[str, str], grace_s: float = 10.0
) -> int:
    """Run ``command_line`` as a child process until it exits, forwarding SIGINT, SIGTERM and
    SIGHUP to it, so stopping this process stops the child too (no orphaned server keeps its
    port). The child runs in its own session, so a Ctrl-C in the terminal reaches it once, through
    this process. A child still running ``grace_s`` seconds after the first forwarded signal is
    killed. Returns the child's exit code, or 0 when it stopped on a forwarded signal."""
    import signal
    import subprocess

    forwarded: list[tuple[int, float]] = []  # (signal, when): one entry per signal received
    started: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        forwarded.append((signum, time.monotonic()))
        if started and started[0].poll() is None:
            logger.debug("forwarding signal %d to pid %d", signum, started[0].pid)
            started[0].send_signal(signum)

    # handlers first: a signal that arrives while the child starts is forwarded just after
    handled = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        child = subprocess.Popen(command_line, env=env, start_new_session=True)
        started.append(child)
        if forwarded:
            child.send_signal(forwarded[0][0])
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if forwarded and time.monotonic() - forwarded[0][1] > grace_s:
                    logger.warning(
                        "pid %d ignored the stop signal for %.0f s; killing it", child.pid, grace_s
                    )
                    child.kill()
    finally:
        for child in started:  # an exception in this process: do not leave the child behind
            if child.poll() is None:
                child.kill()
                child.wait()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0 if forwarded else code


#: Set by ``inpars dashboard`` when it listens beyond this machine; the app then keeps the runs
#: directory of the command line (``dashboard.loading.FIXED_RUNS_DIR_ENV``).
FIXED_RUNS_DIR_ENV = "INPARS_DASHBOARD_FIXED_RUNS_DIR"


def is_loopback(address: str) -> bool:
    """Whether ``address`` (``--host``) is reachable from this machine only: ``localhost`` or a
    loopback IP (127.0.0.0/8, ::1). Anything else (``0.0.0.0``, a LAN address, a host name)
    serves other machines, and the dashboard then fixes its runs directory."""
    import ipaddress

    text = address.strip().strip("[]")
    if text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


def dashboard_launch(
    runs_dir: Path, port: int, address: str
) -> tuple[list[str], dict[str, str], list[str]]:
    """The Streamlit command line and environment of ``inpars dashboard``, and the notes to
    show (a runs folder that does not exist yet; a dashboard reachable from other machines)."""
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    if not app.is_file():
        raise InparsError(f"the dashboard app is not at {app}; run from a source checkout")
    given, runs_dir = runs_dir, Path(runs_dir).resolve()
    if runs_dir.exists() and not runs_dir.is_dir():
        raise InputFormatError(
            given,
            "--runs-dir: expected the folder given to 'inpars run --runs-dir', found a file",
            fix="give the runs folder (it holds one folder per experiment)",
        )
    notes = [] if runs_dir.is_dir() else [f"{runs_dir} does not exist yet; the dashboard says so"]
    command_line = [sys.executable, "-m", "streamlit", "run", str(app)]
    command_line += ["--server.port", str(port), "--server.address", address]
    command_line += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    command_line += ["--client.toolbarMode", "minimal", "--", "--runs-dir", str(runs_dir)]
    env = {**os.environ, "INPARS_RUNS_DIR": str(runs_dir)}
    env.pop(FIXED_RUNS_DIR_ENV, None)
    if not is_loopback(address):
        env[FIXED_RUNS_DIR_ENV] = "1"
        notes.append(
            f"listening on {address}: other machines can reach the dashboard, which has no "
            f"login; its runs directory is fixed to {runs_dir}. To share it with a team, keep "
            "the default 127.0.0.1 behind an authenticating proxy (README: 'What happens when "
            "things go wrong')"
        )
    return command_line, env, notes
