"""The [tool.maturin-suite] table: every key validated, errors name the key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from ci.core.config import load_config, parse_config, python_package_version, read_toml
from ci.core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def repo_data() -> dict[str, Any]:
    return read_toml(REPO / "pyproject.toml")


def with_key(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(repo_data())
    table = data["tool"]["maturin-suite"]
    *parents, last = path.split(".")
    for p in parents:
        table = table.setdefault(p, {})
    if value is None:
        del table[last]
    else:
        table[last] = value
    return data


def test_repo_config_loads() -> None:
    cfg = load_config(REPO)
    assert cfg.python_crate == REPO / "crates" / "qsym-python"
    assert cfg.import_name == "q_kangaroo"
    assert cfg.distribution == "q-kangaroo"
    assert cfg.native[0].header == "gmp.h"
    assert cfg.linux_wheel.policy == "manylinux2014"
    assert cfg.dist_dir == REPO / "dist"
    assert "3.9" in cfg.python_versions


def test_fixture_config_loads() -> None:
    root = REPO / "tests" / "fixtures" / "mini-ws"
    cfg = load_config(root)
    assert cfg.python_tests == root / "pytests"
    assert cfg.dist_dir == root / "out" / "dist"
    assert cfg.native == ()


def test_version_follows_workspace_inheritance() -> None:
    cargo = read_toml(REPO / "Cargo.toml")
    assert python_package_version(load_config(REPO)) == cargo["workspace"]["package"]["version"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("pyhton-versions", ["3.12"], "unknown key tool.maturin-suite.pyhton-versions (did you mean tool.maturin-suite.python-versions?)"),
        ("python-versions", "3.12", "tool.maturin-suite.python-versions must be a list"),
        ("python-versions", ["3"], "tool.maturin-suite.python-versions[0] must look like '3.12'"),
        ("python-versions", [3.12], "tool.maturin-suite.python-versions[0] must be a string"),
        ("python-versions", [], "must name at least one version"),
        ("module", "q-kangaroo", "tool.maturin-suite.module must be a dotted Python module name"),
        ("module", None, "missing key tool.maturin-suite.module"),
        ("python-crate", "crates/nope", "tool.maturin-suite.python-crate points to"),
        ("python-crate", "crates/qsym-core", "tool.maturin-suite.python-crate: no pyproject.toml"),
        ("gmp", "sometimes", "tool.maturin-suite.gmp must be one of system, static, none"),
        ("linux-wheel.policy", "manylinux1", "tool.maturin-suite.linux-wheel.policy must be one of"),
        ("linux-wheel.colour", "blue", "unknown key tool.maturin-suite.linux-wheel.colour"),
        ("linux-wheel", "zig", "tool.maturin-suite.linux-wheel must be a table"),
        ("coverage.rust-floor", 120, "tool.maturin-suite.coverage.rust-floor must be between 0 and 100"),
        ("coverage.python-floor", "high", "tool.maturin-suite.coverage.python-floor must be a number"),
        ("native", [{"name": "GMP", "header": "gmp.h"}], "missing key tool.maturin-suite.native[0].link"),
        ("native", [{"name": "GMP", "header": "gmp.h", "link": "gmp", "apt": "x"}], "unknown key tool.maturin-suite.native[0].apt"),
        ("workspace", "crates", "tool.maturin-suite.workspace: no Cargo.toml"),
    ],
)
def test_bad_key_is_named(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_key(key, value), REPO)
    assert message in str(info.value)


def test_missing_table() -> None:
    with pytest.raises(ConfigError, match=r"has no \[tool.maturin-suite\] table"):
        parse_config({"tool": {}}, REPO)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.maturin-suite\nmodule = 1\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(tmp_path)


def test_missing_pyproject(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path)
