"""The doctor session: a machine lacking a tool makes the sessions that need
it "missing", with the install commands; the project cross-checks (module
name, abi3 against requires-python, python-source) catch real mismatches in
small projects made here.

Machines are simulated by PATH: an empty folder (no cargo, no compiler), or a
folder of stand-in programs (a fake cargo that answers ``--version``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from ci.blocks import crosschecks
from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import CheckFailed
from ci.core.project import Project, build_project
from ci.sessions import doctor

REPO = Path(__file__).resolve().parent.parent
needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not installed")


@pytest.fixture(scope="module")
def repo_project() -> Project:
    if shutil.which("cargo") is None:
        pytest.skip("cargo not installed (the project model comes from cargo metadata)")
    return build_project(load_config(REPO), os.environ)


def make_ctx(project: Project, tmp_path: Path, env: dict[str, str], **changes: Any) -> tuple[Context, io.StringIO]:
    """A context on ``project`` whose machine is ``env``, reports under tmp_path."""
    cfg = dataclasses.replace(project.config, reports_dir=tmp_path / "reports", dist_dir=tmp_path / "dist", **changes)
    out = io.StringIO()
    ctx = Context(config=cfg, console=Console(stream=out), base_env=env, model=dataclasses.replace(project, config=cfg))
    return ctx, out


def bare_env(path: Path, **extra: str) -> dict[str, str]:
    """An environment whose PATH is ``path`` only (HOME and caches under it)."""
    return {"PATH": str(path), "HOME": str(path), "XDG_CACHE_HOME": str(path / "cache"), **extra}


def fake_bin(folder: Path, *names: str) -> Path:
    """Stand-ins that answer ``--version`` (and ``cargo X --version``), nothing else."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        exe = folder / name
        exe.write_text(
            '#!/bin/sh\nfor a in "$@"; do [ "$a" = --version ] && { echo "'
            + name
            + ' 1.99.0"; exit 0; }; done\nexit 1\n'
        )
        exe.chmod(0o755)
    return folder


def verdict(verdicts: list[doctor.Verdict], name: str) -> doctor.Verdict:
    (found,) = [v for v in verdicts if v.session == name]
    return found


# --------------------------------------------------------------------------
# the machine


def test_no_cargo_means_rust_tests_missing_cargo_with_the_install_hint(repo_project: Project, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    ctx, out = make_ctx(repo_project, tmp_path, bare_env(empty))
    with pytest.raises(CheckFailed) as info:
        doctor.run(ctx)
    rust = verdict(doctor.diagnose(ctx)[0], "rust-tests")
    assert not rust.ready
    cargo = rust.missing[0]
    assert cargo.what == "cargo"
    assert "rustup" in cargo.hint and "apt-get install cargo" in cargo.hint and "pacman -S" in cargo.hint
    # No compiler either, so GMP cannot be checked: that is named too.
    assert [n.what for n in rust.missing] == ["cargo", "a C compiler"]
    # One line, naming every session that cannot run (rust-tests among them).
    message = info.value.message
    assert "\n" not in message and message.startswith("cannot run here: rust-tests, python-tests, sdist")
    assert "lint-workflows" not in message  # it needs nothing from the machine
    text = out.getvalue()
    assert "rust-tests         missing  missing cargo, a C compiler" in text
    assert "  cargo: install Rust" in text
    report = json.loads((tmp_path / "reports" / "doctor.json").read_text())
    rows = {r["session"]: r for r in report["sessions"]}
    assert rows["rust-tests"]["ready"] is False and rows["rust-tests"]["missing"][0]["what"] == "cargo"
    assert rows["lint-workflows"]["ready"] is True
    assert not list((tmp_path / "reports").glob(".partial-*")) and sorted(
        p.name for p in (tmp_path / "reports").iterdir()
    ) == ["doctor.json"]


def test_static_gmp_needs_m4_and_make_for_linux_wheel(repo_project: Project, tmp_path: Path) -> None:
    bindir = fake_bin(tmp_path / "bin", "cargo")
    ctx, _ = make_ctx(repo_project, tmp_path, bare_env(bindir), gmp="static", native=())
    ctx = dataclasses.replace(
        ctx, config=dataclasses.replace(ctx.config, linux_wheel=dataclasses.replace(ctx.config.linux_wheel, mode="zig"))
    )
    wheel = doctor.linux_wheel(doctor.Machine(ctx.config, ctx.env()))
    assert [n.what for n in wheel.missing] == ["m4", "make"]
    assert wheel.missing[0].hint == (
        "Debian/Ubuntu: apt-get install m4 make; manylinux: yum install -y m4 make; MSYS2: pacman -S m4 make"
    )
    for tool in ("m4", "make"):
        real = shutil.which(tool)
        if real is None:
            pytest.skip(f"{tool} not installed")
        (bindir / tool).symlink_to(real)
    assert doctor.linux_wheel(doctor.Machine(ctx.config, ctx.env())).ready


def test_windows_wheel_names_mingw_and_wine(repo_project: Project, tmp_path: Path) -> None:
    bindir = fake_bin(tmp_path / "bin", "cargo")
    win = dataclasses.replace(repo_project.config.windows_wheel, wine_tests="require")
    ctx, _ = make_ctx(repo_project, tmp_path, bare_env(bindir), windows_wheel=win)
    result = doctor.windows_gnu_wheel(doctor.Machine(ctx.config, ctx.env()))
    gcc = [n for n in result.missing if n.what.startswith("x86_64-w64-mingw32-gcc")]
    assert gcc and "apt-get install gcc-mingw-w64-x86-64-win32" in gcc[0].hint
    wine = [n for n in result.missing if n.what.startswith("wine")]
    assert wine and "apt-get install wine wine64" in wine[0].hint
    # wine-tests = "auto": a note, not a reason the session cannot run.
    auto = dataclasses.replace(win, wine_tests="auto")
    machine = doctor.Machine(dataclasses.replace(ctx.config, windows_wheel=auto), ctx.env())
    result = doctor.windows_gnu_wheel(machine)
    assert not [n for n in result.missing if n.what.startswith("wine")]
    assert any("Rust tests under wine are skipped" in n for n in result.notes)


def test_coverage_needs_llvm_tools_and_lint_rustfmt_clippy(repo_project: Project, tmp_path: Path) -> None:
    bindir = fake_bin(tmp_path / "bin", "cargo")
    # The fake cargo answers `cargo fmt --version` too; a failing one does not.
    ctx, _ = make_ctx(repo_project, tmp_path, bare_env(bindir), gmp="none", native=())
    machine = doctor.Machine(ctx.config, ctx.env())
    cov = doctor.coverage(machine)
    assert [n.what.split(" ")[0] for n in cov.missing] == ["llvm-profdata", "llvm-cov"]
    assert "rustup component add llvm-tools" in cov.missing[0].hint
    assert any("cargo-tarpaulin" in n for n in cov.notes)
    assert doctor.lint(machine).ready
    (bindir / "cargo").write_text('#!/bin/sh\n[ "$1" = --version ] && { echo cargo 1.99.0; exit 0; }\nexit 1\n')
    lint = doctor.lint(doctor.Machine(ctx.config, ctx.env()))
    assert [n.what for n in lint.missing] == ["rustfmt (cargo fmt)", "clippy (cargo clippy)"]
    assert "rustup component add clippy" in lint.missing[1].hint


def test_no_interpreter_blocks_python_tests(repo_project: Project, tmp_path: Path) -> None:
    bindir = fake_bin(tmp_path / "bin", "cargo")
    ctx, _ = make_ctx(
        repo_project,
        tmp_path,
        bare_env(bindir, PYENV_ROOT=str(tmp_path)),
        gmp="none",
        native=(),
        python_versions=("3.97",),
    )
    result = doctor.python_tests(doctor.Machine(ctx.config, ctx.env()))
    assert [n.what for n in result.missing] == ["a CPython of 3.97"]
    version = "{}.{}".format(*sys.version_info[:2])
    machine = doctor.Machine(dataclasses.replace(ctx.config, python_versions=(version, "3.97")), ctx.env())
    result = doctor.python_tests(machine)
    assert result.ready and result.notes == ("no CPython 3.97 here (those are skipped locally, an error in CI)",)


@needs_cargo
def test_this_repository_passes_its_cross_checks(repo_project: Project, tmp_path: Path) -> None:
    ctx, _ = make_ctx(repo_project, tmp_path, dict(os.environ))
    checks = {c.name: c for c in crosschecks.cross_checks(ctx)}
    assert {n: c.ok and not c.skipped for n, c in checks.items()} == {
        "module-name": True,
        "abi3": True,
        "python-source": True,
    }
    assert "abi3-py39" in checks["abi3"].detail


# --------------------------------------------------------------------------
# cross-checks on small projects


LIB_RS = """\
use pyo3::prelude::*;

// #[pymodule] in a comment does not count
#[pymodule]
fn {name}(m: &Bound<'_, PyModule>) -> PyResult<()> {{
    Ok(())
}}
"""


def write_project(
    root: Path,
    *,
    pymodule: str = "_core",
    module_name: str = "pkg._core",
    abi3: str = "abi3-py39",
    requires_python: str = ">=3.9",
    python_source: str = "python",
    package: str = "pkg",
    lib_rs: str | None = None,
) -> Path:
    """A maturin project: workspace + Python crate (pyo3 from [workspace.dependencies])."""
    files = {
        "pyproject.toml": '[tool.maturin-suite]\npython-crate = "py"\n',
        "Cargo.toml": (
            '[workspace]\nmembers = ["py"]\nresolver = "2"\n\n[workspace.dependencies]\n'
            f'pyo3 = {{ version = "0.30", features = ["{abi3}"] }}\n'
        ),
        "py/Cargo.toml": (
            '[package]\nname = "pkg-py"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[lib]\nname = "_core"\ncrate-type = ["cdylib"]\n\n'
            '[dependencies]\npyo3 = { workspace = true, features = ["macros"] }\n'
        ),
        "py/pyproject.toml": (
            f'[project]\nname = "pkg"\nrequires-python = "{requires_python}"\n\n'
            f'[tool.maturin]\nmodule-name = "{module_name}"\npython-source = "{python_source}"\n'
        ),
        "py/src/lib.rs": lib_rs if lib_rs is not None else LIB_RS.format(name=pymodule),
        f"py/python/{package}/__init__.py": "",
        "py/tests/.keep": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def project_checks(root: Path) -> dict[str, crosschecks.Check]:
    project = build_project(load_config(root), os.environ)
    ctx = Context(config=project.config, console=Console(stream=io.StringIO()), model=project)
    return {c.name: c for c in crosschecks.cross_checks(ctx)}


@needs_cargo
def test_a_consistent_project_passes(tmp_path: Path) -> None:
    checks = project_checks(write_project(tmp_path))
    assert {n: c.problems for n, c in checks.items()} == {"module-name": (), "abi3": (), "python-source": ()}


@needs_cargo
def test_module_name_mismatch_is_reported(tmp_path: Path) -> None:
    checks = project_checks(write_project(tmp_path, pymodule="_native"))
    assert checks["module-name"].problems == (
        f"#[pymodule] _native in {tmp_path / 'py' / 'src'} does not define '_core', the last component of "
        "'pkg._core' (the import would fail: no PyInit__core)",
    )
    assert checks["abi3"].ok and checks["python-source"].ok


def test_module_name_sources(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    maturin = {"module-name": "pkg._core"}
    (src / "lib.rs").write_text('#[pymodule]\n#[pyo3(name = "_core")]\npub fn core_module() {}\n')
    assert crosschecks.module_name_problems(maturin, "pkg._core", "_x", src) == []
    (src / "lib.rs").write_text('#[pymodule(name = "_core", gil_used = false)]\nmod inner {}\n')
    assert crosschecks.pymodule_names(src) == ["_core"]
    # tool.maturin-suite.module must name the module maturin builds.
    assert crosschecks.module_name_problems(maturin, "pkg._other", "_x", src) == [
        "tool.maturin.module-name is 'pkg._core' but tool.maturin-suite.module is 'pkg._other'"
    ]
    # Without module-name maturin uses the [lib] name.
    assert crosschecks.module_name_problems({}, "pkg._core", "_core", src) == []
    assert crosschecks.module_name_problems({}, "pkg._core", "_lib", src)[0].startswith("the [lib] name ('_lib')")
    (src / "lib.rs").write_text("// #[pymodule]\n// fn _core() {}\n")
    assert crosschecks.module_name_problems(maturin, "pkg._core", "_x", src) == [f"no #[pymodule] found in {src}"]


@needs_cargo
def test_abi3_mismatch_is_reported_and_blocks_the_builds(tmp_path: Path) -> None:
    root = write_project(tmp_path, abi3="abi3-py38", requires_python=">=3.9")
    checks = project_checks(root)
    assert checks["abi3"].problems == (
        "pyo3 feature abi3-py38 (CPython >= 3.8) but requires-python '>=3.9' (lower bound 3.9): "
        "the two must name the same Python",
    )
    assert "abi3-py38" in checks["abi3"].detail and "macros" in checks["abi3"].detail
    project = build_project(load_config(root), os.environ)
    ctx, _ = make_ctx(project, tmp_path, dict(os.environ))
    verdicts, _ = doctor.diagnose(ctx)
    blocked = {v.session for v in verdicts if any("abi3 check" in n.what for n in v.missing)}
    assert blocked == set(doctor.BUILDS)
    assert "rust-tests" not in blocked


def test_abi3_rules() -> None:
    assert crosschecks.abi3_problems(["abi3-py39", "extension-module"], ">=3.9, <4") == []
    assert crosschecks.abi3_problems(["abi3-py310", "abi3-py39"], "~=3.9") == []
    assert crosschecks.abi3_problems(["pyo3/abi3-py311"], ">=3.11") == []
    assert crosschecks.abi3_problems(["abi3-py39"], ">=3.10")[0].startswith("pyo3 feature abi3-py39 (CPython >= 3.9)")
    assert "lower bound none" in crosschecks.abi3_problems(["abi3-py39"], "<4")[0]
    assert "no requires-python" in crosschecks.abi3_problems(["abi3-py39"], None)[0]
    assert "no abi3-pyXY feature" in crosschecks.abi3_problems(["extension-module"], ">=3.9")[0]


@needs_cargo
def test_python_source_without_the_package_is_reported(tmp_path: Path) -> None:
    checks = project_checks(write_project(tmp_path, package="other"))
    folder = tmp_path / "py" / "python"
    assert checks["python-source"].problems == (
        f"tool.maturin.python-source = 'python': {folder} has no package pkg/ (the top level of the module)",
    )
    assert checks["module-name"].ok


def test_python_source_rules(tmp_path: Path) -> None:
    assert crosschecks.python_source_problems(tmp_path, {}, "pkg") == []
    assert crosschecks.python_source_problems(tmp_path, {"python-source": "src-py"}, "pkg") == [
        f"tool.maturin.python-source = 'src-py', but {tmp_path / 'src-py'} does not exist"
    ]
    (tmp_path / "src-py" / "pkg").mkdir(parents=True)
    assert crosschecks.python_source_problems(tmp_path, {"python-source": "src-py"}, "pkg") == []


@needs_cargo
def test_publish_check_reports_the_same_cross_checks(tmp_path: Path) -> None:
    """publish-check runs the cross-checks too: a project whose #[pymodule]
    and requires-python disagree with its config fails the gate."""
    from ci.sessions import publish_check

    root = write_project(tmp_path, pymodule="_native", requires_python=">=3.8")
    project = build_project(load_config(root), os.environ)
    ctx = Context(config=project.config, console=Console(stream=io.StringIO()), model=project)
    rows = {f.rule: f for f in publish_check.project_findings(ctx)}
    assert rows["module-name"].status == "fail" and "no PyInit__core" in rows["module-name"].detail
    assert rows["abi3"].status == "fail" and "requires-python" in rows["abi3"].detail
    assert rows["python-source"].status == "pass"
    assert {f.artifact for f in rows.values()} == {"(project)"}
