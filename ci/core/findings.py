"""Findings of artifact checks: one row of publish-check's table each.

Every check of every artifact yields :class:`Finding` rows; a session fails
when any row has status ``fail``, and the message names the file and the rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Status = Literal["pass", "fail", "n/a"]


@dataclass(frozen=True)
class Finding:
    artifact: str  # file name, e.g. q_kangaroo-0.3.0-cp39-abi3-win_amd64.whl
    rule: str  # short rule id, e.g. "abi3audit", "pe-closure"
    status: Status
    detail: str = ""

    def line(self) -> str:
        return f"{self.artifact}: [{self.rule}] {self.status.upper()}{': ' + self.detail if self.detail else ''}"


def failures(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "fail"]


def table(findings: Sequence[Finding]) -> str:
    """Markdown table: artifact x rule -> pass / FAIL / n/a."""
    rules: list[str] = []
    artifacts: list[str] = []
    cell: dict[tuple[str, str], str] = {}
    for f in findings:
        if f.rule not in rules:
            rules.append(f.rule)
        if f.artifact not in artifacts:
            artifacts.append(f.artifact)
        mark = {"pass": "pass", "fail": "FAIL", "n/a": "n/a"}[f.status]
        key = (f.artifact, f.rule)
        # A rule checked several times on one artifact fails if any part fails.
        if cell.get(key) != "FAIL":
            cell[key] = mark if key not in cell or mark == "FAIL" else cell[key]
    lines = ["| artifact | " + " | ".join(rules) + " |", "|---|" + "---|" * len(rules)]
    for a in artifacts:
        lines.append(f"| {a} | " + " | ".join(cell.get((a, r), "n/a") for r in rules) + " |")
    return "\n".join(lines)
