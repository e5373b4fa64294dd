"""The windows-gnu-wheel session (ci/sessions/windows_gnu_wheel.py, ci/blocks/mingw.py): set-up detection, the
MinGW GMP cache, the gmp-mpfr-sys probe compiler, and the session end to end
(wheel in dist/, checks, Rust tests under wine)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import assert_clean_failure, run_nox

from ci.blocks import mingw as windows
from ci.blocks import pe as dll
from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import ConfigError, ToolMissing
from ci.core.findings import failures
from ci.sessions import windows_gnu_wheel as session

ROOT = Path(__file__).resolve().parents[1]
TARGET = "x86_64-pc-windows-gnu"
HAS_MINGW = bool(shutil.which("x86_64-w64-mingw32-gcc"))


def context(env: dict[str, str], posargs: tuple[str, ...] = ()) -> Context:
    return Context(
        config=load_config(ROOT), console=Console(stream=io.StringIO()), posargs=posargs, tool_bin=None, base_env=env
    )


def test_unknown_argument_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--frobnicate"):
        session.parse_args(context(dict(os.environ), ("--frobnicate",)))
    assert session.parse_args(context(dict(os.environ), ("--setup", "--skip-wine"))) == {"--setup", "--skip-wine"}


def test_route_choice_comes_from_posargs_or_config() -> None:
    ctx = context(dict(os.environ), ("--route=build-std",))
    assert session.route_choice(ctx, session.parse_args(ctx)) == "build-std"
    ctx = context(dict(os.environ))
    assert session.route_choice(ctx, set()) == ctx.config.windows_wheel.rust_route == "auto"
    with pytest.raises(ConfigError, match="--route must be one of"):
        session.route_choice(ctx, {"--route=msvc"})


def test_missing_tools_name_the_exact_install_commands(tmp_path: Path) -> None:
    """With nothing on PATH the session stops before building and says what
    to install on Debian/Ubuntu and in MSYS2 (no --setup: nothing is installed)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path)}
    with pytest.raises(ToolMissing) as e:
        windows.ensure_setup(context(env), TARGET, need_gmp_build=True, want_wine=False)
    text = str(e.value)
    assert "x86_64-w64-mingw32-gcc" in e.value.message
    assert "apt-get update && apt-get install -y --no-install-recommends" in text
    for package in ("gcc-mingw-w64-x86-64-win32", "binutils-mingw-w64-x86-64", "m4", "pkg-config"):
        assert package in text
    assert "pacman -S --needed" in text and "mingw-w64-x86_64-gmp" in text
    assert "-- --setup" in text


@pytest.mark.parametrize(
    "missing",
    [
        [windows.Missing("a Rust", windows.APT_RUST, ("mingw-w64-x86_64-rust",))],
        [windows.Missing("gcc", msys2=("mingw-w64-x86_64-gcc",))],
        [],
    ],
)
def test_msys2_hint_names_every_package_whatever_is_missing(missing: list[windows.Missing]) -> None:
    """The hint must not depend on which pieces this machine happened to lack."""
    hint = windows.setup_hint(missing, wine=False)
    assert f"pacman -S --needed {' '.join(sorted(windows.MSYS2_PACKAGES))}" in hint


def fake_rust(folder: Path, host: str, sysroot: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "rustc").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-vV" ]; then printf "rustc 1.99.0\\nhost: {host}\\nrelease: 1.99.0\\n"; '
        f"else echo {sysroot}; fi\n"
    )
    (folder / "cargo").write_text("#!/bin/sh\necho cargo 1.99.0\n")
    for name in ("rustc", "cargo"):
        (folder / name).chmod(0o755)


def test_route_prefers_a_prebuilt_std_over_build_std(tmp_path: Path) -> None:
    sysroot = tmp_path / "sysroot"
    (sysroot / "lib" / "rustlib" / TARGET / "lib").mkdir(parents=True)
    fake_rust(tmp_path / "bin", "x86_64-unknown-linux-gnu", sysroot)
    route = windows.find_rust_route(TARGET, {"PATH": str(tmp_path / "bin")})
    assert route is not None and route.name == "prebuilt-std" and not route.build_std
    assert route.rustc == str(tmp_path / "bin" / "rustc")


def test_a_named_route_is_taken_or_none(tmp_path: Path) -> None:
    sysroot = tmp_path / "sysroot"
    (sysroot / "lib" / "rustlib" / TARGET / "lib").mkdir(parents=True)
    fake_rust(tmp_path / "bin", "x86_64-unknown-linux-gnu", sysroot)
    env = {"PATH": str(tmp_path / "bin")}
    assert windows.find_rust_route(TARGET, env, "native") is None
    assert windows.find_rust_route(TARGET, env, "prebuilt-std").rustc == str(tmp_path / "bin" / "rustc")
    debian = windows.find_rust_route(TARGET, env, "build-std")
    if Path("/usr/lib/rustlib/src/rust/library/std/Cargo.toml").is_file():
        assert debian is not None and debian.rustc == "/usr/bin/rustc" and debian.build_std
    else:
        assert debian is None


def test_route_is_native_when_the_host_is_the_target(tmp_path: Path) -> None:
    fake_rust(tmp_path / "bin", TARGET, tmp_path / "sysroot")
    route = windows.find_rust_route(TARGET, {"PATH": str(tmp_path / "bin")})
    assert route is not None and route.name == "native" and not route.cross


@pytest.mark.skipif(
    not Path("/usr/lib/rustlib/src/rust/library/std").is_dir(), reason="needs Debian's rustc-web + rust-web-src"
)
def test_debian_rustc_web_gives_the_build_std_route() -> None:
    """Debian's rustc-web carries its std source: the build-std route, which
    auto takes only when no rustup target (prebuilt std) is installed."""
    env = dict(os.environ)
    route = windows.find_rust_route(TARGET, env, "build-std")
    assert route is not None and route.rustc == "/usr/bin/rustc" and route.cargo == "/usr/bin/cargo"
    assert windows.BUILD_STD in session.cargo_flags(load_config(ROOT), route)
    best = windows.find_rust_route(TARGET, env)
    assert best is not None
    assert best.name == ("prebuilt-std" if windows.find_rust_route(TARGET, env, "prebuilt-std") else "build-std")


def test_gmp_cache_key_follows_version_compiler_and_flags(tmp_path: Path) -> None:
    src = tmp_path / "gmp-mpfr-sys-1.5.3" / "gmp-6.2.1-c"
    key = windows.gmp_cache_key(src, "gcc 12", windows.GMP_CONFIGURE)
    assert key.startswith("gmp-6.2.1-x86_64-w64-mingw32-")
    assert key == windows.gmp_cache_key(src, "gcc 12", windows.GMP_CONFIGURE)
    assert key != windows.gmp_cache_key(src, "gcc 13", windows.GMP_CONFIGURE)
    assert key != windows.gmp_cache_key(src, "gcc 12", ("--enable-fat",))


# gmp-mpfr-sys 1.5's probe program (build.rs, SYSTEM_GMP_C), in short.
PROBE_C = r"""
#include <gmp.h>
#include <stdio.h>
#define STRINGIFY(x) #x
#define DEFINE_STR(x) ("#define " #x " " STRINGIFY(x) "\n")
int main(void) {
    FILE *f = fopen("system_gmp.out", "w");
#ifdef _LONG_LONG_LIMB
    fputs(DEFINE_STR(_LONG_LONG_LIMB), f);
#else
    fputs("#undef _LONG_LONG_LIMB\n", f);
#endif
    fputs(DEFINE_STR(__GNU_MP_VERSION), f);
    fputs(DEFINE_STR(GMP_LIMB_BITS), f);
    fputs(DEFINE_STR(__GMP_CC), f);
    fclose(f);
    return 0;
}
"""


@pytest.fixture(scope="module")
def mingw_gmp() -> Path:
    """The cached MinGW GMP (built from the gmp-mpfr-sys crate when missing)."""
    if not HAS_MINGW:
        pytest.skip("needs MinGW-w64 (nox -s windows-gnu-wheel -- --setup)")
    ctx = context(dict(os.environ))
    route = windows.find_rust_route(TARGET, ctx.env())
    if route is None:
        pytest.skip("no Rust for the windows-gnu target")
    prefix, _ = windows.ensure_mingw_gmp(ctx, route, ctx.env())
    again, built = windows.ensure_mingw_gmp(ctx, route, ctx.env())
    assert again == prefix and not built  # the second call reuses the cache
    return prefix


@pytest.mark.slow
def test_mingw_gmp_is_a_dll_with_only_system_imports(mingw_gmp: Path) -> None:
    data = (mingw_gmp / "bin" / "libgmp-10.dll").read_bytes()
    pe = dll.read_pe("libgmp-10.dll", data)
    assert pe.machine == 0x8664
    system = dll.system_dlls(pe.machine)
    assert pe.imports and all(i.lower() in system for i in pe.imports), pe.imports
    assert (mingw_gmp / "lib" / "libgmp.dll.a").is_file()
    assert (mingw_gmp / windows.GMP_MARKER).is_file()


@pytest.mark.slow
def test_probe_compiler_links_for_windows_and_runs_here(mingw_gmp: Path, tmp_path: Path) -> None:
    """As gmp-mpfr-sys calls $CC: the MinGW program is kept (linked against
    libgmp-10.dll), and the host copy reports the MinGW gmp.h's settings."""
    (tmp_path / "system_gmp.c").write_text(PROBE_C)

    def probe_cc(prefix: Path) -> int:
        return subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(ROOT)!r}); from ci.blocks.mingw import probe_cc_main; "
                f"sys.exit(probe_cc_main(sys.argv[1:], 'x86_64-w64-mingw32-gcc', 'gcc', {str(prefix)!r}))",
                "-fPIC",
                "system_gmp.c",
                "-lgmp",
                "-o",
                "system_gmp.exe",
            ],
            cwd=tmp_path,
            check=False,
            capture_output=True,
        ).returncode

    # Without the MinGW GMP (the host's gmp.h does not count) it fails.
    assert probe_cc(tmp_path / "no-gmp-here") != 0
    assert probe_cc(mingw_gmp) == 0
    pe = dll.read_pe("system_gmp.exe.pe", (tmp_path / "system_gmp.exe.pe").read_bytes())
    assert pe.machine == 0x8664
    subprocess.run([str(tmp_path / "system_gmp.exe")], cwd=tmp_path, check=True)
    out = (tmp_path / "system_gmp.out").read_text()
    # Windows is LLP64: a 64-bit limb is an unsigned long long there.
    assert "#define _LONG_LONG_LIMB 1" in out
    assert "#define GMP_LIMB_BITS 64" in out
    assert '#define __GMP_CC "x86_64-w64-mingw32-gcc"' in out


@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/usr/lib/rustlib/src/rust/library/std").is_dir(), reason="needs Debian's rustc-web + rust-web-src"
)
def test_session_build_std_route_with_debian_rustc_web(windows_ws: Path) -> None:
    """The route for machines where rustup has no windows-gnu std: Debian's
    rustc 1.96 builds std (-Zbuild-std) and every host build script too."""
    proc = run_nox(windows_ws, "-s", "windows-gnu-wheel", "--", "--route=build-std", "--skip-wine")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"route\s+build-std: rustc 1\.\d+\.\d+ \(/usr/bin/rustc\)", out), out[-2000:]
    assert "-Zbuild-std=std,panic_unwind" in out
    cfg = load_config(windows_ws)
    (wheel,) = cfg.dist_dir.glob("q_kangaroo-*-cp39-abi3-win_amd64.whl")
    assert not failures(dll.windows_wheel_findings(wheel, cfg))


@pytest.mark.slow
def test_session_builds_checks_and_runs_the_rust_tests_under_wine(windows_ws: Path) -> None:
    """``nox -s windows-gnu-wheel``: the wheel lands in dist/ with libgmp-10.dll
    bundled and passes ci.blocks.pe; the Rust tests run under wine (when installed)."""
    proc = run_nox(windows_ws, "-s", "windows-gnu-wheel")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    cfg = load_config(windows_ws)
    (wheel,) = cfg.dist_dir.glob("q_kangaroo-*-cp39-abi3-win_amd64.whl")
    assert not failures(dll.windows_wheel_findings(wheel, cfg))
    with zipfile.ZipFile(wheel) as z:
        names = [dll.original_name(n.split("/")[-1]) for n in z.namelist() if n.endswith(".dll")]
        assert not any(n.startswith(".partial-") for n in os.listdir(cfg.dist_dir))
    assert "libgmp-10.dll" in names
    assert re.search(r"MinGW GMP\s+(built|reused)", out)
    if shutil.which("wine"):
        m = re.search(r"Rust tests under wine\s+(\d+) passed, (\d+) failed in (\d+) binaries", out)
        assert m, out[-3000:]
        assert int(m[1]) > 0 and m[2] == "0"
    else:
        assert "SKIPPED: wine not installed" in out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wine") is None, reason="needs wine to run the Rust tests for Windows")
def test_a_wheel_whose_windows_tests_fail_never_reaches_dist(windows_ws: Path) -> None:
    """Order: the staged wheel is tested under wine first; dist/ gets it only
    when the tests pass (a failing Rust test leaves dist/ without it)."""
    cfg = load_config(windows_ws)
    for old in cfg.dist_dir.glob("*-win_amd64.whl"):
        old.unlink()
    lib = windows_ws / "crates" / "qsym-core" / "src" / "lib.rs"
    source = lib.read_text()
    lib.write_text(
        source + "\n#[cfg(test)]\nmod broken {\n    #[test]\n    fn fails_on_windows() {\n"
        "        assert_eq!(1 + 1, 3);\n    }\n}\n"
    )
    try:
        proc = run_nox(windows_ws, "-s", "windows-gnu-wheel")
    finally:
        lib.write_text(source)
    text = assert_clean_failure(proc, "Rust tests failed under wine")
    assert list(cfg.dist_dir.glob("*-win_amd64.whl")) == [], text[-2000:]


@pytest.fixture(scope="module")
def session_tools(windows_ws: Path) -> Path:
    """The session's own venv (wheel, delvewheel, ...), as nox installs it."""
    assert run_nox(windows_ws, "-s", "windows-gnu-wheel", "--install-only").returncode == 0
    return windows_ws / ".nox" / "windows-gnu-wheel" / "bin"


LIBGCC = Path("/usr/lib/gcc/x86_64-w64-mingw32/12-win32/libgcc_s_seh-1.dll")


@pytest.mark.slow
@pytest.mark.skipif(not LIBGCC.is_file(), reason="needs gcc-mingw-w64-x86-64-win32 (libgcc_s_seh-1.dll)")
def test_finish_wheel_adds_the_licences_of_bundled_mingw_runtimes(session_tools: Path, tmp_path: Path) -> None:
    """A wheel that bundles libgcc_s_seh-1.dll gets the GCC runtime exception
    and GPL texts (windows-wheel.licenses) in .dist-info/licenses/, listed in
    METADATA and RECORD; delvewheel's DELVEWHEEL note is dropped."""
    info = "q_kangaroo-0.3.0.dist-info"
    libgcc = "q_kangaroo.libs/libgcc_s_seh-1-0123456789abcdef0123456789abcdef.dll"
    src = tmp_path / "in" / "q_kangaroo-0.3.0-cp39-abi3-win_amd64.whl"
    src.parent.mkdir()
    content = {
        "q_kangaroo/__init__.py": b"",
        libgcc: LIBGCC.read_bytes(),
        f"{info}/METADATA": b"Metadata-Version: 2.4\nName: q-kangaroo\nVersion: 0.3.0\n\nReadme.\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp39-abi3-win_amd64\n",
        f"{info}/DELVEWHEEL": b"Version: 1.13.2\n",
    }
    with zipfile.ZipFile(src, "w") as z:
        record = []
        for name, data in content.items():
            z.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}\n")
        z.writestr(f"{info}/RECORD", "".join(record) + f"{info}/RECORD,,\n")
    cfg = load_config(ROOT)
    ctx = Context(config=cfg, console=Console(stream=io.StringIO()), tool_bin=session_tools, base_env=dict(os.environ))
    files = session.licence_files_for(cfg, [libgcc.split("/")[-1]])
    assert {f.name for f in files} == {"GCC-RUNTIME-LIBRARY-EXCEPTION-3.1.txt", "GCC-GPL-3.0.txt"}
    out = session.finish_wheel(ctx, src, files, tmp_path / "out")
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        metadata = z.read(f"{info}/METADATA").decode()
        record = z.read(f"{info}/RECORD").decode()
        members = {n: z.read(n) for n in names}
    assert f"{info}/DELVEWHEEL" not in names
    for f in files:
        rel = f"licenses/windows/{f.name}"
        assert members[f"{info}/licenses/{rel}"] == f.read_bytes()
        assert f"License-File: {rel}" in metadata
        assert f"{info}/licenses/{rel},sha256=" in record
    assert metadata.rstrip().endswith("Readme.")
    assert dll.license_problems(members, [libgcc], cfg) == []
    # ... and without them the rule names what is missing.
    assert dll.license_problems({libgcc: b""}, [libgcc], cfg)
