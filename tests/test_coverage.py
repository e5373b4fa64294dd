"""The coverage session: LCOV merging, test counts, per-tool arguments and
floors (fast, on real pytest/rustc output where it matters); the PyO3
layer's LLVM profile merged and compared with llvm-cov's own counts on a real
instrumented build (slow, needs no tarpaulin); real ``nox -s coverage`` runs
on copies of the repository, passing and with failing tests (slow, skipped
with the reason when cargo-tarpaulin is not installed)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, group_venv, run_nox

from ci.blocks import lcov as lcov_block
from ci.blocks import llvm
from ci.blocks import tarpaulin as tarpaulin_block
from ci.core.config import load_config, parse_config, read_toml
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError, SuiteError, ToolMissing
from ci.sessions import coverage as cov

PYO3 = "crates/qsym-python/src/lib.rs"
PYO3_CRATE = "crates/qsym-python/"

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
DA:6,0
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
# llvm-cov of the Rust tests' own profiles: the same runs as tarpaulin's,
# with a line tarpaulin lost (4: its test binary failed), a line only the
# extension lists (6), and test code tarpaulin does not count (20, tests/t.rs).
RUST_TESTS = """\
SF:{root}/crates/core/src/a.rs
DA:3,2
DA:4,5
DA:6,2
DA:20,1
end_of_record
SF:{root}/crates/core/tests/t.rs
DA:1,1
end_of_record
"""


def lcov(text: str, root: Path) -> lcov_block.LineHits:
    return lcov_block.parse_lcov(text.format(root=root), root, exclude=[root / "target"])


# -- LCOV ---------------------------------------------------------------------


def test_parse_keeps_workspace_files_only(tmp_path: Path) -> None:
    data = lcov(TARPAULIN, tmp_path)
    assert data == {"crates/core/src/a.rs": {3: 2, 4: 0, 9: 1}, "crates/py/src/lib.rs": {10: 0, 11: 0}}
    ext = lcov(EXTENSION, tmp_path)
    assert "crates/core/src/a.rs" in ext and not any("pyo3" in p for p in ext)


def test_parse_reads_relative_paths_against_the_workspace(tmp_path: Path) -> None:
    """rustc records a member's sources relative to the workspace root (its
    working dir), which need not be the repository root."""
    text = "SF:crates/py/src/lib.rs\nDA:1,1\nend_of_record\n"
    assert lcov_block.parse_lcov(text, tmp_path, base=tmp_path / "rust") == {"rust/crates/py/src/lib.rs": {1: 1}}
    assert lcov_block.parse_lcov(text, tmp_path) == {"crates/py/src/lib.rs": {1: 1}}


def test_parse_adds_repeated_records_and_rejects_garbage(tmp_path: Path) -> None:
    text = "SF:{root}/a.rs\nDA:1,2\nend_of_record\nSF:{root}/a.rs\nDA:1,3\nDA:2,0\nend_of_record\n"
    assert lcov(text, tmp_path) == {"a.rs": {1: 5, 2: 0}}
    with pytest.raises(SuiteError, match="malformed LCOV"):
        lcov("SF:{root}/a.rs\nDA:one,2\n", tmp_path)


def test_merge_is_a_union_by_line_number(tmp_path: Path) -> None:
    tarpaulin, rust_tests, ext = lcov(TARPAULIN, tmp_path), lcov(RUST_TESTS, tmp_path), lcov(EXTENSION, tmp_path)
    merged = lcov_block.merge_rust(tarpaulin, rust_tests, ext)
    # Lines: tarpaulin's and the extension's; hits: the Rust tests' (the larger
    # of tarpaulin's and llvm-cov's on the same runs, never their sum) plus
    # the Python tests'.
    assert merged["crates/core/src/a.rs"] == {3: 2 + 1, 4: 5 + 7, 5: 7, 6: 2 + 0, 9: 1}
    # The PyO3 file: tarpaulin's two unexecuted lines do not hide the
    # extension's three, all hit from Python.
    assert merged["crates/py/src/lib.rs"] == {9: 3, 10: 3, 11: 3}
    assert merged["crates/py/src/only_ext.rs"] == {1: 1, 2: 0}
    # The Rust tests' llvm-cov adds hits, never lines (test code stays out).
    assert "crates/core/tests/t.rs" not in merged and 20 not in merged["crates/core/src/a.rs"]
    for path in set(tarpaulin) | set(ext):
        assert set(merged[path]) == set(tarpaulin.get(path, {})) | set(ext.get(path, {})), path
    assert lcov_block.totals(merged) == lcov_block.Totals(9, 10)
    assert lcov_block.totals(merged, "crates/py/") == lcov_block.Totals(4, 5)


def test_merge_never_replaces_a_file_by_a_smaller_line_set() -> None:
    """The defect seen: a PyO3 file with 1,213 instrumented lines (llvm-cov)
    reported as 0 of 10 (tarpaulin's lines, none run by Rust tests)."""
    ext = {"py/lib.rs": {n: 1 for n in range(100, 1313)}}
    tarpaulin = {"py/lib.rs": {n: 0 for n in (1, 2, 3, 4, 5, 100, 101, 102, 103, 104)}}
    merged = lcov_block.merge_rust(tarpaulin, {}, ext)
    assert lcov_block.totals(merged) == lcov_block.Totals(1213, 1218)
    assert lcov_block.merge_rust({}, {}, ext) == ext and lcov_block.merge_rust(tarpaulin, {}, {}) == tarpaulin


def test_render_round_trips(tmp_path: Path) -> None:
    merged = lcov_block.merge_rust(lcov(TARPAULIN, tmp_path), {}, lcov(EXTENSION, tmp_path))
    text = lcov_block.render_lcov(merged, "rust")
    assert "SF:crates/core/src/a.rs\nDA:3,3\nDA:4,7\nDA:5,7\nDA:6,0\nDA:9,1\nLF:5\nLH:4\nend_of_record" in text
    assert lcov_block.parse_lcov(text, tmp_path) == merged


def test_tarpaulin_profiles_name_their_test_binaries(tmp_path: Path) -> None:
    target = tmp_path / "cargo"
    raws = target / "tarpaulin" / "profraws"
    raws.mkdir(parents=True)
    deps = target / "debug" / "deps"
    deps.mkdir(parents=True)
    for name in ("oeis-9fb5237cd43247dd", "qsym_core-8846fee110c409d6"):
        (deps / name).write_bytes(b"\x7fELF")
    for name in (
        "oeis-9fb5237cd43247dd_16685296920718410519_0-4203.profraw",
        "qsym_core-8846fee110c409d6_11017546605731474722_0-4311.profraw",
        "gone-0123456789abcdef_1_0-9.profraw",
        "odd.profraw",
    ):
        (raws / name).write_bytes(b"")
    found, binaries, lost = tarpaulin_block.tarpaulin_profiles(target)
    assert len(found) == 4
    assert binaries == [deps / "oeis-9fb5237cd43247dd", deps / "qsym_core-8846fee110c409d6"]
    assert lost == ["gone-0123456789abcdef_1_0-9.profraw", "odd.profraw"]


# -- test counts --------------------------------------------------------------

RUST_TESTS_SOURCE = """
#[test] fn passes() {}
#[test] fn also_passes() {}
#[test] fn fails() { assert_eq!(1 + 1, 3); }
#[test] #[ignore] fn ignored() {}
"""


def test_libtest_counts_from_a_real_test_binary(tmp_path: Path) -> None:
    rustc = shutil.which("rustc")
    if rustc is None:
        pytest.skip("rustc is not on PATH")
    (tmp_path / "t.rs").write_text(RUST_TESTS_SOURCE)
    subprocess.run([rustc, "--edition", "2021", "--test", "t.rs", "-o", "t"], cwd=tmp_path, check=True)
    for binary_runs in (1, 2):  # tarpaulin runs one binary after another
        proc = subprocess.run([str(tmp_path / "t")], cwd=tmp_path, capture_output=True, text=True, check=False)
        output = (proc.stdout + proc.stderr) * binary_runs
        run = cov.libtest_run("Rust tests", "cargo tarpaulin", output, 1)
        assert (run.tests, run.failed) == (3 * binary_runs, binary_runs)
    assert run.failed_names == ("fails", "fails")
    assert run.problem() == "Rust tests (cargo tarpaulin): 2 of 6 failed: fails, fails"
    ok = cov.libtest_run("Rust tests", "cargo tarpaulin", "test result: ok. 4 passed; 0 failed; 1 ignored", 0)
    assert ok.problem() is None and ok.text() == "4 run, 0 failed"


def test_pytest_counts_from_a_real_junit_report(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): assert 1 == 2\n"
        "@pytest.fixture\ndef broken(): raise RuntimeError\n"
        "def test_c(broken): pass\n"
    )
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--rootdir={tmp_path}",
            f"--junitxml={junit}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    run = cov.junit_run("Python tests", "pytest", junit, proc.returncode)
    assert (run.tests, run.failed, run.failed_names) == (3, 2, ("test_x.test_b", "test_x.test_c"))
    assert run.problem() == "Python tests (pytest): 2 of 3 failed: test_x.test_b, test_x.test_c"
    # No report (pytest did not start, or crashed): the exit code speaks.
    gone = cov.junit_run("Python tests", "pytest", tmp_path / "none.xml", 4)
    assert gone.problem() == "Python tests (pytest): exited with code 4, no failed test counted (see its output)"
    many = cov.RunOutcome("Rust tests", "cargo tarpaulin", 9, 5, ("a", "b", "c", "d", "e"), 101)
    assert many.problem() == "Rust tests (cargo tarpaulin): 5 of 9 failed: a, b, c and 2 more"


# -- per-tool arguments -------------------------------------------------------

EXTRA = {
    "tarpaulin-args": ["--exclude-files", "crates/qsym-core/src/lib.rs"],
    "pytest-args": ["-k", "not gmp_version"],
    "llvm-cov-args": ["-path-equivalence=/build,/src"],
}


def context_with(coverage: dict[str, object], posargs: tuple[str, ...] = ()) -> Context:
    data = read_toml(REPO / "pyproject.toml")
    data["tool"]["maturin-suite"]["coverage"].update(coverage)
    return Context(config=parse_config(data, REPO), console=Console(), posargs=posargs)


def test_per_tool_arguments_reach_their_command_lines(tmp_path: Path) -> None:
    ctx = context_with(EXTRA, posargs=("-x",))
    t = Path("/t")
    for no_run in (True, False):
        cmd = cov.tarpaulin_command(ctx, Path("cargo-tarpaulin"), t / "cargo", t / "out", no_run=no_run)
        assert cmd[-2:] == EXTRA["tarpaulin-args"]
        assert "--no-fail-fast" in cmd and ("--no-run" in cmd) == no_run
    cmd = cov.pytest_command(ctx, Path("python"), t, t / "rc", t / "junit.xml")
    assert cmd[-3:] == [*EXTRA["pytest-args"], "-x"]  # nox's posargs after the configured ones
    cmd = llvm.llvm_export_command(ctx, "llvm-cov", t / "p.profdata", [t / "a", t / "b"], "^/rustc/")
    assert cmd[-1] == EXTRA["llvm-cov-args"][0] and cmd[cmd.index(str(t / "a")) + 1 : -1] == ["-object", str(t / "b")]
    plain = context_with({})
    assert cov.tarpaulin_command(plain, Path("c"), t, t, no_run=False)[-1] == str(t)
    assert cov.pytest_command(plain, Path("python"), t, t / "rc", t / "j.xml")[-1] == f"--junitxml={t / 'j.xml'}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("--no-fail-fast", "tool.maturin-suite.coverage.tarpaulin-args must be a list; got '--no-fail-fast'"),
        ([""], r"tool.maturin-suite.coverage.tarpaulin-args\[0\] must not be empty"),
        ([3], r"tool.maturin-suite.coverage.tarpaulin-args\[0\] must be a string; got 3"),
    ],
)
def test_per_tool_arguments_are_validated(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        context_with({"tarpaulin-args": value})
    with pytest.raises(
        ConfigError,
        match=r"unknown key tool.maturin-suite.coverage.pytest-arg "
        r"\(did you mean tool.maturin-suite.coverage.pytest-args\?\)",
    ):
        context_with({"pytest-arg": ["-x"]})


def test_ignore_regex_names_registry_std_and_targets(tmp_path: Path) -> None:
    regex = llvm.ignore_regex({"CARGO_HOME": "/opt/cargo+x"}, [tmp_path / "target"])
    pattern = re.compile(regex)
    assert pattern.search("/rustc/59807616e1fa/library/std/src/lib.rs")
    assert pattern.search("/home/u/.cargo/registry/src/index/pyo3-0.30.1/src/lib.rs")
    assert pattern.search("/opt/cargo+x/git/checkouts/a/src/lib.rs")
    assert pattern.search(f"{tmp_path}/target/debug/build/x/out/gen.rs")
    assert not pattern.search(f"{tmp_path}/crates/py/src/lib.rs")


# -- floors -------------------------------------------------------------------


def test_floor_message_says_by_how_much() -> None:
    t = lcov_block.Totals(207, 226)  # 91.59...%
    assert cov.floor_shortfall("Rust", t, 91.5, "k") is None
    msg = cov.floor_shortfall("Rust", t, 95.0, "tool.maturin-suite.coverage.rust-floor")
    assert msg == (
        "Rust line coverage 91.59% is 3.41 points below the floor 95.00% (tool.maturin-suite.coverage.rust-floor)"
    )
    with pytest.raises(CheckFailed) as e:
        cov.check_floors([("Rust", t, 95.0, "r"), ("Python", lcov_block.Totals(9, 9), 95.0, "p")])
    assert "Rust line coverage" in str(e.value) and "Python" not in e.value.message
    assert "lower the floor" in str(e.value)
    cov.check_floors([("Rust", t, 90.0, "r"), ("Python", lcov_block.Totals(9, 9), 100.0, "p")])


def test_no_lines_is_zero_percent() -> None:
    assert lcov_block.Totals(0, 0).percent == 0.0
    assert cov.floor_shortfall("Python", lcov_block.Totals(0, 0), 1.0, "k")


def test_coverage_table_is_validated() -> None:
    data = read_toml(REPO / "pyproject.toml")
    cfg = parse_config(data, REPO)
    assert 0 < cfg.coverage.rust_floor <= 100 and 0 < cfg.coverage.python_floor <= 100
    tarpaulin_block.check_version_pin(cfg.coverage.tarpaulin_version)
    bad = copy.deepcopy(data)
    bad["tool"]["maturin-suite"]["coverage"]["rust-flor"] = 80
    with pytest.raises(ConfigError, match=r"coverage\.rust-flor.*did you mean.*rust-floor"):
        parse_config(bad, REPO)
    bad = copy.deepcopy(data)
    bad["tool"]["maturin-suite"]["coverage"]["python-floor"] = 101
    with pytest.raises(ConfigError, match="python-floor must be at most 100; got 101"):
        parse_config(bad, REPO)
    with pytest.raises(ConfigError, match="tarpaulin-version must be an exact version"):
        tarpaulin_block.check_version_pin("^0.37")


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
    assert tarpaulin_block.tools_cache(env) == tmp_path / "cache" / "maturin-suite" / "tools"
    # Wrong version on PATH and nothing cached: not found (the session installs).
    assert tarpaulin_block.find_tarpaulin(env, "0.37.5") is None
    cached = fake_tool(tarpaulin_block.tarpaulin_root(env, "0.37.5") / "bin", "cargo-tarpaulin", "tarpaulin 0.37.5")
    assert tarpaulin_block.find_tarpaulin(env, "0.37.5") == (cached, "cache")
    fake_tool(bin_dir, "cargo-tarpaulin", "tarpaulin 0.37.5")
    assert tarpaulin_block.find_tarpaulin(env, "0.37.5") == (bin_dir / "cargo-tarpaulin", "PATH")
    assert tarpaulin_block.install_command("cargo", "0.37.5", Path("/r")) == [
        "cargo",
        "install",
        "--locked",
        "cargo-tarpaulin@0.37.5",
        "--no-default-features",
        "--root",
        "/r",
    ]


@pytest.mark.skipif(os.name == "nt", reason="shell-script stand-ins")
def test_llvm_tools_of_another_major_are_refused(tmp_path: Path) -> None:
    fake_tool(tmp_path, "llvm-profdata", "Debian LLVM version 14.0.6")
    env = {"PATH": str(tmp_path)}
    with pytest.raises(ToolMissing) as e:
        llvm.find_llvm_tool("llvm-profdata", 99, env)
    text = str(e.value)
    assert "llvm-profdata of LLVM 99 was not found; found only" in text and "LLVM 14.0.6" in text
    assert "apt-get install llvm-99" in text and "rustup component add llvm-tools" in text
    env["LLVM_PROFDATA"] = str(fake_tool(tmp_path / "x", "llvm-profdata", "LLVM version 99.1.0"))
    assert llvm.find_llvm_tool("llvm-profdata", 99, env) == env["LLVM_PROFDATA"]


def test_coveragerc_maps_site_packages_to_the_repo(tmp_path: Path) -> None:
    ctx = Context(config=load_config(REPO), console=Console())
    rc = cov.coveragerc(ctx, tmp_path / ".coverage")
    assert "source_pkgs = q_kangaroo" in rc
    assert "    crates/qsym-python/python/q_kangaroo\n    */site-packages/q_kangaroo" in rc
    assert (REPO / "crates/qsym-python/python/q_kangaroo/__init__.py").is_file()


# -- the PyO3 layer's profile against llvm-cov's own counts (no tarpaulin) ---


def llvm_line_counts(cov_tool: str, profdata: Path, obj: Path, under: Path) -> dict[str, tuple[int, int]]:
    """Per source file under ``under`` (relative posix path): (lines, lines
    hit) as ``llvm-cov export -format=lcov`` reports them on its own: each
    ``DA`` line once (no filter, no path handling of the session's)."""
    text = subprocess.run(
        [cov_tool, "export", "-format=lcov", f"-instr-profile={profdata}", str(obj)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts: dict[str, tuple[int, int]] = {}
    for record in text.split("end_of_record"):
        sf = re.search(r"^SF:(.+)$", record, re.MULTILINE)
        if not sf or not Path(sf.group(1)).is_relative_to(under):
            continue
        hits: dict[int, int] = {}
        for n, h in re.findall(r"^DA:(\d+),(\d+)", record, re.MULTILINE):
            hits[int(n)] = hits.get(int(n), 0) + int(h)
        counts[Path(sf.group(1)).relative_to(under).as_posix()] = (len(hits), sum(1 for h in hits.values() if h))
    return counts


def llvm_report_lines(cov_tool: str, profdata: Path, obj: Path, source: Path) -> int:
    """The ``Lines`` column of ``llvm-cov report`` for one source file."""
    text = subprocess.run(
        [cov_tool, "report", f"-instr-profile={profdata}", str(obj), str(source)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = next(line for line in text.splitlines() if line.endswith(tuple("%-")) and source.name in line)
    # Filename, regions, missed, cover, functions, missed, executed, lines, ...
    return int(row.split()[7])


def llvm_tools_or_skip(env: dict[str, str]) -> tuple[int, str, str]:
    try:
        major = llvm.rustc_llvm_major(env)
        return major, llvm.find_llvm_tool("llvm-profdata", major, env), llvm.find_llvm_tool("llvm-cov", major, env)
    except ToolMissing as e:
        pytest.skip(str(e))


@pytest.mark.slow
def test_pyo3_profile_merges_to_llvm_covs_own_counts(tmp_path: Path) -> None:
    """A real instrumented extension, the real Python tests, the session's
    profile export and merge; for every source file of the PyO3 crate the
    merged counts equal llvm-cov's own on the same profile and object, even
    with a tarpaulin report in the defect's shape (a few of the file's lines,
    none hit: Rust tests never load the extension)."""
    env = dict(os.environ)
    major, profdata_tool, cov_tool = llvm_tools_or_skip(env)
    ws = copy_repo(tmp_path / "ws")
    ctx = Context(
        config=load_config(ws), console=Console(), tool_bin=group_venv("coverage", tmp_path / "venv"), base_env=env
    )
    work, target = tmp_path / "work", tmp_path / "work" / "cargo"
    python = cov.install_instrumented_extension(ctx, work, target, tarpaulin_block.INSTRUMENT_FLAGS)
    pytest_run = cov.run_pytest(ctx, python, work)
    assert pytest_run.outcome.problem() is None and pytest_run.outcome.tests > 5
    tools = cov.Tools(major, profdata_tool, cov_tool, Path("cargo-tarpaulin"), "unused")
    ext = cov.extension_hits(ctx, tools, python, pytest_run, target)
    # tarpaulin's shape of the defect: 10 of the file's lines, 0 hits.
    tarpaulin = {PYO3: {n: 0 for n in sorted(ext[PYO3])[:10]}}
    merged = lcov_block.merge_rust(tarpaulin, {}, ext)

    obj = cov.extension_object(ctx, python, work)
    crate = ws / PYO3_CRATE
    expected = llvm_line_counts(cov_tool, work / "extension.profdata", obj, crate)
    got = {
        p[len(PYO3_CRATE) :]: (t.lines, t.covered)
        for p, t in lcov_block.file_totals(merged)
        if p.startswith(PYO3_CRATE)
    }
    assert got == expected and "src/lib.rs" in got
    lines, hit = got["src/lib.rs"]
    assert lines > 50 and hit > lines // 2, got
    # llvm-cov report adds up each function's lines (a closure's again in the
    # function around it): never fewer than the distinct lines.
    assert llvm_report_lines(cov_tool, work / "extension.profdata", obj, ws / PYO3) >= lines
    # Nothing instrumented wrote a profile into the source tree or the work dir.
    assert not list(ws.rglob("*.profraw")) and not list(work.glob("*.profraw"))


# -- end to end (real cargo-tarpaulin) ----------------------------------------


def tarpaulin_or_skip() -> None:
    """The pinned cargo-tarpaulin, or a skip saying why: the session would
    compile it (minutes), and a test installs nothing."""
    version = load_config(REPO).coverage.tarpaulin_version
    env = dict(os.environ)
    if tarpaulin_block.find_tarpaulin(env, version) is None:
        pytest.skip(
            f"cargo-tarpaulin {version} is neither on PATH nor in {tarpaulin_block.tarpaulin_root(env, version)}; "
            f"'nox -s coverage' installs it (minutes), or: cargo install --locked "
            f"cargo-tarpaulin@{version} --no-default-features"
        )


@pytest.fixture(scope="module")
def covered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A copy of the repository after one real ``nox -s coverage``."""
    tarpaulin_or_skip()
    ws = copy_repo(tmp_path_factory.mktemp("coverage"))
    text = assert_ok(run_nox(ws, "-s", "coverage"))
    return ws, text


@pytest.mark.slow
def test_session_writes_every_report(covered: tuple[Path, str]) -> None:
    ws, text = covered
    out = ws / "coverage"
    for rel in (
        "rust/lcov.info",
        "rust/cobertura.xml",
        "rust/html/index.html",
        "rust/parts/tarpaulin.lcov",
        "rust/parts/rust-tests-llvm.lcov",
        "rust/parts/extension-pytest.lcov",
        "python/lcov.info",
        "python/coverage.xml",
        "python/html/index.html",
        "summary.md",
    ):
        assert (out / rel).is_file() and (out / rel).stat().st_size > 0, rel
    assert not list(out.glob(".staging-*")) and not list(out.glob(".old-*"))
    assert "== coverage ==" in text and "cargo-tarpaulin    0.37.5" in text
    assert re.search(r"Rust tests\s+\d+ run, 0 failed\n\s+Python tests\s+\d+ run, 0 failed", text), text[-3000:]
    assert "| Rust tests (cargo tarpaulin) |" in (out / "summary.md").read_text()
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
    alone = lcov_block.parse_lcov((rust / "parts" / "tarpaulin.lcov").read_text(), ws)
    merged = lcov_block.parse_lcov((rust / "lcov.info").read_text(), ws)
    # Rust tests never load the extension: tarpaulin alone saw no PyO3 line run...
    assert alone[PYO3] and not any(alone[PYO3].values())
    # ...the merged report has them hit, from pytest, and keeps every line of both.
    hit = [n for n, h in merged[PYO3].items() if h > 0]
    assert len(hit) > len(merged[PYO3]) // 2
    assert set(alone[PYO3]) <= set(merged[PYO3])
    xml = ET.parse(rust / "cobertura.xml").getroot()
    (cls,) = [c for c in xml.iter("class") if c.get("filename") == PYO3]
    assert any(int(line.get("hits")) > 0 for line in cls.iter("line"))
    assert float(xml.get("line-rate")) == pytest.approx(lcov_block.totals(merged).percent / 100)
    assert "lib.rs" in (rust / "html" / "index.html").read_text()


@pytest.mark.slow
def test_session_pyo3_counts_equal_llvm_covs_on_its_profile(covered: tuple[Path, str]) -> None:
    """The real session's merged report (tarpaulin's real LCOV inside), for
    every PyO3 source file, against llvm-cov on the session's own profile and
    the extension the session venv loaded."""
    ws, _ = covered
    _, _, cov_tool = llvm_tools_or_skip(dict(os.environ))
    (obj,) = ws.glob(".nox/coverage/lib/python3*/site-packages/q_kangaroo/_core*.so")
    expected = llvm_line_counts(cov_tool, ws / "target/suite/coverage/extension.profdata", obj, ws / PYO3_CRATE)
    merged = lcov_block.parse_lcov((ws / "coverage/rust/lcov.info").read_text(), ws)
    got = {
        p[len(PYO3_CRATE) :]: (t.lines, t.covered)
        for p, t in lcov_block.file_totals(merged)
        if p.startswith(PYO3_CRATE)
    }
    assert got == expected and got["src/lib.rs"][0] > 50


@pytest.mark.slow
def test_floor_logic_on_the_real_reports(covered: tuple[Path, str]) -> None:
    ws, _ = covered
    rust = lcov_block.totals(lcov_block.parse_lcov((ws / "coverage" / "rust" / "lcov.info").read_text(), ws))
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


def break_tests_and_add_arguments(ws: Path) -> None:
    """One failing Rust integration test, one failing Python test, and the three per-tool argument lists."""
    oeis = ws / "crates/qsym-core/tests/oeis.rs"
    oeis.write_text(oeis.read_text().replace("partition_count(100), 190_569_292", "partition_count(100), 190_569_293"))
    pytests = ws / "crates/qsym-python/tests/test_series.py"
    pytests.write_text(
        pytests.read_text().replace("partition_count(100) == 190569292", "partition_count(100) == 190569293")
    )
    pyproject = ws / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'tarpaulin-version = "0.37.5"\n',
            'tarpaulin-version = "0.37.5"\n'
            'tarpaulin-args = ["--exclude-files", "crates/qsym-core/src/lib.rs"]\n'
            'pytest-args = ["-k", "not gmp_version"]\n'
            "llvm-cov-args = ['-ignore-filename-regex=partitions\\.rs$']\n",
            1,
        )
    )
    assert "190_569_293" in oeis.read_text() and "190569293" in pytests.read_text()
    assert "llvm-cov-args" in pyproject.read_text()


@pytest.mark.slow
def test_failing_tests_still_write_every_report_then_fail_in_one_line(tmp_path: Path) -> None:
    tarpaulin_or_skip()
    ws = copy_repo(tmp_path / "ws")
    break_tests_and_add_arguments(ws)
    out = assert_clean_failure(run_nox(ws, "-s", "coverage"))
    (line,) = [x for x in out.splitlines() if x.startswith("error: ")]
    assert re.fullmatch(
        r"error: tests failed under coverage \(every report was written to .*/coverage\): "
        r"Rust tests \(cargo tarpaulin\): 1 of \d+ failed: a000041_large_values; "
        r"Python tests \(pytest\): 1 of \d+ failed: tests\.test_series\.test_a000041_partitions",
        line,
    ), line
    # Both runs went to the end: every other test ran and passed.
    assert re.search(r"test result: FAILED\. \d+ passed; 1 failed", out) and "test result: ok." in out
    report = ws / "coverage"
    for rel in (
        "rust/lcov.info",
        "rust/cobertura.xml",
        "rust/html/index.html",
        "python/coverage.xml",
        "python/html/index.html",
        "summary.md",
    ):
        assert (report / rel).is_file() and (report / rel).stat().st_size > 0, rel
    assert "| Rust tests (cargo tarpaulin) |" in (report / "summary.md").read_text()

    # The per-tool arguments reached their command lines...
    commands = [x for x in out.splitlines() if x.startswith("$ ")]
    tarpaulin = [c for c in commands if " tarpaulin --engine llvm " in c]
    assert len(tarpaulin) == 2 and all(c.endswith(" --exclude-files crates/qsym-core/src/lib.rs") for c in tarpaulin)
    assert [c for c in commands if " -m pytest " in c and c.endswith(" -k 'not gmp_version'")]
    exports = [c for c in commands if " export -format=lcov " in c]
    assert len(exports) == 2 and all(c.endswith(" '-ignore-filename-regex=partitions\\.rs$'") for c in exports)
    # ...and did what they say.
    parts = {
        name: lcov_block.parse_lcov((report / "rust/parts" / name).read_text(), ws)
        for name in ("tarpaulin.lcov", "rust-tests-llvm.lcov", "extension-pytest.lcov")
    }
    assert "crates/qsym-core/src/lib.rs" not in parts["tarpaulin.lcov"]
    assert not any(p.endswith("partitions.rs") for p in parts["extension-pytest.lcov"])
    junit = ET.parse(ws / "target/suite/coverage/python/junit.xml").getroot()
    assert not [c for c in junit.iter("testcase") if "gmp_version" in (c.get("name") or "")]
    # tarpaulin dropped the failed test binary's coverage; its own profile,
    # read by llvm-cov, brings those hits back.
    lost = [
        (p, n)
        for p, lines in parts["tarpaulin.lcov"].items()
        for n, h in lines.items()
        if h == 0 and parts["rust-tests-llvm.lcov"].get(p, {}).get(n, 0) > 0
    ]
    assert lost
    merged = lcov_block.parse_lcov((report / "rust/lcov.info").read_text(), ws)
    assert all(merged[p][n] > 0 for p, n in lost)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("MATURIN_SUITE_TEST_INSTALL"),
    reason="compiles cargo-tarpaulin (minutes); set MATURIN_SUITE_TEST_INSTALL=1",
)
def test_tarpaulin_installs_into_an_empty_cache(tmp_path: Path) -> None:
    from ci.blocks.toolchain import require_cargo

    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    path = os.pathsep.join(
        p
        for p in env["PATH"].split(os.pathsep)
        if not (Path(p) / "cargo-tarpaulin").exists() or p.endswith(".cargo/bin")
    )
    env["PATH"] = path
    if shutil.which("cargo-tarpaulin", path=path):
        pytest.skip("a cargo-tarpaulin in ~/.cargo/bin would be found first")
    ctx = Context(config=load_config(REPO), console=Console(), base_env=env)
    exe, origin = tarpaulin_block.ensure_tarpaulin(ctx, require_cargo(env), "0.37.5")
    assert origin == "installed"
    assert exe == tarpaulin_block.tarpaulin_root(env, "0.37.5") / "bin" / "cargo-tarpaulin"
    assert tarpaulin_block.find_tarpaulin(env, "0.37.5") == (exe, "cache")
