"""One writer per experiment directory: ``inpars run`` holds ``<runs>/<experiment>/.lock``.

The lock is an ``flock`` on that file, which the kernel releases when the process ends, however
it ends (kill -9 included): a lock file left by a dead process is stale and simply taken over.
The file holds the holder's pid, host and start time, so a second ``inpars run`` on the same
experiment is refused at once with a message naming them (it does not wait: a run can last
hours and two runs would pay twice for the same requests). Different experiments of one runs
directory run side by side.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from inpars_core.errors import InparsError

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


class ExperimentLockedError(InparsError):
    """Another ``inpars run`` holds the experiment directory."""


class RunsDirError(InparsError):
    """The runs directory cannot be created, read or written."""


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _unwritable(root: Path, exc: OSError) -> RunsDirError:
    return RunsDirError(
        f"{root}: cannot create or write the experiment folder ({exc.strerror or exc}). Fix: "
        "give --runs-dir a folder you can write (or fix its permissions); a path that is a "
        "file must be a folder"
    )


@contextlib.contextmanager
def experiment_lock(root: Path) -> Iterator[Path]:
    """Create ``root`` and hold its lock for the duration of the block.

    Raises :class:`ExperimentLockedError` naming the holder's pid and host when another live
    process holds it, and :class:`RunsDirError` when ``root`` cannot be created or written.
    """
    root = Path(root)
    path = root / LOCK_FILE
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied", str(root))
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _holder(path)
                started = holder.get("started")
                since = (
                    time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(started))
                    if isinstance(started, int | float)
                    else ""
                )
                raise ExperimentLockedError(
                    f"{root} is in use by another 'inpars run' (pid {holder.get('pid', '?')} on "
                    f"host {holder.get('host', '?')}{since}); two runs of one experiment would "
                    "pay twice for the same requests and overwrite each other's artifacts. Fix: "
                    "wait for it to finish or stop it, then rerun (it resumes); a lock left by a "
                    "dead process is taken over automatically"
                ) from None
            # the file may have been removed by its previous holder between open and flock
            if os.fstat(fd).st_ino == getattr(_stat(path), "st_ino", None):
                break
            os.close(fd)
    except OSError as exc:
        raise _unwritable(root, exc) from None
    previous = _holder(path)
    if previous.get("pid"):
        logger.info(
            "taking over a stale lock of pid %s on host %s", previous["pid"], previous.get("host")
        )
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)  # releases the flock


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def experiment_session(root: Path) -> Iterator[None]:
    """What ``inpars run`` holds while it runs an experiment: :func:`experiment_lock` on its
    folder, and every log record also written to ``root/run.log``."""
    with experiment_lock(root):
        handler = logging.FileHandler(Path(root) / "run.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        try:
            yield
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
