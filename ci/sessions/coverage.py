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
import operator
import os
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.blocks import cargo, maturin, toolchain, venvs
from ci.core.artifacts import staging_dir
from ci.core.config import read_toml
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError, StepFailed, SuiteError, ToolMissing

SESSION = "coverage"
OUTPUT_DIR = "coverage"
# The default, and what tarpaulin prints for ``--print-rust-flags`` with the
# llvm engine; the real flags are asked from tarpaulin at run time.
INSTRUMENT_FLAGS = "-Cdebuginfo=2 -Cstrip=none --cfg=tarpaulin -Cinstrument-coverage"

# repo-relative posix path -> line number -> hits
LineHits = dict[str, dict[int, int]]


# --------------------------------------------------------------------------
# LCOV: read, merge, write


def parse_lcov(text: str, root: Path, *, exclude: Sequence[Path] = (), base: Path | None = None) -> LineHits:
    """Line hits (``DA`` records) of an LCOV tracefile, for files under
    ``root`` only (paths made relative to it) and not under ``exclude``;
    a relative ``SF`` path is read against ``base`` (default ``root``).

    Several records for one file are added up, as ``lcov --add-tracefile``
    does. Function and branch records are not kept: floors are on lines.
    """
    root = root.resolve()
    base = (base or root).resolve()
    data: LineHits = {}
    current: dict[int, int] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("SF:"):
            path = Path(os.path.normpath(base / line[3:]))  # an absolute SF path stays as it is
            if path.is_relative_to(root) and not any(path.is_relative_to(e) for e in exclude):
                current = data.setdefault(path.relative_to(root).as_posix(), {})
            else:
                current = None
        elif line.startswith("DA:") and current is not None:
            fields = line[3:].split(",")
            try:
                number, hits = int(fields[0]), int(fields[1])
            except (IndexError, ValueError):
                raise SuiteError(f"malformed LCOV line: {raw!r}") from None
            current[number] = current.get(number, 0) + max(hits, 0)
        elif line == "end_of_record":
            current = None
    return data


def union_hits(a: LineHits, b: LineHits, combine: Callable[[int, int], int]) -> LineHits:
    """Per file, every line ``a`` or ``b`` lists, with ``combine`` of both
    sides' hits where both list it (else the one side's)."""
    merged: LineHits = {path: dict(lines) for path, lines in a.items()}
    for path, lines in b.items():
        into = merged.setdefault(path, {})
        for number, hits in lines.items():
            into[number] = combine(into[number], hits) if number in into else hits
    return merged


def only_lines(data: LineHits, keep: LineHits) -> LineHits:
    """``data`` on the lines ``keep`` lists, no others."""
    return {path: {n: h for n, h in data.get(path, {}).items() if n in lines} for path, lines in keep.items()}


def merge_rust(tarpaulin: LineHits, tests_llvm: LineHits, extension: LineHits) -> LineHits:
    """The Rust report (see the module docstring): tarpaulin's lines and the
    extension run's, each with the Rust tests' hits (the larger of tarpaulin's
    and llvm-cov's on the same profiles) plus the Python tests' hits."""
    lines = union_hits(tarpaulin, extension, max)
    rust_tests = union_hits(tarpaulin, only_lines(tests_llvm, lines), max)
    return union_hits(rust_tests, extension, operator.add)


def render_lcov(data: LineHits, test_name: str = "") -> str:
    """An LCOV tracefile (repo-relative ``SF`` paths, which Codecov resolves)."""
    out: list[str] = []
    for path in sorted(data):
        lines = data[path]
        out.append(f"TN:{test_name}")
        out.append(f"SF:{path}")
        out += [f"DA:{n},{lines[n]}" for n in sorted(lines)]
        out.append(f"LF:{len(lines)}")
        out.append(f"LH:{sum(1 for h in lines.values() if h > 0)}")
        out.append("end_of_record")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Totals:
    covered: int
    lines: int

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.lines if self.lines else 0.0

    def text(self) -> str:
        return f"{self.percent:.2f}% ({self.covered}/{self.lines} lines)"


def totals(data: LineHits, prefix: str = "") -> Totals:
    """Covered and coverable lines over the files whose path starts with ``prefix``."""
    covered = lines = 0
    for path, hits in data.items():
        if path.startswith(prefix):
            lines += len(hits)
            covered += sum(1 for h in hits.values() if h > 0)
    return Totals(covered, lines)


def file_totals(data: LineHits) -> list[tuple[str, Totals]]:
    return [(path, totals({path: data[path]})) for path in sorted(data)]


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
            return (f"{self.name} ({self.tool}): exited with code {self.returncode}, "
                    "no failed test counted (see its output)")
        return None


LIBTEST_RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed;", re.MULTILINE)
LIBTEST_FAILURE = re.compile(r"^---- (.+?) stdout ----$", re.MULTILINE)


def libtest_run(name: str, tool: str, output: str, returncode: int) -> RunOutcome:
    """Counts from the ``test result:`` lines of Rust test binaries (libtest)."""
    results = [(int(p), int(f)) for p, f in LIBTEST_RESULT.findall(output)]
    failed = sum(f for _, f in results)
    return RunOutcome(name, tool, sum(p for p, _ in results) + failed, failed,
                   tuple(LIBTEST_FAILURE.findall(output)), returncode)


def junit_run(name: str, tool: str, junit: Path, returncode: int) -> RunOutcome:
    """Counts from a JUnit XML report (pytest's); none when it is missing or broken."""
    try:
        cases = list(ET.parse(junit).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        return RunOutcome(name, tool, 0, 0, (), returncode)
    failed = tuple(f"{c.get('classname', '')}.{c.get('name', '')}".lstrip(".") for c in cases
                   if c.find("failure") is not None or c.find("error") is not None)
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
# cargo-tarpaulin: pinned, on PATH or installed into the suite's tool cache

TARPAULIN_INSTALL_HINT = (
    "the session installs it with 'cargo install --locked cargo-tarpaulin@{v} "
    "--no-default-features --root {root}' (needs crates.io and a C compiler); "
    "or put a prebuilt cargo-tarpaulin {v} on PATH (in CI: taiki-e/install-action)"
)


def tools_cache(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/maturin-suite/tools`` (default ``~/.cache/...``)."""
    return toolchain.suite_cache(env) / "tools"


def tarpaulin_root(env: Mapping[str, str], version: str) -> Path:
    """The ``cargo install --root`` of one tarpaulin version."""
    return tools_cache(env) / f"cargo-tarpaulin-{version}"


def tool_version(exe: str | Path, env: Mapping[str, str], args: Sequence[str] = ("--version",)) -> str | None:
    """The first ``X.Y.Z`` a program prints for ``--version``, or None."""
    proc = probe([str(exe), *args], env=env, timeout=60)
    if proc is None:
        return None
    m = re.search(r"(\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
    return m.group(1) if proc.returncode == 0 and m else None


def check_version_pin(version: str) -> None:
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ConfigError(
            f"tool.maturin-suite.coverage.tarpaulin-version must be an exact version like '0.37.5'; got {version!r}"
        )


def find_tarpaulin(env: Mapping[str, str], version: str) -> tuple[Path, str] | None:
    """(cargo-tarpaulin, where) of exactly ``version``: PATH first, then the cache."""
    on_path = shutil.which("cargo-tarpaulin", path=env.get("PATH"))
    if on_path and tool_version(on_path, env) == version:
        return Path(on_path), "PATH"
    exe = tarpaulin_root(env, version) / "bin" / ("cargo-tarpaulin.exe" if os.name == "nt" else "cargo-tarpaulin")
    if exe.is_file() and tool_version(exe, env) == version:
        return exe, "cache"
    return None


def install_command(cargo_exe: str, version: str, root: Path) -> list[str]:
    """The cheapest pinned install: no libgit2/openssl (``--no-default-features``)."""
    return [
        cargo_exe, "install", "--locked", f"cargo-tarpaulin@{version}",
        "--no-default-features", "--root", str(root),
    ]


def ensure_tarpaulin(ctx: Context, cargo_exe: str, version: str) -> tuple[Path, str]:
    """cargo-tarpaulin ``version``, installed into the tool cache when absent."""
    env = ctx.env()
    found = find_tarpaulin(env, version)
    if found:
        return found
    root = tarpaulin_root(env, version)
    hint = TARPAULIN_INSTALL_HINT.format(v=version, root=root)
    # cargo install builds in a temporary target dir of its own, unless told otherwise.
    install_env = {k: v for k, v in env.items() if k not in ("CARGO_TARGET_DIR", "RUSTFLAGS", "LLVM_PROFILE_FILE")}
    ctx.console.run(
        install_command(cargo_exe, version, root), cwd=ctx.root, env=install_env,
        title=f"install cargo-tarpaulin {version} into {root}", hint=hint,
    )
    found = find_tarpaulin(env, version)
    if found is None:
        raise ToolMissing(f"cargo-tarpaulin {version} is still not runnable after installing into {root}", hint=hint)
    return found[0], "installed"


def tarpaulin_rustflags(ctx: Context, tarpaulin: Path) -> str:
    """The RUSTFLAGS tarpaulin builds with (so the extension build reuses the
    same instrumented dependencies)."""
    proc = ctx.console.run(
        [tarpaulin, "tarpaulin", "--print-rust-flags", "--engine", "llvm"],
        cwd=ctx.config.workspace, env=ctx.env(), title="tarpaulin --print-rust-flags", capture=True,
    )
    m = re.search(r'RUSTFLAGS="([^"]*)"', proc.stdout + proc.stderr)
    flags = m.group(1) if m else ""
    return flags if "instrument-coverage" in flags else f"{flags} {INSTRUMENT_FLAGS}".strip()


# --------------------------------------------------------------------------
# LLVM tools of rustc's LLVM major version


def rustc_llvm_major(env: Mapping[str, str]) -> int:
    rustc = shutil.which("rustc", path=env.get("PATH"))
    if rustc is None:
        raise ToolMissing("rustc was not found on PATH", hint=toolchain.CARGO_HINT)
    proc = probe([rustc, "-vV"], env=env)
    out = (proc.stdout if proc else "") or ""
    m = re.search(r"^LLVM version: (\d+)\.", out, re.MULTILINE)
    if proc is None or proc.returncode != 0 or not m:
        raise ToolMissing(f"'rustc -vV' does not name its LLVM version: {out}{proc.stderr if proc else ''}".strip())
    return int(m.group(1))


def llvm_hint(major: int) -> str:
    return (
        f"the extension's profiles need llvm-profdata and llvm-cov of LLVM {major} (rustc's). "
        f"Debian 12: 'apt-get install llvm-{major}' (bookworm-security); Ubuntu: 'apt-get install "
        f"llvm-{major}' (or apt.llvm.org); with rustup (any OS, manylinux): 'rustup component add "
        f"llvm-tools'; MSYS2: 'pacman -S mingw-w64-x86_64-llvm' if its major version is {major}; "
        "or set LLVM_PROFDATA and LLVM_COV to the programs"
    )


def llvm_candidates(name: str, major: int, env: Mapping[str, str]) -> list[str]:
    """Where ``name`` (llvm-profdata, llvm-cov) may be, best first."""
    found: list[str] = []
    override = env.get(name.upper().replace("-", "_"))  # LLVM_PROFDATA, LLVM_COV
    if override:
        found.append(override)
    exe = f"{name}.exe" if os.name == "nt" else name
    rustc = shutil.which("rustc", path=env.get("PATH"))
    if rustc:
        proc = probe([rustc, "--print", "sysroot"], env=env)
        host = probe([rustc, "-vV"], env=env)
        m = re.search(r"^host: (\S+)", host.stdout if host else "", re.MULTILINE)
        if proc is not None and proc.returncode == 0 and m:
            found.append(str(Path(proc.stdout.strip()) / "lib" / "rustlib" / m.group(1) / "bin" / exe))
    for cand in (f"{name}-{major}", name):
        path = shutil.which(cand, path=env.get("PATH"))
        if path:
            found.append(path)
    found.append(f"/usr/lib/llvm-{major}/bin/{name}")
    return found


def find_llvm_tool(name: str, major: int, env: Mapping[str, str]) -> str:
    """``name`` of LLVM ``major``; :class:`ToolMissing` with install advice otherwise."""
    seen: list[str] = []
    for cand in llvm_candidates(name, major, env):
        if not Path(cand).is_file() and not shutil.which(cand, path=env.get("PATH")):
            continue
        version = tool_version(cand, env)
        if version and int(version.split(".")[0]) == major:
            return cand
        seen.append(f"{cand} ({'LLVM ' + version if version else 'no version'})")
    found = f"; found only {', '.join(seen)}" if seen else ""
    raise ToolMissing(f"{name} of LLVM {major} was not found{found}", hint=llvm_hint(major))


# --------------------------------------------------------------------------
# Python: coverage.py configuration


def python_source_dir(ctx: Context) -> Path:
    """The package's source folder in the repo (maturin's ``python-source``)."""
    data = read_toml(ctx.config.python_pyproject)
    source = data.get("tool", {}).get("maturin", {}).get("python-source", ".")
    return ctx.config.python_crate / str(source) / ctx.config.import_name


def coveragerc(ctx: Context, data_file: Path) -> str:
    """A coverage.py rcfile: measure the installed package, report repo paths."""
    src = python_source_dir(ctx).relative_to(ctx.root).as_posix()
    pkg = ctx.config.import_name
    return "\n".join([
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
    ])


# --------------------------------------------------------------------------
# LLVM profiles into line hits

# tarpaulin names each test binary's profile after the binary:
# <target>/tarpaulin/profraws/<binary>_<module signature>_<pool>-<pid>.profraw
PROFRAW_NAME = re.compile(r"^(.+)_\d+_\d+-\d+\.profraw$")
# Where cargo puts test binaries below a target dir (profile dirs, with or without --target).
BINARY_DIRS = ("*/deps", "*/*/deps", "*/examples", "*/*/examples", "*", "*/*")


def target_dirs(ctx: Context, target: Path) -> list[Path]:
    """The cargo target dirs: generated code in them is no source of the project."""
    return [ctx.config.workspace / "target", target]


def ignore_regex(env: Mapping[str, str], targets: Sequence[Path]) -> str:
    """llvm-cov's ``-ignore-filename-regex``: Rust's standard library, the
    cargo registry and git checkouts, the target dirs."""
    parts = [r"^/rustc/", r"/\.cargo/(registry|git)/"]
    cargo_home = env.get("CARGO_HOME")
    if cargo_home:
        parts += [re.escape(str(Path(cargo_home) / d)) + "/" for d in ("registry", "git")]
    parts += [re.escape(str(t)) + "/" for t in targets]
    return "|".join(parts)


def llvm_export_command(ctx: Context, cov_tool: str, profdata: Path, objects: Sequence[Path],
                        ignore: str) -> list[str]:
    """``llvm-cov export -format=lcov`` of ``profdata`` over ``objects``, with ``llvm-cov-args``."""
    first, *rest = objects
    cmd = [cov_tool, "export", "-format=lcov", f"-instr-profile={profdata}",
           f"-ignore-filename-regex={ignore}", str(first)]
    for obj in rest:
        cmd += ["-object", str(obj)]
    return [*cmd, *ctx.config.coverage.llvm_cov_args]


@dataclass(frozen=True)
class Tools:
    """What the session found before measuring: LLVM's tools and cargo-tarpaulin."""

    llvm_major: int
    profdata: str
    cov: str
    tarpaulin: Path
    tarpaulin_origin: str


def profiles_lcov(ctx: Context, tools: Tools, raws: Sequence[Path], objects: Sequence[Path],
                  work: Path, target: Path, name: str) -> str:
    """``llvm-profdata merge`` of ``raws``, then ``llvm-cov export`` over ``objects``: LCOV text."""
    env = ctx.env()
    profdata = work / f"{name}.profdata"
    ctx.console.run(
        [tools.profdata, "merge", "-sparse", "-o", profdata, *raws],
        cwd=work, env=env, title=f"llvm-profdata merge ({len(raws)} {name} profiles)",
    )
    ignore = ignore_regex(env, target_dirs(ctx, target))
    proc = ctx.console.run(
        llvm_export_command(ctx, tools.cov, profdata, objects, ignore),
        cwd=work, env=env, title=f"llvm-cov export ({name}: {', '.join(o.name for o in objects)})", capture=True,
    )
    for line in proc.stderr.splitlines():
        if line.strip():  # e.g. "N functions have mismatched data": a stale object
            ctx.console.warn(f"llvm-cov export ({name}): {line.strip()}")
    return proc.stdout


def lcov_hits(ctx: Context, text: str, target: Path) -> LineHits:
    """llvm-cov's LCOV as line hits (relative paths are the workspace's: rustc's working dir)."""
    return parse_lcov(text, ctx.root, exclude=target_dirs(ctx, target), base=ctx.config.workspace)


def find_binary(target: Path, name: str) -> Path | None:
    exe = f"{name}.exe" if os.name == "nt" else name
    for pattern in BINARY_DIRS:
        for candidate in sorted(target.glob(f"{pattern}/{exe}")):
            if candidate.is_file():
                return candidate
    return None


def tarpaulin_profiles(target: Path) -> tuple[list[Path], list[Path], list[str]]:
    """(the profiles tarpaulin's test binaries wrote, those binaries, the
    profiles whose binary is not found)."""
    raws = sorted((target / "tarpaulin" / "profraws").glob("*.profraw"))
    binaries: dict[Path, None] = {}
    lost: list[str] = []
    for raw in raws:
        m = PROFRAW_NAME.match(raw.name)
        found = find_binary(target, m.group(1)) if m else None
        if found is None:
            lost.append(raw.name)
        else:
            binaries[found] = None
    return raws, list(binaries), lost


def rust_tests_hits(ctx: Context, tools: Tools, target: Path, work: Path) -> LineHits:
    """The Rust tests' hits from their own profiles, failed test binaries included."""
    raws, binaries, lost = tarpaulin_profiles(target)
    if lost:
        ctx.console.warn(f"no test binary found for {len(lost)} tarpaulin profile(s) ({', '.join(lost[:3])}): "
                         "only tarpaulin's report counts for them")
    if not raws or not binaries:
        return {}
    return lcov_hits(ctx, profiles_lcov(ctx, tools, raws, binaries, work, target, "rust-tests"), target)


def extension_object(ctx: Context, python: Path, work: Path) -> Path:
    """The extension file the session venv's Python loads (its profile's object)."""
    scratch = clean_dir(work / "locate")  # importing it writes a profile: not into the source tree
    proc = ctx.console.run(
        [python, "-c", f"import {ctx.config.module} as m; print(m.__file__)"],
        cwd=work, env=ctx.env(LLVM_PROFILE_FILE=str(scratch / "%p.profraw")),
        title="locate the installed extension", capture=True,
    )
    shutil.rmtree(scratch, ignore_errors=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def extension_hits(ctx: Context, tools: Tools, python: Path, pytest_run: PytestRun, target: Path) -> LineHits:
    """The PyO3 layer's (and the core code's) hits from the Python tests."""
    raws = sorted(pytest_run.profiles.glob("*.profraw"))
    if not raws:
        hint = "the extension must be built with -C instrument-coverage and the interpreter must exit normally"
        if pytest_run.outcome.problem() is None:
            raise SuiteError(f"the Python tests ran but the extension wrote no .profraw into {pytest_run.profiles}",
                             hint=hint)
        ctx.console.warn(f"the extension wrote no profile (the Python tests failed; {hint}): "
                         "the Rust report lacks the Python tests' hits")
        return {}
    work = pytest_run.profiles.parent
    obj = extension_object(ctx, python, work)
    return lcov_hits(ctx, profiles_lcov(ctx, tools, raws, [obj], work, target, "extension"), target)


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
    lines += [f"| {r.name} ({r.tool}) | {r.tests} | {r.failed} | {'FAIL' if r.problem() else 'ok'} |"
              for r in m.runs]
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
        str(tarpaulin), "tarpaulin", "--engine", "llvm",
        "--workspace", "--exclude", cargo.python_crate_name(ctx),
        "--locked", "--skip-clean", "--no-fail-fast", "--color", "never",
        "--target-dir", str(target), "--out", "Lcov", "--output-dir", str(out),
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
        cwd=cfg.workspace, env=env, title="cargo tarpaulin --no-run (build the instrumented tests)",
    )
    proc = ctx.console.run(
        tarpaulin_command(ctx, tarpaulin, target, out, no_run=False), cwd=cfg.workspace, env=env,
        title="cargo tarpaulin (every Rust test, llvm engine; output shown when it ends)", capture=True, check=False,
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
            ctx, staging, profile="dev",
            extra_args=["--auditwheel", "skip", "--target-dir", str(target), "--locked"],
            env=env, title="maturin build (instrumented for coverage)",
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
    cargo_exe = toolchain.require_cargo(env)
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
        ctx, python, venvs.test_requirements(ctx), wheel=wheel, distribution=ctx.config.distribution,
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
        str(python), "-m", "coverage", "run", f"--rcfile={rcfile}", "-m", "pytest", str(cfg.python_tests),
        "-o", f"cache_dir={work / 'pytest-cache'}", f"--junitxml={junit}",
        *cfg.coverage.pytest_args, *ctx.posargs,
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
        pytest_command(ctx, python, work, rc, junit), cwd=work, check=False,
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


def rust_measurements(ctx: Context, tools: Tools, python: Path, pytest_run: PytestRun, target: Path,
                      tarpaulin_hits: LineHits) -> tuple[LineHits, dict[str, LineHits]]:
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
        [ctx.tool("lcov_cobertura", hint="from the 'coverage' dependency group"),
         str(rdir / "lcov.info"), "--base-dir", str(root), "--output", str(rdir / "cobertura.xml")],
        cwd=root, env=env, title="lcov_cobertura (Rust Cobertura XML)",
    )
    if not (rdir / "cobertura.xml").is_file():
        raise SuiteError("lcov_cobertura wrote no Rust Cobertura XML")
    (rdir / "html").mkdir()
    ctx.console.run(
        [ctx.tool("pycobertura", hint="from the 'coverage' dependency group"),
         "show", "--format", "html", "--source", str(root),
         "--output", str(rdir / "html" / "index.html"), str(rdir / "cobertura.xml")],
        cwd=root, env=env, title="pycobertura (Rust HTML)",
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
            f"tests failed under coverage (every report was written to {out}): " + "; ".join(failed + below), 1,
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
