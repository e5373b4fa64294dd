"""Building wheels and sdists with maturin (shared by every packaging session)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.core.context import Context
from ci.core.errors import SuiteError

MATURIN_HINT = "maturin comes from the session's venv (dependency group 'build'); run through nox"


def maturin(ctx: Context) -> str:
    return ctx.tool("maturin", hint=MATURIN_HINT)


def only_file(folder: Path, pattern: str, what: str) -> Path:
    """The one file matching ``pattern`` that a build wrote into ``folder``."""
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "nothing"
        raise SuiteError(f"expected exactly one {what} in {folder}, found {names}")
    return found[0]


def build_wheel(
    ctx: Context,
    out_dir: Path,
    *,
    manifest: Path | None = None,
    profile: str = "release",
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    title: str = "maturin build",
) -> Path:
    """``maturin build`` into the (empty, session-owned) ``out_dir``; returns the wheel."""
    cmd = [
        maturin(ctx),
        "build",
        "--manifest-path",
        str(manifest or ctx.config.python_manifest),
        "--profile",
        profile,
        "--out",
        str(out_dir),
        *extra_args,
    ]
    ctx.console.run(cmd, cwd=ctx.config.workspace, env=env or ctx.env(), title=title)
    return only_file(out_dir, "*.whl", "wheel")


def build_sdist(ctx: Context, out_dir: Path) -> Path:
    cmd = [maturin(ctx), "sdist", "--manifest-path", str(ctx.config.python_manifest), "--out", str(out_dir)]
    ctx.console.run(cmd, cwd=ctx.config.workspace, env=ctx.env(), title="maturin sdist")
    return only_file(out_dir, "*.tar.gz", "sdist")
