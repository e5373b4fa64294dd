"""The suite's settings: the ``[tool.maturin-suite]`` table of the root
``pyproject.toml``.

Every run validates the table against the JSON Schema shipped beside this
file (``maturin-suite.schema.json``, compiled with fastjsonschema): an unknown
key (with a "did you mean"), a wrong type, a value out of range or outside its
enum, or a path that does not exist is a :class:`ConfigError` whose one line
names the key (``tool.maturin-suite.linux-wheel.policy``). Keys are kebab-case
in TOML and snake_case in the dataclasses below; a test keeps both in step.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.core.errors import ConfigError

TABLE = "maturin-suite"
PREFIX = f"tool.{TABLE}"

SCHEMA_FILE = Path(__file__).with_name("maturin-suite.schema.json")


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
    # DLL, and that ci.blocks.pe checks (publish.licenses is consulted as well).
    licenses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Run the Rust tests of these crates, cross-built, under wine: "auto"
    # (skipped with a note when wine is missing), "require" or "skip".
    wine_tests: str = "auto"
    # Empty: every workspace member but the Python crate (cargo metadata).
    test_crates: tuple[str, ...] = ()
    # Cargo features for cross builds (e.g. gmp-mpfr-sys's force-cross);
    # empty: every member feature that enables a dependency's force-cross.
    cross_features: tuple[str, ...] = ()
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
    # Extra arguments appended to each tool's command line: both cargo
    # tarpaulin commands (build and run), pytest (before nox's posargs), and
    # every llvm-cov export.
    tarpaulin_args: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()
    llvm_cov_args: tuple[str, ...] = ()


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
    # Limits on what any one wheel or sdist in dist/ may claim, checked from its
    # directory before a member is read (ci.blocks.archives); sizes in bytes,
    # uncompressed. max-member-size is also the most member bytes publish-check
    # holds in memory at once (its peak stays near 300 MB with the defaults).
    max_members: int = 10_000
    max_total_size: int = 512 * 1024 * 1024
    max_member_size: int = 128 * 1024 * 1024
    # Uncompressed / compressed, per member and for the whole archive (members
    # and archives under 1 MiB are exempt).
    max_ratio: float = 200.0
    # METADATA and WHEEL (wheels), PKG-INFO (sdists), and any tar header record.
    max_metadata_size: int = 1024 * 1024


@dataclass(frozen=True)
class WorkflowsConfig:
    """``[tool.maturin-suite.workflows]``: what lint-workflows assumes of ``.github/workflows``."""

    # Workflow file name -> the noxfile tags whose sessions it must run (it runs
    # no other session). Empty: discovered, ``<stem>.yml`` owns the tags
    # ``<stem>`` and ``<stem>-*`` (ci.yml: ci, ci-gate; release.yml: release).
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The GitHub environment of the one job allowed ``id-token: write``.
    publish_environment: str = "pypi"


@dataclass(frozen=True)
class TimeoutsConfig:
    """``[tool.maturin-suite.timeouts]``: seconds before a command is ended
    (its whole process group) and the session fails naming the key."""

    # Installing a built wheel into a fresh venv and running the smoke code.
    smoke: float = 600.0
    # One test run: cargo nextest / cargo test, pytest, the Rust tests under wine.
    tests: float = 3600.0


@dataclass(frozen=True)
class SuiteConfig:
    """``[tool.maturin-suite]``, with paths made absolute."""

    python_crate: Path
    # Empty: derived from the Python crate (see ci.core.project).
    module: str = ""
    distribution: str = ""
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
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    workflows: WorkflowsConfig = field(default_factory=WorkflowsConfig)

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


@functools.cache
def _validator() -> Any:
    import fastjsonschema

    return fastjsonschema.compile(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


def _key(path: list[str]) -> str:
    """fastjsonschema's ``data.linux-wheel.policy`` / ``data.native.0`` -> our key."""
    return PREFIX + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path[1:])


TYPE_WORDS = {
    "array": "a list",
    "object": "a table",
    "string": "a string",
    "number": "a number",
    "boolean": "true or false",
    "integer": "an integer",
}


def _rule_text(rule: str, definition: Any) -> str:
    """What a broken schema rule demands, in the words of a TOML user."""
    if rule == "type":
        return f"must be {TYPE_WORDS.get(str(definition), definition)}"
    if rule == "enum":
        return f"must be one of {', '.join(map(str, definition))}"
    if rule == "pattern":
        return f"must match the pattern {definition}"
    if rule in ("minimum", "exclusiveMinimum"):
        return f"must be {'at least' if rule == 'minimum' else 'more than'} {definition}"
    if rule in ("maximum", "exclusiveMaximum"):
        return f"must be {'at most' if rule == 'maximum' else 'less than'} {definition}"
    if rule in ("minItems", "minLength"):
        return "must not be empty"
    if rule == "uniqueItems":
        return "must not repeat a value"
    if rule == "propertyNames" and isinstance(definition, dict) and "pattern" in definition:
        return f"has a key that does not match the pattern {definition['pattern']}"
    return f"breaks the schema rule {rule}"


def _unknown_key(key: str, table: dict[str, Any], known: list[str]) -> str:
    name = sorted(k for k in table if k not in known)[0]
    close = difflib.get_close_matches(name, known, n=1)
    extra = f" (did you mean {key}.{close[0]}?)" if close else f"; known keys: {', '.join(known)}"
    return f"unknown key {key}.{name}{extra}"


def schema_problem(table: Any) -> str | None:
    """The first way ``table`` breaks the schema, as one line naming the key."""
    import fastjsonschema

    try:
        _validator()(table)
    except fastjsonschema.JsonSchemaValueException as e:
        key = _key(list(e.path))
        if e.rule == "additionalProperties" and isinstance(e.value, dict):
            return _unknown_key(key, e.value, sorted((e.definition or {}).get("properties", {})))
        if e.rule == "required":
            missing = [r for r in e.rule_definition if r not in (e.value or {})]
            return f"missing key {key}.{missing[0] if missing else '?'}"
        return f"{key} {_rule_text(str(e.rule), e.rule_definition)}; got {e.value!r}"
    return None


def _build(cls: Any, table: dict[str, Any]) -> Any:
    """The dataclass ``cls`` from a schema-valid table (kebab-case keys)."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kebab = _kebab(f.name)
        if kebab in table:
            values[f.name] = _value(table[kebab], hints[f.name])
    return cls(**values)


def _value(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value)
    if origin is tuple:
        return tuple(_value(v, args[0]) for v in value)
    if origin is dict:
        return {str(k): _value(v, args[1]) for k, v in value.items()}
    if hint is float:
        return float(value)
    if hint is Path or (origin is not None and Path in args):
        return Path(value)
    return value


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
    problem = schema_problem(table)
    if problem:
        raise ConfigError(problem, hint=f"the keys and their types: {SCHEMA_FILE.name} in ci/core")
    cfg: SuiteConfig = _build(SuiteConfig, table)
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
