"""Cross-checks of the project that no single tool makes (used by the
``doctor`` and ``publish-check`` sessions): the extension module's three
names agree (``tool.maturin.module-name`` or the ``[lib]`` name,
``tool.maturin-suite.module``, the ``#[pymodule]`` in the sources), pyo3's
``abi3-pyXY`` feature names the same Python as ``requires-python``, and
``tool.maturin.python-source`` holds the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.core.config import read_toml
from ci.core.context import Context
from ci.core.errors import SuiteError
from ci.core.project import Crate


@dataclass(frozen=True)
class Check:
    """One cross-check of the project: ``problems`` empty when it holds."""

    name: str
    detail: str
    problems: tuple[str, ...] = ()
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


ITEM = re.compile(r"((?:#\[(?:[^\[\]]|\[[^\]]*\])*\]\s*)+)(?:pub(?:\([^)]*\))?\s+)?(?:fn|mod)\s+(?:r#)?(\w+)")
PYMODULE_ATTR = re.compile(r"#\[\s*(?:pyo3\s*::\s*)?pymodule\b")
NAME_ARG = re.compile(r"#\[\s*(?:pyo3\s*::\s*)?(?:pyo3|pymodule)\s*\(([^\]]*)\)\s*\]")


def pymodule_names(src: Path) -> list[str]:
    """The Python names of every ``#[pymodule]`` in the ``.rs`` files under ``src``."""
    names = []
    for path in sorted(src.rglob("*.rs")) if src.is_dir() else []:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        code = "\n".join(line for line in lines if not line.lstrip().startswith("//"))
        for m in ITEM.finditer(code):
            attrs, ident = m.group(1), m.group(2)
            if not PYMODULE_ATTR.search(attrs):
                continue
            renamed = [
                n.group(1)
                for a in NAME_ARG.finditer(attrs)
                for n in [re.search(r"\bname\s*=\s*\"([^\"]+)\"", a.group(1))]
                if n
            ]
            names.append(renamed[-1] if renamed else ident)
    return names


def module_name_problems(maturin: Mapping[str, Any], module: str, lib_name: str, src: Path) -> list[str]:
    """The three names of the extension module, compared (see the module docstring)."""
    problems = []
    declared = str(maturin.get("module-name") or lib_name)
    source = "tool.maturin.module-name" if maturin.get("module-name") else "the [lib] name"
    if maturin.get("module-name") and declared != module:
        problems.append(f"{source} is {declared!r} but tool.maturin-suite.module is {module!r}")
    leaf = declared.rsplit(".", 1)[-1]
    if leaf != module.rsplit(".", 1)[-1] and not problems:
        problems.append(f"{source} ({declared!r}) and tool.maturin-suite.module ({module!r}) end differently")
    found = pymodule_names(src)
    if not found:
        problems.append(f"no #[pymodule] found in {src}")
    elif leaf not in found:
        problems.append(
            f"#[pymodule] {', '.join(found)} in {src} does not define {leaf!r}, the last component "
            f"of {declared!r} (the import would fail: no PyInit_{leaf})"
        )
    return problems


ABI3 = re.compile(r"^(?:pyo3/)?abi3-py(\d)(\d+)$")


def lower_bound(requires_python: str) -> tuple[int, int] | None:
    """The lowest ``(major, minor)`` a ``requires-python`` admits, or None when unbounded."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        specs = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return None
    bounds = []
    for spec in specs:
        if spec.operator in (">=", ">", "~=", "==", "==="):
            parts = re.findall(r"\d+", spec.version)
            if len(parts) >= 2:
                bounds.append((int(parts[0]), int(parts[1])))
    return max(bounds) if bounds else None


def abi3_problems(features: Iterable[str], requires_python: str | None) -> list[str]:
    """pyo3's lowest ``abi3-pyXY`` feature against ``requires-python``'s lower bound."""
    versions = sorted((int(m.group(1)), int(m.group(2))) for f in features if (m := ABI3.match(f)))
    if not versions:
        return ["pyo3 has no abi3-pyXY feature: the wheels would not be abi3 (the suite builds one abi3 wheel)"]
    abi3 = versions[0]
    feature = f"abi3-py{abi3[0]}{abi3[1]}"
    if not requires_python:
        return [f'pyo3 feature {feature} but no requires-python: set requires-python = ">={abi3[0]}.{abi3[1]}"']
    bound = lower_bound(requires_python)
    if bound != abi3:
        low = f"{bound[0]}.{bound[1]}" if bound else "none"
        return [
            f"pyo3 feature {feature} (CPython >= {abi3[0]}.{abi3[1]}) but requires-python "
            f"{requires_python!r} (lower bound {low}): the two must name the same Python"
        ]
    return []


def pyo3_features(crate: Crate, maturin: Mapping[str, Any]) -> list[str] | None:
    """pyo3's features as the Python crate enables them (from the project
    model's cargo metadata) plus ``tool.maturin.features``; None without a
    pyo3 dependency."""
    if "pyo3" not in crate.dependency_features:
        return None
    extra = [str(f) for f in maturin.get("features", []) if str(f).startswith("pyo3/")]
    return [*crate.dependency_features["pyo3"], *extra]


def python_source_problems(crate: Path, maturin: Mapping[str, Any], import_name: str) -> list[str]:
    source = maturin.get("python-source")
    if not source:
        return []
    folder = crate / str(source)
    if not folder.is_dir():
        return [f"tool.maturin.python-source = {source!r}, but {folder} does not exist"]
    if not (folder / import_name).is_dir():
        return [
            f"tool.maturin.python-source = {source!r}: {folder} has no package {import_name}/ "
            "(the top level of the module)"
        ]
    return []


def cross_checks(ctx: Context) -> list[Check]:
    try:
        project = ctx.project
        cfg = project.config
        maturin = read_toml(cfg.python_pyproject).get("tool", {}).get("maturin", {})
    except SuiteError as e:
        return [Check(n, f"not checked: {e.message}", skipped=True) for n in ("module-name", "abi3", "python-source")]
    lib = project.python_crate.lib_name or project.python_crate.name.replace("-", "_")
    src = cfg.python_crate / "src"
    checks = [
        Check(
            "module-name",
            f"{cfg.module}; #[pymodule] {', '.join(pymodule_names(src)) or '(none)'}",
            tuple(module_name_problems(maturin, cfg.module, lib, src)),
        )
    ]
    features = pyo3_features(project.python_crate, maturin)
    detail = f"pyo3 {', '.join(features or []) or '(no features)'}; requires-python {project.requires_python}"
    problems = (
        ["the Python crate does not depend on pyo3"]
        if features is None
        else abi3_problems(features, project.requires_python)
    )
    checks.append(Check("abi3", detail, tuple(problems)))
    source = maturin.get("python-source")
    checks.append(
        Check(
            "python-source",
            f"{source}/{cfg.import_name}/" if source else "(not set)",
            tuple(python_source_problems(cfg.python_crate, maturin, cfg.import_name)),
        )
    )
    return checks
