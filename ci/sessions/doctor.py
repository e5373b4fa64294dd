"""The ``doctor`` session: can each session run on this machine, and does the
project agree with itself?

For every session it probes what that session needs from the machine (cargo,
the configured native libraries, CPython interpreters, m4/make, MinGW-w64,
wine, LLVM tools, ...) with the same helpers the sessions use, and prints one
row per session: ``ready`` or ``missing`` with what is missing and how to
install it (Debian/Ubuntu, manylinux ``yum``, MSYS2 ``pacman``). Tools that a
session installs into its own venv (maturin, zig, twine, ruff, ...) are not
probed.

Three cross-checks of the project follow; a failing one stops every session
that builds the extension (:data:`BUILDS`):

``module-name``    ``tool.maturin.module-name`` (or the ``[lib]`` name),
                   ``tool.maturin-suite.module`` and the ``#[pymodule]``
                   (``#[pyo3(name = ...)]``) in the Python crate's sources
                   name the same module;
``abi3``           pyo3's ``abi3-pyXY`` feature (cargo metadata) and the lower
                   bound of ``requires-python`` are the same Python;
``python-source``  ``tool.maturin.python-source`` exists and holds the
                   top-level package of the module.

Everything is written to ``reports/doctor.json``; the session fails (one line
naming them) when any session cannot run.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ci.blocks import mingw, toolchain
from ci.blocks.crosschecks import Check, cross_checks
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import CheckFailed, SuiteError

SESSION = "doctor"
SESSIONS = (
    "rust-tests",
    "python-tests",
    "sdist",
    "linux-wheel",
    "windows-gnu-wheel",
    "publish-check",
    "coverage",
    "lint",
    "lint-workflows",
    "publish-rehearsal",
)
# The sessions that build the extension: a failing cross-check stops them.
BUILDS = ("python-tests", "sdist", "linux-wheel", "windows-gnu-wheel", "publish-check", "coverage")


def advice(debian: str = "", yum: str = "", msys2: str = "", other: str = "") -> str:
    """Install commands, one per platform that has the package."""
    parts = [
        f"Debian/Ubuntu: apt-get install {debian}" if debian else "",
        f"manylinux: yum install -y {yum}" if yum else "",
        f"MSYS2: pacman -S {msys2}" if msys2 else "",
        other,
    ]
    return "; ".join(p for p in parts if p)


@dataclass(frozen=True)
class Need:
    """Something a session needs that this machine lacks."""

    what: str
    hint: str = ""


@dataclass(frozen=True)
class Verdict:
    """One session: what is missing (it cannot run) and notes (it can)."""

    session: str
    missing: tuple[Need, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.missing


# --------------------------------------------------------------------------
# the machine


@dataclass
class Machine:
    """What this machine has, each probe run at most once."""

    cfg: SuiteConfig
    env: Mapping[str, str]

    def which(self, name: str) -> str | None:
        return shutil.which(name, path=self.env.get("PATH"))

    @functools.cached_property
    def cargo(self) -> str | None:
        try:
            return toolchain.require_cargo(self.env)
        except SuiteError:
            return None

    @property
    def cargo_needs(self) -> tuple[Need, ...]:
        return () if self.cargo else (Need("cargo", toolchain.CARGO_HINT),)

    @functools.cached_property
    def nextest(self) -> bool:
        return self.cargo is not None and toolchain.has_nextest(self.cargo, self.env)

    @functools.cached_property
    def native(self) -> tuple[Need, ...]:
        """The configured native libraries that do not compile and link here."""
        if not (self.cfg.gmp == "system" or self.cfg.native):
            return ()
        needs = []
        for lib in self.cfg.native:
            result = toolchain.probe_native(lib, self.env)
            if result.stage == "compiler":
                return (Need("a C compiler", advice("gcc", "gcc", "mingw-w64-x86_64-gcc")),)
            if not result.ok:
                what = f"header <{lib.header}>" if result.stage == "header" else f"library -l{lib.link}"
                needs.append(Need(f"{lib.name} ({what})", toolchain.install_advice(lib)))
        return tuple(needs)

    @functools.cached_property
    def interpreters(self) -> tuple[list[str], list[str]]:
        """(versions found, versions missing) of ``python-versions``."""
        found, missing = toolchain.find_interpreters(self.cfg.python_versions, self.env)
        return [i.version for i in found], missing

    def programs(self, names: Sequence[str], hint: str) -> tuple[Need, ...]:
        return tuple(Need(n, hint) for n in names if not self.which(n))

    def cargo_tool(self, sub: str, what: str, hint: str) -> tuple[Need, ...]:
        """``cargo <sub> --version`` runs (rustfmt, clippy), else a need."""
        if self.cargo is None:
            return ()
        proc = probe([self.cargo, sub, "--version"], env=self.env)
        return () if proc is not None and proc.returncode == 0 else (Need(what, hint),)

    @functools.cached_property
    def rustc_llvm(self) -> tuple[int | None, Path | None]:
        """(LLVM major of rustc, rustc's host bin folder of llvm-tools)."""
        rustc = self.which("rustc")
        if rustc is None:
            return None, None
        vv_proc = probe([rustc, "-vV"], env=self.env)
        root_proc = probe([rustc, "--print", "sysroot"], env=self.env)
        vv = vv_proc.stdout if vv_proc else ""
        sysroot = root_proc.stdout.strip() if root_proc else ""
        major = re.search(r"^LLVM version: (\d+)", vv, re.MULTILINE)
        host = re.search(r"^host: (\S+)", vv, re.MULTILINE)
        tools = Path(sysroot, "lib", "rustlib", host.group(1), "bin") if host and sysroot else None
        return (int(major.group(1)) if major else None), tools

    def llvm_tool(self, name: str) -> str | None:
        """``name`` (llvm-profdata, llvm-cov): $LLVM_*, rustup's llvm-tools, PATH, /usr/lib/llvm-N."""
        major, tools = self.rustc_llvm
        candidates = [
            self.env.get(name.upper().replace("-", "_"), ""),
            str(tools / name) if tools else "",
            self.which(f"{name}-{major}") or "",
            self.which(name) or "",
            f"/usr/lib/llvm-{major}/bin/{name}" if major else "",
        ]
        return next((c for c in candidates if c and Path(c).is_file()), None)


# --------------------------------------------------------------------------
# what each session needs


def interpreter_needs(m: Machine) -> tuple[tuple[Need, ...], tuple[str, ...]]:
    found, missing = m.interpreters
    if not found:
        wanted = ", ".join(m.cfg.python_versions)
        return (
            Need(f"a CPython of {wanted}", advice("python3", "", "mingw-w64-x86_64-python", "or pyenv install 3.12")),
        ), ()
    note = f"no CPython {', '.join(missing)} here (those are skipped locally, an error in CI)" if missing else ""
    return (), ((note,) if note else ())


def dist_notes(cfg: SuiteConfig) -> tuple[str, ...]:
    if cfg.dist_dir.is_dir() and any(p.suffix in (".whl", ".gz") for p in cfg.dist_dir.iterdir()):
        return ()
    return (f"{cfg.dist_dir.name}/ holds no wheel or sdist yet: build first (nox -s linux-wheel sdist)",)


def rust_tests(m: Machine) -> Verdict:
    notes = (
        ()
        if m.nextest or not m.cargo
        else ("cargo-nextest not installed: plain cargo test runs (cargo install --locked cargo-nextest)",)
    )
    return Verdict("rust-tests", (*m.cargo_needs, *m.native), notes)


def python_tests(m: Machine) -> Verdict:
    needs, notes = interpreter_needs(m)
    return Verdict("python-tests", (*m.cargo_needs, *m.native, *needs), notes)


def sdist(m: Machine) -> Verdict:
    return Verdict("sdist", (*m.cargo_needs, *m.native))


M4_MAKE = advice("m4 make", "m4 make", "m4 make")


def linux_wheel(m: Machine) -> Verdict:
    cfg = m.cfg
    if cfg.linux_wheel.mode == "container":
        engine = (
            ()
            if m.which("docker") or m.which("podman")
            else (
                Need(
                    'docker or podman (linux-wheel.mode = "container")',
                    advice("docker.io (or podman)", "", "", 'or set linux-wheel.mode = "zig"'),
                ),
            )
        )
        return Verdict("linux-wheel", (*m.cargo_needs, *engine))
    needs = [*m.cargo_needs, *(m.native if cfg.gmp == "system" else ())]
    if cfg.gmp == "static":
        needs += m.programs(("m4", "make"), M4_MAKE)
    notes = (
        ("mode auto: in the manylinux container when docker/podman answers, else with zig (from the session venv)",)
        if cfg.linux_wheel.mode == "auto"
        else ()
    )
    return Verdict("linux-wheel", tuple(needs), notes)


def windows_gnu_wheel(m: Machine) -> Verdict:
    cfg, win = m.cfg, m.cfg.windows_wheel
    gmp_cached = os.name == "nt" or any(
        (d / mingw.GMP_MARKER).is_file() for d in mingw.cache_root(cfg, m.env).glob("gmp-*")
    )
    missing = mingw.missing_pieces(win.target, m.env, need_gmp_build=not gmp_cached, prefer=win.rust_route)
    needs = [
        Need(p.what, advice(" ".join(p.apt), "", " ".join(p.msys2), f"or: nox -s {mingw.SESSION} -- --setup (as root)"))
        for p in missing
    ]
    notes: list[str] = []
    if os.name != "nt" and not m.which("wine"):
        wine = Need('wine (tool.maturin-suite.windows-wheel.wine-tests = "require")', advice(" ".join(mingw.APT_WINE)))
        if win.wine_tests == "require":
            needs.append(wine)
        elif win.wine_tests == "auto":
            notes.append(f"wine not installed: the Rust tests under wine are skipped ({wine.hint})")
    return Verdict("windows-gnu-wheel", tuple(needs), tuple(notes))


def publish_check(m: Machine) -> Verdict:
    _, notes = interpreter_needs(m)
    return Verdict("publish-check", (*m.cargo_needs, *m.native), (*dist_notes(m.cfg), *notes))


def coverage(m: Machine) -> Verdict:
    major, _ = m.rustc_llvm
    hint = advice(
        f"llvm-{major or 'N'} (LLVM of rustc's major version)",
        "",
        "mingw-w64-x86_64-llvm",
        "or: rustup component add llvm-tools",
    )
    needs = [*m.cargo_needs, *m.native]
    needs += [
        Need(f"{tool} (LLVM {major or '?'})", hint) for tool in ("llvm-profdata", "llvm-cov") if not m.llvm_tool(tool)
    ]
    version = m.cfg.coverage.tarpaulin_version
    cached = toolchain.suite_cache(m.env) / "tools" / f"cargo-tarpaulin-{version}" / "bin" / "cargo-tarpaulin"
    notes = (
        ()
        if m.which("cargo-tarpaulin") or cached.is_file()
        else (f"cargo-tarpaulin {version} is installed by the session's first run (cargo install, needs crates.io)",)
    )
    return Verdict("coverage", tuple(needs), notes)


def lint(m: Machine) -> Verdict:
    needs = [*m.cargo_needs, *m.native]
    needs += m.cargo_tool(
        "fmt", "rustfmt (cargo fmt)", advice("rustfmt", "", "mingw-w64-x86_64-rust", "or: rustup component add rustfmt")
    )
    needs += m.cargo_tool(
        "clippy",
        "clippy (cargo clippy)",
        advice("rust-clippy", "", "mingw-w64-x86_64-rust", "or: rustup component add clippy"),
    )
    return Verdict("lint", tuple(needs))


def lint_workflows(m: Machine) -> Verdict:
    return Verdict("lint-workflows", notes=("zizmor and check-jsonschema come from the session venv",))


def publish_rehearsal(m: Machine) -> Verdict:
    return Verdict("publish-rehearsal", notes=dist_notes(m.cfg))


PROBES = (
    rust_tests,
    python_tests,
    sdist,
    linux_wheel,
    windows_gnu_wheel,
    publish_check,
    coverage,
    lint,
    lint_workflows,
    publish_rehearsal,
)


# --------------------------------------------------------------------------
# the session


def diagnose(ctx: Context) -> tuple[list[Verdict], list[Check]]:
    """Every session's verdict (failed cross-checks included) and the cross-checks."""
    env = ctx.env()
    machine = Machine(ctx.config, env)
    verdicts = [probe(machine) for probe in PROBES]
    checks = cross_checks(ctx)
    broken = tuple(Need(f"a consistent project ({c.name} check)", "; ".join(c.problems)) for c in checks if not c.ok)
    if broken:
        verdicts = [Verdict(v.session, (*v.missing, *broken), v.notes) if v.session in BUILDS else v for v in verdicts]
    return verdicts, checks


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def render(verdicts: Sequence[Verdict], checks: Sequence[Check]) -> str:
    rows = [["session", "status", "details"]]
    for v in verdicts:
        what = "missing " + ", ".join(n.what for n in v.missing) if v.missing else "ready"
        rows.append([v.session, "ready" if v.ready else "missing", "; ".join(v.notes) if v.ready else what])
    hints = {n.what: n.hint for v in verdicts for n in v.missing if n.hint}
    lines = [table(rows), ""]
    lines += ["To install:", *[f"  {what}: {hint}" for what, hint in hints.items()], ""] if hints else []
    check_rows = [["check", "result", "details"]]
    for c in checks:
        result = "skipped" if c.skipped else "ok" if c.ok else "FAILED"
        check_rows.append([c.name, result, "; ".join(c.problems) or c.detail])
    return "\n".join([*lines, table(check_rows)])


def write_report(ctx: Context, verdicts: Sequence[Verdict], checks: Sequence[Check]) -> Path:
    report_dir = ctx.config.reports_dir
    data = {
        "sessions": [{**asdict(v), "ready": v.ready} for v in verdicts],
        "checks": [{**asdict(c), "ok": c.ok} for c in checks],
    }
    with artifacts.staging_dir(report_dir, "doctor") as tmp:
        path = tmp / "doctor.json"
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return artifacts.publish(path, report_dir)


def run(ctx: Context) -> None:
    with ctx.console.step("probe the machine and the project"):
        verdicts, checks = diagnose(ctx)
    ctx.console.say(render(verdicts, checks))
    report = write_report(ctx, verdicts, checks)
    blocked = [v.session for v in verdicts if not v.ready]
    ctx.console.summary(
        SESSION,
        [
            ("ready", f"{len(verdicts) - len(blocked)} of {len(verdicts)} sessions"),
            ("cannot run", ", ".join(blocked) or "none"),
            ("checks", f"{sum(c.ok and not c.skipped for c in checks)} of {len(checks)} hold"),
            ("report", str(report.relative_to(ctx.root) if report.is_relative_to(ctx.root) else report)),
        ],
    )
    if blocked:
        raise CheckFailed(f"cannot run here: {', '.join(blocked)} (see the table above)")
