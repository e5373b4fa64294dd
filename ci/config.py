"""The suite's settings: the ``[tool.maturin-suite]`` table of the root
``pyproject.toml``.

Every key is checked when the file is read: an unknown key, a value of the
wrong type or a path that does not exist is a :class:`ConfigError` whose
message names the key (``tool.maturin-suite.linux-wheel.policy``). Keys are
kebab-case in TOML and snake_case here; the dataclasses below are the schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the suite itself needs 3.11, see noxfile.py
    import tomli as tomllib

TABLE = "maturin-suite"
PREFIX = f"tool.{TABLE}"

LINUX_POLICIES = ("manylinux2014", "manylinux_2_17", "manylinux_2_28", "manylinux_2_34", "linux")
LINUX_MODES = ("auto", "zig", "container", "native")
GMP_MODES = ("system", "static", "none")


@dataclass(frozen=True)
class NativeLibrary:
    """A C library the extension links, checked before any build."""

    name: str
    header: str
    link: str
    debian: str = ""
    yum: str = ""
    msys2: str = ""


@dataclass(frozen=True)
class LinuxWheelConfig:
    """``[tool.maturin-suite.linux-wheel]``."""

    policy: str = "manylinux2014"
    mode: str = "auto"
    # Shared libraries (soname prefixes, e.g. "libgmp") that must travel inside
    # the wheel's ``<pkg>.libs/``; empty when everything is linked statically.
    bundled_libraries: tuple[str, ...] = ()
    # Directories added to the linker search path (zig does not search the
    # Debian multiarch directory on its own).
    library_dirs: tuple[str, ...] = ()
    # gmp = "static": where gmp-mpfr-sys caches compiled GMP between runs
    # (GMP_MPFR_SYS_CACHE); empty = $XDG_CACHE_HOME/maturin-suite/gmp-mpfr-sys.
    gmp_cache: str = ""
    # mode = "container": the image to build in; empty = the policy's
    # quay.io/pypa/manylinux image.
    container_image: str = ""


@dataclass(frozen=True)
class WindowsWheelConfig:
    """``[tool.maturin-suite.windows-wheel]``."""

    target: str = "x86_64-pc-windows-gnu"
    # DLLs that must end up inside the wheel (the closure is computed; this
    # list is a floor the check insists on).
    bundled_dlls: tuple[str, ...] = ()
    # Bundled DLL name prefix -> licence files (relative to the root) that the
    # session adds to the wheel's .dist-info/licenses/ when it bundles such a
    # DLL, and that ci.dll checks (publish.licenses is consulted as well).
    licenses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Run the Rust tests of these crates, cross-built, under wine: "auto"
    # (skipped with a note when wine is missing), "require" or "skip".
    wine_tests: str = "auto"
    test_crates: tuple[str, ...] = ("qsym-core",)
    # Which Rust builds for the target: "auto" (native, else a rustup target's
    # prebuilt std, else -Zbuild-std with a std source, e.g. Debian's
    # rustc-web), or one of "native", "prebuilt-std", "build-std".
    rust_route: str = "auto"
    # Where the MinGW GMP is built once (empty: $XDG_CACHE_HOME or ~/.cache,
    # then maturin-suite/mingw-gmp).
    gmp_cache: str = ""


@dataclass(frozen=True)
class CoverageConfig:
    """``[tool.maturin-suite.coverage]``: floors in percent of lines."""

    rust_floor: float = 0.0
    python_floor: float = 0.0
    # The cargo-tarpaulin release the session uses (one on PATH of exactly
    # this version, else the one installed into the suite's tool cache).
    tarpaulin_version: str = "0.37.5"


@dataclass(frozen=True)
class PublishConfig:
    """``[tool.maturin-suite.publish]``: what a release must contain."""

    # Platform tags that a --release set needs one wheel for each.
    platforms: tuple[str, ...] = ()
    # Bundled library name prefix -> licence files (relative to the root) that
    # must be in every wheel's .dist-info/licenses/ (same name, same bytes).
    licenses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Top-level names a wheel may contain besides the import package, its
    # .libs folder and the .dist-info (anything else is a stray file).
    extra_toplevel: tuple[str, ...] = ()


@dataclass(frozen=True)
class SuiteConfig:
    """``[tool.maturin-suite]``, with paths made absolute."""

    python_crate: Path
    module: str
    distribution: str
    root: Path = Path(".")
    workspace: Path = Path(".")
    python_versions: tuple[str, ...] = ("3.9", "3.10", "3.11", "3.12", "3.13")
    python_tests: Path | None = None
    test_group: str = "test"
    # Python code run after installing a built wheel (sdist, publish-check):
    # an import and a small real computation. Empty: just import the module.
    smoke: str = ""
    gmp: str = "none"
    dist_dir: Path = Path("dist")
    reports_dir: Path = Path("reports")
    native: tuple[NativeLibrary, ...] = ()
    linux_wheel: LinuxWheelConfig = field(default_factory=LinuxWheelConfig)
    windows_wheel: WindowsWheelConfig = field(default_factory=WindowsWheelConfig)
    coverage: CoverageConfig = field(default_factory=CoverageConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    @property
    def python_pyproject(self) -> Path:
        return self.python_crate / "pyproject.toml"

    @property
    def python_manifest(self) -> Path:
        return self.python_crate / "Cargo.toml"

    @property
    def import_name(self) -> str:
        """The top-level package, e.g. ``q_kangaroo``."""
        return self.module.split(".")[0]

    def report_dir(self, session: str) -> Path:
        return self.reports_dir / session

    def work_dir(self, session: str) -> Path:
        """A session's private build state (inside the cargo target dir)."""
        return self.workspace / "target" / "suite" / session


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def _convert(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {_describe(value)}")
        return float(value)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a path string, got {_describe(value)}")
        return Path(value)
    if origin is typing.Union or (sys.version_info >= (3, 10) and origin is __import__("types").UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if origin is tuple:
        item = args[0]
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, got {_describe(value)}")
        if dataclasses.is_dataclass(item):
            return tuple(_build(item, v, f"{key}[{i}]") for i, v in enumerate(value))
        return tuple(_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table, got {_describe(value)}")
        return {str(k): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    raise TypeError(f"no converter for {hint!r}")  # pragma: no cover - schema bug


def _build(cls: Any, table: Any, key: str, skip: tuple[str, ...] = ()) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{key} must be a table, got {_describe(table)}")
    hints = typing.get_type_hints(cls)
    fields = {_kebab(f.name): f for f in dataclasses.fields(cls) if f.name not in skip}
    for name in table:
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            extra = f" (did you mean {key}.{close[0]}?)" if close else ""
            known = ", ".join(sorted(fields))
            raise ConfigError(f"unknown key {key}.{name}{extra}", hint=f"known keys: {known}")
    values: dict[str, Any] = {}
    for kebab, f in fields.items():
        if kebab in table:
            values[f.name] = _convert(table[kebab], hints[f.name], f"{key}.{kebab}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key {key}.{kebab}")
    return cls(**values)


def _check_choice(value: str, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _resolve(root: Path, rel: Path, key: str, *, must_exist: bool) -> Path:
    path = (root / rel).resolve()
    if must_exist and not path.exists():
        raise ConfigError(f"{key} points to {path}, which does not exist")
    return path


def parse_config(data: dict[str, Any], root: Path, source: str = "pyproject.toml") -> SuiteConfig:
    """Validate the parsed ``pyproject.toml`` ``data`` of the workspace at ``root``."""
    try:
        table = data["tool"][TABLE]
    except (KeyError, TypeError):
        raise ConfigError(
            f"{source} has no [{PREFIX}] table",
            hint="add one: see README.md, 'Configuration'",
        ) from None
    cfg = _build(SuiteConfig, table, PREFIX, skip=("root",))
    _check_choice(cfg.gmp, GMP_MODES, f"{PREFIX}.gmp")
    _check_choice(cfg.linux_wheel.policy, LINUX_POLICIES, f"{PREFIX}.linux-wheel.policy")
    _check_choice(cfg.linux_wheel.mode, LINUX_MODES, f"{PREFIX}.linux-wheel.mode")
    for i, v in enumerate(cfg.python_versions):
        if not re.fullmatch(r"3\.\d{1,2}", v):
            raise ConfigError(f"{PREFIX}.python-versions[{i}] must look like '3.12'; got {v!r}")
    if not cfg.python_versions:
        raise ConfigError(f"{PREFIX}.python-versions must name at least one version")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", cfg.module):
        raise ConfigError(f"{PREFIX}.module must be a dotted Python module name; got {cfg.module!r}")
    for name in ("rust_floor", "python_floor"):
        v = getattr(cfg.coverage, name)
        if not 0.0 <= v <= 100.0:
            raise ConfigError(f"{PREFIX}.coverage.{_kebab(name)} must be between 0 and 100; got {v}")
    workspace = _resolve(root, cfg.workspace, f"{PREFIX}.workspace", must_exist=True)
    if not (workspace / "Cargo.toml").is_file():
        raise ConfigError(f"{PREFIX}.workspace: no Cargo.toml in {workspace}")
    crate = _resolve(root, cfg.python_crate, f"{PREFIX}.python-crate", must_exist=True)
    for needed in ("Cargo.toml", "pyproject.toml"):
        if not (crate / needed).is_file():
            raise ConfigError(f"{PREFIX}.python-crate: no {needed} in {crate}")
    tests = cfg.python_tests if cfg.python_tests is not None else crate.relative_to(root) / "tests"
    return dataclasses.replace(
        cfg,
        root=root,
        workspace=workspace,
        python_crate=crate,
        python_tests=_resolve(root, tests, f"{PREFIX}.python-tests", must_exist=True),
        dist_dir=_resolve(root, cfg.dist_dir, f"{PREFIX}.dist-dir", must_exist=False),
        reports_dir=_resolve(root, cfg.reports_dir, f"{PREFIX}.reports-dir", must_exist=False),
    )


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a ConfigError."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None


def load_config(root: Path) -> SuiteConfig:
    """Read and validate ``<root>/pyproject.toml``."""
    root = root.resolve()
    path = root / "pyproject.toml"
    return parse_config(read_toml(path), root, source=str(path))


def python_package_version(cfg: SuiteConfig) -> str:
    """The version of the Python package: ``[project].version`` or, when it is
    dynamic, the python crate's Cargo version (maturin's rule)."""
    project = read_toml(cfg.python_pyproject).get("project", {})
    if "version" in project:
        return str(project["version"])
    return cargo_package(cfg.python_manifest, cfg.workspace)["version"]


def cargo_package(manifest: Path, workspace: Path) -> dict[str, str]:
    """``name`` and ``version`` of a crate, following ``version.workspace = true``."""
    package = read_toml(manifest).get("package", {})
    name = package.get("name")
    version = package.get("version")
    if isinstance(version, dict) and version.get("workspace"):
        ws = read_toml(workspace / "Cargo.toml")
        version = ws.get("workspace", {}).get("package", {}).get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise ConfigError(f"{manifest} has no [package] name and version")
    return {"name": name, "version": version}
