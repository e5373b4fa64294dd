"""Shared helpers for the suite's own tests.

End-to-end tests never run in the checkout itself: they copy the workspace
(or the fixture workspace plus the suite's noxfile.py and ci/) into a
temporary folder and run real nox sessions there.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SUITE_FILES = ("noxfile.py", "ci")


def tracked_files(root: Path) -> list[str]:
    """Files git tracks (plus untracked, not ignored ones) under ``root``."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [p for p in out.split("\0") if p and (root / p).is_file()]


def copy_repo(dest: Path) -> Path:
    """A copy of this repository as a fresh clone would have it."""
    for rel in tracked_files(REPO):
        if rel.startswith("tests/fixtures/"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dest


def drop_suite_into(workspace: Path) -> Path:
    """Copy the suite (noxfile.py and ci/) into another maturin workspace."""
    for name in SUITE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, workspace / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, workspace / name)
    return workspace


def copy_fixture(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("target", ".nox", "__pycache__"))
    return drop_suite_into(dest)


def nox_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The outer run may itself be on GitHub or inside nox; keep the inner plain.
    env.pop("GITHUB_ACTIONS", None)
    env.pop("NOX_CURRENT_SESSION", None)
    env.pop("VIRTUAL_ENV", None)
    # Local mode unless a test asks for CI mode (nox errors on a missing
    # interpreter when CI is set).
    env.pop("CI", None)
    env.update(extra or {})
    return env


def group_venv(group: str, dest: Path) -> Path:
    """A venv at ``dest`` with one dependency group of the root
    pyproject.toml installed, pinned by ci/constraints.txt; returns its bin
    dir. When the outer run measures coverage (``COVERAGE_PROCESS_START``),
    coverage.py and a start-up hook go in too, so the engine running in nox
    processes of this venv is measured."""
    import nox.project

    from ci.blocks.venvs import find_uv

    reqs = nox.project.dependency_groups(nox.project.load_toml(REPO / "pyproject.toml"), group)
    measured = bool(os.environ.get("COVERAGE_PROCESS_START"))
    if measured:
        reqs = [*reqs, "coverage"]
    constraints = ["-c", str(REPO / "ci" / "constraints.txt")]
    python = dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    uv = find_uv(os.environ)
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(dest)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *constraints, *reqs], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *constraints, *reqs], check=True)
    if measured:
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(site, "suite-coverage.pth").write_text("import coverage; coverage.process_startup()\n")
    return python.parent


@functools.cache
def nox_python() -> str:
    """A Python whose venv holds only the ``nox`` dependency group, as a user's
    does after ``pip install nox[uv]``: sessions must bring every other tool
    themselves. Made once and reused (under the system temp dir)."""
    pyproject = (REPO / "pyproject.toml").read_bytes()
    measured = b"measured" if os.environ.get("COVERAGE_PROCESS_START") else b""
    constraints = (REPO / "ci" / "constraints.txt").read_bytes()
    tag = hashlib.sha256(sys.version.encode() + pyproject + constraints + measured).hexdigest()[:10]
    venv = Path(tempfile.gettempdir()) / f"maturin-suite-test-nox-{tag}"
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    if not (venv / "ready").exists():
        shutil.rmtree(venv, ignore_errors=True)  # a half-made one of ours
        bindir = group_venv("nox", venv)
        (venv / "ready").write_text("ok")
    return str(bindir / ("python.exe" if os.name == "nt" else "python"))


def run_nox(
    workdir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """``nox ARGS`` in ``workdir``, with nox from a venv that has nothing but
    nox (see :func:`nox_python`); output captured."""
    return subprocess.run(
        [nox_python(), "-m", "nox", "--no-color", *args],
        cwd=workdir,
        env=nox_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def assert_ok(proc: subprocess.CompletedProcess[str]) -> str:
    text = output(proc)
    assert proc.returncode == 0, text[-6000:]
    return text


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A non-zero exit with a readable message and no Python traceback."""
    text = output(proc)
    assert proc.returncode != 0, text[-4000:]
    assert "Traceback (most recent call last)" not in text, text[-4000:]
    for needle in needles:
        assert needle in text, f"{needle!r} not in output:\n{text[-4000:]}"
    return text


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def windows_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the repository shared by the Windows tests (the cargo
    target dir for the cross build is expensive, so it is built once)."""
    return copy_repo(tmp_path_factory.mktemp("windows-ws"))
