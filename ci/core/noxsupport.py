"""The one place that knows nox: installs a session's dependency groups (always
with the lock's constraints), builds the :class:`~ci.core.context.Context`,
calls the session module's ``run`` and turns a
:class:`~ci.core.errors.SuiteError` into one line and a non-zero exit."""

from __future__ import annotations

import importlib
import os
import signal
import tomllib
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import nox

from ci.core import runlock
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import SuiteError
from ci.core.project import load_project, session_env

CONSTRAINTS = Path("ci") / "constraints.txt"
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")


def python_versions(root: Path) -> list[str]:
    """The CPythons ``python-tests`` is parametrised over (read without
    validation: this runs when nox loads the noxfile; every session validates
    the whole table when it starts)."""
    try:
        with (root / "pyproject.toml").open("rb") as f:
            table = tomllib.load(f).get("tool", {}).get("maturin-suite", {})
    except (OSError, tomllib.TOMLDecodeError):
        return list(DEFAULT_PYTHONS)
    versions = table.get("python-versions", DEFAULT_PYTHONS)
    return [str(v) for v in versions] if isinstance(versions, list) and versions else list(DEFAULT_PYTHONS)


def group_requirements(root: Path, groups: Sequence[str]) -> list[str]:
    data = nox.project.load_toml(root / "pyproject.toml")
    return [req for group in groups for req in nox.project.dependency_groups(data, group)]


def install(session: nox.Session, root: Path, groups: Sequence[str]) -> None:
    """The one install path: dependency groups, pinned by the lock's constraints."""
    session.install("-c", str(root / CONSTRAINTS), *group_requirements(root, groups))


def installing_only(session: nox.Session) -> bool:
    """True under ``nox --install-only`` (nox then skips ``session.run``, which
    returns None instead of the command's success)."""
    return session.run("python", "-c", "", silent=True) is None


# Sessions that only read: they may run beside another run in the checkout.
READ_ONLY = frozenset({"doctor", "lint_workflows"})
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a CI cancel) and SIGHUP end a session the way Ctrl-C does:
    children are ended by the code that started them, temporary files and
    staging folders are removed by their ``finally`` blocks."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextmanager
def stops_like_ctrl_c() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, _interrupt)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def os_error_line(e: OSError) -> str:
    """One line naming the path, the operation (the engine function that
    failed) and the system's reason."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f"{os.sep}ci{os.sep}" in f.filename]
    where = f" in {Path(frames[-1].filename).stem}.{frames[-1].name}" if frames else ""
    paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
    return f"{e.strerror or type(e).__name__}: {paths or '(no path)'}{where}"


def context_for(session: nox.Session, root: Path, console: Console) -> Context:
    project = load_project(root)
    return Context(
        config=project.config,
        console=console,
        posargs=tuple(session.posargs),
        tool_bin=Path(session.bin) if session.venv_backend != "none" else None,
        base_env=session_env(project.config, os.environ),
        model=project,
    )


def engine(session: nox.Session, root: Path, name: str, *, groups: Sequence[str] = ()) -> None:
    """Run the session module ``ci.sessions.<name>`` for ``session``."""
    console = Console.from_env()
    try:
        with stops_like_ctrl_c():
            if groups:
                install(session, root, groups)
                if installing_only(session):
                    return
            if name not in READ_ONLY:
                runlock.acquire(root, session.name)
            ctx = context_for(session, root, console)
            module: Any = importlib.import_module(f"ci.sessions.{name}")
            module.run(ctx)
    except SuiteError as e:
        console.error(str(e))
        session.error(e.message)
    except OSError as e:
        line = os_error_line(e)
        console.error(line)
        session.error(line)


def suite_tests(session: nox.Session, root: Path) -> None:
    """pytest over tests/ under coverage.py, subprocesses (nox runs of the
    engine) included; the report covers ci/."""
    install(session, root, ["suite-tests"])
    data = root / "reports" / "suite-tests"
    data.mkdir(parents=True, exist_ok=True)
    rcfile = str(root / "pyproject.toml")
    env = {"COVERAGE_RCFILE": rcfile, "COVERAGE_PROCESS_START": rcfile, "COVERAGE_FILE": str(data / ".coverage")}
    session.run("coverage", "erase", env=env)
    try:
        # No path: pytest takes testpaths (tests/) unless the arguments name files.
        session.run("coverage", "run", "-m", "pytest", *session.posargs, env=env)
    finally:  # the engine's coverage is reported whether the tests passed or not
        session.run("coverage", "combine", "--quiet", env=env, success_codes=[0, 1])
        session.run("coverage", "report", "--sort=cover", env=env, success_codes=[0, 1])
        session.run("coverage", "json", "-o", str(data / "coverage.json"), "--quiet", env=env, success_codes=[0, 1])
