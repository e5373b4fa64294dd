"""The project model: one object, built once per run, that every session reads.

It joins three sources, so that no session reads a manifest by hand and the
engine names nothing of any one repository:

* ``cargo metadata --format-version 1 --no-deps`` (crates, versions,
  features, the target directory), run once and kept for the process;
* the Python crate's ``pyproject.toml`` (distribution name, module name,
  ``requires-python``, dynamic version);
* the suite's ``[tool.maturin-suite]`` table (:mod:`ci.core.config`), whose
  empty settings get defaults derived from the two above.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ci.core.config import SuiteConfig, load_config, read_toml
from ci.core.console import probe
from ci.core.errors import ConfigError, ToolMissing

CARGO_HINT = (
    "install Rust: 'curl https://sh.rustup.rs -sSf | sh' (any OS), "
    "'apt-get install cargo' (Debian/Ubuntu), "
    "'pacman -S mingw-w64-x86_64-rust' (MSYS2); then make sure cargo is on PATH"
)


@dataclass(frozen=True)
class Crate:
    """One workspace member, as cargo metadata describes it."""

    name: str
    version: str
    manifest: Path
    features: Mapping[str, tuple[str, ...]]
    dependencies: tuple[str, ...]
    # The features it asks of each dependency (workspace inheritance resolved).
    dependency_features: Mapping[str, tuple[str, ...]]
    # Folders of the crates it depends on by path (absolute).
    path_dependencies: tuple[Path, ...]
    lib_name: str | None
    kinds: frozenset[str]

    @property
    def folder(self) -> Path:
        return self.manifest.parent


@dataclass(frozen=True)
class Project:
    """Everything a session knows about the project, derived once."""

    config: SuiteConfig
    members: tuple[Crate, ...]
    target_directory: Path
    python_project: Mapping[str, Any]
    # The cargo that read the workspace (so it is known to run).
    cargo: str = "cargo"

    @property
    def root(self) -> Path:
        return self.config.root

    def work_dir(self, name: str) -> Path:
        """Private state of the suite inside cargo's target directory."""
        return self.target_directory / "suite" / name

    def crate_at(self, folder: Path) -> Crate:
        for crate in self.members:
            if crate.folder == folder.resolve():
                return crate
        raise ConfigError(
            f"tool.maturin-suite.python-crate: {folder} is not a member of the cargo workspace",
            hint="add it to [workspace].members of the root Cargo.toml",
        )

    @property
    def python_crate(self) -> Crate:
        return self.crate_at(self.config.python_crate)

    @property
    def rust_crates(self) -> tuple[Crate, ...]:
        """Every member but the Python extension crate."""
        return tuple(c for c in self.members if c.manifest != self.python_crate.manifest)

    def path_closure(self, crate: Crate) -> tuple[Path, ...]:
        """Every crate folder ``crate`` reaches through path dependencies."""
        seen: list[Path] = []
        todo = list(crate.path_dependencies)
        by_folder = {c.folder: c for c in self.members}
        while todo:
            folder = todo.pop(0)
            if folder in seen:
                continue
            seen.append(folder)
            if folder in by_folder:
                todo += by_folder[folder].path_dependencies
        return tuple(seen)

    @property
    def version(self) -> str:
        """The Python package's version: ``[project].version``, else (dynamic)
        the Python crate's cargo version (maturin's rule)."""
        return str(self.python_project.get("version") or self.python_crate.version)

    @property
    def requires_python(self) -> str | None:
        value = self.python_project.get("requires-python")
        return str(value) if value else None


def find_cargo(env: Mapping[str, str]) -> str:
    cargo = env.get("CARGO") or shutil.which("cargo", path=env.get("PATH"))
    if not cargo:
        raise ToolMissing("cargo (the Rust toolchain) was not found on PATH", hint=CARGO_HINT)
    return cargo


def cargo_metadata(workspace: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``cargo metadata --no-deps`` of the workspace (offline, no resolution)."""
    cargo = find_cargo(env)
    argv = [
        cargo,
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
        "--manifest-path",
        str(workspace / "Cargo.toml"),
    ]
    proc = probe(argv, env=env, timeout=300)
    if proc is None:
        raise ToolMissing(f"cargo metadata did not start or answer in 300 s ({cargo})", hint=CARGO_HINT)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"cargo metadata failed for {workspace / 'Cargo.toml'}: {last}")
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def requested_features(dependencies: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Dependency name -> the features asked of it (every entry of that name)."""
    found: dict[str, tuple[str, ...]] = {}
    for d in dependencies:
        found[d["name"]] = (*found.get(d["name"], ()), *(str(f) for f in d.get("features", [])))
    return found


def crates_of(metadata: Mapping[str, Any]) -> tuple[Crate, ...]:
    members = set(metadata.get("workspace_members", []))
    crates = []
    for p in metadata["packages"]:
        if p["id"] not in members:
            continue
        libs = [t for t in p["targets"] if {"lib", "cdylib", "rlib", "staticlib"} & set(t["kind"])]
        crates.append(
            Crate(
                name=p["name"],
                version=p["version"],
                manifest=Path(p["manifest_path"]).resolve(),
                features={k: tuple(v) for k, v in p.get("features", {}).items()},
                dependencies=tuple(d["name"] for d in p.get("dependencies", [])),
                dependency_features=requested_features(p.get("dependencies", [])),
                path_dependencies=tuple(Path(d["path"]).resolve() for d in p.get("dependencies", []) if d.get("path")),
                lib_name=libs[0]["name"] if libs else None,
                kinds=frozenset(k for t in p["targets"] for k in t["kind"]),
            )
        )
    return tuple(crates)


def cross_features(crates: tuple[Crate, ...]) -> tuple[str, ...]:
    """``member/feature`` for every member feature that turns on a
    dependency's ``force-cross`` (gmp-mpfr-sys's switch for cross builds)."""
    return tuple(
        f"{c.name}/{name}"
        for c in crates
        for name, enables in c.features.items()
        if any(e.split("/", 1)[-1] == "force-cross" and "/" in e for e in enables)
    )


def with_defaults(
    cfg: SuiteConfig, crates: tuple[Crate, ...], python: Crate, pyproject: Mapping[str, Any]
) -> SuiteConfig:
    """Fill every empty setting from cargo metadata and the Python crate."""
    maturin = pyproject.get("tool", {}).get("maturin", {})
    project = pyproject.get("project", {})
    module = cfg.module or maturin.get("module-name") or python.lib_name or python.name.replace("-", "_")
    distribution = cfg.distribution or project.get("name") or python.name
    win = cfg.windows_wheel
    win = dataclasses.replace(
        win,
        test_crates=win.test_crates or tuple(c.name for c in crates if c.manifest != python.manifest),
        cross_features=win.cross_features or cross_features(crates),
    )
    return dataclasses.replace(cfg, module=str(module), distribution=str(distribution), windows_wheel=win)


def build_project(cfg: SuiteConfig, env: Mapping[str, str]) -> Project:
    metadata = cargo_metadata(cfg.workspace, env)
    crates = crates_of(metadata)
    pyproject = read_toml(cfg.python_pyproject)
    draft = Project(cfg, crates, Path(metadata["target_directory"]), pyproject.get("project", {}), find_cargo(env))
    python = draft.python_crate
    known = {c.name for c in crates}
    unknown = [n for n in cfg.windows_wheel.test_crates if n not in known]
    if unknown:
        raise ConfigError(
            f"tool.maturin-suite.windows-wheel.test-crates names {', '.join(unknown)}, "
            f"not a workspace member ({', '.join(sorted(known))})"
        )
    return dataclasses.replace(draft, config=with_defaults(cfg, crates, python, pyproject))


def suite_cache(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/maturin-suite`` (default ``~/.cache/maturin-suite``):
    the one home of every expensive thing the suite builds once and reuses
    (tools, GMP builds)."""
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "maturin-suite"


def gmp_cache(cfg: SuiteConfig, env: Mapping[str, str]) -> Path:
    """Where gmp-mpfr-sys keeps the GMP it compiles (``gmp = "static"``):
    one folder for every session and checkout of this machine, so GMP is
    compiled once per machine and toolchain (gmp-mpfr-sys keys its entries
    by its version, ``$CC`` and ``$CFLAGS``)."""
    if cfg.linux_wheel.gmp_cache:
        return Path(os.path.expanduser(cfg.linux_wheel.gmp_cache))
    return suite_cache(env) / "gmp-mpfr-sys"


COVERAGE_STARTUP = frozenset({"COVERAGE_PROCESS_START", "COVERAGE_RCFILE", "COVERAGE_FILE", "COVERAGE_PROCESS_CONFIG"})


def session_env(cfg: SuiteConfig, env: Mapping[str, str]) -> dict[str, str]:
    """The environment every session starts from: the caller's, plus the
    shared GMP build cache when GMP is built from source (unless set), minus
    coverage.py's start-up variables: a run that measures the suite itself
    (``suite-tests``) must not make the tools a session runs (the coverage
    session's own coverage.py, above all) measure into its data."""
    out = {k: v for k, v in env.items() if k not in COVERAGE_STARTUP}
    if cfg.gmp == "static" and not out.get("GMP_MPFR_SYS_CACHE"):
        out["GMP_MPFR_SYS_CACHE"] = str(gmp_cache(cfg, env))
    return out


_CACHE: dict[Path, Project] = {}


def load_project(root: Path, env: Mapping[str, str] | None = None) -> Project:
    """The project at ``root``, built once per process (nox runs every selected
    session in one process, so one run reads cargo metadata once)."""
    root = root.resolve()
    if root not in _CACHE:
        _CACHE[root] = build_project(load_config(root), os.environ if env is None else env)
    return _CACHE[root]
