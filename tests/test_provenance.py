"""Provenance: each artifact's toolchain is recorded by the session that built
it and joined to the file by content hash in publish-check's JSON report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_ok, copy_repo, run_nox

from ci.blocks import provenance


def test_a_record_matches_only_the_exact_bytes(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    wheel = tmp_path / "dist" / "demo-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"the bytes that were built")
    provenance.record(reports / "linux-wheel", "linux-wheel", wheel, {"rustc": "rustc 1.95.0", "GMP": "6.2.1"})
    other = wheel.with_name("demo-1.0.tar.gz")
    other.write_bytes(b"never recorded")
    found = provenance.of([wheel, other], reports)
    assert found[other.name] is None
    record = found[wheel.name]
    assert record is not None and record["toolchain"] == {"rustc": "rustc 1.95.0", "GMP": "6.2.1"}
    assert record["session"] == "linux-wheel"
    wheel.write_bytes(b"the bytes that were built, then changed")
    assert provenance.of([wheel], reports)[wheel.name] is None


def test_unknown_versions_are_left_out(tmp_path: Path) -> None:
    tools = provenance.toolchain(
        dict(os.environ),
        {"missing": [str(tmp_path / "no-such-tool"), "--version"], "sh": ["sh", "-c", "echo 'sh 1.2'"]},
        {"GMP": None},
    )
    assert tools == {"sh": "sh 1.2"}


@pytest.mark.slow
def test_linux_wheel_records_its_toolchain_and_publish_check_reports_it(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "ws")
    built = assert_ok(run_nox(ws, "-s", "linux-wheel"))
    assert "built with" in built and "maturin" in built and "zig" in built
    assert_ok(run_nox(ws, "-s", "publish-check", "--", "--no-sdist-build", "--no-smoke"))
    report = json.loads((ws / "reports" / "publish-check" / "report.json").read_text())
    ((name, entry),) = report["artifacts"].items()
    assert name.endswith(".whl")
    tools = entry["provenance"]["toolchain"]
    assert tools["rustc"].startswith("rustc 1.") and tools["maturin"].startswith("maturin ")
    assert "system" in tools["GMP"] and tools["zig"]
    assert any(f["rule"] == "zip" for f in entry["findings"])
