"""Writing artifacts into ``dist/`` so that nothing partial is ever seen.

A session builds into its own staging folder, checks what it built, then
publishes each file with :func:`publish`: a copy to a hidden temporary name in
``dist/`` followed by an atomic :func:`os.replace`. An interrupted or failed
build therefore leaves no partial wheel in ``dist/``, and nothing that another
session wrote there is ever deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".partial-"


def publish(src: Path, dist: Path) -> Path:
    """Atomically place ``src`` in ``dist`` under its own name; return the path."""
    dist.mkdir(parents=True, exist_ok=True)
    final = dist / src.name
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_MARK}{src.name}.", dir=dist)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); artifacts are ordinary files.
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        # A failed write carries no file name; name the artifact being written.
        raise OSError(e.errno, e.strerror, str(final)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


@contextmanager
def staging_dir(parent: Path, label: str) -> Iterator[Path]:
    """A fresh folder that this process owns; removed afterwards, whatever happens."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stale_partials(dist: Path) -> list[Path]:
    """Temporary files a killed :func:`publish` left behind (ours to remove)."""
    if not dist.is_dir():
        return []
    return sorted(p for p in dist.iterdir() if p.name.startswith(TMP_MARK))
