"""One suite run per checkout.

Sessions that write ``dist/``, ``reports/`` or the shared build folders take
an exclusive lock on a file in the checkout (``.nox/maturin-suite.lock``)
for the whole nox process. A second run in the same checkout stops at once
with one line naming the holder's PID and session, instead of racing on the
same files. The lock is the operating system's (``flock`` / ``msvcrt``), so
a killed run never leaves a stale lock behind; the PID and session written
into the file are only there to be reported.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO

from ci.core.errors import SuiteError

LOCK_NAME = "maturin-suite.lock"
# The lock this process holds: nox runs every selected session in one
# process, one after another, so the second session of a run reuses it.
_HELD: dict[Path, IO[str]] = {}


class RunLocked(SuiteError):
    """Another suite run holds this checkout."""


def _try_lock(handle: IO[str]) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def holder(path: Path) -> str:
    """Who holds the lock, as written by the holder."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    return f"PID {data.get('pid', '?')}, session {data.get('session', '?')}"


def acquire(root: Path, session: str) -> Path:
    """Hold the checkout's run lock for this process (re-entrant per process)."""
    path = root / ".nox" / LOCK_NAME
    if path in _HELD:
        _record(_HELD[path], session)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+", encoding="utf-8")
    if not _try_lock(handle):
        handle.close()
        raise RunLocked(
            f"another suite run is using this checkout ({holder(path)}; lock {path})",
            hint="wait for it to finish, or run in another clone",
        )
    _HELD[path] = handle
    _record(handle, session)
    return path


def _record(handle: IO[str], session: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "session": session}))
    handle.flush()
