"""The ``lint-workflows`` session: zizmor (offline), the GitHub workflow
schema, hardening rules, parity (CI jobs run only set-up steps and this
noxfile's sessions), provisions (each job provides what
``ci/requirements.toml`` says its sessions need) and the release dry run;
the rules live in :mod:`ci.blocks.workflows`, :mod:`ci.blocks.provisions`,
:mod:`ci.blocks.gh_expressions` and :mod:`ci.blocks.needs`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ci.blocks import needs
from ci.blocks.provisions import Provisions, check_provisions
from ci.blocks.workflows import (
    WORKFLOWS_DIR,
    Parity,
    SessionLister,
    check_dry_run,
    check_hardening,
    check_parity,
    discover_workflow_tags,
    load_workflows,
    nox_lister,
    workflow_files,
)
from ci.core.context import Context
from ci.core.errors import CheckFailed

ZIZMOR_HINT = "pip install zizmor (it is in the 'lint-workflows' dependency group)"
SCHEMA_HINT = "pip install check-jsonschema (it is in the 'lint-workflows' dependency group)"


def run_zizmor(ctx: Context, folder: Path, report: Path) -> int:
    """zizmor offline, JSON kept in ``report``; returns the number of findings."""
    zizmor = ctx.tool("zizmor", hint=ZIZMOR_HINT)
    proc = ctx.console.run(
        [zizmor, "--offline", "--format", "json", folder],
        cwd=ctx.root,
        env=ctx.env(),
        title="zizmor --offline (JSON)",
        capture=True,
        check=False,
    )
    # Exit 0: no findings; 10-14: findings (by highest severity); else an error.
    findings: Any = None
    if proc.returncode == 0 or 10 <= proc.returncode <= 14:
        try:
            findings = json.loads(proc.stdout)
        except json.JSONDecodeError:
            findings = None
    if not isinstance(findings, list):
        ctx.console.say((proc.stdout or "") + (proc.stderr or "")[-3000:])
        raise CheckFailed(
            f"zizmor failed (exit {proc.returncode}) without a JSON report",
            hint="a workflow zizmor cannot parse is skipped; check-jsonschema names it",
        )
    report.write_text(json.dumps(findings, indent=2) + "\n", encoding="utf-8")
    if findings:
        # Human-readable diagnostics for the log.
        ctx.console.run(
            [zizmor, "--offline", folder], cwd=ctx.root, env=ctx.env(), title="zizmor --offline", check=False
        )
    return len(findings)


def workflow_tags(ctx: Context, workflows: dict[str, Any], lister: SessionLister) -> dict[str, tuple[str, ...]]:
    """Which noxfile tags each workflow owns: ``[tool.maturin-suite.workflows] tags``, else by file name."""
    configured = ctx.config.workflows.tags
    owned = dict(configured) if configured else discover_workflow_tags(workflows, lister)
    how = "tool.maturin-suite.workflows.tags" if configured else "discovered: <stem>.yml owns tags <stem>, <stem>-*"
    for name in workflows:
        tags = owned.get(name)
        ctx.console.say(
            f"  {name} runs the sessions tagged {', '.join(tags)}"
            if tags
            else f"  {name} owns no tag: its steps are checked, not which sessions it runs"
        )
    ctx.console.say(f"  (tags per workflow: {how})")
    return owned


def parity_and_hardening(ctx: Context, files: list[Path]) -> tuple[Parity, list[str]]:
    """Parse the workflows (PyYAML) and check parity, hardening and the release dry run."""
    environment = ctx.config.workflows.publish_environment
    with ctx.console.step("parity: jobs run only set-up steps and the noxfile's sessions"):
        workflows = load_workflows(ctx.root)
        lister = nox_lister(ctx.root)
        parity = check_parity(workflows, lister, workflow_tags(ctx, workflows, lister))
        hardening = [
            str(p)
            for f in files
            for p in check_hardening(f.name, workflows[f.name], f.read_text(encoding="utf-8"), environment)
            + check_dry_run(f.name, workflows[f.name])
        ]
        for run in parity.runs:
            how = f"plan `nox -l --json {' '.join(run.plan)}`" if run.plan is not None else "literal"
            extra = f" -- {' '.join(run.posargs)}" if run.posargs else ""
            ctx.console.say(f"  {run.workflow} {run.job}: {', '.join(run.sessions) or '(none)'}{extra} ({how})")
    return parity, hardening


def provisions(ctx: Context, parity: Parity) -> tuple[Provisions, list[str]]:
    """Each job's steps against ``ci/requirements.toml``; the table against ``[tool.maturin-suite]``."""
    cfg = ctx.config
    with ctx.console.step(f"provisions: every job provides what {needs.REQUIREMENTS_FILE} says its sessions need"):
        req = needs.load(ctx.root / needs.REQUIREMENTS_FILE, cfg.python_versions)
        found = check_provisions(load_workflows(ctx.root), parity, nox_lister(ctx.root), req, cfg.linux_wheel.mode)
        problems = needs.consistency(req, cfg) + [str(p) for p in found.problems]
        for note in found.notes:
            ctx.console.say(f"  known gap (does not fail): {note}")
    return found, problems


def write_parity_report(path: Path, parity: Parity, problems: list[str], found: Provisions | None = None) -> None:
    checked = found.checked if found is not None else []
    notes = found.notes if found is not None else []
    path.write_text(
        "".join(f"{r.workflow}\t{r.job}\t{' '.join(r.sessions)}\t{' '.join(r.posargs)}\n" for r in parity.runs)
        + "".join(f"PROVIDES\t{w}\t{j}\t{s}\t{p}\n" for w, j, s, p in checked)
        + "".join(f"PROBLEM\t{p}\n" for p in problems)
        + "".join(f"NOTE\t{n}\n" for n in notes),
        encoding="utf-8",
    )


def check_rows(
    parity: Parity, hardening: list[str], found: Provisions, provision_problems: list[str]
) -> list[tuple[str, str]]:
    """The summary rows of the suite's own workflow rules."""
    runs = sum(len(r.sessions) for r in parity.runs)
    return [
        ("parity", f"{len(parity.runs)} nox steps, {runs} session runs, {len(parity.problems)} problems"),
        ("hardening", f"{len(hardening)} problems"),
        (
            "provisions",
            f"{len(found.checked)} job/session pairs, {len(provision_problems)} problems, "
            f"{len(found.notes)} known gaps",
        ),
        ("actionlint", "not run (cannot be installed offline; see README)"),
    ]


def run(ctx: Context) -> None:
    root = ctx.root
    files = workflow_files(root)
    if not files:
        raise CheckFailed(
            f"no workflows (*.yml, *.yaml) in {root / WORKFLOWS_DIR}",
            hint="copy the suite's workflows there: nox -s adopt -- PATH (from the suite's checkout)",
        )
    report_dir = ctx.config.report_dir("lint-workflows")
    report_dir.mkdir(parents=True, exist_ok=True)
    findings = run_zizmor(ctx, root / WORKFLOWS_DIR, report_dir / "zizmor.json")
    schema = ctx.tool("check-jsonschema", hint=SCHEMA_HINT)
    schema_proc = ctx.console.run(
        [schema, "--builtin-schema", "vendor.github-workflows", *files],
        cwd=root,
        env=ctx.env(),
        title="check-jsonschema --builtin-schema vendor.github-workflows",
        check=False,
    )
    parity, hardening = parity_and_hardening(ctx, files)
    found, provision_problems = provisions(ctx, parity)
    problems = [str(p) for p in parity.problems] + hardening + provision_problems
    write_parity_report(report_dir / "parity.txt", parity, problems, found)
    ctx.console.summary(
        "lint-workflows",
        [
            ("workflows", ", ".join(f.name for f in files)),
            ("zizmor --offline", f"{findings} findings (report: {report_dir / 'zizmor.json'})"),
            ("schema", "valid" if schema_proc.returncode == 0 else f"INVALID (exit {schema_proc.returncode})"),
            *check_rows(parity, hardening, found, provision_problems),
        ],
    )
    failures = [f"zizmor reported {findings} finding(s)"] if findings else []
    if schema_proc.returncode != 0:
        failures.append("a workflow does not match the GitHub workflow schema")
    failures += problems
    if failures:
        raise CheckFailed(
            "workflow lint failed:\n  " + "\n  ".join(failures),
            hint="fix the workflows (or ci/requirements.toml); the rules are in "
            "ci/blocks/workflows.py, ci/blocks/provisions.py and ci/blocks/needs.py",
        )
