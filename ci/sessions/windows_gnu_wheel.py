"""The ``windows-gnu-wheel`` session: a ``win_amd64`` abi3 wheel for
``x86_64-pc-windows-gnu`` in ``dist/``, with its whole DLL closure bundled.

Routes (chosen by :func:`find_rust_route`, best first):

``native``
    Windows with MSYS2 (the CI runner): cargo's host is
    ``x86_64-pc-windows-gnu``; GMP is MSYS2's ``mingw-w64-x86_64-gmp`` and the
    DLLs are bundled from the folder of MSYS2's ``gcc``.
``prebuilt-std``
    A Rust whose sysroot has the target's std (``rustup target add
    x86_64-pc-windows-gnu``, where rustup can).
``build-std``
    A Rust whose sysroot carries its own std source: Debian's ``rustc-web``,
    ``cargo-web`` and ``rust-web-src`` (1.96) build std for the target with
    ``RUSTC_BOOTSTRAP=1 -Zbuild-std=std,panic_unwind``. rustup's compiler
    cannot use Debian's std source (another version), so Debian's cargo and
    rustc are put first on PATH for the whole build (host build scripts and
    proc macros are built by the same rustc).

Cross builds (Linux) also need MinGW-w64 gcc/binutils (linker, ``dlltool`` for
maturin's python3.dll import library) and a MinGW GMP: :func:`ensure_mingw_gmp`
builds the GMP source that ships inside the locked gmp-mpfr-sys crate once,
as a DLL (``libgmp-10.dll``, like MSYS2's), into a cache keyed by GMP
version, compiler version and configure flags (``~/.cache/maturin-suite/
mingw-gmp/<key>``); later runs reuse it. gmp-mpfr-sys (``use-system-libs``)
then needs ``force-cross`` (``--features qsym-core/force-cross``),
``pkg-config`` pointed at that prefix, and a ``$CC`` whose probe program runs
on the build machine: :func:`probe_cc_main` links the probe with MinGW gcc
(proving header and import library) and builds a host copy of the same
program from the same MinGW ``gmp.h``, so the values it reports are the
target's.

Set-up: what is missing is detected; with ``nox -s windows-gnu-wheel --
--setup`` (or ``MATURIN_SUITE_WINDOWS_SETUP=1``) on Debian/Ubuntu as root it
is installed with apt-get, otherwise the session stops naming the exact
``apt-get``/``pacman`` command.

Bundling is computed: ``delvewheel repair`` walks the PE imports of the
extension recursively, copies every DLL that is not a Windows system DLL, an
API set or python3.dll into ``q_kangaroo.libs/`` (names mangled) and patches
``__init__.py`` with ``os.add_dll_directory``. The licence texts configured
for the bundled DLLs are added to ``.dist-info/licenses/`` (``wheel unpack``/
``wheel pack`` rewrite RECORD), :func:`ci.blocks.pe.windows_wheel_findings` and
abi3audit check the result, and only then is it published.

Finally the Rust tests of ``test-crates`` are cross-built (``cargo test
--no-run``) and run under wine next to the DLLs taken out of the wheel
(skipped with a note when wine is missing, unless ``wine-tests = "require"``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci.blocks import maturin, pe, provenance
from ci.blocks.mingw import (
    APT_WINE,
    BUILD_STD,
    GMP_MARKER,
    MINGW,
    RustRoute,
    _which,
    build_env,
    cache_root,
    cargo_target_dir,
    dll_search_dirs,
    ensure_mingw_gmp,
    ensure_setup,
    find_rust_route,
    install_command,
    setup_hint,
)
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError, StepFailed, SuiteError, ToolMissing
from ci.core.findings import Finding, failures

SESSION = "windows-gnu-wheel"
POSARGS = ("--setup", "--skip-wine", "--route=")
ROUTES = ("auto", "native", "prebuilt-std", "build-std")
WINE_MODES = ("auto", "require", "skip")


def cargo_flags(cfg: SuiteConfig, route: RustRoute) -> list[str]:
    flags = ["--target", cfg.windows_wheel.target]
    if route.cross:
        flags += [a for f in cfg.windows_wheel.cross_features for a in ("--features", f)]
    if route.build_std:
        flags.append(BUILD_STD)
    return flags


# --------------------------------------------------------------------------
# licences


def licence_files_for(cfg: SuiteConfig, bundled: Sequence[str]) -> list[Path]:
    """windows-wheel.licenses files for the DLLs actually bundled."""
    files: list[Path] = []
    for name in bundled:
        found = pe.licenses_for(name, cfg.windows_wheel.licenses) or ()
        for rel in found:
            path = (cfg.root / rel).resolve()
            if not path.is_file():
                raise ConfigError(f"tool.maturin-suite.windows-wheel.licenses names {rel}, which does not exist")
            if path not in files:
                files.append(path)
    return files


def finish_wheel(ctx: Context, wheel: Path, files: Sequence[Path], out_dir: Path) -> Path:
    """A copy of ``wheel`` in ``out_dir`` with ``files`` in .dist-info/licenses/
    (and License-File metadata) and without delvewheel's ``DELVEWHEEL`` note
    (it records this machine's --add-path folders; publish-check admits only
    standard .dist-info files). RECORD is rewritten by ``wheel pack``."""
    tool = ctx.tool("wheel", hint="'wheel' comes from the session venv (dependency group 'windows')")
    with artifacts.staging_dir(out_dir.parent, "unpacked") as tmp:
        ctx.console.run([tool, "unpack", "--dest", str(tmp), str(wheel)], cwd=tmp, env=ctx.env(), title="wheel unpack")
        (unpacked,) = [p for p in tmp.iterdir() if p.is_dir()]
        (info,) = unpacked.glob("*.dist-info")
        (info / "DELVEWHEEL").unlink(missing_ok=True)
        metadata = info / "METADATA"
        text = metadata.read_text(encoding="utf-8")
        head, sep, body = text.partition("\n\n")
        added = []
        for f in files:
            try:
                rel = f.relative_to(ctx.config.python_crate).as_posix()
            except ValueError:
                rel = f"windows/{f.name}"
            dest = info / "licenses" / rel
            if dest.exists():
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
            added.append(f"License-File: {rel}")
        if added:
            metadata.write_text(head + "\n" + "\n".join(added) + sep + body, encoding="utf-8")
        out_dir.mkdir(parents=True, exist_ok=True)
        ctx.console.run(
            [tool, "pack", "--dest-dir", str(out_dir), str(unpacked)],
            cwd=tmp,
            env=ctx.env(),
            title="wheel pack (licences of bundled DLLs, RECORD)",
        )
    return maturin.only_file(out_dir, "*.whl", "wheel")


# --------------------------------------------------------------------------
# Rust tests under wine


@dataclass(frozen=True)
class WineResult:
    binaries: int
    passed: int
    failed: int
    note: str


def wheel_dlls(wheel: Path, dest: Path) -> list[str]:
    """Copy the wheel's bundled DLLs into ``dest`` under their original names."""
    names = []
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.filename.lower().endswith(".dll"):
                name = pe.original_name(PurePosixPath(info.filename).name)
                (dest / name).write_bytes(z.read(info))
                names.append(name)
    return names


# Rust's std (>= 1.78) draws randomness from ProcessPrng in
# bcryptprimitives.dll, which every Windows 10+ has but wine 8 (Debian 12)
# lacks. The wine run gets this stand-in, built with MinGW gcc: it is a system
# DLL on Windows and never part of the wheel.
WINE_BCRYPTPRIMITIVES_C = r"""
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
"""


def wine_shims(ctx: Context, env: Mapping[str, str], dest: Path) -> list[str]:
    """DLLs that Windows has and wine 8 does not, built into ``dest``."""
    if _which("wine", env) is None or os.name == "nt":
        return []
    src = dest / "bcryptprimitives.c"
    src.write_text(WINE_BCRYPTPRIMITIVES_C)
    ctx.console.run(
        [f"{MINGW}-gcc", "-O2", "-shared", "-o", str(dest / "bcryptprimitives.dll"), str(src), "-ladvapi32"],
        cwd=dest,
        env=env,
        title="wine stand-in for bcryptprimitives.dll (ProcessPrng)",
    )
    src.unlink()
    return ["bcryptprimitives.dll"]


TEST_RESULT = re.compile(r"test result: (\w+)\. (\d+) passed; (\d+) failed")


def wine_runner(env: Mapping[str, str], seconds: float) -> list[str]:
    """The command prefix that runs a Windows program here: none on Windows, wine (under timeout) elsewhere."""
    if os.name == "nt":
        return []
    wine = _which("wine", env)
    if wine is None:
        raise ToolMissing("wine is not installed", hint=setup_hint([], wine=True))
    # A hung wine must not hang CI: coreutils' timeout ends the test run.
    # (tool.maturin-suite.timeouts.tests).
    return [_which("timeout", env) or "timeout", f"{seconds:.0f}", wine]


def build_test_executables(ctx: Context, route: RustRoute, env: dict[str, str]) -> list[Path]:
    """``cargo test --no-run`` of windows-wheel.test-crates for the target; the test binaries it built."""
    cfg = ctx.config
    packages = [a for c in cfg.windows_wheel.test_crates for a in ("-p", c)]
    proc = ctx.console.run(
        [
            route.cargo,
            "test",
            "--no-run",
            "--release",
            "--locked",
            *packages,
            *cargo_flags(cfg, route),
            "--message-format",
            "json-render-diagnostics",
        ],
        cwd=cfg.workspace,
        env=env,
        title=f"cargo test --no-run for {cfg.windows_wheel.target}",
        capture=True,
    )
    exes = []
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("profile", {}).get("test") and msg.get("executable"):
            exes.append(Path(msg["executable"]))
    if not exes:
        raise SuiteError(f"cargo built no test executable for {', '.join(cfg.windows_wheel.test_crates)}")
    return exes


def empty_dir(path: Path) -> Path:
    """An empty ``path`` (a folder this session owns)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def wine_env(cfg: SuiteConfig, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for the test binaries: a wine prefix of the suite's, quiet, no display."""
    wenv = dict(env)
    wenv.update(
        WINEPREFIX=str(cache_root(cfg, env).parent / "wineprefix"),
        WINEDEBUG="-all",
        WINEDLLOVERRIDES="mscoree,mshtml=",
        WINEPATH="",
    )
    wenv.pop("DISPLAY", None)
    return wenv


def check_test_imports(exe: Path, local: Path, dlls: Sequence[str]) -> None:
    """The test binary must need nothing beyond the wheel's DLLs and Windows."""
    image = pe.read_pe(exe.name, local.read_bytes())
    system = pe.system_dlls(image.machine)
    extra = [
        i
        for i in image.imports
        if i.lower() not in system
        and not pe.API_SET.fullmatch(i.lower())
        and i.lower() not in {d.lower() for d in dlls}
    ]
    if extra:
        raise CheckFailed(f"{exe.name} imports {', '.join(extra)}, which the wheel does not bundle")


@dataclass(frozen=True)
class BinaryRun:
    """One test binary's counts, and what to call it when it failed."""

    passed: int
    failed: int
    failure: str | None


def run_test_binary(
    ctx: Context, exe: Path, runner: Sequence[str], run_dir: Path, wenv: dict[str, str], dlls: Sequence[str]
) -> BinaryRun:
    """Copy ``exe`` next to the wheel's DLLs, check its imports, run it (under wine)."""
    local = run_dir / exe.name
    shutil.copyfile(exe, local)
    check_test_imports(exe, local, dlls)
    result = ctx.console.run(
        [*runner, str(local)],
        cwd=run_dir,
        env=wenv,
        title=f"{'wine ' if runner else ''}{exe.name}",
        capture=True,
        check=False,
    )
    output = (result.stdout or "") + (result.stderr or "")
    ctx.console.say(output.strip()[-3000:])
    counts = TEST_RESULT.findall(output)
    failure = f"{exe.name} (exit {result.returncode})" if result.returncode != 0 or not counts else None
    return BinaryRun(sum(int(p) for _, p, _ in counts), sum(int(f) for _, _, f in counts), failure)


def stop_wineserver(env: Mapping[str, str], wenv: dict[str, str]) -> None:
    """Stop the wineserver this run started for its prefix (it lingers otherwise)."""
    wineserver = _which("wineserver", env)
    if wineserver:
        probe([wineserver, "-k"], env=wenv)


def run_wine_tests(ctx: Context, route: RustRoute, env: dict[str, str], wheel: Path, work: Path) -> WineResult:
    runner = wine_runner(env, ctx.config.timeouts.tests)
    exes = build_test_executables(ctx, route, env)
    run_dir = empty_dir(work / "wine-run")
    dlls = wheel_dlls(wheel, run_dir)
    shims = wine_shims(ctx, env, run_dir) if runner else []
    wenv = wine_env(ctx.config, env)
    passed = failed = 0
    failing = []
    for exe in exes:
        binary = run_test_binary(ctx, exe, runner, run_dir, wenv, dlls)
        passed += binary.passed
        failed += binary.failed
        if binary.failure is not None:
            failing.append(binary.failure)
    if runner:
        stop_wineserver(env, wenv)
    if failing:
        raise StepFailed(f"Rust tests failed under {'wine' if runner else 'Windows'}: {', '.join(failing)}", 1)
    note = f"with {', '.join(dlls) or 'no DLLs'} from the wheel"
    if shims:
        note += f" (+ wine stand-in {', '.join(shims)})"
    return WineResult(len(exes), passed, failed, note)


# --------------------------------------------------------------------------
# the session


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def parse_args(ctx: Context) -> set[str]:
    unknown = [a for a in ctx.posargs if a not in POSARGS and not a.startswith("--route=")]
    if unknown:
        raise ConfigError(
            f"unknown argument(s) for {SESSION}: {' '.join(unknown)}",
            hint=f"known: --setup, --skip-wine, --route={{{','.join(ROUTES)}}}",
        )
    return set(ctx.posargs)


def route_choice(ctx: Context, args: set[str]) -> str:
    """``--route=NAME``, else tool.maturin-suite.windows-wheel.rust-route."""
    chosen = [a.split("=", 1)[1] for a in args if a.startswith("--route=")]
    value = chosen[-1] if chosen else ctx.config.windows_wheel.rust_route
    if value not in ROUTES:
        source = "--route" if chosen else "tool.maturin-suite.windows-wheel.rust-route"
        raise ConfigError(f"{source} must be one of {', '.join(ROUTES)}; got {value!r}")
    return value


def wine_mode(ctx: Context, args: set[str]) -> str:
    mode = ctx.config.windows_wheel.wine_tests
    if mode not in WINE_MODES:
        raise ConfigError(
            f"tool.maturin-suite.windows-wheel.wine-tests must be one of {', '.join(WINE_MODES)}; got {mode!r}"
        )
    return "skip" if "--skip-wine" in args else mode


def detect_route(ctx: Context, target: str, prefer: str, *, want_wine: bool) -> RustRoute:
    """The "detect toolchain" step: the set-up checked (or installed with --setup), the route to build with."""
    env0 = ctx.env()
    with ctx.console.step("detect toolchain"):
        gmp_cached = os.name == "nt" or any(
            (d / GMP_MARKER).is_file() for d in cache_root(ctx.config, env0).glob("gmp-*")
        )
        ensure_setup(ctx, target, need_gmp_build=not gmp_cached, want_wine=want_wine, prefer=prefer)
        route = find_rust_route(target, ctx.env(), prefer)
        assert route is not None  # ensure_setup raised otherwise
        if os.name == "nt" and route.cross:
            raise ToolMissing(
                f"on Windows the build needs a Rust whose host is {target} (found {route.host})",
                hint="MSYS2: pacman -S mingw-w64-x86_64-rust, or rustup default stable-x86_64-pc-windows-gnu; "
                "run nox from the MINGW64 shell with mingw-w64-x86_64-gcc, -gmp and -pkgconf installed",
            )
    return route


def mingw_gmp(ctx: Context, route: RustRoute, work: Path) -> tuple[Path, tuple[str, str]]:
    """The "MinGW GMP (cached)" step of a cross build: the GMP prefix, and its summary row."""
    with ctx.console.step("MinGW GMP (cached)"):
        start = time.monotonic()
        gmp_prefix, built_now = ensure_mingw_gmp(ctx, route, build_env(ctx, route, work, None))
        row = (
            "MinGW GMP",
            f"{'built' if built_now else 'reused'} {gmp_prefix} "
            f"({mib(du(gmp_prefix))}, {time.monotonic() - start:.0f}s)",
        )
    return gmp_prefix, row


def maturin_wheel(ctx: Context, route: RustRoute, env: dict[str, str], staging: Path) -> Path:
    """The wheel as maturin builds it for the target (no DLL bundled yet)."""
    return maturin.build_wheel(
        ctx,
        staging / "built",
        extra_args=["--locked", "--auditwheel", "skip", *cargo_flags(ctx.config, route)],
        env=env,
        title=f"maturin build --target {ctx.config.windows_wheel.target} ({route.name})",
    )


def bundle_dlls(
    ctx: Context, route: RustRoute, env: dict[str, str], gmp_prefix: Path | None, wheel: Path, staging: Path
) -> tuple[Path, list[str]]:
    """``wheel`` repaired by delvewheel, with the licences of the DLLs it bundled; and their names."""
    search = dll_search_dirs(route, gmp_prefix, env)
    delvewheel = ctx.tool("delvewheel", hint="delvewheel comes from the session venv (dependency group 'windows')")
    ctx.console.run(
        [
            delvewheel,
            "repair",
            "--add-path",
            os.pathsep.join(map(str, search)),
            "-w",
            str(staging / "repaired"),
            str(wheel),
        ],
        cwd=staging,
        env=env,
        title="delvewheel repair (bundle the DLL closure)",
    )
    repaired = maturin.only_file(staging / "repaired", "*.whl", "wheel")
    bundled = [PurePosixPath(n).name for n in zipfile.ZipFile(repaired).namelist() if n.lower().endswith(".dll")]
    licences = licence_files_for(ctx.config, bundled)
    return finish_wheel(ctx, repaired, licences, staging / "final"), bundled


def check_wheel(ctx: Context, final: Path, env: dict[str, str], staging: Path) -> list[Finding]:
    """The "check the wheel" step: ci.blocks.pe's rules and abi3audit, all passing, or CheckFailed."""
    with ctx.console.step("check the wheel (ci.blocks.pe, abi3audit)"):
        findings = pe.windows_wheel_findings(final, ctx.config)
        for f in findings:
            ctx.console.say(f.line())
        abi3audit = shutil.which("abi3audit", path=env.get("PATH"))
        if abi3audit:
            proc = ctx.console.run(
                [abi3audit, "--strict", "--report", str(final)],
                cwd=staging,
                env=env,
                title="abi3audit",
                capture=True,
                check=False,
            )
            ctx.console.say((proc.stdout or "") + (proc.stderr or ""))
            findings.append(
                Finding(
                    final.name,
                    "abi3audit",
                    "pass" if proc.returncode == 0 else "fail",
                    "" if proc.returncode == 0 else "abi3audit reported violations",
                )
            )
        bad = failures(findings)
        if bad:
            raise CheckFailed("the Windows wheel failed its checks:\n" + "\n".join(f.line() for f in bad))
    return findings


def windows_tests(
    ctx: Context, mode: str, route: RustRoute, env: dict[str, str], wheel: Path, work: Path
) -> tuple[str, str]:
    """The Rust tests on Windows or under wine, as the wine mode says; their summary row."""
    if mode == "skip":
        return ("Rust tests on Windows", "skipped (wine-tests = skip / --skip-wine)")
    if os.name != "nt" and not _which("wine", env):
        if mode == "require":
            raise ToolMissing('wine-tests = "require" but wine is not installed', hint=setup_hint([], wine=True))
        row = ("Rust tests under wine", f"SKIPPED: wine not installed ({install_command(APT_WINE)}, or -- --setup)")
        ctx.console.warn("wine is not installed: the Rust tests were not run for Windows")
        return row
    with ctx.console.step("Rust tests for Windows"):
        start = time.monotonic()
        result = run_wine_tests(ctx, route, env, wheel, work)
    return (
        "Rust tests " + ("under wine" if os.name != "nt" else "on Windows"),
        f"{result.passed} passed, {result.failed} failed in {result.binaries} binaries "
        f"{result.note} ({time.monotonic() - start:.0f}s)",
    )


def built_with(ctx: Context, route: RustRoute, env: Mapping[str, str], gmp_prefix: Path | None) -> dict[str, str]:
    """The toolchain of this build, for the provenance record."""
    gcc = f"{MINGW}-gcc" if route.cross else "gcc"
    queries = {
        "rustc": [route.rustc, "-V"],
        "maturin": [maturin.maturin(ctx), "--version"],
        "MinGW gcc": [gcc, "--version"],
    }
    gmp = f"{gmp_prefix.name} (MinGW, built once, bundled)" if gmp_prefix else "MSYS2 mingw-w64-x86_64-gmp (bundled)"
    return provenance.toolchain(env, queries, {"GMP": gmp, "route": route.name})


def run(ctx: Context) -> None:
    cfg = ctx.config
    args = parse_args(ctx)
    target = cfg.windows_wheel.target
    work = cfg.work_dir(SESSION)
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    mode = wine_mode(ctx, args)
    prefer = route_choice(ctx, args)

    route = detect_route(ctx, target, prefer, want_wine=mode != "skip")
    rows.append(("route", f"{route.name}: rustc {route.version} ({route.rustc}), host {route.host}"))
    gmp_prefix = None
    if route.cross:
        gmp_prefix, gmp_row = mingw_gmp(ctx, route, work)
        rows.append(gmp_row)
    env = build_env(ctx, route, work, gmp_prefix)

    with artifacts.staging_dir(work, "staging") as staging:
        start = time.monotonic()
        unrepaired = maturin_wheel(ctx, route, env, staging)
        rows.append(
            (
                "cargo/maturin build",
                f"{time.monotonic() - start:.0f}s; target dir {mib(du(cargo_target_dir(work, route)))}",
            )
        )
        final, bundled = bundle_dlls(ctx, route, env, gmp_prefix, unrepaired, staging)
        findings = check_wheel(ctx, final, env, staging)
        rows.append(("bundled", ", ".join(bundled) or "nothing"))
        rows.append(("checks", f"{len(findings)} findings, all pass"))
        # The staged wheel is tested; only a wheel whose tests passed reaches dist/.
        rows.append(windows_tests(ctx, mode, route, env, final, work))
        published = artifacts.publish(final, cfg.dist_dir)
        rows.append(("wheel", f"{published} ({mib(published.stat().st_size)})"))
    tools = built_with(ctx, route, env, gmp_prefix)
    provenance.record(cfg.report_dir(SESSION), SESSION, published, tools)
    rows.append(("built with", provenance.summary(tools)))
    ctx.console.summary(SESSION, rows)
