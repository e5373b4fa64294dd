"""Provisions: what a job's steps put on the machine, against what
``ci/requirements.toml`` says its sessions need (:mod:`ci.blocks.needs`).

For every job that runs nox (:func:`check_provisions`), the steps before its
nox step must provide what ``ci/requirements.toml`` declares for each session
it runs on the runner's platform. Steps under an ``if:`` count when the
condition holds for that session's matrix entry
(:func:`ci.blocks.gh_expressions.evaluate` reads GitHub's expression
language). Which sessions a job runs comes from the parity check
(:func:`ci.blocks.workflows.check_parity`).

A ``nox -s setup -- S`` step (the set-up entry, :mod:`ci.sessions.setup`)
provides what the same table declares for S on the runner (its platform and
distribution), except interpreters, which it does not install; ``S`` may be
``"$VAR"`` with ``VAR: ${{ matrix.<key>.name }}`` (or ``.session``) in the
step's, job's or workflow's ``env``. It counts only after nox is installed
from the lock (it is a nox session).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ci.blocks import needs as needs_
from ci.blocks.gh_expressions import evaluate
from ci.blocks.needs import Provided, Requirements, Runner
from ci.blocks.workflows import (
    ALL_SESSIONS,
    NOX_RUN,
    PLAN,
    PLAN_ASSIGN,
    Parity,
    Problem,
    SessionLister,
    SessionRun,
    commands,
)

TOOLCHAIN = re.compile(
    r"^(?:stable|beta|nightly|\d+\.\d+(?:\.\d+)?)(?:-\d{4}-\d{2}-\d{2})?(?:-(?P<host>[a-z0-9_]+(?:-[a-z0-9_]+){2,3}))?$"
)
RUSTUP_VALUE_OPTIONS = frozenset({"--profile", "-c", "--component", "-t", "--target", "--toolchain"})
CARGO_VALUE_OPTIONS = frozenset(
    {
        "--version",
        "--vers",
        "--root",
        "--git",
        "--branch",
        "--tag",
        "--rev",
        "--path",
        "--features",
        "-F",
        "--target",
        "--profile",
        "--index",
        "--registry",
        "-j",
        "--jobs",
        "--target-dir",
        "--install-path",
        "--strategies",
    }
)
PIP_VALUE_OPTIONS = frozenset(
    {
        "-r",
        "--requirement",
        "-c",
        "--constraint",
        "--group",
        "-i",
        "--index-url",
        "--extra-index-url",
        "--python-version",
        "--target",
    }
)
MSYS2_RUST = {"mingw-w64-x86_64-rust": "x86_64-pc-windows-gnu"}
SETUP = "setup"  # the set-up entry's session (ci/sessions/setup.py)
SETUP_RUN = re.compile(rf"nox -s {SETUP} -- (?P<args>.+)")
ENV_VAR = re.compile(r'^"?\$\{?(?P<var>[A-Za-z_][A-Za-z0-9_]*)\}?"?$')
MATRIX_FIELD = re.compile(r"^\$\{\{\s*matrix\.(?P<key>[A-Za-z0-9_-]+)\.(?P<field>[A-Za-z0-9_-]+)\s*\}\}$")
RUST_ACTIONS = {"dtolnay/rust-toolchain": "targets"}


def _options(tokens: Sequence[str], with_value: frozenset[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(positional arguments, ``{option: [values]}``) of a command line."""
    positional: list[str] = []
    options: dict[str, list[str]] = {}
    it = iter(tokens)
    for token in it:
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        key, eq, value = token.partition("=")
        if not eq and key in with_value:
            value = next(it, "")
        options.setdefault(key, []).append(value)
    return positional, options


def _split(values: Iterable[str]) -> list[str]:
    return [x for v in values for x in re.split(r"[\s,]+", v) if x]


class _Machine:
    """What the steps of one job have put on the runner so far."""

    def __init__(self, runner: Runner, req: Requirements) -> None:
        self.runner = runner
        self.req = req
        self.provided = Provided()
        self.default = ""
        self.hosts: dict[str, str] = {}
        self.toolchains: dict[str, tuple[set[str], set[str]]] = {}

    def install(self, name: str, components: Iterable[str] = (), targets: Iterable[str] = ()) -> str:
        """Record toolchain ``name`` (``stable`` is the runner host's) and what it got."""
        m = TOOLCHAIN.match(name)
        canonical = f"{name}-{self.runner.rust_host}" if m and not m["host"] else name
        if canonical not in self.hosts:
            m = TOOLCHAIN.match(canonical)
            self.hosts[canonical] = m["host"] if m and m["host"] else ""
        comps, tgts = self.toolchains.setdefault(canonical, (set(), set()))
        comps.update(needs_.normal_component(c) for c in components)
        tgts.update(targets)
        return canonical

    def add(self, toolchain: str | None, components: Iterable[str] = (), targets: Iterable[str] = ()) -> None:
        """``rustup component/target add``: to ``--toolchain`` or the default."""
        self.install(toolchain or self.default or "stable", components, targets)

    def set_default(self, name: str, host: str = "") -> None:
        self.default = self.install(name)
        if host:
            self.hosts[self.default] = host

    def result(self) -> Provided:
        p = self.provided
        if self.default:
            comps, targets = self.toolchains[self.default]
            p.rust, p.rust_host = self.default, self.hosts[self.default]
            p.components, p.targets = set(comps), set(targets)
        return p


def _rustup(machine: _Machine, args: Sequence[str]) -> None:
    pos, opts = _options(args, RUSTUP_VALUE_OPTIONS)
    toolchain = (opts.get("--toolchain") or [""])[-1] or None
    if pos[:2] == ["toolchain", "install"]:
        for name in pos[2:]:
            machine.install(
                name,
                _split(opts.get("-c", []) + opts.get("--component", [])),
                _split(opts.get("-t", []) + opts.get("--target", [])),
            )
    elif pos[:1] == ["default"] and len(pos) == 2:
        machine.set_default(pos[1])
    elif pos[:2] == ["component", "add"]:
        machine.add(toolchain, components=pos[2:])
    elif pos[:2] == ["target", "add"]:
        machine.add(toolchain, targets=pos[2:])


def _cargo_install(machine: _Machine, args: Sequence[str]) -> None:
    """``cargo install``/``cargo binstall`` of ``name@version`` (or ``--version``)."""
    pos, opts = _options(args, CARGO_VALUE_OPTIONS)
    for spec in pos:
        name, _, version = spec.partition("@")
        version = (version or (opts.get("--version") or opts.get("--vers") or [""])[-1]).lstrip("=")
        machine.provided.add_tool(name, version if re.fullmatch(r"\d+(\.\d+)*", version) else "")


def _pip(machine: _Machine, args: Sequence[str]) -> None:
    pos, opts = _options(args, PIP_VALUE_OPTIONS)
    if pos[:1] != ["install"]:
        return
    hashed = "--require-hashes" in opts
    for path in opts.get("-r", []) + opts.get("--requirement", []):
        machine.provided.nox.add(f"{'lock' if hashed else 'unhashed'}:{path}")
    for group in opts.get("--group", []):
        machine.provided.nox.add(f"group:{group}")


def _run_command(machine: _Machine, cmd: str) -> None:
    try:
        tokens = shlex.split(cmd)
    except ValueError:
        return
    if tokens[:1] == ["sudo"]:
        tokens = tokens[1:]
    head, rest = (tokens[0], tokens[1:]) if tokens else ("", [])
    if head == "rustup":
        _rustup(machine, rest)
    elif head in ("apt-get", "apt") and rest[:1] == ["install"]:
        machine.provided.apt.update(_options(rest[1:], frozenset({"-o", "-t"}))[0])
    elif head == "pacman" and any(re.fullmatch(r"-S[a-z]*", t) for t in rest):
        machine.provided.msys2.update(_options(rest, frozenset())[0])
    elif head == "cargo" and rest[:1] in (["install"], ["binstall"]):
        _cargo_install(machine, rest[1:])
    elif head in ("pip", "pip3"):
        _pip(machine, rest)
    elif re.fullmatch(r"python[0-9.]*", head) and rest[:2] == ["-m", "pip"]:
        _pip(machine, rest[2:])


def _install_action(machine: _Machine, commit: str, tools: str) -> None:
    """taiki-e/install-action: a pinned ``name@version`` counts only when the
    manifest at that commit knows it (``[install-action.<commit>]``)."""
    known = machine.req.install_action.get(commit, {})
    for spec in _split([tools]):
        name, _, version = spec.partition("@")
        if version in ("", "latest"):
            machine.provided.add_tool(name, "")
            continue
        newest = known.get(name)
        if newest and needs_.version_key(version) <= needs_.version_key(newest):
            machine.provided.add_tool(name, version)
            continue
        machine.provided.refused[f"cargo tool {name}"] = (
            f"taiki-e/install-action@{commit[:12]} knows {name} only up to {newest}"
            if newest
            else f"taiki-e/install-action@{commit[:12]} is not known to have {name} {version} "
            f"(no [install-action.{commit}] entry for it in {needs_.REQUIREMENTS_FILE})"
        )


def _action(machine: _Machine, step: Mapping[str, Any]) -> None:
    action, _, ref = str(step.get("uses", "")).partition("@")
    with_ = step.get("with") or {}
    if action == "actions/setup-python":
        machine.provided.python.update(_split([str(with_.get("python-version", ""))]))
    elif action == "taiki-e/install-action":
        _install_action(machine, ref, str(with_.get("tool", "")))
    elif action == "msys2/setup-msys2" and isinstance(with_.get("install"), str):
        packages = with_["install"].split()
        machine.provided.msys2.update(packages)
        for package, host in MSYS2_RUST.items():
            if package in packages:
                machine.set_default(f"msys2:{package}", host)
    elif action in RUST_ACTIONS and with_.get("toolchain"):
        name = str(with_["toolchain"])
        machine.install(
            name, _split([str(with_.get("components", ""))]), _split([str(with_.get(RUST_ACTIONS[action], ""))])
        )
        machine.set_default(name)


def runs_nox(step: Mapping[str, Any]) -> bool:
    """The step runs a nox session (the set-up entry aside) or lists sessions for a plan."""
    return any(
        (NOX_RUN.fullmatch(c) and not SETUP_RUN.fullmatch(c)) or PLAN.fullmatch(c) or PLAN_ASSIGN.fullmatch(c)
        for c in commands(str(step.get("run", "")))
    )


def setup_sessions(args: str, env: Mapping[str, Any], context: Mapping[str, Any]) -> list[str] | None:
    """The sessions ``nox -s setup -- ARGS`` sets up (``"$VAR"`` resolved through
    ``env`` and the matrix entry in ``context``); None for a dry run or an
    argument that cannot be resolved."""
    try:
        tokens = shlex.split(args)  # "$VAR" stays $VAR: nothing is expanded
    except ValueError:
        return None
    sessions = []
    for token in tokens:
        if token.startswith("-"):
            if token == "--dry-run":
                return None
            continue
        m = ENV_VAR.match(token)
        if m:
            f = MATRIX_FIELD.match(str(env.get(m["var"], "")).strip())
            entry = context.get(f"matrix.{f['key']}") if f else None
            token = str(entry.get(f["field"], "")) if f and isinstance(entry, Mapping) else ""
        if not token:
            return None
        sessions.append(token)
    return sessions


def _setup(machine: _Machine, sessions: Sequence[str]) -> None:
    """What ``nox -s setup -- SESSIONS`` installs on the runner: the table's
    needs of each session there, interpreters aside."""
    for session in sessions:
        name = re.sub(r"-\d+\.\d+$", "", session) if session not in machine.req.sessions else session
        n = machine.req.needs(name, machine.runner.platform)
        if n is None:
            continue
        if n.rust_host:
            machine.set_default(f"setup:stable-{n.rust_host}", n.rust_host)
        machine.add(None, n.components, n.targets)
        machine.provided.apt.update(n.apt_for(machine.runner.distro))
        machine.provided.msys2.update(n.msys2)
        for tool, version in n.cargo_tools:
            machine.provided.add_tool(tool, "" if version == needs_.ANY_VERSION else version)


def provisions_before(
    steps: Sequence[Mapping[str, Any]],
    runner: Runner,
    req: Requirements,
    context: Mapping[str, Any],
    env: Mapping[str, Any] | None = None,
) -> Provided:
    """What the steps before the first nox step provide when their ``if:`` holds
    under ``context``; ``env`` is the job's (and workflow's) environment."""
    machine = _Machine(runner, req)
    for index, step in enumerate(steps):
        setup = [m for c in commands(str(step.get("run", ""))) if (m := SETUP_RUN.fullmatch(c))]
        if runs_nox(step) or (setup and f"lock:{req.nox.requirements}" not in machine.provided.nox):
            break
        holds = evaluate(step.get("if"), context)
        if holds is None:
            machine.provided.uncounted.append(str(step.get("name") or f"step {index + 1}"))
        if not holds:
            continue
        if "uses" in step:
            _action(machine, step)
        for cmd in commands(str(step.get("run", ""))):
            _run_command(machine, cmd)
        step_env = {**(env or {}), **(step.get("env") or {})}
        for m in setup:
            _setup(machine, setup_sessions(m["args"], step_env, context) or [])
    return machine.result()


@dataclass
class Provisions:
    """The provisions check: what was checked, what is missing, known gaps that do not fail."""

    checked: list[tuple[str, str, str, str]] = field(default_factory=list)  # workflow, job, session, platform
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _entries(run: SessionRun, lister: SessionLister, known: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``nox -l --json`` entries of the sessions ``run`` runs."""
    if run.plan is not None:
        return [e for e in lister(run.plan) if e["session"] in run.sessions]
    return [known.get(s) or {"session": s, "name": s} for s in run.sessions]


def check_provisions(
    workflows: Mapping[str, Mapping[str, Any]],
    parity: Parity,
    lister: SessionLister,
    req: Requirements,
    linux_wheel_mode: str = "auto",
) -> Provisions:
    """Every job that runs nox provides, before its nox step, the needs of each
    session it runs on its runner's platform (and nox itself, from the lock)."""
    result = Provisions()
    known = {s["session"]: s for s in lister(ALL_SESSIONS)}
    for name, wf in workflows.items():
        for job_id, job in (wf.get("jobs") or {}).items():
            if not isinstance(job, dict) or not any(runs_nox(s) for s in job.get("steps") or []):
                continue
            runs_on = job.get("runs-on")
            runner = req.runner_for(runs_on) if isinstance(runs_on, str) else None
            if runner is None:
                result.problems.append(
                    Problem(
                        name, job_id, f"runs-on {runs_on!r} is no runner {needs_.REQUIREMENTS_FILE} [runners] knows"
                    )
                )
                continue
            env = {**(wf.get("env") or {}), **(job.get("env") or {})}
            job_ctx = _JobCheck(result, name, job_id, job, runner, req, linux_wheel_mode, env)
            # The set-up entry's own run is a provision, checked with the step after it.
            runs = [r for r in parity.runs if (r.workflow, r.job) == (name, job_id) and r.sessions != (SETUP,)]
            if not runs:
                job_ctx.check(None, "")
            for run in runs:
                for entry in _entries(run, lister, known):
                    job_ctx.check(entry, run.matrix_key)
    return result


@dataclass
class _JobCheck:
    result: Provisions
    workflow: str
    job_id: str
    job: Mapping[str, Any]
    runner: Runner
    req: Requirements
    linux_wheel_mode: str
    env: Mapping[str, Any] = field(default_factory=dict)

    def check(self, entry: Mapping[str, Any] | None, matrix_key: str) -> None:
        """The needs of one session (None: only nox's, for a plan job) against the job's steps."""
        context = {f"matrix.{matrix_key}": dict(entry)} if entry is not None and matrix_key else {}
        provided = provisions_before(self.job.get("steps") or [], self.runner, self.req, context, self.env)
        platform = self.runner.platform
        session = str(entry["session"]) if entry is not None else ""
        base = str((entry or {}).get("name") or session)
        needs = self.req.needs(base, platform) if entry is not None else None
        self.result.checked.append((self.workflow, self.job_id, session or "(nox only)", platform))
        if entry is not None and needs is None:
            self.problem(
                f"runs session {session!r} on {platform}, but {needs_.REQUIREMENTS_FILE} declares "
                f"no [sessions.{base}.{platform}]"
            )
            return
        python = (entry or {}).get("python")
        for need in needs_.missing(
            needs,
            self.req.nox,
            provided,
            runner_host=self.runner.rust_host,
            extra_python=[python] if isinstance(python, str) else [],
            distro=self.runner.distro,
        ):
            what = f"session {session!r} on {platform}" if session else "nox"
            self.problem(f"{what} needs {need}, which no step before the nox step provides: {need.how}")
        if needs is not None and needs.linux_wheel_mode:
            self.route_note(session, needs.linux_wheel_mode)

    def problem(self, message: str) -> None:
        self.result.problems.append(Problem(self.workflow, self.job_id, message))

    def route_note(self, session: str, wanted: str) -> None:
        route = needs_.linux_wheel_route(self.linux_wheel_mode, self.runner)
        if route == wanted:
            return
        self.result.notes.append(
            f"{self.workflow}, job {self.job_id}: {session} takes the {route} route on {self.job['runs-on']} "
            f"(tool.maturin-suite.linux-wheel.mode = {self.linux_wheel_mode!r}, a container engine answers "
            f"there), {needs_.REQUIREMENTS_FILE} wants {wanted!r}; ci/sessions/linux_wheel.py offers no "
            f"per-run choice (posarg or env), so set mode = {wanted!r} in pyproject.toml"
        )
