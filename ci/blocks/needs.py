"""What each session needs from the machine, as data: ``ci/requirements.toml``.

:func:`load` reads the table into typed dataclasses (one
:class:`PlatformNeeds` per session and platform, the :class:`NoxInstall`
every nox job shares, the GitHub :class:`Runner` facts and what the pinned
``taiki-e/install-action`` knows). :func:`missing` compares the needs with
what a workflow job's steps provide (:class:`Provided`, filled by
:mod:`ci.blocks.workflows`) and names every gap with the line that closes it.
:func:`consistency` keeps the table in step with ``[tool.maturin-suite]``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.core.config import SuiteConfig
from ci.core.errors import ConfigError

REQUIREMENTS_FILE = Path("ci/requirements.toml")
PLATFORMS = ("linux", "windows")
ANY_VERSION = "*"
SUITE_PYTHON = "suite"
COMPONENT_ALIASES = {"llvm-tools-preview": "llvm-tools", "rustfmt-preview": "rustfmt", "clippy-preview": "clippy"}
LINUX_WHEEL_MODES = ("zig", "native", "container")

NEEDS_KEYS = frozenset({"rust-host", "components", "targets", "apt", "msys2", "cargo-tools", "python",
                        "native", "linux-wheel-mode"})
TOP_KEYS = frozenset({"nox", "runners", "install-action", "sessions"})


@dataclass(frozen=True)
class PlatformNeeds:
    """What one session needs on one platform (``[sessions.<name>.<platform>]``)."""

    rust_host: str = ""  # host triple of the default Rust toolchain; "" = no Rust
    components: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    msys2: tuple[str, ...] = ()
    cargo_tools: tuple[tuple[str, str], ...] = ()  # (name, exact version or "*")
    python: tuple[str, ...] = ()
    native: bool = False
    linux_wheel_mode: str = ""


@dataclass(frozen=True)
class NoxInstall:
    """How every job installs nox: the lock, the group it is exported from, the interpreter."""

    requirements: str
    group: str
    python: str


@dataclass(frozen=True)
class Runner:
    """A GitHub-hosted runner kind, matched by ``runs-on`` prefix."""

    platform: str
    labels: tuple[str, ...]
    rust_host: str
    container_engine: bool


@dataclass(frozen=True)
class Requirements:
    nox: NoxInstall
    runners: tuple[Runner, ...]
    sessions: Mapping[str, Mapping[str, PlatformNeeds]]
    # install-action commit -> tool -> newest version its manifest knows
    install_action: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def runner_for(self, runs_on: str) -> Runner | None:
        for runner in self.runners:
            if any(runs_on.startswith(label) for label in runner.labels):
                return runner
        return None

    def needs(self, session: str, platform: str) -> PlatformNeeds | None:
        return (self.sessions.get(session) or {}).get(platform)


@dataclass
class Provided:
    """What a job's steps (before its nox step) put on the machine."""

    rust: str = ""  # the default toolchain's name ("" = none selected)
    rust_host: str = ""
    components: set[str] = field(default_factory=set)
    targets: set[str] = field(default_factory=set)
    apt: set[str] = field(default_factory=set)
    msys2: set[str] = field(default_factory=set)
    tools: dict[str, set[str]] = field(default_factory=dict)  # name -> versions ("" = unpinned)
    python: set[str] = field(default_factory=set)
    nox: set[str] = field(default_factory=set)  # "lock:<file>", "group:<name>", "unhashed:<file>"
    refused: dict[str, str] = field(default_factory=dict)  # "kind value" -> why a step does not count
    uncounted: list[str] = field(default_factory=list)  # steps whose `if:` cannot be evaluated

    def add_tool(self, name: str, version: str) -> None:
        self.tools.setdefault(name, set()).add(version)


@dataclass(frozen=True)
class Need:
    """One need a job does not provide, and how to provide it."""

    kind: str
    value: str
    how: str

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


# --------------------------------------------------------------------------
# Loading


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    return tuple(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value


def _table(value: Any, where: str, keys: Iterable[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    if keys is not None:
        unknown = sorted(set(value) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    return value


def _python(value: Any, where: str, suite_python: Sequence[str]) -> tuple[str, ...]:
    if value == SUITE_PYTHON:
        if not suite_python:
            raise ConfigError(f"{where} = \"suite\" but no tool.maturin-suite.python-versions were given")
        return tuple(suite_python)
    return _strings(value, where)


def _tools(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    table = _table(value, where)
    tools = []
    for name, version in table.items():
        version = _string(version, f"{where}.{name}")
        if version != ANY_VERSION and not re.fullmatch(r"\d+(\.\d+)*", version):
            raise ConfigError(f"{where}.{name} must be an exact version or \"*\"; got {version!r}")
        tools.append((name, version))
    return tuple(sorted(tools))


def platform_needs(data: Any, where: str, suite_python: Sequence[str]) -> PlatformNeeds:
    """One ``[sessions.<name>.<platform>]`` table."""
    t = _table(data, where, NEEDS_KEYS)
    mode = _string(t.get("linux-wheel-mode", ""), f"{where}.linux-wheel-mode")
    if mode and mode not in LINUX_WHEEL_MODES:
        raise ConfigError(f"{where}.linux-wheel-mode must be one of {', '.join(LINUX_WHEEL_MODES)}")
    native = t.get("native", False)
    if not isinstance(native, bool):
        raise ConfigError(f"{where}.native must be true or false")
    return PlatformNeeds(
        rust_host=_string(t.get("rust-host", ""), f"{where}.rust-host"),
        components=tuple(normal_component(c) for c in _strings(t.get("components", []), f"{where}.components")),
        targets=_strings(t.get("targets", []), f"{where}.targets"),
        apt=_strings(t.get("apt", []), f"{where}.apt"),
        msys2=_strings(t.get("msys2", []), f"{where}.msys2"),
        cargo_tools=_tools(t.get("cargo-tools", {}), f"{where}.cargo-tools"),
        python=_python(t.get("python", []), f"{where}.python", suite_python),
        native=native,
        linux_wheel_mode=mode,
    )


def _runners(data: Any, where: str) -> tuple[Runner, ...]:
    runners = []
    for platform, raw in _table(data, where).items():
        if platform not in PLATFORMS:
            raise ConfigError(f"{where}.{platform}: the platforms are {', '.join(PLATFORMS)}")
        t = _table(raw, f"{where}.{platform}", ("labels", "rust-host", "container-engine"))
        engine = t.get("container-engine", False)
        if not isinstance(engine, bool):
            raise ConfigError(f"{where}.{platform}.container-engine must be true or false")
        runners.append(Runner(platform, _strings(t.get("labels", []), f"{where}.{platform}.labels"),
                              _string(t.get("rust-host", ""), f"{where}.{platform}.rust-host"), engine))
    return tuple(runners)


def parse(data: Mapping[str, Any], suite_python: Sequence[str] = (), where: str = str(REQUIREMENTS_FILE)
          ) -> Requirements:
    """The requirements in ``data`` (a parsed ``ci/requirements.toml``)."""
    top = _table(dict(data), where, TOP_KEYS)
    nox = _table(top.get("nox"), f"{where} [nox]", ("requirements", "group", "python"))
    sessions: dict[str, dict[str, PlatformNeeds]] = {}
    for name, platforms in _table(top.get("sessions", {}), f"{where} [sessions]").items():
        sessions[name] = {}
        for platform, raw in _table(platforms, f"{where} [sessions.{name}]", PLATFORMS).items():
            sessions[name][platform] = platform_needs(raw, f"{where} [sessions.{name}.{platform}]", suite_python)
    install_action = {sha: {tool: _string(v, f"{where} [install-action.{sha}].{tool}") for tool, v in
                            _table(tools, f"{where} [install-action.{sha}]").items()}
                      for sha, tools in _table(top.get("install-action", {}), f"{where} [install-action]").items()}
    return Requirements(
        nox=NoxInstall(*(_string(nox.get(k), f"{where} [nox].{k}") for k in ("requirements", "group", "python"))),
        runners=_runners(top.get("runners", {}), f"{where} [runners]"),
        sessions=sessions,
        install_action=install_action,
    )


def load(path: Path, suite_python: Sequence[str] = ()) -> Requirements:
    """Read ``ci/requirements.toml``; ``python = "suite"`` becomes ``suite_python``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist",
                          hint="it declares what every session needs from the machine") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return parse(data, suite_python, str(path))


# --------------------------------------------------------------------------
# Comparing


def normal_component(name: str) -> str:
    return COMPONENT_ALIASES.get(name, name)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def rust_hint(host: str, runner_host: str) -> str:
    if host == runner_host:
        return "rustup toolchain install stable --profile minimal && rustup default stable"
    return f"rustup toolchain install stable-{host} --profile minimal && rustup default stable-{host}"


def _nox_need(nox: NoxInstall, provided: Provided) -> list[Need]:
    if f"lock:{nox.requirements}" in provided.nox:
        return []
    how = f"python -m pip install --require-hashes -r {nox.requirements}"
    bare = sorted(p.split(":", 1)[1] for p in provided.nox if p.startswith("group:"))
    if bare:
        how = (f"the job installs nox from the bare dependency group {', '.join(bare)} "
               f"(pip install --group), which resolves anew; use {how}")
    elif any(p.startswith("unhashed:") for p in provided.nox):
        how = f"the lock is installed without --require-hashes; use {how}"
    return [Need("nox", f"from the lock {nox.requirements}", how)]


def _rust_needs(needs: PlatformNeeds, provided: Provided, runner_host: str) -> list[Need]:
    found: list[Need] = []
    if needs.rust_host and provided.rust_host != needs.rust_host:
        have = (f"the job's default toolchain is {provided.rust} (host {provided.rust_host})"
                if provided.rust else "the job selects no toolchain")
        found.append(Need("rust toolchain", f"with host {needs.rust_host}",
                          f"{have}; {rust_hint(needs.rust_host, runner_host)}"))
    for comp in needs.components:
        if normal_component(comp) not in provided.components:
            found.append(Need("rustup component", comp, f"rustup component add {comp}"))
    for target in needs.targets:
        if target != needs.rust_host and target not in provided.targets:
            found.append(Need("rustup target", target, f"rustup target add {target}"))
    return found


def _tool_needs(needs: PlatformNeeds, provided: Provided) -> list[Need]:
    found: list[Need] = []
    for name, version in needs.cargo_tools:
        have = provided.tools.get(name, set())
        if (version == ANY_VERSION and have) or version in have:
            continue
        how = f"taiki-e/install-action with tool: {name}" if version == ANY_VERSION \
            else f"cargo install --locked {name}@{version}"
        why = provided.refused.get(f"cargo tool {name}")
        if why:
            how = f"{why}; {how}"
        elif have - {""}:
            how = f"the job installs {name} {', '.join(sorted(have - {''}))}; {how}"
        found.append(Need("cargo tool", name if version == ANY_VERSION else f"{name} {version}", how))
    return found


def missing(needs: PlatformNeeds | None, nox: NoxInstall, provided: Provided, *, runner_host: str = "",
            extra_python: Sequence[str] = ()) -> list[Need]:
    """Every need of ``needs`` (None: only nox's own) that ``provided`` lacks."""
    found = _nox_need(nox, provided)
    wanted = [nox.python, *(needs.python if needs else ()), *extra_python]
    for version in dict.fromkeys(wanted):
        if version not in provided.python:
            found.append(Need("python", version, f"actions/setup-python with python-version: {version}"))
    if needs is None:
        return found
    found += _rust_needs(needs, provided, runner_host)
    found += [Need("apt package", p, f"sudo apt-get install -y --no-install-recommends {p}")
              for p in needs.apt if p not in provided.apt]
    found += [Need("msys2 package", p, f"msys2/setup-msys2 with install: {p}")
              for p in needs.msys2 if p not in provided.msys2]
    found += _tool_needs(needs, provided)
    if found and provided.uncounted:
        found = [Need(n.kind, n.value, f"{n.how} (not counted: steps whose `if:` cannot be evaluated here: "
                                       f"{', '.join(provided.uncounted)})") for n in found]
    return found


def linux_wheel_route(configured: str, runner: Runner) -> str:
    """The route ``ci/sessions/linux_wheel.py`` takes on ``runner`` for ``linux-wheel.mode``."""
    if configured in LINUX_WHEEL_MODES:
        return configured
    return "zig"  # auto: the same route everywhere, whatever the runner has


def consistency(req: Requirements, cfg: SuiteConfig) -> list[str]:
    """Where the table disagrees with ``[tool.maturin-suite]``."""
    problems = []
    where = str(REQUIREMENTS_FILE)
    pin = cfg.coverage.tarpaulin_version
    for session, platforms in sorted(req.sessions.items()):
        for platform, needs in sorted(platforms.items()):
            tools = dict(needs.cargo_tools)
            if "cargo-tarpaulin" in tools and tools["cargo-tarpaulin"] != pin:
                problems.append(f"{where}: {session} on {platform} installs cargo-tarpaulin "
                                f"{tools['cargo-tarpaulin']}, tool.maturin-suite.coverage.tarpaulin-version is {pin}")
            if not needs.native:
                continue
            listed, attr = (needs.apt, "debian") if platform == "linux" else (needs.msys2, "msys2")
            for lib in cfg.native:
                package = getattr(lib, attr)
                if package and package not in listed:
                    problems.append(f"{where}: {session} on {platform} links {lib.name} "
                                    f"but does not list its package {package}")
    return problems
