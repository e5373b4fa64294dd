"""The coverage session: LCOV merging and floors (fast), tool lookup, and a
real ``nox -s coverage`` on a copy of the repository (slow) whose reports the
floor logic is then checked on."""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, run_nox

from ci.core.config import parse_config, read_toml
from ci.core.errors import CheckFailed, ConfigError, ToolMissing
from ci.sessions import coverage as cov

PYO3 = "crates/qsym-python/src/lib.rs"

# Shapes as tarpaulin and llvm-cov write them (absolute SF paths, FN records,
# checksum-less DA lines), rooted at a made-up workspace.
TARPAULIN = """\
SF:{root}/crates/core/src/a.rs
FN:3,f
FNDA:2,f
DA:3,2
DA:4,0
DA:9,1
LF:3
LH:2
end_of_record
SF:{root}/crates/py/src/lib.rs
DA:10,0
DA:11,0
LF:2
LH:0
end_of_record
SF:{root}/target/debug/build/x/out/gen.rs
DA:1,0
end_of_record
"""
EXTENSION = """\
SF:/home/u/.cargo/registry/src/pyo3-0.30.1/src/lib.rs
DA:1,5
end_of_record
SF:{root}/crates/core/src/a.rs
DA:3,1
DA:4,7
DA:5,7
end_of_record
SF:{root}/crates/py/src/lib.rs
DA:9,3
DA:10,3
DA:11,3
end_of_record
SF:{root}/crates/py/src/only_ext.rs
DA:1,1
DA:2,0
end_of_record
"""


def lcov(text: str, root: Path) -> cov.LineHits:
    return cov.parse_lcov(text.format(root=root), root, exclude=[root / "target"])


# -- LCOV ---------------------------------------------------------------------


def test_parse_keeps_workspace_files_only(tmp_path: Path) -> None:
    data = lcov(TARPAULIN, tmp_path)
    assert data == {"crates/core/src/a.rs": {3: 2, 4: 0, 9: 1}, "crates/py/src/lib.rs": {10: 0, 11: 0}}
    ext = lcov(EXTENSION, tmp_path)
    assert "crates/core/src/a.rs" in ext and not any("pyo3" in p for p in ext)


def test_parse_adds_repeated_records_and_rejects_garbage(tmp_path: Path) -> None:
    text = "SF:{root}/a.rs\nDA:1,2\nend_of_record\nSF:{root}/a.rs\nDA:1,3\nDA:2,0\nend_of_record\n"
    assert lcov(text, tmp_path) == {"a.rs": {1: 5, 2: 0}}
    with pytest.raises(cov.SuiteError, match="malformed LCOV"):
        lcov("SF:{root}/a.rs\nDA:one,2\n", tmp_path)


def test_merge_keeps_tarpaulin_lines_and_adds_extension_hits(tmp_path: Path) -> None:
    merged = cov.merge_extension(lcov(TARPAULIN, tmp_path), lcov(EXTENSION, tmp_path))
    # Line 5 is not coverable for tarpaulin: its hits are not counted.
    assert merged["crates/core/src/a.rs"] == {3: 3, 4: 7, 9: 1}
    # The PyO3 file: 0 hits from Rust tests, hit from Python; line 9 ignored.
    assert merged["crates/py/src/lib.rs"] == {10: 3, 11: 3}
    # A file only the extension run saw keeps its own lines.
    assert merged["crates/py/src/only_ext.rs"] == {1: 1, 2: 0}
    assert cov.totals(merged) == cov.Totals(6, 7)
    assert cov.totals(merged, "crates/py/") == cov.Totals(3, 4)


def test_render_round_trips(tmp_path: Path) -> None:
    merged = cov.merge_extension(lcov(TARPAULIN, tmp_path), lcov(EXTENSION, tmp_path))
    text = cov.render_lcov(merged, "rust")
    assert "SF:crates/core/src/a.rs\nDA:3,3\nDA:4,7\nDA:9,1\nLF:3\nLH:3\nend_of_record" in text
    assert cov.parse_lcov(text, tmp_path) == merged


# -- floors -------------------------------------------------------------------


def test_floor_message_says_by_how_much() -> None:
    t = cov.Totals(207, 226)  # 91.59...%
    assert cov.floor_shortfall("Rust", t, 91.5, "k") is None
    msg = cov.floor_shortfall("Rust", t, 95.0, "tool.maturin-suite.coverage.rust-floor")
    assert msg == ("Rust line coverage 91.59% is 3.41 points below the floor 95.00% "
                   "(tool.maturin-suite.coverage.rust-floor)")
    with pytest.raises(CheckFailed) as e:
        cov.check_floors([("Rust", t, 95.0, "r"), ("Python", cov.Totals(9, 9), 95.0, "p")])
    assert "Rust line coverage" in str(e.value) and "Python" not in e.value.message
    assert "lower the floor" in str(e.value)
    cov.check_floors([("Rust", t, 90.0, "r"), ("Python", cov.Totals(9, 9), 100.0, "p")])


def test_no_lines_is_zero_percent() -> None:
    assert cov.Totals(0, 0).percent == 0.0
    assert cov.floor_shortfall("Python", cov.Totals(0, 0), 1.0, "k")


def test_coverage_table_is_validated() -> None:
    data = read_toml(REPO / "pyproject.toml")
    cfg = parse_config(data, REPO)
    assert 0 < cfg.coverage.rust_floor <= 100 and 0 < cfg.coverage.python_floor <= 100
    cov.check_version_pin(cfg.coverage.tarpaulin_version)
    bad = copy.deepcopy(data)
    bad["tool"]["maturin-suite"]["coverage"]["rust-flor"] = 80
    with pytest.raises(ConfigError, match=r"coverage\.rust-flor.*did you mean.*rust-floor"):
        parse_config(bad, REPO)
    bad = copy.deepcopy(data)
    bad["tool"]["maturin-suite"]["coverage"]["python-floor"] = 101
    with pytest.raises(ConfigError, match="python-floor must be at most 100; got 101"):
        parse_config(bad, REPO)
    with pytest.raises(ConfigError, match="tarpaulin-version must be an exact version"):
        cov.check_version_pin("^0.37")


# -- tools --------------------------------------------------------------------


def fake_tool(folder: Path, name: str, output: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(f"#!/bin/sh\necho '{output}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.mark.skipif(os.name == "nt", reason="shell-script stand-ins")
def test_tarpaulin_path_must_match_pin_else_cache(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "cargo-tarpaulin", "tarpaulin 0.31.0")
    env = {"PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert cov.tools_cache(env) == tmp_path / "cache" / "maturin-suite" / "tools"
    # Wrong version on PATH and nothing cached: not found (the session installs).
    assert cov.find_tarpaulin(env, "0.37.5") is None
    cached = fake_tool(cov.tarpaulin_root(env, "0.37.5") / "bin", "cargo-tarpaulin", "tarpaulin 0.37.5")
    assert cov.find_tarpaulin(env, "0.37.5") == (cached, "cache")
    fake_tool(bin_dir, "cargo-tarpaulin", "tarpaulin 0.37.5")
    assert cov.find_tarpaulin(env, "0.37.5") == (bin_dir / "cargo-tarpaulin", "PATH")
    assert cov.install_command("cargo", "0.37.5", Path("/r")) == [
        "cargo", "install", "--locked", "cargo-tarpaulin@0.37.5", "--no-default-features", "--root", "/r"]


@pytest.mark.skipif(os.name == "nt", reason="shell-script stand-ins")
def test_llvm_tools_of_another_major_are_refused(tmp_path: Path) -> None:
    fake_tool(tmp_path, "llvm-profdata", "Debian LLVM version 14.0.6")
    env = {"PATH": str(tmp_path)}
    with pytest.raises(ToolMissing) as e:
        cov.find_llvm_tool("llvm-profdata", 99, env)
    text = str(e.value)
    assert "llvm-profdata of LLVM 99 was not found; found only" in text and "LLVM 14.0.6" in text
    assert "apt-get install llvm-99" in text and "rustup component add llvm-tools" in text
    env["LLVM_PROFDATA"] = str(fake_tool(tmp_path / "x", "llvm-profdata", "LLVM version 99.1.0"))
    assert cov.find_llvm_tool("llvm-profdata", 99, env) == env["LLVM_PROFDATA"]


def test_coveragerc_maps_site_packages_to_the_repo(tmp_path: Path) -> None:
    from ci.core.config import load_config
    from ci.core.console import Console
    from ci.core.context import Context

    ctx = Context(config=load_config(REPO), console=Console())
    rc = cov.coveragerc(ctx, tmp_path / ".coverage")
    assert "source_pkgs = q_kangaroo" in rc
    assert "    crates/qsym-python/python/q_kangaroo\n    */site-packages/q_kangaroo" in rc
    assert (REPO / "crates/qsym-python/python/q_kangaroo/__init__.py").is_file()


# -- end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def covered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the repository after one real ``nox -s coverage``."""
    ws = copy_repo(tmp_path_factory.mktemp("coverage"))
    text = assert_ok(run_nox(ws, "-s", "coverage"))
    return ws, text


@pytest.mark.slow
def test_session_writes_every_report(covered: tuple[Path, str]) -> None:
    ws, text = covered
    out = ws / "coverage"
    for rel in ("rust/lcov.info", "rust/cobertura.xml", "rust/html/index.html",
                "python/lcov.info", "python/coverage.xml", "python/html/index.html", "summary.md"):
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
    assert not list(out.glob(".staging-*")) and not list(out.glob(".old-*"))
    assert "== coverage ==" in text and "cargo-tarpaulin    0.37.5" in text
    # The Python report names repo paths, not site-packages.
    py = ET.parse(out / "python" / "coverage.xml").getroot()
    names = {c.get("filename") for c in py.iter("class")}
    assert names == {"crates/qsym-python/python/q_kangaroo/__init__.py"}
    # Nothing instrumented wrote profiles into the source tree.
    assert not [p for p in ws.rglob("*.profraw") if "target" not in p.parts]


@pytest.mark.slow
def test_rust_report_has_pyo3_lines_only_python_reaches(covered: tuple[Path, str]) -> None:
    ws, _ = covered
    rust = ws / "coverage" / "rust"
    alone = cov.parse_lcov((rust / "parts" / "tarpaulin.lcov").read_text(), ws)
    merged = cov.parse_lcov((rust / "lcov.info").read_text(), ws)
    # Rust tests never load the extension: tarpaulin alone saw no PyO3 line run...
    assert alone[PYO3] and not any(alone[PYO3].values())
    # ...the merged report has them hit, from pytest.
    hit = [n for n, h in merged[PYO3].items() if h > 0]
    assert len(hit) > len(merged[PYO3]) // 2
    xml = ET.parse(rust / "cobertura.xml").getroot()
    (cls,) = [c for c in xml.iter("class") if c.get("filename") == PYO3]
    assert any(int(line.get("hits")) > 0 for line in cls.iter("line"))
    assert float(xml.get("line-rate")) == pytest.approx(cov.totals(merged).percent / 100)
    assert "lib.rs" in (rust / "html" / "index.html").read_text()


@pytest.mark.slow
def test_floor_logic_on_the_real_reports(covered: tuple[Path, str]) -> None:
    ws, _ = covered
    rust = cov.totals(cov.parse_lcov((ws / "coverage" / "rust" / "lcov.info").read_text(), ws))
    py, files = cov.python_totals(ws / "target" / "suite" / "coverage" / "python" / "coverage.json")
    assert py.lines > 0 and files
    cfg = parse_config(read_toml(ws / "pyproject.toml"), ws).coverage
    # The configured floors hold today...
    cov.check_floors([("Rust", rust, cfg.rust_floor, "r"), ("Python", py, cfg.python_floor, "p")])
    # ...and a floor just above each measured value fails, saying by how much.
    for name, t in (("Rust", rust), ("Python", py)):
        with pytest.raises(CheckFailed, match=rf"{name} line coverage .* is 0\.50 points below"):
            cov.check_floors([(name, t, t.percent + 0.5, "k")])


@pytest.mark.slow
def test_raised_floor_fails_the_session_and_second_run_reuses_builds(covered: tuple[Path, str]) -> None:
    ws, text = covered
    m = re.search(r"Rust\s+(\d+\.\d+)% \(", text)
    assert m, text[-3000:]
    measured = float(m.group(1))
    floor = min(100.0, measured + 1.0)
    pyproject = ws / "pyproject.toml"
    original = pyproject.read_text()
    changed = re.sub(r"(?m)^rust-floor = .*$", f"rust-floor = {floor}", original)
    assert changed != original
    pyproject.write_text(changed)
    try:
        proc = run_nox(ws, "-s", "coverage")
    finally:
        pyproject.write_text(original)
    out = assert_clean_failure(proc, f"Rust line coverage {measured:.2f}% is", "points below the floor")
    # The second run rebuilt nothing of the workspace.
    assert "Compiling qsym-core" not in out and "Compiling qsym-python" not in out
    # The reports were still written (for people to see what is missing).
    assert "FAIL" in (ws / "coverage" / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MATURIN_SUITE_TEST_INSTALL"),
                    reason="compiles cargo-tarpaulin (minutes); set MATURIN_SUITE_TEST_INSTALL=1")
def test_tarpaulin_installs_into_an_empty_cache(tmp_path: Path) -> None:
    from ci.blocks.toolchain import require_cargo
    from ci.core.config import load_config
    from ci.core.console import Console
    from ci.core.context import Context

    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    path = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                           if not (Path(p) / "cargo-tarpaulin").exists() or p.endswith(".cargo/bin"))
    env["PATH"] = path
    if shutil.which("cargo-tarpaulin", path=path):
        pytest.skip("a cargo-tarpaulin in ~/.cargo/bin would be found first")
    ctx = Context(config=load_config(REPO), console=Console(), base_env=env)
    exe, origin = cov.ensure_tarpaulin(ctx, require_cargo(env), "0.37.5")
    assert origin == "installed"
    assert exe == cov.tarpaulin_root(env, "0.37.5") / "bin" / "cargo-tarpaulin"
    assert cov.find_tarpaulin(env, "0.37.5") == (exe, "cache")
