"""LCOV line data: read a tracefile into line hits, merge measurements,
write a tracefile back, and count covered lines.

Pure functions on :data:`LineHits` (repo-relative posix path -> line number
-> hits); function and branch records are not kept: floors are on lines.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.core.errors import SuiteError

# repo-relative posix path -> line number -> hits
LineHits = dict[str, dict[int, int]]


def parse_lcov(text: str, root: Path, *, exclude: Sequence[Path] = (), base: Path | None = None) -> LineHits:
    """Line hits (``DA`` records) of an LCOV tracefile, for files under
    ``root`` only (paths made relative to it) and not under ``exclude``;
    a relative ``SF`` path is read against ``base`` (default ``root``).

    Several records for one file are added up, as ``lcov --add-tracefile``
    does. Function and branch records are not kept: floors are on lines.
    """
    root = root.resolve()
    base = (base or root).resolve()
    data: LineHits = {}
    current: dict[int, int] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("SF:"):
            path = Path(os.path.normpath(base / line[3:]))  # an absolute SF path stays as it is
            if path.is_relative_to(root) and not any(path.is_relative_to(e) for e in exclude):
                current = data.setdefault(path.relative_to(root).as_posix(), {})
            else:
                current = None
        elif line.startswith("DA:") and current is not None:
            fields = line[3:].split(",")
            try:
                number, hits = int(fields[0]), int(fields[1])
            except (IndexError, ValueError):
                raise SuiteError(f"malformed LCOV line: {raw!r}") from None
            current[number] = current.get(number, 0) + max(hits, 0)
        elif line == "end_of_record":
            current = None
    return data


def union_hits(a: LineHits, b: LineHits, combine: Callable[[int, int], int]) -> LineHits:
    """Per file, every line ``a`` or ``b`` lists, with ``combine`` of both
    sides' hits where both list it (else the one side's)."""
    merged: LineHits = {path: dict(lines) for path, lines in a.items()}
    for path, lines in b.items():
        into = merged.setdefault(path, {})
        for number, hits in lines.items():
            into[number] = combine(into[number], hits) if number in into else hits
    return merged


def only_lines(data: LineHits, keep: LineHits) -> LineHits:
    """``data`` on the lines ``keep`` lists, no others."""
    return {path: {n: h for n, h in data.get(path, {}).items() if n in lines} for path, lines in keep.items()}


def merge_rust(tarpaulin: LineHits, tests_llvm: LineHits, extension: LineHits) -> LineHits:
    """The Rust report (see ``ci.sessions.coverage``): tarpaulin's lines and the
    extension run's, each with the Rust tests' hits (the larger of tarpaulin's
    and llvm-cov's on the same profiles) plus the Python tests' hits."""
    lines = union_hits(tarpaulin, extension, max)
    rust_tests = union_hits(tarpaulin, only_lines(tests_llvm, lines), max)
    return union_hits(rust_tests, extension, operator.add)


def render_lcov(data: LineHits, test_name: str = "") -> str:
    """An LCOV tracefile (repo-relative ``SF`` paths, which Codecov resolves)."""
    out: list[str] = []
    for path in sorted(data):
        lines = data[path]
        out.append(f"TN:{test_name}")
        out.append(f"SF:{path}")
        out += [f"DA:{n},{lines[n]}" for n in sorted(lines)]
        out.append(f"LF:{len(lines)}")
        out.append(f"LH:{sum(1 for h in lines.values() if h > 0)}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Totals:
    covered: int
    lines: int

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.lines if self.lines else 0.0

    def text(self) -> str:
        return f"{self.percent:.2f}% ({self.covered}/{self.lines} lines)"


def totals(data: LineHits, prefix: str = "") -> Totals:
    """Covered and coverable lines over the files whose path starts with ``prefix``."""
    covered = lines = 0
    for path, hits in data.items():
        if path.startswith(prefix):
            lines += len(hits)
            covered += sum(1 for h in hits.values() if h > 0)
    return Totals(covered, lines)


def file_totals(data: LineHits) -> list[tuple[str, Totals]]:
    return [(path, totals({path: data[path]})) for path in sorted(data)]
