"""Console output (plain vs GitHub groups) and atomic artifact publishing."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from ci.core import artifacts
from ci.core.console import Console
from ci.core.errors import StepFailed, ToolMissing


def test_plain_output_has_no_workflow_commands(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(github=False, stream=out)
    console.run([sys.executable, "-c", "pass"], cwd=tmp_path, title="noop")
    with pytest.raises(StepFailed):
        console.run([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, title="boom")
    console.error("it broke")
    text = out.getvalue()
    assert "::" not in text
    assert "--- noop" in text and "error: it broke" in text


def test_github_output_groups_each_step_and_annotates_errors(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(github=True, stream=out)
    console.run([sys.executable, "-c", "pass"], cwd=tmp_path, title="noop")
    with pytest.raises(StepFailed) as info:
        console.run([sys.executable, "-c", "raise SystemExit(3)"], cwd=tmp_path, title="boom")
    assert info.value.returncode == 3
    console.error("first line\nsecond line")
    lines = out.getvalue().splitlines()
    assert lines.count("::group::noop") == 1 and lines.count("::group::boom") == 1
    assert lines.count("::endgroup::") == 2
    assert "::error::first line" in lines and "second line" in lines


def test_missing_program_is_tool_missing(tmp_path: Path) -> None:
    console = Console(stream=io.StringIO())
    with pytest.raises(ToolMissing, match="no-such-program-xyz not found"):
        console.run(["no-such-program-xyz"], cwd=tmp_path)


def test_summary_lists_rows(tmp_path: Path) -> None:
    out = io.StringIO()
    console = Console(stream=out)
    text = console.summary("demo", [("wheel", "dist/x.whl"), ("tests", "3 passed")])
    assert "== demo ==" in text and "wheel  dist/x.whl" in text
    assert "steps" in text


def test_publish_is_atomic_and_keeps_other_files(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    other = dist / "someone-else-1.0.tar.gz"
    other.write_bytes(b"not ours")
    src = tmp_path / "pkg-1.0-py3-none-any.whl"
    src.write_bytes(b"x" * 5000)
    final = artifacts.publish(src, dist)
    assert final.read_bytes() == src.read_bytes()
    assert final.stat().st_mode & 0o777 == 0o644
    assert other.read_bytes() == b"not ours"
    assert artifacts.stale_partials(dist) == []


def test_failed_publish_leaves_no_partial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "dist"
    src = tmp_path / "pkg-2.0-py3-none-any.whl"
    src.write_bytes(b"y" * 5000)

    def interrupted(a: object, b: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        artifacts.publish(src, dist)
    assert list(dist.iterdir()) == []


def test_staging_dir_is_removed_even_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), artifacts.staging_dir(tmp_path, "build") as d:
        (d / "half.whl").write_bytes(b"partial")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_python_tests_is_parametrised_by_configured_versions() -> None:
    from ci.core.config import load_config
    from ci.core.noxsupport import python_versions

    repo = Path(__file__).resolve().parent.parent
    assert python_versions(repo) == list(load_config(repo).python_versions)


def test_a_command_that_outlives_its_timeout_is_ended_with_its_children(tmp_path: Path) -> None:
    """timeouts.*: the whole process group goes (a grandchild too), and the
    error names the config key."""
    import subprocess
    import time

    from ci.core.errors import StepFailed

    pidfile = tmp_path / "grandchild.pid"
    console = Console(stream=io.StringIO())
    start = time.monotonic()
    with pytest.raises(StepFailed) as info:
        console.run(
            ["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
            cwd=tmp_path,
            timeout=(0.5, "tool.maturin-suite.timeouts.tests"),
        )
    assert time.monotonic() - start < 20
    assert (
        "timed out after 0s (tool.maturin-suite.timeouts.tests)" in info.value.message
        or "timed out after 1s (tool.maturin-suite.timeouts.tests)" in info.value.message
    )
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    alive = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(grandchild)], capture_output=True, text=True, check=False
    ).stdout
    assert alive.strip() in ("", "Z"), alive
