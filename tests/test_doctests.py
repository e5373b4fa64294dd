"""rust-tests runs the doctests too (cargo-nextest does not): counted from
rustdoc's output, written as JUnit XML, a row of the summary, and a failing
doctest fails the session once the summary is printed.

The parser is tested on rustdoc's real output (both formats: per-doctest
binaries before edition 2024, merged doctests since); the session on a tiny
workspace made here (a library crate with a passing, a failing and an ignored
doctest, and a cdylib "extension" crate that is excluded).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ci.blocks import cargo as cargo_block
from ci.blocks import toolchain
from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import StepFailed
from ci.core.project import load_project
from ci.sessions import rust_tests

# `cargo test --doc --no-fail-fast` (stdout and stderr in one stream), edition 2021.
OUTPUT_2021 = """\
   Compiling alpha v0.1.0 (/tmp/ws/alpha)
    Finished `test` profile [unoptimized + debuginfo] target(s) in 0.10s
   Doc-tests alpha

running 3 tests
test alpha/src/lib.rs - double (line 5) ... ok
test alpha/src/lib.rs - ignored (line 19) ... ignored
test alpha/src/lib.rs - broken (line 12) ... FAILED

failures:

---- alpha/src/lib.rs - broken (line 12) stdout ----
Test executable failed (exit status: 101).

stderr:

thread 'main' panicked at alpha/src/lib.rs:5:1:
assertion `left == right` failed
  left: 4
 right: 5



failures:
    alpha/src/lib.rs - broken (line 12)

test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.24s

   Doc-tests beta_util

running 1 test
test beta/src/lib.rs - Thing::new (line 3) - compile ... ok

test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s

error: doctest failed, to rerun pass `-p alpha --doc`
"""

# The same crate under edition 2024 (merged doctests: two "test result" lines).
OUTPUT_2024 = """\
   Doc-tests alpha

running 2 tests
test alpha/src/lib.rs - double (line 5) ... ok
test alpha/src/lib.rs - broken (line 12) ... FAILED

failures:

---- alpha/src/lib.rs - broken (line 12) stdout ----
Test executable failed (exit status: 101).

 right: 5



failures:

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.06s


running 1 test
test alpha/src/lib.rs - ignored (line 19) ... ignored

test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

all doctests ran in 0.25s; merged doctests compilation took 0.18s
error: doctest failed, to rerun pass `-p alpha --doc`
"""


def test_parse_per_doctest_output() -> None:
    run = cargo_block.parse_doctests(OUTPUT_2021, 101)
    assert (run.passed, run.failed, run.ignored) == (2, 1, 1)
    assert [(c.crate, c.name, c.outcome) for c in run.cases] == [
        ("alpha", "alpha/src/lib.rs - double (line 5)", "passed"),
        ("alpha", "alpha/src/lib.rs - ignored (line 19)", "ignored"),
        ("alpha", "alpha/src/lib.rs - broken (line 12)", "failed"),
        ("beta_util", "beta/src/lib.rs - Thing::new (line 3) - compile", "passed"),
    ]
    broken = run.cases[2]
    assert broken.output.startswith("Test executable failed (exit status: 101).")
    assert broken.output.endswith("right: 5")
    assert run.error == "1 doctest(s) failed: alpha/src/lib.rs - broken (line 12)"


def test_parse_merged_doctest_output_sums_every_result_line() -> None:
    run = cargo_block.parse_doctests(OUTPUT_2024, 101)
    assert (run.passed, run.failed, run.ignored) == (1, 1, 1)
    assert [c.outcome for c in run.cases] == ["passed", "failed", "ignored"]
    assert "right: 5" in run.cases[1].output


def test_a_build_error_is_an_error_without_doctests() -> None:
    run = cargo_block.parse_doctests("error[E0425]: cannot find value `x`\nerror: could not compile `alpha`\n", 101)
    assert run.cases == () and run.failed == 0
    assert run.error is not None and "exit code 101" in run.error
    root = cargo_block.doctest_junit(run).getroot()
    assert root.get("errors") == "1"
    assert [e.get("message") for e in root.iter("error")] == [run.error]
    assert cargo_block.parse_doctests("test result: ok. 0 passed; 0 failed; 0 ignored;", 0).error is None


def test_junit_has_one_testcase_per_doctest(tmp_path: Path) -> None:
    run = cargo_block.parse_doctests(OUTPUT_2021, 101)
    path = cargo_block.write_doctest_junit(run, tmp_path / "reports")
    assert path == tmp_path / "reports" / "doctests.xml"
    assert [p.name for p in path.parent.iterdir()] == ["doctests.xml"]  # no staging left
    root = ET.parse(path).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["alpha", "beta_util"]
    cases = list(suites["alpha"].iter("testcase"))
    assert [c.get("name") for c in cases] == [c.name for c in run.cases[:3]]
    (failure,) = cases[2].iter("failure")
    assert "right: 5" in (failure.text or "")
    assert cases[1].find("skipped") is not None and cases[0].find("failure") is None
    # The file nextest writes is read by the same counter.
    assert cargo_block.junit_counts(path) == (4, 1, 1)


# --------------------------------------------------------------------------
# the session on a workspace of its own

LIB_RS = """\
//! A library with doctests.

/// Doubles.
///
/// ```
/// assert_eq!(lib_one::double(2), 4);
/// ```
pub fn double(x: u32) -> u32 {
    x * 2
}

/// A doctest that fails.
///
/// ```
/// assert_eq!(lib_one::double(2), 5);
/// ```
pub fn broken() {}

/// Not run.
///
/// ```ignore
/// this is not Rust
/// ```
pub fn ignored() {}

#[cfg(test)]
mod tests {
    #[test]
    fn doubles() {
        assert_eq!(super::double(21), 42);
    }
}
"""

EXT_RS = """\
/// Would fail if its doctests ran (the extension crate is excluded).
///
/// ```
/// assert!(false);
/// ```
pub fn ext() {}
"""


def write_workspace(root: Path, *, failing: bool = True) -> Path:
    files = {
        "Cargo.toml": '[workspace]\nmembers = ["lib-one", "ext"]\nresolver = "2"\n',
        "pyproject.toml": '[tool.maturin-suite]\npython-crate = "ext"\n',
        "lib-one/Cargo.toml": '[package]\nname = "lib-one"\nversion = "0.1.0"\nedition = "2021"\n',
        "lib-one/src/lib.rs": LIB_RS if failing else LIB_RS.replace("double(2), 5)", "double(2), 4)"),
        "ext/Cargo.toml": (
            '[package]\nname = "ext-py"\nversion = "0.1.0"\nedition = "2021"\n\n'
            '[lib]\nname = "_ext"\ncrate-type = ["cdylib"]\n'
        ),
        "ext/pyproject.toml": '[project]\nname = "ext"\nrequires-python = ">=3.9"\n',
        "ext/src/lib.rs": EXT_RS,
        "ext/tests/.keep": "",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    subprocess.run(["cargo", "generate-lockfile", "--offline"], cwd=root, check=True, capture_output=True)
    return root


def session_ctx(root: Path, env: dict[str, str] | None = None) -> tuple[Context, io.StringIO]:
    base = dict(env or os.environ)
    base.pop("CARGO_TARGET_DIR", None)
    base.pop("GITHUB_ACTIONS", None)
    out = io.StringIO()
    ctx = Context(config=load_config(root), console=Console(stream=out), base_env=base, model=load_project(root, base))
    return ctx, out


needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo not installed")


def test_doctest_crates_leave_out_the_extension(tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("cargo not installed")
    ctx, _ = session_ctx(write_workspace(tmp_path))
    assert cargo_block.doctest_crates(ctx) == ["lib-one"]
    argv = cargo_block.doctest_command(ctx, "cargo")
    assert argv[:3] == ["cargo", "test", "--doc"]
    assert argv[argv.index("--exclude") + 1] == "ext-py"
    assert "--locked" in argv and "--workspace" in argv
    # Without nextest, cargo test leaves the doctests to the separate run.
    assert "--doc" not in cargo_block.test_command(ctx, "cargo", nextest=False)
    assert "--tests" in cargo_block.test_command(ctx, "cargo", nextest=False)


@needs_cargo
def test_a_failing_doctest_fails_the_session_after_the_summary(tmp_path: Path) -> None:
    ctx, out = session_ctx(write_workspace(tmp_path))
    with pytest.raises(StepFailed) as info:
        rust_tests.run(ctx)
    assert info.value.message == "1 doctest(s) failed: lib-one/src/lib.rs - broken (line 14)"
    text = out.getvalue()
    summary = text[text.index("== rust-tests ==") :]
    assert "doctests        1 passed, 1 failed, 1 ignored" in summary
    assert "doctests junit  reports/rust-tests/doctests.xml" in summary
    if "runner          cargo-nextest" in summary:
        assert "tests           1 run, 0 failed, 0 skipped" in summary
    assert "ext-py (extension module" in summary
    # The extension crate's failing doctest was not run.
    assert "ext/src/lib.rs" not in text
    junit = tmp_path / "reports" / "rust-tests" / "doctests.xml"
    assert cargo_block.junit_counts(junit) == (3, 1, 1)
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert sorted(names) == [
        "lib-one/src/lib.rs - broken (line 14)",
        "lib-one/src/lib.rs - double (line 5)",
        "lib-one/src/lib.rs - ignored (line 21)",
    ]


@needs_cargo
def test_passing_doctests_and_no_nextest(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """cargo test (no nextest) runs each doctest once: in the doctest step only."""
    cargo = shutil.which("cargo")
    assert cargo is not None
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(cargo).parent), "/usr/bin", "/bin"]))
    resolved = toolchain.require_cargo(env)
    if toolchain.has_nextest(resolved, env):
        pytest.skip("cargo-nextest is installed beside cargo: cannot hide it")
    ctx, out = session_ctx(write_workspace(tmp_path, failing=False), env)
    rust_tests.run(ctx)
    everything = out.getvalue() + capfd.readouterr().out
    assert everything.count("test lib-one/src/lib.rs - double (line 5) ... ok") == 1
    assert "runner          cargo test (cargo-nextest not installed)" in everything
    assert "doctests        2 passed, 0 failed, 1 ignored" in everything
    assert cargo_block.junit_counts(tmp_path / "reports" / "rust-tests" / "doctests.xml") == (3, 0, 1)
