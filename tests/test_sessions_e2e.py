"""End-to-end: real nox sessions on a copy of this workspace and on the
differently laid out fixture workspace (same suite, different config).

Each copy is made once per test module and shared by the tests that follow,
in order: later tests rely on the builds of earlier ones (as a developer's
edit-test loop does).
"""

from __future__ import annotations

import json
import re
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import (
    assert_clean_failure,
    assert_ok,
    copy_fixture,
    copy_repo,
    run_nox,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("q-kangaroo"))


@pytest.fixture(scope="module")
def fixture_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_fixture("mini-ws", tmp_path_factory.mktemp("mini") / "ws")


def test_nox_lists_sessions_with_descriptions(workspace: Path) -> None:
    proc = run_nox(workspace, "-l", "--json", "-k", "True")
    sessions = {s["session"]: s for s in json.loads(assert_ok(proc).strip().splitlines()[-1])}
    for name in ("rust-tests", "python-tests-3.11", "sdist", "lint", "publish-check"):
        assert sessions[name]["description"], name
    assert {s["python"] for s in sessions.values() if s["name"] == "python-tests"} >= {"3.9", "3.13"}


def test_rust_tests_on_workspace(workspace: Path) -> None:
    text = assert_ok(run_nox(workspace, "-s", "rust-tests"))
    assert "== rust-tests ==" in text
    assert "qsym-python (extension module; tested by python-tests)" in text
    assert re.search(r"tests\s+\d+ run, 0 failed", text) or "test result: ok" in text


def test_rust_tests_forwards_extra_args(workspace: Path) -> None:
    text = assert_ok(run_nox(workspace, "-s", "rust-tests", "--", "a000594"))
    # Only the filtered test ran.
    assert "a000594_ramanujan_tau" in text
    assert "a000041_large_values" not in text


def test_python_tests_on_workspace_then_no_rebuild(workspace: Path) -> None:
    first = assert_ok(run_nox(workspace, "-s", "python-tests"))
    ran = re.findall(r"Session python-tests-(3\.\d+) was successful", first)
    assert "3.11" in ran
    # One wheel per run, whatever the number of Pythons.
    assert first.count("--- maturin build (dev profile, for testing)") == 1, first[-3000:]
    assert first.count("reuse this run's wheel") == len(ran) - 1
    assert (workspace / "reports" / "python-tests").is_dir()
    second = assert_ok(run_nox(workspace, "-s", "python-tests", "-p", "3.11", "--", "-k", "partitions"))
    # No source change: cargo compiles nothing of the workspace again, and the
    # unchanged wheel is not reinstalled.
    assert "Compiling qsym-core" not in second
    assert "Compiling qsym-python" not in second
    assert "already installed, unchanged" in second
    assert "1 passed" in second or "2 passed" in second


def test_dash_p_runs_only_that_python(workspace: Path) -> None:
    text = assert_ok(run_nox(workspace, "-s", "python-tests", "-p", "3.11"))
    assert re.findall(r"Running session (python-tests-\S+)", text) == ["python-tests-3.11"]


def test_sdist_on_workspace(workspace: Path) -> None:
    """Also: nox comes from a venv whose bin/ is not on PATH (pipx, a project
    venv): the engine finds uv beside nox, never falls back to a pip that
    uv-made venvs do not have."""
    import os

    from conftest import nox_env, nox_python

    assert str(Path(nox_python()).parent) not in nox_env()["PATH"].split(os.pathsep)
    text = assert_ok(run_nox(workspace, "-s", "sdist"))
    assert "No module named pip" not in text
    (sdist,) = (workspace / "dist").glob("q_kangaroo-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {Path(*Path(m).parts[1:]).as_posix() for m in tar.getnames()}
    assert "Cargo.lock" in names
    assert "crates/qsym-core/src/partitions.rs" in names
    assert "offline build  ok, imported as: q_kangaroo" in text
    assert list((workspace / "dist").iterdir()) == [sdist]


def test_fixture_workspace_runs_the_same_sessions(fixture_ws: Path) -> None:
    rust = assert_ok(run_nox(fixture_ws, "-s", "rust-tests"))
    assert "tally-py (extension module; tested by python-tests)" in rust
    py = assert_ok(run_nox(fixture_ws, "-s", "python-tests"))
    assert "Python 3.11" in py
    assert (fixture_ws / "out" / "reports" / "python-tests").is_dir()
    sd = assert_ok(run_nox(fixture_ws, "-s", "sdist"))
    assert "offline build  ok, imported as:" in sd
    (sdist,) = (fixture_ws / "out" / "dist").glob("tallyho-1.4.2.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {Path(*Path(m).parts[1:]).as_posix() for m in tar.getnames()}
    assert {"Cargo.lock", "engine/Cargo.toml"} <= names


@contextmanager
def edited_config(ws: Path, old: str, new: str) -> Iterator[None]:
    """Temporarily replace ``old`` by ``new`` in the workspace's pyproject.toml."""
    pyproject = ws / "pyproject.toml"
    text = pyproject.read_text()
    assert old in text
    pyproject.write_text(text.replace(old, new))
    try:
        yield
    finally:
        pyproject.write_text(text)


def test_fixture_python_tests_skips_a_missing_python_locally(fixture_ws: Path) -> None:
    with edited_config(fixture_ws, '["3.11", "3.12"]', '["3.11", "3.97"]'):
        out = assert_ok(run_nox(fixture_ws, "-s", "python-tests"))
    assert "Session python-tests-3.97 skipped: Python interpreter 3.97 not found" in out
    assert "Session python-tests-3.11 was successful" in out


def test_missing_python_fails_in_ci_mode(fixture_ws: Path) -> None:
    """CI set (as on GitHub): a missing allowed interpreter is an error, so CI
    cannot go green having tested one Python."""
    with edited_config(fixture_ws, '["3.11", "3.12"]', '["3.11", "3.97"]'):
        proc = run_nox(fixture_ws, "-s", "python-tests", env={"CI": "true"})
    assert_clean_failure(proc, "Session python-tests-3.97 failed: Python interpreter 3.97 not found")


def test_error_on_missing_interpreters_flag_locally(fixture_ws: Path) -> None:
    with edited_config(fixture_ws, '["3.11", "3.12"]', '["3.97"]'):
        proc = run_nox(fixture_ws, "-s", "python-tests", "--error-on-missing-interpreters")
    assert_clean_failure(proc, "Python interpreter 3.97 not found")


# --- bad input: clear message, non-zero exit, no traceback -------------------


def test_bad_config_key(fixture_ws: Path) -> None:
    with edited_config(fixture_ws, "python-versions =", "pyhton-versions ="):
        proc = run_nox(fixture_ws, "-s", "rust-tests")
    assert_clean_failure(proc, "unknown key tool.maturin-suite.pyhton-versions")


def test_missing_cargo(fixture_ws: Path, tmp_path: Path) -> None:
    import shutil
    import sys

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    proc = run_nox(fixture_ws, "-s", "rust-tests", env={"PATH": str(bindir)})
    assert shutil.which("cargo", path=str(bindir)) is None
    assert_clean_failure(proc, "cargo (the Rust toolchain) was not found on PATH", "rustup")


def test_missing_gmp(workspace: Path, tmp_path: Path) -> None:
    # The C compiler cargo's build scripts would use cannot see GMP.
    proc = run_nox(workspace, "-s", "rust-tests", env={"CC": f"gcc --sysroot={tmp_path} -nostdinc"})
    assert_clean_failure(
        proc,
        "GMP: the header <gmp.h> was not found",
        "apt-get install libgmp-dev",
        "yum install -y gmp-devel",
        "pacman -S mingw-w64-x86_64-gmp",
    )


def test_wheel_is_abi3_and_has_the_stub(workspace: Path) -> None:
    (wheel,) = (workspace / "target" / "suite" / "python-tests" / "wheel").glob("*.whl")
    assert "-cp39-abi3-" in wheel.name
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "q_kangaroo/_core.pyi" in names and "q_kangaroo/py.typed" in names
