"""Reports are only this run's: a JUnit file an earlier run left in a shared
CARGO_TARGET_DIR is never reported (or published) as this run's."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.sessions import rust_tests

ROOT = Path(__file__).resolve().parent.parent
JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="s" tests="7" failures="0"></testsuite></testsuites>"""


def context(tmp_path: Path) -> Context:
    cfg = load_config(ROOT)
    import dataclasses

    cfg = dataclasses.replace(cfg, reports_dir=tmp_path / "reports")
    env = dict(os.environ, CARGO_TARGET_DIR=str(tmp_path / "shared-target"))
    return Context(config=cfg, console=Console(stream=io.StringIO()), base_env=env)


def write_junit(tmp_path: Path, age: float) -> Path:
    junit = tmp_path / "shared-target" / "nextest" / rust_tests.NEXTEST_PROFILE / "junit.xml"
    junit.parent.mkdir(parents=True)
    junit.write_text(JUNIT)
    then = time.time() - age
    os.utime(junit, (then, then))
    return junit


def test_a_junit_older_than_the_run_is_ignored(tmp_path: Path) -> None:
    write_junit(tmp_path, age=3600)
    rows = dict(rust_tests.nextest_rows(context(tmp_path), True, started=time.time()))
    assert "tests" not in rows and "none from this run" in rows["junit"]
    assert not (tmp_path / "reports" / "rust-tests" / "junit.xml").exists()


def test_this_runs_junit_is_reported_and_published(tmp_path: Path) -> None:
    write_junit(tmp_path, age=0)
    rows = dict(rust_tests.nextest_rows(context(tmp_path), True, started=time.time() - 60))
    assert rows["tests"] == "7 run, 0 failed, 0 skipped"
    assert (tmp_path / "reports" / "rust-tests" / "junit.xml").is_file()


def test_earlier_published_reports_are_removed_at_start(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    folder = ctx.config.report_dir("rust-tests")
    folder.mkdir(parents=True)
    for name in ("junit.xml", "doctests.xml"):
        (folder / name).write_text(JUNIT)
    (folder / "someone-elses.txt").write_text("kept")
    rust_tests.forget_earlier_reports(ctx)
    assert sorted(p.name for p in folder.iterdir()) == ["someone-elses.txt"]
