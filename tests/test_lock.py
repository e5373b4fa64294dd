"""One place per pin: [tool.uv] constraint-dependencies pins each tool, uv.lock
resolves everything, and the exported files every install path uses
(ci/constraints.txt, ci/requirements-nox.txt) are exactly uv's export."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ci.blocks.venvs import find_uv

ROOT = Path(__file__).resolve().parent.parent
EXPORTS = {
    "ci/constraints.txt": ["--all-groups", "--no-hashes"],
    "ci/requirements-nox.txt": ["--only-group", "nox"],
}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def uv() -> str:
    found = find_uv({"PATH": ""}) or find_uv(__import__("os").environ)
    if not found:
        pytest.skip("uv is not installed (it comes with nox[uv])")
    return found


def test_lock_matches_pyproject() -> None:
    proc = subprocess.run([uv(), "lock", "--check", "--offline"], check=False, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("path", sorted(EXPORTS))
def test_exports_are_fresh(path: str) -> None:
    proc = subprocess.run(
        [
            uv(),
            "export",
            "--frozen",
            "--no-emit-project",
            "--format",
            "requirements-txt",
            *EXPORTS[path],
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#")]

    assert body(proc.stdout) == body((ROOT / path).read_text(encoding="utf-8")), (
        f"{path} is stale: uv export --frozen --no-emit-project --format requirements-txt "
        f"{' '.join(EXPORTS[path])} -o {path}"
    )


def pinned() -> dict[str, str]:
    text = (ROOT / "ci/constraints.txt").read_text(encoding="utf-8")
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def group_names() -> set[str]:
    names = set()
    for reqs in pyproject()["dependency-groups"].values():
        names |= {canonicalize_name(Requirement(r).name) for r in reqs if isinstance(r, str)}
    return names


def test_groups_hold_names_and_every_tool_is_pinned_once() -> None:
    groups = pyproject()["dependency-groups"]
    versioned = [r for reqs in groups.values() for r in reqs if isinstance(r, str) and Requirement(r).specifier]
    assert versioned == [], "pins belong in [tool.uv] constraint-dependencies, not in the groups"
    constraints = pyproject()["tool"]["uv"]["constraint-dependencies"]
    tops = [canonicalize_name(Requirement(c).name) for c in constraints]
    assert len(tops) == len(set(tops)), "a tool is pinned twice"
    lock = pinned()
    for name in group_names():
        assert name in lock, f"{name} has no pin in ci/constraints.txt"


def script_block_names() -> set[str]:
    text = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    block = re.search(r"^# /// script\n((?:#.*\n)+?)# ///$", text, re.M)
    assert block, "noxfile.py has no PEP 723 block"
    meta = tomllib.loads("".join(line[2:] + "\n" for line in block[1].splitlines()))
    return {canonicalize_name(Requirement(r).name) for r in meta["dependencies"]}


def test_noxfile_script_block_lists_the_nox_group() -> None:
    nox_group = {canonicalize_name(Requirement(r).name) for r in pyproject()["dependency-groups"]["nox"]}
    assert script_block_names() == nox_group


def test_script_block_minimums_admit_the_pins() -> None:
    text = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    lock = pinned()
    for line in re.findall(r'^#\s+"([^"]+)",$', text, re.M):
        req = Requirement(line)
        assert req.specifier.contains(lock[canonicalize_name(req.name)], prereleases=True), line
