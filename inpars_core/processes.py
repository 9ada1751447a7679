"""Child processes the command line starts (the dashboard's Streamlit server)."""

from __future__ import annotations

import logging
import time

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
