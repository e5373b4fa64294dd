"""The ``rust-tests`` session: the whole cargo workspace, ``--locked``.

The PyO3 extension crate is left out of ``cargo test`` by design: it is a
``cdylib`` built to be loaded by Python, so it deliberately does not link
libpython, and a Rust test harness for it would fail to link (or need a
libpython matching the build interpreter). Its behaviour is tested from
Python by the ``python-tests`` session; the Rust logic lives in the other
crates, which this session tests in full.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ci.core.context import Context

NEXTEST_PROFILE = "maturin-suite"
NEXTEST_CONFIG = Path(__file__).with_name("nextest.toml")


def target_dir(ctx: Context) -> Path:
    env = ctx.env()
    if env.get("CARGO_TARGET_DIR"):
        return Path(ctx.root, env["CARGO_TARGET_DIR"]).resolve()
    return ctx.config.workspace / "target"


def python_crate_name(ctx: Context) -> str:
    return ctx.project.python_crate.name


def test_command(ctx: Context, cargo: str, nextest: bool) -> list[str]:
    """The cargo command line rust-tests runs (extra arguments last)."""
    common = ["--workspace", "--locked", "--exclude", python_crate_name(ctx)]
    if nextest:
        return [
            cargo, "nextest", "run", *common,
            "--tool-config-file", f"maturin-suite:{NEXTEST_CONFIG}",
            "--profile", NEXTEST_PROFILE,
            *ctx.posargs,
        ]
    cmd = [cargo, "test", *common]
    if ctx.posargs:
        cmd += ["--", *ctx.posargs]
    return cmd


def junit_counts(path: Path) -> tuple[int, int, int]:
    """(tests, failures+errors, skipped) from a JUnit XML report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests, failed, skipped
