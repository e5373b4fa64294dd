"""Building for ``x86_64-pc-windows-gnu``: finding a Rust route, the MinGW
tool set and its set-up, a MinGW GMP built once, the cross environment.

See :mod:`ci.sessions.windows_gnu_wheel` for the routes and the whole build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.blocks import toolchain
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import SuiteError, ToolMissing

SESSION = "windows-gnu-wheel"
MINGW = "x86_64-w64-mingw32"
SETUP_ENV = "MATURIN_SUITE_WINDOWS_SETUP"
POSARGS = ("--setup", "--skip-wine", "--route=")
ROUTES = ("auto", "native", "prebuilt-std", "build-std")
WINE_MODES = ("auto", "require", "skip")
GMP_MARKER = "suite-gmp.json"
BUILD_STD = "-Zbuild-std=std,panic_unwind"

# Debian/Ubuntu packages of each piece of the Linux route.
APT_RUST = ("rustc-web", "cargo-web", "rust-web-src")
APT_MINGW = ("gcc-mingw-w64-x86-64-win32", "binutils-mingw-w64-x86-64")
APT_WINE = ("wine", "wine64")
MSYS2_PACKAGES = (
    "mingw-w64-x86_64-gcc",
    "mingw-w64-x86_64-gmp",
    "mingw-w64-x86_64-pkgconf",
    "mingw-w64-x86_64-rust",
)


@dataclass(frozen=True)
class Missing:
    """A piece the session needs and did not find."""

    what: str
    apt: tuple[str, ...] = ()
    msys2: tuple[str, ...] = ()


@dataclass(frozen=True)
class RustRoute:
    """How to build for the target: which cargo/rustc, and whether std is built."""

    name: str  # native | prebuilt-std | build-std
    cargo: str
    rustc: str
    version: str
    host: str
    build_std: bool

    @property
    def cross(self) -> bool:
        return self.name != "native"


# --------------------------------------------------------------------------
# detection and set-up


def _which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH"))


def _output(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    proc = probe(argv, env=env)
    return proc.stdout if proc is not None and proc.returncode == 0 else None


def rustc_info(rustc: str, env: Mapping[str, str]) -> tuple[str, str, Path] | None:
    """(release, host triple, sysroot) of a rustc, or None when it does not run."""
    vv = _output([rustc, "-vV"], env)
    sysroot = _output([rustc, "--print", "sysroot"], env)
    if not vv or not sysroot:
        return None
    fields = dict(line.split(": ", 1) for line in vv.splitlines() if ": " in line)
    return fields.get("release", "?"), fields.get("host", "?"), Path(sysroot.strip())


def _candidates(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(rustc, cargo) pairs: PATH's first, then Debian's rustc-web in /usr/bin."""
    pairs = []
    rustc, cargo = _which("rustc", env), _which("cargo", env)
    if rustc and cargo:
        pairs.append((rustc, cargo))
    debian = ("/usr/bin/rustc", "/usr/bin/cargo")
    if os.name != "nt" and all(Path(p).exists() for p in debian) and debian not in pairs:
        pairs.append(debian)
    return pairs


def find_rust_route(target: str, env: Mapping[str, str], prefer: str = "auto") -> RustRoute | None:
    """The best way to build for ``target`` here (see the module docstring);
    only the route named ``prefer`` unless it is "auto"."""
    found: dict[str, RustRoute] = {}
    for rustc, cargo in _candidates(env):
        info = rustc_info(rustc, env)
        if info is None:
            continue
        version, host, sysroot = info
        if host == target:
            found.setdefault("native", RustRoute("native", cargo, rustc, version, host, False))
        elif (sysroot / "lib" / "rustlib" / target / "lib").is_dir():
            found.setdefault("prebuilt-std", RustRoute("prebuilt-std", cargo, rustc, version, host, False))
        elif (sysroot / "lib" / "rustlib" / "src" / "rust" / "library" / "std" / "Cargo.toml").is_file():
            found.setdefault("build-std", RustRoute("build-std", cargo, rustc, version, host, True))
    if prefer != "auto":
        return found.get(prefer)
    for name in ("native", "prebuilt-std", "build-std"):
        if name in found:
            return found[name]
    return None


def _missing_rust(target: str, env: Mapping[str, str], prefer: str) -> list[Missing]:
    """A Rust for the route ``prefer``, unless one is found."""
    if find_rust_route(target, env, prefer) is not None:
        return []
    if prefer == "auto":
        what = (
            f"a Rust that can build for {target} (`rustup target add {target}`, "
            f"or Debian's rustc-web with its std source for -Zbuild-std)"
        )
    else:
        what = f"a Rust for the {prefer} route (tool.maturin-suite.windows-wheel.rust-route / --route)"
    return [Missing(what, APT_RUST if prefer in ("auto", "build-std") else (), ("mingw-w64-x86_64-rust",))]


def _missing_msys2_tools(env: Mapping[str, str]) -> list[Missing]:
    """The MSYS2 (MINGW64) tools of the native route that are not on PATH."""
    missing: list[Missing] = []
    for tool, pkg in (("gcc", "mingw-w64-x86_64-gcc"), ("pkg-config", "mingw-w64-x86_64-pkgconf")):
        if not _which(tool, env):
            missing.append(Missing(tool, msys2=(pkg,)))
    return missing


def _missing_cross_tools(env: Mapping[str, str], *, need_gmp_build: bool) -> list[Missing]:
    """The MinGW-w64 and host tools of a cross build (and of building GMP) that are not on PATH."""
    missing: list[Missing] = []
    if not _which(f"{MINGW}-gcc", env):
        missing.append(Missing(f"{MINGW}-gcc (MinGW-w64 C compiler and linker)", APT_MINGW[:1]))
    if not _which(f"{MINGW}-dlltool", env):
        missing.append(Missing(f"{MINGW}-dlltool (python3.dll import library)", APT_MINGW[1:]))
    for tool, pkg in (("gcc", "gcc"), ("pkg-config", "pkg-config")):
        if not _which(tool, env):
            missing.append(Missing(tool, (pkg,)))
    if need_gmp_build:
        for tool in ("m4", "make"):
            if not _which(tool, env):
                missing.append(Missing(f"{tool} (to build GMP)", (tool,)))
    return missing


def missing_pieces(target: str, env: Mapping[str, str], *, need_gmp_build: bool, prefer: str = "auto") -> list[Missing]:
    """Everything the build needs that is not installed."""
    missing = _missing_rust(target, env, prefer)
    if os.name == "nt":
        return missing + _missing_msys2_tools(env)
    return missing + _missing_cross_tools(env, need_gmp_build=need_gmp_build)


def install_command(packages: Sequence[str]) -> str:
    return f"apt-get update && apt-get install -y --no-install-recommends {' '.join(packages)}"


def setup_hint(missing: Sequence[Missing], *, wine: bool) -> str:
    apt = sorted({p for m in missing for p in m.apt} | (set(APT_WINE) if wine else set()))
    # In MSYS2 the whole set is named, whatever this machine lacked: the
    # native build needs all of it, and --needed skips what is installed.
    msys2 = sorted(set(MSYS2_PACKAGES) | {p for m in missing for p in m.msys2})
    parts = []
    if apt:
        parts.append(
            f"Debian/Ubuntu (as root): {install_command(apt)} - or let the session do it: nox -s {SESSION} -- --setup"
        )
    parts.append(f"MSYS2 (MINGW64 shell): pacman -S --needed {' '.join(msys2)}")
    return "; ".join(parts)


def can_apt(env: Mapping[str, str]) -> bool:
    return os.name != "nt" and hasattr(os, "geteuid") and os.geteuid() == 0 and bool(_which("apt-get", env))


def setup_requested(ctx: Context) -> bool:
    return "--setup" in ctx.posargs or ctx.base_env.get(SETUP_ENV, "") not in ("", "0")


def apt_install(ctx: Context, packages: Sequence[str]) -> None:
    env = ctx.env(DEBIAN_FRONTEND="noninteractive")
    ctx.console.run(["apt-get", "update", "-qq"], cwd=ctx.root, env=env, title="apt-get update")
    ctx.console.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        cwd=ctx.root,
        env=env,
        title=f"apt-get install {' '.join(packages)}",
    )


def try_rustup_target(ctx: Context, target: str) -> bool:
    """``rustup target add``: the prebuilt std, where rustup can fetch it."""
    rustup = _which("rustup", ctx.env())
    if rustup is None:
        return False
    proc = ctx.console.run(
        [rustup, "target", "add", target],
        cwd=ctx.root,
        env=ctx.env(),
        title=f"set-up: rustup target add {target}",
        check=False,
    )
    return proc.returncode == 0


def ensure_setup(ctx: Context, target: str, *, need_gmp_build: bool, want_wine: bool, prefer: str = "auto") -> None:
    """Install (with --setup) or name what is missing; never returns with gaps."""
    env = ctx.env()
    missing = missing_pieces(target, env, need_gmp_build=need_gmp_build, prefer=prefer)
    wine_missing = want_wine and os.name != "nt" and not _which("wine", env)
    if not missing and not wine_missing:
        return
    if (
        setup_requested(ctx)
        and find_rust_route(target, env, prefer) is None
        and prefer in ("auto", "prebuilt-std")
        and try_rustup_target(ctx, target)
    ):
        missing = missing_pieces(target, env, need_gmp_build=need_gmp_build, prefer=prefer)
    if setup_requested(ctx) and can_apt(env) and (missing or wine_missing):
        packages = sorted({p for m in missing for p in m.apt} | (set(APT_WINE) if wine_missing else set()))
        with ctx.console.step(f"set-up: install {' '.join(packages)}"):
            apt_install(ctx, packages)
        missing = missing_pieces(target, ctx.env(), need_gmp_build=need_gmp_build, prefer=prefer)
    if missing:
        raise ToolMissing(
            "the windows-gnu build needs: " + "; ".join(m.what for m in missing),
            hint=setup_hint(missing, wine=False),
        )


# --------------------------------------------------------------------------
# MinGW GMP, built once


def cache_root(cfg: SuiteConfig, env: Mapping[str, str]) -> Path:
    if cfg.windows_wheel.gmp_cache:
        return Path(os.path.expanduser(cfg.windows_wheel.gmp_cache))
    return toolchain.suite_cache(env) / "mingw-gmp"


def gmp_source(ctx: Context, route: RustRoute, env: Mapping[str, str]) -> Path:
    """The GMP source folder inside the locked gmp-mpfr-sys crate (downloaded by cargo)."""
    proc = ctx.console.run(
        [
            route.cargo,
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
            str(ctx.config.workspace / "Cargo.toml"),
        ],
        cwd=ctx.config.workspace,
        env=env,
        title="cargo metadata (locate gmp-mpfr-sys)",
        capture=True,
    )
    try:
        packages = json.loads(proc.stdout)["packages"]
    except (ValueError, KeyError) as e:
        raise SuiteError(f"cargo metadata printed no package list: {e}") from None
    crates = [Path(p["manifest_path"]).parent for p in packages if p.get("name") == "gmp-mpfr-sys"]
    for crate in crates:
        sources = sorted(d for d in crate.glob("gmp-*-c") if (d / "configure").is_file())
        if sources:
            return sources[-1]
    raise ToolMissing(
        "no GMP source found in the gmp-mpfr-sys crate "
        f"({', '.join(map(str, crates)) or 'gmp-mpfr-sys is not in the lock file'})",
        hint="run 'cargo fetch --locked' (needs crates.io), or build a MinGW GMP yourself",
    )


def gmp_cache_key(source: Path, compiler_version: str, configure_args: Sequence[str]) -> str:
    version = re.sub(r"^gmp-|-c$", "", source.name)
    digest = hashlib.sha256("\n".join([compiler_version, source.parent.name, *configure_args]).encode()).hexdigest()
    return f"gmp-{version}-{MINGW}-{digest[:12]}"


# A DLL like MSYS2's libgmp-10.dll, and "fat": GMP picks the assembly for the
# CPU it runs on at load time (as MSYS2 builds it), so the wheel is fast on
# any x86_64 and correct on the oldest.
GMP_CONFIGURE = ("--enable-shared", "--disable-static", "--enable-fat")


def ensure_mingw_gmp(ctx: Context, route: RustRoute, env: Mapping[str, str]) -> tuple[Path, bool]:
    """(install prefix, built now?) of the MinGW GMP DLL in the cache."""
    source = gmp_source(ctx, route, env)
    cc = f"{MINGW}-gcc"
    compiler = (_output([cc, "--version"], env) or "").splitlines()[:1]
    key = gmp_cache_key(source, compiler[0] if compiler else cc, GMP_CONFIGURE)
    root = cache_root(ctx.config, env)
    final = root / key
    if (final / GMP_MARKER).is_file() and (final / "bin" / "libgmp-10.dll").is_file():
        return final, False
    if not all(_which(t, env) for t in ("m4", "make")):
        raise ToolMissing(
            "building the MinGW GMP needs m4 and make",
            hint=setup_hint([Missing("m4, make", ("m4", "make"))], wine=False),
        )
    root.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with artifacts.staging_dir(root, f".build-{key}") as build:
        obj = build / "obj"
        obj.mkdir()
        genv = dict(env, CC=cc)
        ctx.console.run(
            [str(source / "configure"), f"--host={MINGW}", f"--prefix={final}", *GMP_CONFIGURE],
            cwd=obj,
            env=genv,
            title=f"GMP {source.name}: configure --host={MINGW}",
        )
        ctx.console.run(["make", f"-j{os.cpu_count() or 2}"], cwd=obj, env=genv, title="GMP: make")
        dest = build / "dest"
        ctx.console.run(["make", "install", f"DESTDIR={dest}"], cwd=obj, env=genv, title="GMP: make install")
        staged = dest / final.relative_to(final.anchor)
        if final.exists():
            shutil.rmtree(final)  # an earlier attempt of ours without its marker
        os.replace(staged, final)
    (final / GMP_MARKER).write_text(
        json.dumps(
            {
                "source": str(source),
                "compiler": compiler,
                "configure": list(GMP_CONFIGURE),
                "seconds": round(time.monotonic() - start, 1),
            },
            indent=1,
        )
    )
    return final, True


# --------------------------------------------------------------------------
# the gmp-mpfr-sys probe compiler


def probe_cc_main(args: Sequence[str], target_cc: str, host_cc: str, prefix: str) -> int:
    """``$CC`` for gmp-mpfr-sys in a cross build.

    Compiles and links with the MinGW compiler against the MinGW GMP (so the
    header and import library are proven). gmp-mpfr-sys then *runs* the
    program it asked for to read gmp.h's settings; a Windows program cannot
    run here, so for ``-o X.exe`` with C sources the PE is kept as ``X.exe.pe``
    and ``X.exe`` is the same source built for the build machine from the same
    MinGW ``gmp.h`` (its values are preprocessor literals of that header).
    """
    inc, lib = [f"-I{prefix}/include"], [f"-L{prefix}/lib"]
    rc = subprocess.run([target_cc, *inc, *lib, *args], check=False).returncode
    if rc != 0:
        return rc
    out = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "-o"), None)
    if out is None or not out.endswith(".exe") or not any(a.endswith(".c") for a in args):
        return 0
    os.replace(out, f"{out}.pe")
    host_args = [a for a in args if not a.startswith("-l") and a != "-fPIC"]
    return subprocess.run([host_cc, "-D__declspec(x)=", *inc, *host_args], check=False).returncode


def write_probe_cc(work: Path, root: Path, prefix: Path, env: Mapping[str, str]) -> Path:
    script = work / "bin" / "mingw-probe-cc"
    script.parent.mkdir(parents=True, exist_ok=True)
    host_cc = _which("gcc", env) or "gcc"
    script.write_text(
        f"#!{sys.executable}\n"
        "# Written by ci/windows.py: $CC for gmp-mpfr-sys's probe (see probe_cc_main).\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from ci.blocks.mingw import probe_cc_main\n"
        f"sys.exit(probe_cc_main(sys.argv[1:], {MINGW + '-gcc'!r}, {host_cc!r}, {str(prefix)!r}))\n"
    )
    script.chmod(0o755)
    return script


# --------------------------------------------------------------------------
# environment and commands


def shim_dir(work: Path, route: RustRoute) -> Path:
    """A folder with cargo/rustc/rustdoc of ``route``, put first on PATH so that
    maturin and every build script use that toolchain (not rustup's proxies)."""
    shims = work / "toolchain-bin"
    shims.mkdir(parents=True, exist_ok=True)
    folder = Path(route.rustc).parent
    for name in ("cargo", "rustc", "rustdoc"):
        src = Path(route.cargo) if name == "cargo" else folder / name
        link = shims / name
        if link.is_symlink() or link.exists():
            link.unlink()
        if src.exists():
            link.symlink_to(src)
    return shims


def cargo_target_dir(work: Path, route: RustRoute) -> Path:
    """One cargo target folder per route: switching compilers never thrashes."""
    return work / f"cargo-{route.name}"


def build_env(ctx: Context, route: RustRoute, work: Path, gmp_prefix: Path | None) -> dict[str, str]:
    cfg = ctx.config
    target = cfg.windows_wheel.target
    extra = {"CARGO_TARGET_DIR": str(cargo_target_dir(work, route))}
    if not route.cross:
        return ctx.env(**extra)
    env = ctx.env(**extra)
    path = env.get("PATH", "")
    if route.name == "build-std":
        path = os.pathsep.join([str(shim_dir(work, route)), path])
        env["RUSTC_BOOTSTRAP"] = "1"
    env["PATH"] = path
    env["CARGO"] = route.cargo
    env["RUSTC"] = route.rustc
    env.pop("RUSTUP_TOOLCHAIN", None)
    t = target.upper().replace("-", "_")
    env[f"CARGO_TARGET_{t}_LINKER"] = f"{MINGW}-gcc"
    env[f"CC_{target.replace('-', '_')}"] = f"{MINGW}-gcc"
    env[f"AR_{target.replace('-', '_')}"] = f"{MINGW}-ar"
    # Host-side build scripts keep the host compiler; only gmp-mpfr-sys reads
    # the bare $CC.
    env["HOST_CC"] = _which("gcc", env) or "gcc"
    env[f"CC_{route.host.replace('-', '_')}"] = env["HOST_CC"]
    if gmp_prefix is not None:
        env["CC"] = str(write_probe_cc(work, cfg.root, gmp_prefix, env))
        # gmp-mpfr-sys asks pkg-config for the MinGW GMP's library folder.
        env["PKG_CONFIG_LIBDIR"] = str(gmp_prefix / "lib" / "pkgconfig")
        env["PKG_CONFIG_PATH"] = ""
        env["PKG_CONFIG_ALLOW_CROSS"] = "1"
        # gmp-mpfr-sys's build script reruns only when GMP_MPFR_SYS_CACHE
        # changes (it ignores $CC and pkg-config's variables); with
        # use-system-libs it never uses that folder, so naming it after the
        # GMP prefix makes a new MinGW GMP re-run the probe and re-link.
        env["GMP_MPFR_SYS_CACHE"] = str(work / "gmp-mpfr-sys-unused" / gmp_prefix.name)
    return env


def dll_search_dirs(route: RustRoute, gmp_prefix: Path | None, env: Mapping[str, str]) -> list[Path]:
    """Where delvewheel may find the DLLs to bundle."""
    dirs: list[Path] = []
    if gmp_prefix is not None:
        dirs.append(gmp_prefix / "bin")
    gcc = f"{MINGW}-gcc" if route.cross else "gcc"
    if route.cross:
        for name in ("libgcc_s_seh-1.dll", "libwinpthread-1.dll", "libstdc++-6.dll"):
            found = _output([gcc, f"-print-file-name={name}"], env)
            if found and Path(found.strip()).is_file():
                dirs.append(Path(found.strip()).resolve().parent)
    else:
        where = _which(gcc, env)
        if where:
            dirs.append(Path(where).parent)  # MSYS2: mingw64/bin holds libgmp-10.dll
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique
