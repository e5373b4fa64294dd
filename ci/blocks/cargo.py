"""Running the workspace's Rust tests (used by ``rust-tests``): the test
command, nextest's JUnit, and the doctests.

The PyO3 extension crate is left out of ``cargo test`` by design: it is a
``cdylib`` built to be loaded by Python, so it deliberately does not link
libpython, and a Rust test harness for it would fail to link (or need a
libpython matching the build interpreter). Its behaviour is tested from
Python by the ``python-tests`` session; the Rust logic lives in the other
crates, which ``rust-tests`` tests in full.

cargo-nextest runs no doctests, so they run separately (``cargo test --doc``,
:func:`run_doctests`): their outcome is read from rustdoc's text output
(:func:`parse_doctests`) and written as JUnit XML (:func:`write_doctest_junit`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.core import artifacts
from ci.core.console import end_group
from ci.core.context import Context
from ci.core.errors import StepFailed

NEXTEST_PROFILE = "maturin-suite"
NEXTEST_CONFIG = Path(__file__).with_name("nextest.toml")
DOCTEST_JUNIT = "doctests.xml"
# Target kinds rustdoc runs doctests of (a cdylib-only crate has none).
DOCTEST_KINDS = frozenset({"lib", "rlib", "proc-macro"})


def target_dir(ctx: Context) -> Path:
    env = ctx.env()
    if env.get("CARGO_TARGET_DIR"):
        return Path(ctx.root, env["CARGO_TARGET_DIR"]).resolve()
    return ctx.config.workspace / "target"


def python_crate_name(ctx: Context) -> str:
    return ctx.project.python_crate.name


def test_command(ctx: Context, cargo: str, nextest: bool) -> list[str]:
    """The cargo command line rust-tests runs (extra arguments last)."""
    common = ["--workspace", "--locked", "--exclude", python_crate_name(ctx)]
    if nextest:
        return [
            cargo,
            "nextest",
            "run",
            *common,
            "--tool-config-file",
            f"maturin-suite:{NEXTEST_CONFIG}",
            "--profile",
            NEXTEST_PROFILE,
            *ctx.posargs,
        ]
    # Every test target but the doctests, which run_doctests runs (and counts).
    cmd = [cargo, "test", *common, "--lib", "--bins", "--tests", "--examples"]
    if ctx.posargs:
        cmd += ["--", *ctx.posargs]
    return cmd


def junit_counts(path: Path) -> tuple[int, int, int]:
    """(tests, failures+errors, skipped) from a JUnit XML report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests, failed, skipped


# --------------------------------------------------------------------------
# doctests


def doctest_crates(ctx: Context) -> list[str]:
    """The workspace members with a library target, the extension crate aside."""
    return [c.name for c in ctx.project.rust_crates if c.kinds & DOCTEST_KINDS]


def doctest_command(ctx: Context, cargo: str) -> list[str]:
    """``cargo test --doc`` over the workspace (every crate's doctests, even
    after one crate's failed)."""
    return [cargo, "test", "--doc", "--workspace", "--locked", "--no-fail-fast", "--exclude", python_crate_name(ctx)]


@dataclass(frozen=True)
class Doctest:
    """One doctest, as rustdoc's ``test <name> ... <outcome>`` line names it."""

    crate: str
    name: str  # "engine/src/lib.rs - catalan (line 12)"
    outcome: str  # "passed", "failed" or "ignored"
    output: str = ""  # what rustdoc printed for a failed one


@dataclass(frozen=True)
class DoctestRun:
    """What ``cargo test --doc`` did: every doctest and the ``test result:`` totals."""

    cases: tuple[Doctest, ...]
    passed: int
    failed: int
    ignored: int
    returncode: int

    @property
    def error(self) -> str | None:
        """One line saying why the run failed, or None."""
        if self.failed:
            names = [c.name for c in self.cases if c.outcome == "failed"]
            return f"{self.failed} doctest(s) failed: {', '.join(names) or '(names not reported)'}"
        if self.returncode != 0:
            return f"cargo test --doc failed with exit code {self.returncode} (no doctest failed: a build error?)"
        return None

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.ignored} ignored"


OUTCOMES = {"ok": "passed", "FAILED": "failed", "ignored": "ignored"}
CRATE_LINE = re.compile(r"^\s*Doc-tests (?P<crate>\S+)\s*$")
CASE_LINE = re.compile(r"^test (?P<name>.+?) \.\.\. (?P<outcome>ok|FAILED|ignored)\b")
RESULT_LINE = re.compile(
    r"^test result: \w+\. (?P<passed>\d+) passed; (?P<failed>\d+) failed; (?P<ignored>\d+) ignored;"
)
FAILURE_HEAD = re.compile(r"^---- (?P<name>.+) stdout ----$")


def parse_doctests(text: str, returncode: int = 0) -> DoctestRun:
    """``cargo test --doc`` output (stdout and stderr in one stream: cargo's
    ``Doc-tests <crate>`` line, on stderr, names the crate of what follows)."""
    crate = "doctests"
    found: list[tuple[str, str, str]] = []
    outputs: dict[tuple[str, str], list[str]] = {}
    current: list[str] | None = None
    totals = {"passed": 0, "failed": 0, "ignored": 0}
    for line in text.splitlines():
        if m := CRATE_LINE.match(line):
            crate, current = m["crate"], None
        elif m := RESULT_LINE.match(line):
            totals = {k: v + int(m[k]) for k, v in totals.items()}
            current = None
        elif m := FAILURE_HEAD.match(line):
            current = outputs.setdefault((crate, m["name"]), [])
        elif line == "failures:":
            current = None
        elif current is not None:
            current.append(line)
        elif m := CASE_LINE.match(line):
            found.append((crate, m["name"], OUTCOMES[m["outcome"]]))
    cases = tuple(Doctest(c, n, o, "\n".join(outputs.get((c, n), [])).strip()) for c, n, o in found)
    return DoctestRun(cases, totals["passed"], totals["failed"], totals["ignored"], returncode)


def doctest_junit(run: DoctestRun) -> ET.ElementTree:
    """JUnit XML: one ``<testsuite>`` per crate, one ``<testcase>`` per doctest
    (and an ``<error>`` case when cargo failed with no doctest failing)."""
    broken = run.error is not None and not run.failed
    root = ET.Element(
        "testsuites",
        name="doctests",
        tests=str(len(run.cases) + broken),
        failures=str(sum(c.outcome == "failed" for c in run.cases)),
        errors=str(int(broken)),
        skipped=str(sum(c.outcome == "ignored" for c in run.cases)),
    )
    if broken:
        suite = ET.SubElement(root, "testsuite", name="cargo", tests="1", failures="0", errors="1", skipped="0")
        ET.SubElement(
            ET.SubElement(suite, "testcase", classname="cargo", name="cargo test --doc"),
            "error",
            message=run.error or "",
        )
    for crate in dict.fromkeys(c.crate for c in run.cases):
        cases = [c for c in run.cases if c.crate == crate]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=crate,
            tests=str(len(cases)),
            failures=str(sum(c.outcome == "failed" for c in cases)),
            errors="0",
            skipped=str(sum(c.outcome == "ignored" for c in cases)),
        )
        for case in cases:
            element = ET.SubElement(suite, "testcase", classname=crate, name=case.name)
            if case.outcome == "failed":
                ET.SubElement(element, "failure", message="doctest failed").text = case.output
            elif case.outcome == "ignored":
                ET.SubElement(element, "skipped")
    ET.indent(root)
    return ET.ElementTree(root)


def write_doctest_junit(run: DoctestRun, report_dir: Path) -> Path:
    """``<report_dir>/doctests.xml``, written to a temporary file and published atomically."""
    with artifacts.staging_dir(report_dir, "doctests") as tmp:
        path = tmp / DOCTEST_JUNIT
        doctest_junit(run).write(path, encoding="utf-8", xml_declaration=True)
        return artifacts.publish(path, report_dir)


def tee(argv: list[str], cwd: Path, env: Mapping[str, str], say: Callable[[str], None]) -> tuple[str, int]:
    """Run ``argv`` with stderr merged into stdout, passing each line to
    ``say`` as it comes; (the whole output, exit code)."""
    lines: list[str] = []
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=os.name != "nt",
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                say(line.rstrip("\n"))
                lines.append(line)
        except BaseException:
            end_group(proc)  # stopped: rustdoc and the doctest binaries go too
            raise
    return "".join(lines), proc.returncode


def run_doctests(ctx: Context, cargo: str, env: Mapping[str, str]) -> DoctestRun:
    """Run the workspace's doctests as one step. Failing doctests do not
    raise (the step is marked failed): the caller reads :attr:`DoctestRun.error`."""
    argv = doctest_command(ctx, cargo)
    run = DoctestRun((), 0, 0, 0, 0)
    with contextlib.suppress(StepFailed), ctx.console.step("cargo test --doc"):
        ctx.console.say(f"$ {shlex.join(argv)}")
        text, returncode = tee(argv, ctx.config.workspace, env, ctx.console.say)
        run = parse_doctests(text, returncode)
        if run.error:
            raise StepFailed(run.error, returncode)
    return run
