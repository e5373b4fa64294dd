"""PE import closure of Windows wheels (windows-gnu-wheel, publish-check).

Placeholder until the windows-gnu-wheel work lands: publish-check must not
pass a Windows wheel it cannot inspect, so this reports a failure.
"""

from __future__ import annotations

from pathlib import Path

from ci.checks import Finding
from ci.config import SuiteConfig


def windows_wheel_findings(wheel: Path, cfg: SuiteConfig) -> list[Finding]:
    return [Finding(wheel.name, "windows-checks", "fail", "Windows wheel checks are not implemented yet")]
