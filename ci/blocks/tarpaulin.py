"""cargo-tarpaulin: the pinned version found on PATH or in the suite's tool
cache (installed there when absent), the RUSTFLAGS it instruments with, and
the LLVM profiles its test binaries leave behind."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.blocks import toolchain
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import ConfigError, ToolMissing

# The default, and what tarpaulin prints for ``--print-rust-flags`` with the
# llvm engine; the real flags are asked from tarpaulin at run time.
INSTRUMENT_FLAGS = "-Cdebuginfo=2 -Cstrip=none --cfg=tarpaulin -Cinstrument-coverage"

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
        cargo_exe,
        "install",
        "--locked",
        f"cargo-tarpaulin@{version}",
        "--no-default-features",
        "--root",
        str(root),
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
        install_command(cargo_exe, version, root),
        cwd=ctx.root,
        env=install_env,
        title=f"install cargo-tarpaulin {version} into {root}",
        hint=hint,
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
        cwd=ctx.config.workspace,
        env=ctx.env(),
        title="tarpaulin --print-rust-flags",
        capture=True,
    )
    m = re.search(r'RUSTFLAGS="([^"]*)"', proc.stdout + proc.stderr)
    flags = m.group(1) if m else ""
    return flags if "instrument-coverage" in flags else f"{flags} {INSTRUMENT_FLAGS}".strip()


# --------------------------------------------------------------------------
# Its profiles: which test binary wrote each

# tarpaulin names each test binary's profile after the binary:
# <target>/tarpaulin/profraws/<binary>_<module signature>_<pool>-<pid>.profraw
PROFRAW_NAME = re.compile(r"^(.+)_\d+_\d+-\d+\.profraw$")
# Where cargo puts test binaries below a target dir (profile dirs, with or without --target).
BINARY_DIRS = ("*/deps", "*/*/deps", "*/examples", "*/*/examples", "*", "*/*")


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
