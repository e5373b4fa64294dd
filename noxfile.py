# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "nox[uv]>=2026.10.20",
#     "fastjsonschema>=2.21",
#     "installer>=0.7",
#     "packaging>=24.2",
#     "pefile>=2024.8.26",
#     "pyelftools>=0.31",
#     "pyyaml>=6.0",
#     "delvewheel>=1.13",
# ]
# ///
"""Every build, test and release job of this repository, as Nox sessions.

Each session is one line that hands its module in ``ci/sessions/`` to the
engine (``ci/core/noxsupport.py``); CI runs exactly these sessions.
``nox -l`` lists them, ``nox -s NAME -- ARGS`` passes ARGS on. The block
above lists the engine's own libraries: nox installs them into
``.nox/_nox_script_mode`` when the Python running nox lacks them (pipx, uv
tool); ``pip install --group nox -c ci/constraints.txt`` puts them beside nox.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# nox loads this file by path: its folder (holding the engine, ci/) is not
# importable by itself.
sys.path.insert(0, str(ROOT))

from ci.core.noxsupport import engine, python_versions, suite_tests  # noqa: E402

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.download_python = "never"
nox.options.error_on_external_run = True
nox.options.sessions = ["rust-tests", "python-tests", "sdist"]


@nox.session(name="rust-tests", venv_backend="none", tags=["ci", "test"])
def rust_tests(session: nox.Session) -> None:
    """Rust workspace tests, --locked (cargo-nextest + JUnit when installed)."""
    engine(session, ROOT, "rust_tests")


@nox.session(name="python-tests", python=python_versions(ROOT), tags=["ci", "test"])
def python_tests(session: nox.Session) -> None:
    """pytest on one allowed CPython (-p 3.12); the abi3 wheel is built once per run."""
    engine(session, ROOT, "python_tests", groups=["build"])


@nox.session(name="sdist", tags=["ci", "package", "release"])
def sdist(session: nox.Session) -> None:
    """maturin sdist into dist/, proven complete by an offline build + import."""
    engine(session, ROOT, "sdist", groups=["build"])


@nox.session(name="linux-wheel", tags=["ci", "package", "release"])
def linux_wheel(session: nox.Session) -> None:
    """manylinux2014 abi3 wheel into dist/, native libraries bundled (zig, no Docker needed)."""
    engine(session, ROOT, "linux_wheel", groups=["wheel"])


@nox.session(name="windows-gnu-wheel", tags=["ci", "package", "release"])
def windows_gnu_wheel(session: nox.Session) -> None:
    """win_amd64 abi3 wheel for x86_64-pc-windows-gnu into dist/, DLL closure bundled ('-- --setup')."""
    engine(session, ROOT, "windows_gnu_wheel", groups=["windows"])


@nox.session(name="publish-check", tags=["ci-gate", "release"])
def publish_check(session: nox.Session) -> None:
    """Release gate over dist/ ('-- --release' for a complete set; --no-sdist-build, --no-smoke)."""
    engine(session, ROOT, "publish_check", groups=["check"])


@nox.session(name="coverage", tags=["ci"])
def coverage(session: nox.Session) -> None:
    """Rust (tarpaulin + PyO3 layer reached from pytest) and Python coverage into coverage/, with floors."""
    engine(session, ROOT, "coverage", groups=["coverage"])


@nox.session(name="lint", tags=["ci", "lint"])
def lint(session: nox.Session) -> None:
    """ruff (lint + format), mypy --strict on ci/, cargo fmt --check, cargo clippy -D warnings."""
    engine(session, ROOT, "lint", groups=["lint"])


@nox.session(name="lint-workflows", tags=["ci", "lint"])
def lint_workflows(session: nox.Session) -> None:
    """zizmor (offline, zero findings), workflow schema, and parity: CI jobs run only these sessions."""
    engine(session, ROOT, "lint_workflows", groups=["lint-workflows"])


@nox.session(name="publish-rehearsal", tags=["release"])
def publish_rehearsal(session: nox.Session) -> None:
    """Upload dist/ to a throwaway package index on loopback, install from it, import."""
    engine(session, ROOT, "publish_rehearsal", groups=["rehearsal"])


@nox.session(name="doctor", venv_backend="none", tags=["check"])
def doctor(session: nox.Session) -> None:
    """Which sessions can run here (with install commands for what is missing), and project cross-checks."""
    engine(session, ROOT, "doctor")


@nox.session(name="adopt", venv_backend="none")
def adopt(session: nox.Session) -> None:
    """Write this suite into the maturin workspace at PATH ('-- PATH [--force]'), settings derived from it."""
    engine(session, ROOT, "adopt")


# Tagged <workflow>-setup: every job of ci.yml and release.yml runs it first
# (`nox -s setup -- <session>`); no plan lists it (they list -t ci, ci-gate).
@nox.session(name="setup", venv_backend="none", tags=["ci-setup", "release-setup"])
def setup(session: nox.Session) -> None:
    """Install what the named sessions need from this machine, per ci/requirements.toml ('-- coverage', --dry-run)."""
    engine(session, ROOT, "setup")


@nox.session(name="wheel-tests", python=python_versions(ROOT), tags=["ci-gate"])
def wheel_tests(session: nox.Session) -> None:
    """pytest against a built wheel, not rebuilt ('-- dist/X.whl' or a folder, default dist/); -p 3.12 picks one."""
    engine(session, ROOT, "wheel_tests")


@nox.session(name="suite-tests", tags=["self"])
def suite_tests_(session: nox.Session) -> None:
    """This repository's own tests with the engine's line coverage; '-- -m "not slow"' for the fast subset."""
    suite_tests(session, ROOT)
