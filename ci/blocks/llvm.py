"""LLVM's coverage tools of rustc's LLVM major version: finding
llvm-profdata and llvm-cov (with install advice when they are missing), and
turning raw profiles into LCOV (``llvm-profdata merge``, then
``llvm-cov export -format=lcov`` over the instrumented objects)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.blocks import toolchain
from ci.blocks.tarpaulin import tool_version
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import ToolMissing


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
# Profiles into LCOV


def ignore_regex(env: Mapping[str, str], targets: Sequence[Path]) -> str:
    """llvm-cov's ``-ignore-filename-regex``: Rust's standard library, the
    cargo registry and git checkouts, the target dirs."""
    parts = [r"^/rustc/", r"/\.cargo/(registry|git)/"]
    cargo_home = env.get("CARGO_HOME")
    if cargo_home:
        parts += [re.escape(str(Path(cargo_home) / d)) + "/" for d in ("registry", "git")]
    parts += [re.escape(str(t)) + "/" for t in targets]
    return "|".join(parts)


def llvm_export_command(ctx: Context, cov_tool: str, profdata: Path, objects: Sequence[Path], ignore: str) -> list[str]:
    """``llvm-cov export -format=lcov`` of ``profdata`` over ``objects``, with ``llvm-cov-args``."""
    first, *rest = objects
    cmd = [
        cov_tool,
        "export",
        "-format=lcov",
        f"-instr-profile={profdata}",
        f"-ignore-filename-regex={ignore}",
        str(first),
    ]
    for obj in rest:
        cmd += ["-object", str(obj)]
    return [*cmd, *ctx.config.coverage.llvm_cov_args]


def profiles_lcov(
    ctx: Context,
    profdata_tool: str,
    cov_tool: str,
    raws: Sequence[Path],
    objects: Sequence[Path],
    work: Path,
    targets: Sequence[Path],
    name: str,
) -> str:
    """``llvm-profdata merge`` of ``raws``, then ``llvm-cov export`` over
    ``objects`` (sources under ``targets`` left out): LCOV text."""
    env = ctx.env()
    profdata = work / f"{name}.profdata"
    ctx.console.run(
        [profdata_tool, "merge", "-sparse", "-o", profdata, *raws],
        cwd=work,
        env=env,
        title=f"llvm-profdata merge ({len(raws)} {name} profiles)",
    )
    ignore = ignore_regex(env, targets)
    proc = ctx.console.run(
        llvm_export_command(ctx, cov_tool, profdata, objects, ignore),
        cwd=work,
        env=env,
        title=f"llvm-cov export ({name}: {', '.join(o.name for o in objects)})",
        capture=True,
    )
    for line in proc.stderr.splitlines():
        if line.strip():  # e.g. "N functions have mismatched data": a stale object
            ctx.console.warn(f"llvm-cov export ({name}): {line.strip()}")
    return proc.stdout
