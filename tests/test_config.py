"""The [tool.maturin-suite] table: every key validated, errors name the key."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ci.core.config import SCHEMA_FILE, SuiteConfig, load_config, parse_config, read_toml
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


def _kebab_fields(cls: type) -> set[str]:
    return {f.name.replace("_", "-") for f in dataclasses.fields(cls) if f.name != "root"}


def test_schema_and_dataclasses_name_the_same_keys() -> None:
    """The shipped JSON Schema and the dataclasses the engine reads must agree
    on every key of every table (a key added to one only fails here)."""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert set(schema["properties"]) == _kebab_fields(SuiteConfig)
    hints = {
        f.name.replace("_", "-"): f.default_factory
        for f in dataclasses.fields(SuiteConfig)
        if f.default_factory is not dataclasses.MISSING
    }
    for table, factory in hints.items():
        sub = schema["properties"][table]
        if sub.get("type") == "object":
            assert set(sub["properties"]) == _kebab_fields(type(factory())), table
    native = schema["properties"]["native"]["items"]["properties"]
    from ci.core.config import NativeLibrary

    assert set(native) == _kebab_fields(NativeLibrary)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "pyhton-versions",
            ["3.12"],
            "unknown key tool.maturin-suite.pyhton-versions (did you mean tool.maturin-suite.python-versions?)",
        ),
        ("python-versions", "3.12", "tool.maturin-suite.python-versions must be a list; got '3.12'"),
        ("python-versions", ["3"], "tool.maturin-suite.python-versions[0] must match the pattern"),
        ("python-versions", [3.12], "tool.maturin-suite.python-versions[0] must be a string"),
        ("python-versions", [], "tool.maturin-suite.python-versions must not be empty"),
        ("module", "q-kangaroo", "tool.maturin-suite.module must match the pattern"),
        ("python-crate", None, "missing key tool.maturin-suite.python-crate"),
        ("python-crate", "crates/nope", "tool.maturin-suite.python-crate points to"),
        ("python-crate", "crates/qsym-core", "tool.maturin-suite.python-crate: no pyproject.toml"),
        ("gmp", "sometimes", "tool.maturin-suite.gmp must be one of system, static, none; got 'sometimes'"),
        ("linux-wheel.policy", "manylinux1", "tool.maturin-suite.linux-wheel.policy must be one of"),
        ("linux-wheel.colour", "blue", "unknown key tool.maturin-suite.linux-wheel.colour"),
        ("linux-wheel", "zig", "tool.maturin-suite.linux-wheel must be a table; got 'zig'"),
        ("coverage.rust-floor", 120, "tool.maturin-suite.coverage.rust-floor must be at most 100; got 120"),
        ("coverage.python-floor", "high", "tool.maturin-suite.coverage.python-floor must be a number"),
        ("coverage.python-floor", -1, "tool.maturin-suite.coverage.python-floor must be at least 0; got -1"),
        ("windows-wheel.rust-route", "fast", "tool.maturin-suite.windows-wheel.rust-route must be one of auto"),
        ("windows-wheel.wine-tests", "maybe", "tool.maturin-suite.windows-wheel.wine-tests must be one of auto"),
        ("publish.licenses", {"libgmp": "COPYING"}, "tool.maturin-suite.publish.licenses.libgmp must be a list"),
        ("python-versions", ["3.12", "3.12"], "tool.maturin-suite.python-versions must not repeat a value"),
        ("windows-wheel.test_crates", ["x"], "(did you mean tool.maturin-suite.windows-wheel.test-crates?)"),
        ("native", [{"name": "GMP", "header": "gmp.h"}], "missing key tool.maturin-suite.native[0].link"),
        (
            "native",
            [{"name": "GMP", "header": "gmp.h", "link": "gmp", "apt": "x"}],
            "unknown key tool.maturin-suite.native[0].apt",
        ),
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
