"""The ``coverage`` session: Rust (cargo-tarpaulin, plus the PyO3 layer as
reached from pytest) and Python (coverage.py) line coverage into ``coverage/``.

Every test runs and every report is written, failures or not; the session
then fails with one line naming the runs that failed and how many tests
(and any floor missed).

Rust, three measurements merged into one report:

1. ``cargo tarpaulin --engine llvm --no-fail-fast`` runs the workspace's Rust
   tests (the extension crate excluded, as in ``rust-tests``; built first with
   ``--no-run`` so the build streams, then run with its output captured to
   count the tests). Its LCOV lists every coverable line of every crate, the
   PyO3 crate's included (with 0 hits: Rust tests never load it).
2. tarpaulin drops the coverage of a test binary that failed, but keeps its
   profile (``<target>/tarpaulin/profraws/<binary>_<signature>-<pid>.profraw``):
   ``llvm-profdata merge`` + ``llvm-cov export`` of those profiles over those
   binaries give the Rust tests' hits on every line, failed binaries included.
3. The extension is built by maturin with the same ``-C instrument-coverage``
   flags into the same cargo target dir, installed into the session venv, and
   the Python tests run with ``LLVM_PROFILE_FILE`` pointing into a folder the
   session owns; ``llvm-profdata merge`` + ``llvm-cov export -format=lcov``
   over the installed extension (the very object Python loaded) turn those
   profiles into LCOV. Files of the cargo registry, of Rust's standard
   library and of target dirs are left out (``-ignore-filename-regex``);
   relative paths are read against the workspace (rustc's working dir).

The merge is a per-file union by line number: a line counts when tarpaulin
or the extension's llvm-cov counts it (a file's line set is never replaced by
a smaller one), and has the Rust tests' hits (tarpaulin's, or llvm-cov's of
the same profiles where tarpaulin lost them: the larger) plus the Python
tests' hits. The Rust tests' llvm-cov adds hits, never lines: tarpaulin
decides which of their lines count (test code does not). ``llvm-cov report``
prints more lines per file than the union holds: it adds up the lines of
each function, so a closure's lines are counted in it and again in the
function around it (``llvm-cov export -format=lcov`` lists each line once).

Python: ``coverage run -m pytest`` in the same pytest run, over the installed
package, with ``[paths]`` mapping ``site-packages/<pkg>`` back to the repo.

``[tool.maturin-suite.coverage]``: ``rust-floor`` / ``python-floor`` (below
one the session fails and says by how much), ``tarpaulin-version``, and
extra arguments per tool: ``tarpaulin-args``, ``pytest-args``,
``llvm-cov-args`` (e.g. ``-path-equivalence=FROM,TO`` for sources moved
since the build).

Outputs (``coverage/``): ``rust/`` and ``python/`` each with ``lcov.info``,
a Cobertura XML (``cobertura.xml`` / ``coverage.xml``) and ``html/``;
``rust/parts/`` the three measurements; and ``summary.md``.

Build state lives in ``target/suite/coverage`` (its own cargo target dir,
kept between runs, so a second run only re-links what changed).
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.blocks import cargo, maturin, toolchain, venvs
from ci.blocks.lcov import LineHits, Totals, file_totals, merge_rust, parse_lcov, render_lcov, totals
from ci.blocks.llvm import find_llvm_tool, profiles_lcov, rustc_llvm_major
from ci.blocks.tarpaulin import check_version_pin, ensure_tarpaulin, tarpaulin_profiles, tarpaulin_rustflags
from ci.core.artifacts import staging_dir
from ci.core.config import read_toml
from ci.core.context import Context
from ci.core.errors import CheckFailed, StepFailed, SuiteError

SESSION = "coverage"
OUTPUT_DIR = "coverage"


# --------------------------------------------------------------------------
# Test runs: how many tests ran and failed


@dataclass(frozen=True)
class RunOutcome:
    """One test run under coverage: its counts and exit code."""

    name: str  # what was tested: "Rust tests"
    tool: str  # what ran them: "cargo tarpaulin"
    tests: int
    failed: int
    failed_names: tuple[str, ...]
    returncode: int

    def text(self) -> str:
        code = f" (exit code {self.returncode})" if self.returncode else ""
        return f"{self.tests} run, {self.failed} failed{code}"

    def problem(self) -> str | None:
        """One phrase when the run failed, else None."""
        if self.failed:
            shown = ", ".join(self.failed_names[:3])
            more = f" and {len(self.failed_names) - 3} more" if len(self.failed_names) > 3 else ""
            names = f": {shown}{more}" if shown else ""
            return f"{self.name} ({self.tool}): {self.failed} of {self.tests} failed{names}"
        if self.returncode:
            return (
                f"{self.name} ({self.tool}): exited with code {self.returncode}, "
                "no failed test counted (see its output)"
            )
        return None


LIBTEST_RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed;", re.MULTILINE)
LIBTEST_FAILURE = re.compile(r"^---- (.+?) stdout ----$", re.MULTILINE)


def libtest_run(name: str, tool: str, output: str, returncode: int) -> RunOutcome:
    """Counts from the ``test result:`` lines of Rust test binaries (libtest)."""
    results = [(int(p), int(f)) for p, f in LIBTEST_RESULT.findall(output)]
    failed = sum(f for _, f in results)
    return RunOutcome(
        name, tool, sum(p for p, _ in results) + failed, failed, tuple(LIBTEST_FAILURE.findall(output)), returncode
    )


def junit_run(name: str, tool: str, junit: Path, returncode: int) -> RunOutcome:
    """Counts from a JUnit XML report (pytest's); none when it is missing or broken."""
    try:
        cases = list(ET.parse(junit).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        return RunOutcome(name, tool, 0, 0, (), returncode)
    failed = tuple(
        f"{c.get('classname', '')}.{c.get('name', '')}".lstrip(".")
        for c in cases
        if c.find("failure") is not None or c.find("error") is not None
    )
    return RunOutcome(name, tool, len(cases), len(failed), failed, returncode)


# --------------------------------------------------------------------------
# Floors


def floor_shortfall(language: str, measured: Totals, floor: float, key: str) -> str | None:
    """A message when ``measured`` is below ``floor`` (percent), else None."""
    if measured.percent >= floor:
        return None
    return (
        f"{language} line coverage {measured.percent:.2f}% is {floor - measured.percent:.2f} "
        f"points below the floor {floor:.2f}% ({key})"
    )


def check_floors(results: Iterable[tuple[str, Totals, float, str]]) -> None:
    """Raise :class:`CheckFailed` naming every language below its floor."""
    problems = [m for m in (floor_shortfall(*r) for r in results) if m]
    if problems:
        raise CheckFailed(
            "; ".join(problems),
            hint="add tests for the lines listed in coverage/*/html, or lower the floor in "
            "[tool.maturin-suite.coverage] of pyproject.toml (never above what the project reaches)",
        )


# --------------------------------------------------------------------------
# Python: coverage.py configuration and totals


def python_source_dir(ctx: Context) -> Path:
    """The package's source folder in the repo (maturin's ``python-source``)."""
    data = read_toml(ctx.config.python_pyproject)
    source = data.get("tool", {}).get("maturin", {}).get("python-source", ".")
    return ctx.config.python_crate / str(source) / ctx.config.import_name


def coveragerc(ctx: Context, data_file: Path) -> str:
    """A coverage.py rcfile: measure the installed package, report repo paths."""
    src = python_source_dir(ctx).relative_to(ctx.root).as_posix()
    pkg = ctx.config.import_name
    return "\n".join(
        [
            "[run]",
            f"source_pkgs = {pkg}",
            "parallel = true",
            "relative_files = true",
            f"data_file = {data_file}",
            "",
            "[paths]",
            "source =",
            f"    {src}",
            f"    */site-packages/{pkg}",
            "",
            "[report]",
            "show_missing = true",
            "",
            "[html]",
            f"title = {pkg}: Python coverage",
            "",
        ]
    )


def python_totals(coverage_json: Path) -> tuple[Totals, list[tuple[str, Totals]]]:
    """Line totals from ``coverage json`` (statements, not branches)."""
    try:
        report = json.loads(coverage_json.read_text(encoding="utf-8"))
        t = report["totals"]
        files = [
            (path, Totals(int(f["summary"]["covered_lines"]), int(f["summary"]["num_statements"])))
            for path, f in sorted(report["files"].items())
        ]
        return Totals(int(t["covered_lines"]), int(t["num_statements"])), files
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SuiteError(f"cannot read the coverage.py JSON report {coverage_json}: {e}") from None


# --------------------------------------------------------------------------
# LLVM profiles into line hits


def target_dirs(ctx: Context, target: Path) -> list[Path]:
    """The cargo target dirs: generated code in them is no source of the project."""
    return [ctx.config.workspace / "target", target]


@dataclass(frozen=True)
class Tools:
    """What the session found before measuring: LLVM's tools and cargo-tarpaulin."""

    llvm_major: int
    profdata: str
    cov: str
    tarpaulin: Path
    tarpaulin_origin: str


def lcov_hits(ctx: Context, text: str, target: Path) -> LineHits:
    """llvm-cov's LCOV as line hits (relative paths are the workspace's: rustc's working dir)."""
    return parse_lcov(text, ctx.root, exclude=target_dirs(ctx, target), base=ctx.config.workspace)


def rust_tests_hits(ctx: Context, tools: Tools, target: Path, work: Path) -> LineHits:
    """The Rust tests' hits from their own profiles, failed test binaries included."""
    raws, binaries, lost = tarpaulin_profiles(target)
    if lost:
        ctx.console.warn(
            f"no test binary found for {len(lost)} tarpaulin profile(s) ({', '.join(lost[:3])}): "
            "only tarpaulin's report counts for them"
        )
    if not raws or not binaries:
        return {}
    lcov = profiles_lcov(ctx, tools.profdata, tools.cov, raws, binaries, work, target_dirs(ctx, target), "rust-tests")
    return lcov_hits(ctx, lcov, target)


def extension_object(ctx: Context, python: Path, work: Path) -> Path:
    """The extension file the session venv's Python loads (its profile's object)."""
    scratch = clean_dir(work / "locate")  # importing it writes a profile: not into the source tree
    proc = ctx.console.run(
        [python, "-c", f"import {ctx.config.module} as m; print(m.__file__)"],
        cwd=work,
        env=ctx.env(LLVM_PROFILE_FILE=str(scratch / "%p.profraw")),
        title="locate the installed extension",
        capture=True,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def extension_hits(ctx: Context, tools: Tools, python: Path, pytest_run: PytestRun, target: Path) -> LineHits:
    """The PyO3 layer's (and the core code's) hits from the Python tests."""
    raws = sorted(pytest_run.profiles.glob("*.profraw"))
    if not raws:
        hint = "the extension must be built with -C instrument-coverage and the interpreter must exit normally"
        if pytest_run.outcome.problem() is None:
            raise SuiteError(
                f"the Python tests ran but the extension wrote no .profraw into {pytest_run.profiles}", hint=hint
            )
        ctx.console.warn(
            f"the extension wrote no profile (the Python tests failed; {hint}): "
            "the Rust report lacks the Python tests' hits"
        )
        return {}
    work = pytest_run.profiles.parent
    obj = extension_object(ctx, python, work)
    lcov = profiles_lcov(ctx, tools.profdata, tools.cov, raws, [obj], work, target_dirs(ctx, target), "extension")
    return lcov_hits(ctx, lcov, target)


# --------------------------------------------------------------------------
# The session


@dataclass(frozen=True)
class Measured:
    rust: LineHits
    rust_parts: dict[str, LineHits]  # "tarpaulin", "rust-tests", "extension"
    python: Totals
    python_files: list[tuple[str, Totals]]
    runs: tuple[RunOutcome, ...]


def summary_markdown(ctx: Context, m: Measured) -> str:
    cfg = ctx.config.coverage
    crate = ctx.config.python_crate.relative_to(ctx.root).as_posix() + "/"
    rust = totals(m.rust)

    def status(t: Totals, floor: float) -> str:
        return "ok" if t.percent >= floor else f"FAIL (-{floor - t.percent:.2f})"

    lines = ["# Coverage summary", "", "| test run | tests | failed | status |", "|---|---|---|---|"]
    lines += [f"| {r.name} ({r.tool}) | {r.tests} | {r.failed} | {'FAIL' if r.problem() else 'ok'} |" for r in m.runs]
    lines += [
        "",
        "| language | lines covered | percent | floor | status |",
        "|---|---|---|---|---|",
        f"| Rust (tarpaulin + pytest) | {rust.covered}/{rust.lines} | {rust.percent:.2f}% "
        f"| {cfg.rust_floor:.2f}% | {status(rust, cfg.rust_floor)} |",
        f"| Python (coverage.py) | {m.python.covered}/{m.python.lines} | {m.python.percent:.2f}% "
        f"| {cfg.python_floor:.2f}% | {status(m.python, cfg.python_floor)} |",
        "",
        "| Rust file | tarpaulin alone | merged |",
        "|---|---|---|",
    ]
    alone = m.rust_parts["tarpaulin"]
    for path, t in file_totals(m.rust):
        before = totals({path: alone[path]}).text() if path in alone else "-"
        lines.append(f"| {path} | {before} | {t.text()} |")
    lines += ["", "| Python file | covered |", "|---|---|"]
    lines += [f"| {path} | {t.text()} |" for path, t in m.python_files]
    lines += [
        "",
        f"PyO3 crate ({crate}), reached from the Python tests: {totals(m.rust, crate).text()}.",
        "Reports: rust/ and python/ (lcov.info, Cobertura XML, html/index.html); rust/parts/ the three measurements.",
        "",
    ]
    return "\n".join(lines)


def publish_reports(staging: Path, out: Path) -> None:
    """Replace ``out/rust``, ``out/python`` and ``out/summary.md`` (all ours)."""
    for item in sorted(staging.iterdir()):
        dest = out / item.name
        old = out / f".old-{item.name}"
        remove(old)
        if dest.exists():
            dest.rename(old)
        item.rename(dest)
        remove(old)


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def clean_dir(path: Path) -> Path:
    """An empty ``path`` (a folder this session owns)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def tarpaulin_command(ctx: Context, tarpaulin: Path, target: Path, out: Path, *, no_run: bool) -> list[str]:
    """cargo tarpaulin over the workspace (the extension crate excluded), every
    test run even after a failure; ``--no-run`` builds only. ``tarpaulin-args`` last."""
    return [
        str(tarpaulin),
        "tarpaulin",
        "--engine",
        "llvm",
        "--workspace",
        "--exclude",
        cargo.python_crate_name(ctx),
        "--locked",
        "--skip-clean",
        "--no-fail-fast",
        "--color",
        "never",
        "--target-dir",
        str(target),
        "--out",
        "Lcov",
        "--output-dir",
        str(out),
        *(["--no-run"] if no_run else []),
        *ctx.config.coverage.tarpaulin_args,
    ]


def run_tarpaulin(ctx: Context, tarpaulin: Path, target: Path, out: Path) -> tuple[RunOutcome, LineHits]:
    """Every Rust test under tarpaulin: the outcome (failures are counted, not
    raised) and tarpaulin's line hits (none when it wrote no report)."""
    cfg = ctx.config
    clean_dir(out)
    shutil.rmtree(target / "tarpaulin" / "profraws", ignore_errors=True)
    env = ctx.env()
    ctx.console.run(
        tarpaulin_command(ctx, tarpaulin, target, out, no_run=True),
        cwd=cfg.workspace,
        env=env,
        title="cargo tarpaulin --no-run (build the instrumented tests)",
    )
    proc = ctx.console.run(
        tarpaulin_command(ctx, tarpaulin, target, out, no_run=False),
        cwd=cfg.workspace,
        env=env,
        title="cargo tarpaulin (every Rust test, llvm engine; output shown when it ends)",
        capture=True,
        check=False,
    )
    ctx.console.say(proc.stdout + proc.stderr)
    outcome = libtest_run("Rust tests", "cargo tarpaulin", proc.stdout, proc.returncode)
    lcov = out / "lcov.info"
    if not lcov.is_file():
        return outcome, {}
    return outcome, parse_lcov(lcov.read_text(encoding="utf-8"), ctx.root, exclude=target_dirs(ctx, target))


def build_instrumented_wheel(ctx: Context, work: Path, target: Path, rustflags: str) -> Path:
    """The extension built with coverage instrumentation (dev profile)."""
    wheel_dir = work / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    # Build scripts and proc macros are instrumented too and write profiles
    # where they run: keep those in a folder of ours, not in the source tree.
    build_profiles = clean_dir(work / "build-profraw")
    env = ctx.env(
        RUSTFLAGS=rustflags,
        LLVM_PROFILE_FILE=str(build_profiles / "build-%p-%m.profraw"),
    )
    with staging_dir(work, "build") as staging:
        built = maturin.build_wheel(
            ctx,
            staging,
            profile="dev",
            extra_args=["--auditwheel", "skip", "--target-dir", str(target), "--locked"],
            env=env,
            title="maturin build (instrumented for coverage)",
        )
        for old in wheel_dir.glob("*.whl"):
            old.unlink()
        wheel = wheel_dir / built.name
        built.replace(wheel)
    shutil.rmtree(build_profiles, ignore_errors=True)
    return wheel


def find_tools(ctx: Context, env: Mapping[str, str]) -> Tools:
    """Everything the session needs, checked before anything is built."""
    cfg = ctx.config
    if ctx.tool_bin is None:
        raise SuiteError("the coverage session needs its venv (pytest, coverage.py): run it through nox")
    check_version_pin(cfg.coverage.tarpaulin_version)
    cargo_exe = ctx.project.cargo  # the model ran cargo metadata with it: it runs
    if cfg.gmp == "system" or cfg.native:
        with ctx.console.step("check native libraries"):
            toolchain.require_native(cfg.native, env)
    with ctx.console.step("find LLVM tools"):
        major = rustc_llvm_major(env)
        profdata = find_llvm_tool("llvm-profdata", major, env)
        cov_tool = find_llvm_tool("llvm-cov", major, env)
    with ctx.console.step("find cargo-tarpaulin"):
        tarpaulin, origin = ensure_tarpaulin(ctx, cargo_exe, cfg.coverage.tarpaulin_version)
        ctx.console.say(f"cargo-tarpaulin {cfg.coverage.tarpaulin_version}: {tarpaulin} ({origin})")
    return Tools(major, profdata, cov_tool, tarpaulin, origin)


def install_instrumented_extension(ctx: Context, work: Path, target: Path, rustflags: str) -> Path:
    """The extension, instrumented, installed into the session venv; that venv's python."""
    wheel = build_instrumented_wheel(ctx, work, target, rustflags)
    python = Path(ctx.tool("python"))
    venvs.install(
        ctx,
        python,
        venvs.test_requirements(ctx),
        wheel=wheel,
        distribution=ctx.config.distribution,
        title=f"install {wheel.name} into the session venv",
    )
    return python


@dataclass(frozen=True)
class PytestRun:
    """Where the pytest run left coverage.py's data and the extension's LLVM profiles."""

    coverage: list[str]  # python -m coverage
    rcfile: Path
    data_dir: Path
    profiles: Path
    outcome: RunOutcome


def pytest_command(ctx: Context, python: Path, work: Path, rcfile: Path, junit: Path) -> list[str]:
    """pytest under coverage.py, to the end; ``pytest-args``, then nox's posargs, last."""
    cfg = ctx.config
    return [
        str(python),
        "-m",
        "coverage",
        "run",
        f"--rcfile={rcfile}",
        "-m",
        "pytest",
        str(cfg.python_tests),
        "-o",
        f"cache_dir={work / 'pytest-cache'}",
        f"--junitxml={junit}",
        *cfg.coverage.pytest_args,
        *ctx.posargs,
    ]


def run_pytest(ctx: Context, python: Path, work: Path) -> PytestRun:
    """One pytest run: coverage.py for Python, LLVM profiles for Rust; failures counted, not raised."""
    cfg = ctx.config
    py_work = clean_dir(work / "python")
    profiles = clean_dir(work / "profraw")
    rc = work / "coveragerc"
    rc.write_text(coveragerc(ctx, py_work / ".coverage"), encoding="utf-8")
    junit = py_work / "junit.xml"
    proc = ctx.console.run(
        pytest_command(ctx, python, work, rc, junit),
        cwd=work,
        check=False,
        env=ctx.env(LLVM_PROFILE_FILE=str(profiles / f"{cfg.import_name}-%p-%m.profraw")),
        title="pytest under coverage.py, extension writing LLVM profiles",
    )
    outcome = junit_run("Python tests", "pytest", junit, proc.returncode)
    return PytestRun([str(python), "-m", "coverage"], rc, py_work, profiles, outcome)


def python_reports(
    ctx: Context, pytest_run: PytestRun, pydir: Path, env: Mapping[str, str]
) -> tuple[Totals, list[tuple[str, Totals]]]:
    """coverage.py's reports into ``pydir`` (run from the root: the [paths] mapping is repo-relative)."""
    root = ctx.config.root
    pydir.mkdir()
    rc = f"--rcfile={pytest_run.rcfile}"
    ctx.console.run([*pytest_run.coverage, "combine", rc], cwd=root, env=env, title="coverage combine")
    for args, title in (
        (["xml", "-o", str(pydir / "coverage.xml")], "coverage xml"),
        (["lcov", "-o", str(pydir / "lcov.info")], "coverage lcov"),
        (["html", "-d", str(pydir / "html")], "coverage html"),
        (["json", "-o", str(pytest_run.data_dir / "coverage.json")], "coverage json"),
        (["report"], "coverage report"),
    ):
        ctx.console.run([*pytest_run.coverage, *args, rc], cwd=root, env=env, title=title)
    return python_totals(pytest_run.data_dir / "coverage.json")


def rust_measurements(
    ctx: Context, tools: Tools, python: Path, pytest_run: PytestRun, target: Path, tarpaulin_hits: LineHits
) -> tuple[LineHits, dict[str, LineHits]]:
    """(the merged Rust line hits, the three measurements merged)."""
    parts = {
        "tarpaulin": tarpaulin_hits,
        "rust-tests": rust_tests_hits(ctx, tools, target, pytest_run.profiles.parent),
        "extension": extension_hits(ctx, tools, python, pytest_run, target),
    }
    rust = merge_rust(parts["tarpaulin"], parts["rust-tests"], parts["extension"])
    if not totals(rust).lines:
        raise SuiteError("the Rust coverage report has no lines: tarpaulin and llvm-cov measured nothing")
    return rust, parts


PART_FILES = {"tarpaulin": "tarpaulin.lcov", "rust-tests": "rust-tests-llvm.lcov", "extension": "extension-pytest.lcov"}


def rust_reports(ctx: Context, m: Measured, rdir: Path, env: Mapping[str, str]) -> None:
    """LCOV (merged, and its parts), Cobertura XML and HTML of the Rust coverage into ``rdir``."""
    root = ctx.config.root
    (rdir / "parts").mkdir(parents=True)
    (rdir / "lcov.info").write_text(render_lcov(m.rust, "rust"), encoding="utf-8")
    for part, name in PART_FILES.items():
        (rdir / "parts" / name).write_text(render_lcov(m.rust_parts[part], part), encoding="utf-8")
    ctx.console.run(
        [
            ctx.tool("lcov_cobertura", hint="from the 'coverage' dependency group"),
            str(rdir / "lcov.info"),
            "--base-dir",
            str(root),
            "--output",
            str(rdir / "cobertura.xml"),
        ],
        cwd=root,
        env=env,
        title="lcov_cobertura (Rust Cobertura XML)",
    )
    if not (rdir / "cobertura.xml").is_file():
        raise SuiteError("lcov_cobertura wrote no Rust Cobertura XML")
    (rdir / "html").mkdir()
    ctx.console.run(
        [
            ctx.tool("pycobertura", hint="from the 'coverage' dependency group"),
            "show",
            "--format",
            "html",
            "--source",
            str(root),
            "--output",
            str(rdir / "html" / "index.html"),
            str(rdir / "cobertura.xml"),
        ],
        cwd=root,
        env=env,
        title="pycobertura (Rust HTML)",
    )


def show_summary(ctx: Context, summary: str, env: Mapping[str, str]) -> None:
    """The Markdown summary on the console, and in GitHub's step summary when there is one."""
    ctx.console.say(summary)
    step_summary = env.get("GITHUB_STEP_SUMMARY")
    if ctx.console.github and step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(summary + "\n")


def summary_rows(ctx: Context, m: Measured, tools: Tools, out: Path) -> list[tuple[str, str]]:
    cfg = ctx.config
    crate = cfg.python_crate.relative_to(cfg.root).as_posix() + "/"
    return [
        *[(r.name, r.text()) for r in m.runs],
        ("Rust", f"{totals(m.rust).text()}, floor {cfg.coverage.rust_floor:.2f}%"),
        ("  tarpaulin alone", totals(m.rust_parts["tarpaulin"]).text()),
        ("  PyO3 crate", f"{totals(m.rust, crate).text()} (reached from pytest)"),
        ("Python", f"{m.python.text()}, floor {cfg.coverage.python_floor:.2f}%"),
        ("cargo-tarpaulin", f"{cfg.coverage.tarpaulin_version} ({tools.tarpaulin_origin}: {tools.tarpaulin})"),
        ("reports", f"{out}/{{rust,python}}/{{lcov.info,*.xml,html/}}, {out / 'summary.md'}"),
    ]


def finish(ctx: Context, m: Measured, out: Path) -> None:
    """Fail, in one line, when a test run failed (naming each, with the floors
    missed) or a floor is missed; else return."""
    cfg = ctx.config.coverage
    floors = [
        ("Rust", totals(m.rust), cfg.rust_floor, "tool.maturin-suite.coverage.rust-floor"),
        ("Python", m.python, cfg.python_floor, "tool.maturin-suite.coverage.python-floor"),
    ]
    failed = [p for p in (r.problem() for r in m.runs) if p]
    if failed:
        below = [s for s in (floor_shortfall(*f) for f in floors) if s]
        raise StepFailed(
            f"tests failed under coverage (every report was written to {out}): " + "; ".join(failed + below),
            1,
            hint="the failing tests' output is above; the figures are in summary.md",
        )
    check_floors(floors)


def run(ctx: Context) -> None:
    cfg = ctx.config
    env = ctx.env()
    tools = find_tools(ctx, env)

    work = cfg.work_dir(SESSION)
    target = work / "cargo"
    work.mkdir(parents=True, exist_ok=True)

    # 1. Every Rust test under tarpaulin (failures counted, not raised).
    rust_run, tarpaulin_hits = run_tarpaulin(ctx, tools.tarpaulin, target, work / "tarpaulin")
    # 2. The extension, instrumented, into the session venv.
    python = install_instrumented_extension(ctx, work, target, tarpaulin_rustflags(ctx, tools.tarpaulin))
    # 3. One pytest run to the end: coverage.py for Python, LLVM profiles for Rust.
    pytest_run = run_pytest(ctx, python, work)

    # 4. Every report, whatever failed.
    out = cfg.root / OUTPUT_DIR
    with staging_dir(out, ".staging") as staging:
        py_totals, py_files = python_reports(ctx, pytest_run, staging / "python", env)
        rust, parts = rust_measurements(ctx, tools, python, pytest_run, target, tarpaulin_hits)
        measured = Measured(rust, parts, py_totals, py_files, (rust_run, pytest_run.outcome))
        rust_reports(ctx, measured, staging / "rust", env)
        summary = summary_markdown(ctx, measured)
        (staging / "summary.md").write_text(summary, encoding="utf-8")
        publish_reports(staging, out)

    show_summary(ctx, summary, env)
    ctx.console.summary(SESSION, summary_rows(ctx, measured, tools, out))
    # 5. Then fail: the test runs that failed and the floors missed, in one line.
    finish(ctx, measured, out)
