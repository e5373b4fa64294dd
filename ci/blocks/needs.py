"""What each session needs from the machine, as data: ``ci/requirements.toml``.

:func:`load` reads the table into typed dataclasses (one
:class:`PlatformNeeds` per session and platform, the :class:`NoxInstall`
every nox job shares, the GitHub :class:`Runner` facts and what the pinned
``taiki-e/install-action`` knows). :func:`missing` compares the needs with
what a workflow job's steps provide (:class:`Provided`, filled by
:mod:`ci.blocks.provisions`) and names every gap with the line that closes it.
:func:`consistency` keeps the table in step with ``[tool.maturin-suite]``.

The same table, on this machine: :func:`wants` lists what sessions need here
(:class:`Want`), :func:`present` probes which of it is installed (dpkg-query,
pacman -Q, rustc -vV, rustup, cargo tools, interpreters), :func:`install_steps`
are the commands that install the rest (apt-get, pacman, rustup, cargo
install) — the ``setup`` session runs them — and :func:`missing_here` /
:func:`setup_hint` let a session name, at start-up, what the table says it
lacks here and the command that installs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.blocks import toolchain
from ci.core.config import SuiteConfig
from ci.core.console import probe
from ci.core.errors import ConfigError, SuiteError

REQUIREMENTS_FILE = Path("ci/requirements.toml")
PLATFORMS = ("linux", "windows")
ANY_VERSION = "*"
SUITE_PYTHON = "suite"
COMPONENT_ALIASES = {"llvm-tools-preview": "llvm-tools", "rustfmt-preview": "rustfmt", "clippy-preview": "clippy"}
LINUX_WHEEL_MODES = ("zig", "native", "container")

NEEDS_KEYS = frozenset(
    {
        "rust-host",
        "components",
        "targets",
        "apt",
        "apt-on",
        "msys2",
        "cargo-tools",
        "python",
        "native",
        "linux-wheel-mode",
    }
)
TOP_KEYS = frozenset({"nox", "runners", "install-action", "cargo-install", "sessions"})
DISTRO = re.compile(r"^[a-z0-9]+-[0-9][0-9.]*$")  # /etc/os-release ID-VERSION_ID: debian-12, ubuntu-24.04


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
    apt_on: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (distro, more apt packages there)

    def apt_for(self, distro: str) -> tuple[str, ...]:
        """``apt`` plus what ``apt-on`` adds on ``distro`` (``debian-12``)."""
        extra = [p for d, packages in self.apt_on if d == distro for p in packages]
        return tuple(dict.fromkeys([*self.apt, *extra]))


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
    distro: str = ""  # its apt's distribution, for `apt-on`


@dataclass(frozen=True)
class Requirements:
    nox: NoxInstall
    runners: tuple[Runner, ...]
    sessions: Mapping[str, Mapping[str, PlatformNeeds]]
    # install-action commit -> tool -> newest version its manifest knows
    install_action: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # cargo tool -> extra `cargo install` arguments (features)
    cargo_install: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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
            raise ConfigError(f'{where} = "suite" but no tool.maturin-suite.python-versions were given')
        return tuple(suite_python)
    return _strings(value, where)


def _tools(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    table = _table(value, where)
    tools = []
    for name, version in table.items():
        version = _string(version, f"{where}.{name}")
        if version != ANY_VERSION and not re.fullmatch(r"\d+(\.\d+)*", version):
            raise ConfigError(f'{where}.{name} must be an exact version or "*"; got {version!r}')
        tools.append((name, version))
    return tuple(sorted(tools))


def _apt_on(value: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    table = _table(value, where)
    for distro in table:
        if not DISTRO.match(distro):
            raise ConfigError(f"{where}: {distro!r} is not an /etc/os-release ID-VERSION_ID like debian-12")
    return tuple((distro, _strings(packages, f"{where}.{distro}")) for distro, packages in table.items())


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
        apt_on=_apt_on(t.get("apt-on", {}), f"{where}.apt-on"),
    )


def _runners(data: Any, where: str) -> tuple[Runner, ...]:
    runners = []
    for platform, raw in _table(data, where).items():
        if platform not in PLATFORMS:
            raise ConfigError(f"{where}.{platform}: the platforms are {', '.join(PLATFORMS)}")
        t = _table(raw, f"{where}.{platform}", ("labels", "rust-host", "container-engine", "distro"))
        engine = t.get("container-engine", False)
        if not isinstance(engine, bool):
            raise ConfigError(f"{where}.{platform}.container-engine must be true or false")
        runners.append(
            Runner(
                platform,
                _strings(t.get("labels", []), f"{where}.{platform}.labels"),
                _string(t.get("rust-host", ""), f"{where}.{platform}.rust-host"),
                engine,
                _string(t.get("distro", ""), f"{where}.{platform}.distro"),
            )
        )
    return tuple(runners)


def parse(
    data: Mapping[str, Any], suite_python: Sequence[str] = (), where: str = str(REQUIREMENTS_FILE)
) -> Requirements:
    """The requirements in ``data`` (a parsed ``ci/requirements.toml``)."""
    top = _table(dict(data), where, TOP_KEYS)
    nox = _table(top.get("nox"), f"{where} [nox]", ("requirements", "group", "python"))
    sessions: dict[str, dict[str, PlatformNeeds]] = {}
    for name, platforms in _table(top.get("sessions", {}), f"{where} [sessions]").items():
        sessions[name] = {}
        for platform, raw in _table(platforms, f"{where} [sessions.{name}]", PLATFORMS).items():
            sessions[name][platform] = platform_needs(raw, f"{where} [sessions.{name}.{platform}]", suite_python)
    install_action = {
        sha: {
            tool: _string(v, f"{where} [install-action.{sha}].{tool}")
            for tool, v in _table(tools, f"{where} [install-action.{sha}]").items()
        }
        for sha, tools in _table(top.get("install-action", {}), f"{where} [install-action]").items()
    }
    cargo_install = {
        tool: _strings(args, f"{where} [cargo-install].{tool}")
        for tool, args in _table(top.get("cargo-install", {}), f"{where} [cargo-install]").items()
    }
    return Requirements(
        nox=NoxInstall(*(_string(nox.get(k), f"{where} [nox].{k}") for k in ("requirements", "group", "python"))),
        runners=_runners(top.get("runners", {}), f"{where} [runners]"),
        sessions=sessions,
        install_action=install_action,
        cargo_install=cargo_install,
    )


def load(path: Path, suite_python: Sequence[str] = ()) -> Requirements:
    """Read ``ci/requirements.toml``; ``python = "suite"`` becomes ``suite_python``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist", hint="it declares what every session needs from the machine"
        ) from None
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
        how = (
            f"the job installs nox from the bare dependency group {', '.join(bare)} "
            f"(pip install --group), which resolves anew; use {how}"
        )
    elif any(p.startswith("unhashed:") for p in provided.nox):
        how = f"the lock is installed without --require-hashes; use {how}"
    return [Need("nox", f"from the lock {nox.requirements}", how)]


def _rust_needs(needs: PlatformNeeds, provided: Provided, runner_host: str) -> list[Need]:
    found: list[Need] = []
    if needs.rust_host and provided.rust_host != needs.rust_host:
        have = (
            f"the job's default toolchain is {provided.rust} (host {provided.rust_host})"
            if provided.rust
            else "the job selects no toolchain"
        )
        found.append(
            Need("rust toolchain", f"with host {needs.rust_host}", f"{have}; {rust_hint(needs.rust_host, runner_host)}")
        )
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
        how = (
            f"taiki-e/install-action with tool: {name}"
            if version == ANY_VERSION
            else f"cargo install --locked {name}@{version}"
        )
        why = provided.refused.get(f"cargo tool {name}")
        if why:
            how = f"{why}; {how}"
        elif have - {""}:
            how = f"the job installs {name} {', '.join(sorted(have - {''}))}; {how}"
        found.append(Need("cargo tool", name if version == ANY_VERSION else f"{name} {version}", how))
    return found


def missing(
    needs: PlatformNeeds | None,
    nox: NoxInstall,
    provided: Provided,
    *,
    runner_host: str = "",
    extra_python: Sequence[str] = (),
    distro: str = "",
) -> list[Need]:
    """Every need of ``needs`` (None: only nox's own) that ``provided`` lacks
    on a runner whose apt is ``distro``'s."""
    found = _nox_need(nox, provided)
    wanted = [nox.python, *(needs.python if needs else ()), *extra_python]
    for version in dict.fromkeys(wanted):
        if version not in provided.python:
            found.append(Need("python", version, f"actions/setup-python with python-version: {version}"))
    if needs is None:
        return found
    found += _rust_needs(needs, provided, runner_host)
    found += [
        Need("apt package", p, f"sudo apt-get install -y --no-install-recommends {p}")
        for p in needs.apt_for(distro)
        if p not in provided.apt
    ]
    found += [
        Need("msys2 package", p, f"msys2/setup-msys2 with install: {p}") for p in needs.msys2 if p not in provided.msys2
    ]
    found += _tool_needs(needs, provided)
    if found and provided.uncounted:
        found = [
            Need(
                n.kind,
                n.value,
                f"{n.how} (not counted: steps whose `if:` cannot be evaluated here: {', '.join(provided.uncounted)})",
            )
            for n in found
        ]
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
                problems.append(
                    f"{where}: {session} on {platform} installs cargo-tarpaulin "
                    f"{tools['cargo-tarpaulin']}, tool.maturin-suite.coverage.tarpaulin-version is {pin}"
                )
            if not needs.native:
                continue
            listed, attr = (needs.apt, "debian") if platform == "linux" else (needs.msys2, "msys2")
            for lib in cfg.native:
                package = getattr(lib, attr)
                if package and package not in listed:
                    problems.append(
                        f"{where}: {session} on {platform} links {lib.name} but does not list its package {package}"
                    )
    return problems


# --------------------------------------------------------------------------
# This machine: what the table wants here, what is present, how to install the rest

OS_RELEASE = Path("/etc/os-release")
APT_LISTS = Path("/var/lib/apt/lists")
KINDS = {
    "apt": "apt package",
    "msys2": "msys2 package",
    "toolchain": "rust toolchain",
    "component": "rustup component",
    "target": "rustup target",
    "cargo-tool": "cargo tool",
    "python": "python",
}


@dataclass(frozen=True)
class Want:
    """One thing the table wants on this machine."""

    kind: str  # a key of KINDS
    name: str  # package, host triple, component, target, tool, Python version
    version: str = ""  # cargo tools: exact version or "*"

    def __str__(self) -> str:
        if self.kind == "toolchain":
            return f"{KINDS[self.kind]} with host {self.name}"
        version = f" {self.version}" if self.version and self.version != ANY_VERSION else ""
        return f"{KINDS[self.kind]} {self.name}{version}"


@dataclass(frozen=True)
class Step:
    """The command lines that install ``wants`` (None: nothing here can run them)."""

    commands: tuple[tuple[str, ...], ...] | None
    wants: tuple[Want, ...]
    shown: str  # the commands as a person would type them, or what to do

    @property
    def runnable(self) -> bool:
        return self.commands is not None


def this_platform(name: str = sys.platform) -> str:
    """``linux`` or ``windows`` (MSYS2 or not); ConfigError elsewhere."""
    if name.startswith("linux"):
        return "linux"
    if name in ("win32", "cygwin", "msys"):
        return "windows"
    raise ConfigError(f"{REQUIREMENTS_FILE} declares needs for {', '.join(PLATFORMS)} only; this machine is {name}")


def this_distro(path: Path = OS_RELEASE) -> str:
    """``ID-VERSION_ID`` of ``/etc/os-release`` (``debian-12``, ``ubuntu-24.04``); "" when unknown."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return ""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    ident, version = (fields.get(k, "").strip().strip("\"'") for k in ("ID", "VERSION_ID"))
    return f"{ident}-{version}" if ident and version else ""


def base_session(req: Requirements, name: str) -> str:
    """The table's name of session ``name`` (``python-tests-3.12`` is ``python-tests``)."""
    if name in req.sessions:
        return name
    base = re.sub(r"-\d+\.\d+$", "", name)
    if base in req.sessions:
        return base
    raise ConfigError(
        f"{REQUIREMENTS_FILE} declares no session {name!r}",
        hint=f"the sessions it declares: {', '.join(sorted(req.sessions))}",
    )


def _one_host(hosts: Iterable[str]) -> str:
    found = sorted({h for h in hosts if h})
    if len(found) > 1:
        raise ConfigError(f"these sessions need different Rust hosts ({', '.join(found)}): set them up one at a time")
    return found[0] if found else ""


def _one_version(tools: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    versions: dict[str, str] = {}
    for name, version in tools:
        have = versions.get(name, ANY_VERSION)
        if version != ANY_VERSION and have not in (ANY_VERSION, version):
            raise ConfigError(f"{REQUIREMENTS_FILE} pins {name} at both {have} and {version}")
        versions[name] = have if version == ANY_VERSION else version
    return tuple(sorted(versions.items()))


def combined(req: Requirements, sessions: Sequence[str], platform: str) -> PlatformNeeds:
    """The needs of every session in ``sessions`` on ``platform``, merged."""
    found = []
    for session in sessions:
        n = req.needs(base_session(req, session), platform)
        if n is None:
            raise ConfigError(
                f"{REQUIREMENTS_FILE} declares no [sessions.{base_session(req, session)}.{platform}]: "
                f"{session} does not run on {platform}"
            )
        found.append(n)

    def union(values: Iterable[Iterable[str]]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for vs in values for v in vs))

    distros = union([d for d, _ in n.apt_on] for n in found)
    return PlatformNeeds(
        rust_host=_one_host(n.rust_host for n in found),
        components=union(n.components for n in found),
        targets=union(n.targets for n in found),
        apt=union(n.apt for n in found),
        msys2=union(n.msys2 for n in found),
        cargo_tools=_one_version(t for n in found for t in n.cargo_tools),
        python=union(n.python for n in found),
        native=any(n.native for n in found),
        apt_on=tuple((d, union(p for n in found for dd, p in n.apt_on if dd == d)) for d in distros),
    )


def wants(n: PlatformNeeds, platform: str, distro: str) -> list[Want]:
    """Everything ``n`` wants on a ``platform`` machine of ``distro``, in install order."""
    found = [Want("apt", p) for p in n.apt_for(distro)] if platform == "linux" else []
    found += [Want("msys2", p) for p in n.msys2] if platform == "windows" else []
    found += [Want("toolchain", n.rust_host)] if n.rust_host else []
    found += [Want("component", c) for c in n.components]
    found += [Want("target", t) for t in n.targets if t != n.rust_host]
    found += [Want("cargo-tool", name, version) for name, version in n.cargo_tools]
    found += [Want("python", v) for v in n.python]
    return found


def _which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH"))


def _stdout(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """What a query prints (also when it exits non-zero: dpkg-query and
    pacman -Q print what they know and fail for the rest)."""
    proc = probe(argv, env=env)
    return proc.stdout if proc is not None else ""


def installed_packages(kind: str, names: Sequence[str], env: Mapping[str, str]) -> set[str]:
    """Which of ``names`` are installed: ``apt`` (dpkg-query) or ``msys2`` (pacman -Q)."""
    if not names:
        return set()
    if kind == "apt" and _which("dpkg-query", env):
        out = _stdout(["dpkg-query", "-W", "-f=${Package}=${db:Status-Status};", *names], env)
        return {entry.split("=")[0] for entry in out.split(";") if entry.endswith("=installed")}
    if kind == "msys2" and _which("pacman", env):
        return {line.split()[0] for line in _stdout(["pacman", "-Q", *names], env).splitlines() if line.strip()}
    return set()


@dataclass(frozen=True)
class RustState:
    """The default Rust toolchain here: rustc's host, and (with rustup) its components and targets."""

    host: str = ""
    components: frozenset[str] = frozenset()
    targets: frozenset[str] = frozenset()


def rust_state(env: Mapping[str, str]) -> RustState:
    rustc, rustup = _which("rustc", env), _which("rustup", env)
    m = re.search(r"^host: (\S+)", _stdout([rustc, "-vV"], env) if rustc else "", re.MULTILINE)
    host = m.group(1) if m else ""
    if not (host and rustup):
        return RustState(host)
    components = {
        normal_component(line.strip().removesuffix(f"-{host}"))
        for line in _stdout([rustup, "component", "list", "--installed"], env).splitlines()
    }
    targets = {line.strip() for line in _stdout([rustup, "target", "list", "--installed"], env).splitlines()}
    return RustState(host, frozenset(components - {""}), frozenset(targets - {""}))


def cargo_tool_present(name: str, version: str, env: Mapping[str, str]) -> bool:
    """``name`` (a cargo subcommand) at ``version`` ("*": any) on PATH, in
    ``$CARGO_HOME/bin``, or in the suite's tool cache where the sessions install
    pinned tools (``~/.cache/maturin-suite/tools/<name>-<version>/bin``)."""
    home = Path(env.get("CARGO_HOME") or Path(env.get("HOME") or Path.home()) / ".cargo")
    candidates = [shutil.which(name, path=os.pathsep.join([env.get("PATH", ""), str(home / "bin")]))]
    if version != ANY_VERSION:
        exe = f"{name}.exe" if os.name == "nt" else name
        candidates.append(str(toolchain.suite_cache(env) / "tools" / f"{name}-{version}" / "bin" / exe))
    for exe in filter(None, candidates):
        if not Path(exe).is_file():
            continue
        if version == ANY_VERSION:
            return True
        # cargo runs `cargo-<x>` with `<x>` as its first argument; so does this.
        proc = probe([exe, name.removeprefix("cargo-"), "--version"], env=env, timeout=60)
        if (
            proc is not None
            and proc.returncode == 0
            and re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", proc.stdout + proc.stderr)
        ):
            return True
    return False


def present(items: Sequence[Want], env: Mapping[str, str]) -> set[Want]:
    """Which of ``items`` this machine has."""
    found: set[Want] = set()
    for kind in ("apt", "msys2"):
        of_kind = [w for w in items if w.kind == kind]
        have = installed_packages(kind, [w.name for w in of_kind], env)
        found |= {w for w in of_kind if w.name in have}
    if any(w.kind in ("toolchain", "component", "target") for w in items):
        rust = rust_state(env)
        found |= {
            w
            for w in items
            if (w.kind, w.name) == ("toolchain", rust.host)
            or (w.kind == "component" and normal_component(w.name) in rust.components)
            or (w.kind == "target" and w.name in rust.targets)
        }
    found |= {w for w in items if w.kind == "cargo-tool" and cargo_tool_present(w.name, w.version, env)}
    found |= {Want("python", v) for v in pythons_present([w.name for w in items if w.kind == "python"], env)}
    return found


def pythons_present(versions: Sequence[str], env: Mapping[str, str]) -> set[str]:
    """Which CPython ``versions`` are here: on PATH, in pyenv (as the sessions
    look), and on Windows through the ``py`` launcher (as nox looks there)."""
    if not versions:
        return set()
    interpreters, missing = toolchain.find_interpreters(versions, env)
    found = {i.version for i in interpreters}
    py = _which("py", env) if os.name == "nt" else None
    if py is None:
        return found
    for version in missing:
        proc = probe([py, f"-{version}", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], env=env)
        if proc is not None and proc.returncode == 0 and proc.stdout.strip() == version:
            found.add(version)
    return found


def admin_prefix(env: Mapping[str, str], uid: int | None = None) -> tuple[str, ...] | None:
    """How to run apt-get as root here: () as root, ("sudo",) with sudo, None when neither."""
    if uid is None and not hasattr(os, "geteuid"):
        return ()
    if (os.geteuid() if uid is None else uid) == 0:
        return ()
    return ("sudo",) if _which("sudo", env) else None


def apt_lists_empty(lists: Path = APT_LISTS) -> bool:
    """True when apt has never fetched package lists here (a fresh container)."""
    return not any(lists.glob("*_Packages*")) if lists.is_dir() else True


def python_advice(version: str) -> str:
    return f"not installed by setup: actions/setup-python (python-version: {version}) or `pyenv install {version}`"


def _join(commands: Sequence[Sequence[str]]) -> str:
    return " && ".join(shlex.join(c) for c in commands)


def _commands(
    kind: str, items: Sequence[Want], env: Mapping[str, str], cargo_install: Mapping[str, Sequence[str]]
) -> list[tuple[tuple[str, ...], ...]]:
    """The command lines that install ``items`` (all of one kind): one line per
    set for packages, one per item for the rest."""
    names = [w.name for w in items]
    if kind == "apt":
        admin = admin_prefix(env)
        # sudo drops the environment: it gets DEBIAN_FRONTEND as an argument.
        sudo = ("sudo", "DEBIAN_FRONTEND=noninteractive") if admin != () else ()
        return [((*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *names),)]
    if kind == "msys2":
        return [(("pacman", "-S", "--needed", "--noconfirm", *names),)]
    if kind == "toolchain":
        return [
            (
                ("rustup", "toolchain", "install", f"stable-{h}", "--profile", "minimal"),
                ("rustup", "default", f"stable-{h}"),
            )
            for h in names
        ]
    if kind in ("component", "target"):
        return [(("rustup", kind, "add", *names),)]
    if kind == "cargo-tool":
        return [
            (
                (
                    "cargo",
                    "install",
                    "--locked",
                    w.name if w.version == ANY_VERSION else f"{w.name}@{w.version}",
                    *cargo_install.get(w.name, ()),
                ),
            )
            for w in items
        ]
    return [() for _ in items]  # python: nothing here installs interpreters


def install_steps(
    items: Sequence[Want], env: Mapping[str, str], cargo_install: Mapping[str, Sequence[str]] | None = None
) -> list[Step]:
    """The steps that install ``items``, in the order of :func:`wants`.
    A step without commands (``runnable`` False) says what a person must do."""
    steps: list[Step] = []
    for kind in KINDS:
        of_kind = [w for w in items if w.kind == kind]
        if not of_kind:
            continue
        groups = [of_kind] if kind in ("apt", "msys2", "component", "target") else [[w] for w in of_kind]
        for group, commands in zip(groups, _commands(kind, of_kind, env, cargo_install or {}), strict=True):
            shown = _join(commands) if commands else python_advice(group[0].name)
            runnable = bool(commands)
            if kind == "apt" and admin_prefix(env) is None:
                runnable, shown = False, f"{shown} (as root: neither root nor sudo here)"
            steps.append(Step(tuple(commands) if runnable else None, tuple(group), shown))
    return steps


def how(item: Want, env: Mapping[str, str], cargo_install: Mapping[str, Sequence[str]] | None = None) -> str:
    """The command that installs ``item`` alone, or what to do."""
    return install_steps([item], env, cargo_install)[0].shown


def machine_wants(
    req: Requirements, sessions: Sequence[str], platform: str = "", distro: str | None = None
) -> list[Want]:
    """What ``sessions`` want on this machine (or on ``platform``/``distro``)."""
    platform = platform or this_platform()
    return wants(combined(req, sessions, platform), platform, this_distro() if distro is None else distro)


def missing_here(root: Path, session: str, env: Mapping[str, str], suite_python: Sequence[str] = ()) -> list[Need]:
    """What ``ci/requirements.toml`` says ``session`` needs on this machine and
    this machine lacks, each with the command that installs it (the probes
    are those of ``nox -s setup``)."""
    req = load(root / REQUIREMENTS_FILE, suite_python)
    items = machine_wants(req, [session])
    have = present(items, env)
    return [
        Need(KINDS[w.kind], str(w).removeprefix(KINDS[w.kind] + " "), how(w, env, req.cargo_install))
        for w in items
        if w not in have
    ]


def setup_hint(root: Path, session: str, env: Mapping[str, str], suite_python: Sequence[str] = ()) -> str:
    """A hint for a session that found something missing at start-up: what
    the table lists and this machine lacks, and ``nox -s setup -- <session>``,
    which installs it. "" when the table's needs are all here."""
    try:
        gaps = missing_here(root, session, env, suite_python)
    except SuiteError as e:
        return f"nox -s setup -- {session} installs what {REQUIREMENTS_FILE} lists ({e.message})"
    if not gaps:
        return ""
    listed = "; ".join(f"{g} ({g.how})" for g in gaps)
    return f"nox -s setup -- {session} installs what {REQUIREMENTS_FILE} lists and this machine lacks: {listed}"
