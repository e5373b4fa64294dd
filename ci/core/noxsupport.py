"""The one place that knows nox: installs a session's dependency groups (always
with the lock's constraints), builds the :class:`~ci.core.context.Context`,
calls the session module's ``run`` and turns a
:class:`~ci.core.errors.SuiteError` into one line and a non-zero exit."""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nox

from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import SuiteError
from ci.core.project import load_project

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


def engine(session: nox.Session, root: Path, name: str, *, groups: Sequence[str] = ()) -> None:
    """Run the session module ``ci.sessions.<name>`` for ``session``."""
    console = Console.from_env()
    try:
        has_venv = session.venv_backend != "none"
        if groups:
            install(session, root, groups)
            if installing_only(session):
                return
        project = load_project(root)
        ctx = Context(
            config=project.config,
            console=console,
            posargs=tuple(session.posargs),
            tool_bin=Path(session.bin) if has_venv else None,
            base_env=dict(os.environ),
            model=project,
        )
        module: Any = importlib.import_module(f"ci.sessions.{name}")
        module.run(ctx)
    except SuiteError as e:
        console.error(str(e))
        session.error(e.message)


def suite_tests(session: nox.Session, root: Path) -> None:
    """pytest over tests/ under coverage.py, subprocesses (nox runs of the
    engine) included; the report covers ci/."""
    install(session, root, ["suite-tests"])
    data = root / "reports" / "suite-tests"
    data.mkdir(parents=True, exist_ok=True)
    rcfile = str(root / "pyproject.toml")
    env = {"COVERAGE_RCFILE": rcfile, "COVERAGE_PROCESS_START": rcfile, "COVERAGE_FILE": str(data / ".coverage")}
    session.run("coverage", "erase", env=env)
    session.run("coverage", "run", "-m", "pytest", "tests", *session.posargs, env=env)
    session.run("coverage", "combine", "--quiet", env=env, success_codes=[0, 1])
    session.run("coverage", "report", "--skip-covered", "--sort=cover", env=env)
    session.run("coverage", "json", "-o", str(data / "coverage.json"), "--quiet", env=env)
