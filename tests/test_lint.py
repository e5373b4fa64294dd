"""The lint session on a copy of the repository: it passes as committed, and
each of its five checks fails when its rule is broken once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import assert_clean_failure, assert_ok, copy_repo, run_nox

pytestmark = pytest.mark.slow

CHECKS = ("ruff check", "ruff format --check", "mypy --strict ci/", "cargo fmt --check", "cargo clippy -D warnings")


def rows(text: str) -> dict[str, str]:
    found = {}
    for name in CHECKS:
        m = re.search(rf"^\s+{re.escape(name)}\s+(ok|FAILED.*)$", text, re.M)
        assert m, f"no summary row for {name}:\n{text[-3000:]}"
        found[name] = m.group(1)
    return found


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("lint-ws"))


def test_lint_passes_on_the_repository(repo: Path) -> None:
    text = assert_ok(run_nox(repo, "-s", "lint"))
    assert set(rows(text).values()) == {"ok"}


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_each_check_fails_when_broken(repo: Path) -> None:
    # ruff check: an unused import; mypy: a wrong return type.
    append(repo / "ci" / "core" / "findings.py", "\n\ndef _broken() -> int:\n    import json\n\n    return 'x'\n")
    # ruff format: a badly formatted (but lint-clean) line.
    append(repo / "ci" / "core" / "errors.py", "\n\nBROKEN_SPACING = {  'a':1 }\n")
    # cargo fmt: a badly formatted item; clippy: a needless return.
    append(repo / "crates" / "qsym-core" / "src" / "lib.rs", "\npub fn broken_fmt( )->u32{ return 1 ; }\n")
    text = assert_clean_failure(run_nox(repo, "-s", "lint"), "lint failed:")
    assert all(v.startswith("FAILED") for v in rows(text).values()), rows(text)
    assert "lint failed: " + ", ".join(CHECKS) in text
