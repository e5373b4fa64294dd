"""Every build, test and release job of this repository, as Nox sessions.

Each session is a few lines that call one function in ``ci/`` (see
``ci/__init__.py`` for the map); CI runs exactly these sessions.
``nox -l`` lists them, ``nox -s NAME -- ARGS`` passes ARGS on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from ci import cargo, pytests, sdist  # noqa: E402
from ci.noxsupport import call  # noqa: E402

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.error_on_external_run = True
nox.options.sessions = ["rust-tests", "python-tests", "sdist"]


@nox.session(name="rust-tests", venv_backend="none", tags=["ci", "test"])
def rust_tests(session: nox.Session) -> None:
    """Rust workspace tests, --locked (cargo-nextest + JUnit when installed)."""
    call(session, cargo.run_rust_tests, root=ROOT)


@nox.session(name="python-tests", tags=["ci", "test"])
def python_tests(session: nox.Session) -> None:
    """Build the extension once (abi3), pytest it on every allowed CPython here."""
    call(session, pytests.run_python_tests, groups=["build"], root=ROOT)


@nox.session(name="sdist", tags=["ci", "package", "release"])
def sdist_(session: nox.Session) -> None:
    """maturin sdist into dist/, proven complete by an offline build + import."""
    call(session, sdist.run_sdist, groups=["build"], root=ROOT)


@nox.session(name="linux-wheel", tags=["ci", "package", "release"])
def linux_wheel(session: nox.Session) -> None:
    """manylinux2014 abi3 wheel into dist/, native libraries bundled (zig, no Docker needed)."""
    from ci import linux_wheel

    call(session, linux_wheel.run_linux_wheel, groups=["wheel"], root=ROOT)


@nox.session(name="windows-gnu-wheel", tags=["package", "release"])
def windows_gnu_wheel(session: nox.Session) -> None:
    """win_amd64 abi3 wheel for x86_64-pc-windows-gnu into dist/, DLL closure bundled ('-- --setup')."""
    from ci import windows

    call(session, windows.run_windows_gnu_wheel, groups=["windows"], root=ROOT)


@nox.session(name="publish-check", tags=["ci-gate", "release"])
def publish_check(session: nox.Session) -> None:
    """Release gate over dist/: metadata, tags, contents, licences, smoke installs.

    '-- --release': also demand the complete set (one wheel per publish.platforms
    entry + the sdist, one version, nothing stale). '-- --no-sdist-build' and
    '-- --no-smoke' skip the slow parts for a quick look.
    """
    from ci import publish_check

    call(session, publish_check.run_publish_check, groups=["check"], root=ROOT)


@nox.session(name="coverage", tags=["ci"])
def coverage(session: nox.Session) -> None:
    """Rust (tarpaulin + PyO3 layer reached from pytest) and Python coverage into coverage/, with floors."""
    from ci import coverage

    call(session, coverage.run_coverage, groups=["coverage"], root=ROOT)


@nox.session(name="lint-workflows", tags=["ci", "lint"])
def lint_workflows(session: nox.Session) -> None:
    """zizmor (offline, zero findings), workflow schema, and parity: CI jobs run only these sessions."""
    from ci import workflows

    call(session, workflows.run_lint_workflows, groups=["lint"], root=ROOT)


@nox.session(name="publish-rehearsal", tags=["release"])
def publish_rehearsal(session: nox.Session) -> None:
    """Upload dist/ to a throwaway package index on loopback, install from it, import."""
    from ci import rehearsal

    call(session, rehearsal.run_publish_rehearsal, groups=["rehearsal"], root=ROOT)


@nox.session(name="suite-tests", tags=["self"])
def suite_tests(session: nox.Session) -> None:
    """This repository's own tests (tests/); '-- -m "not slow"' for the fast subset."""
    session.install(*nox.project.dependency_groups(nox.project.load_toml(ROOT / "pyproject.toml"), "suite-tests"))
    session.run("pytest", "tests", *session.posargs)
