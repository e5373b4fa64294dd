"""The one place that knows about nox: turns a nox session into a
:class:`~ci.context.Context`, calls a session function, and turns a
:class:`~ci.errors.SuiteError` into a one-line error and a non-zero exit."""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ci.config import load_config
from ci.console import Console
from ci.context import Context
from ci.errors import SuiteError


def dependency_group_requirements(root: Path, groups: Sequence[str]) -> list[str]:
    import nox

    reqs: list[str] = []
    for group in groups:
        reqs += nox.project.dependency_groups(nox.project.load_toml(root / "pyproject.toml"), group)
    return reqs


def use_venv_libraries(venv_bin: Path) -> Path | None:
    """Make the libraries installed in the session venv importable here.

    Session functions run in the nox process, but some read artifacts with
    libraries that only the session's dependency group installs (pefile,
    pyelftools, PyYAML, ...). Sessions without ``python=`` get a venv of the
    interpreter running nox, so its site-packages is compatible; it is
    appended to ``sys.path``, so nox's own packages still win.
    """
    venv = venv_bin.parent
    version = "%d.%d" % sys.version_info[:2]
    for candidate in (venv / "lib" / f"python{version}" / "site-packages", venv / "Lib" / "site-packages"):
        if candidate.is_dir():
            if str(candidate) not in sys.path:
                site.addsitedir(str(candidate))
            return candidate
    return None


def call(
    session: Any,
    func: Callable[[Context], object],
    *,
    groups: Sequence[str] = (),
    root: Path | None = None,
) -> None:
    """Run ``func`` for ``session``; install ``groups`` into its venv first."""
    console = Console.from_env()
    root = (root or Path(session.invoked_from)).resolve()
    try:
        config = load_config(root)
        tool_bin = None
        if groups:
            session.install(*dependency_group_requirements(root, groups))
            tool_bin = Path(session.bin)
            use_venv_libraries(tool_bin)
        if getattr(session, "_runner", None) is not None and session._runner.global_config.install_only:
            console.say("install-only: skipping the session's steps")
            return
        ctx = Context(
            config=config,
            console=console,
            posargs=tuple(session.posargs),
            tool_bin=tool_bin,
            base_env=dict(os.environ),
        )
        func(ctx)
    except SuiteError as e:
        console.error(str(e))
        session.error(e.message)
