"""The benchmark script's arithmetic and report (the timings themselves are
never asserted: speed is measured by bench/run.py, not by tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def test_medians_ratio_and_target(bench) -> None:
    case = bench.Case("rust-tests", "warm", session=[1.3, 1.1, 9.0], raw=[1.0, 0.9, 1.2])
    s = case.summary()
    assert s["session_median"] == 1.3 and s["raw_median"] == 1.0
    assert s["ratio"] == pytest.approx(1.3)
    assert s["within_target"] is True
    slow = bench.Case("x", "warm", session=[20.0], raw=[10.0]).summary()
    assert slow["within_target"] is False  # 20 > 1.10 * 10 + 3


def test_markdown_table_has_one_row_per_case(bench) -> None:
    rows = [
        bench.Case("a", "warm", session=[2.0], raw=[1.0], session_cmd="nox -s a", raw_cmd="raw a").summary(),
        bench.Case("b", "cold", session=[30.0], session_cmd="nox -s b").summary(),
    ]
    meta = {"cores": "2", "platform": "p", "commit": "c", "rustc": "r"}
    text = bench.markdown(meta, rows, 60.0, 3)
    assert "| a | warm | 2.00 | 1.00 | 2.00 | 1.00 | yes |" in text
    assert "| b | cold | 30.00 |" in text
    assert "`nox -s a` vs `raw a`" in text


def test_edit_changes_one_line_each_time(bench, tmp_path: Path) -> None:
    target = tmp_path / bench.EDIT_FILE
    target.parent.mkdir(parents=True)
    target.write_text("fn main() {}\n")
    b = bench.Bench(tmp_path, reps=1)
    b.edit()
    first = target.read_text()
    b.edit()
    second = target.read_text()
    assert first != second
    assert second.count("BENCH_EDIT") == 1 and second.startswith("fn main() {}\n")
