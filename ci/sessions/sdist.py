"""The ``sdist`` session: ``maturin sdist`` into ``dist/``, proven complete.

The archive must hold Cargo.lock and every path dependency of the python
crate; then a wheel is built from the unpacked archive alone, from scratch
(empty target dir, a private CARGO_HOME with only the downloaded crates),
offline, with exactly the versions the repository's Cargo.lock pins
(:func:`ci.blocks.sdists.proven_wheel`), and that wheel is installed into a
fresh venv where the configured ``smoke`` code runs. Only then is the sdist
moved into ``dist/`` (atomically).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ci.blocks import maturin, provenance, toolchain, venvs
from ci.blocks.sdists import Proof, check_completeness, path_dependencies, proven_wheel, smoke_code
from ci.core import artifacts
from ci.core.context import Context
from ci.core.errors import CheckFailed


def run(ctx: Context) -> None:
    cfg = ctx.config
    if cfg.gmp == "system" or cfg.native:
        toolchain.require_native(cfg.native, ctx.env())
    work = cfg.work_dir("sdist")
    with artifacts.staging_dir(work, "sdist") as staging:
        sdist = maturin.build_sdist(ctx, staging)
        with ctx.console.step("check the sdist holds Cargo.lock and its path dependencies"):
            problems = check_completeness(cfg, sdist)
            if problems:
                raise CheckFailed("sdist is incomplete:\n  " + "\n  ".join(problems))
        with proven_wheel(ctx, sdist) as proof:
            imported = smoke(ctx, work, proof.wheel)
        final = artifacts.publish(sdist, cfg.dist_dir)
    tools = provenance.toolchain(ctx.env(), {"maturin": [maturin.maturin(ctx), "--version"], "rustc": ["rustc", "-V"]})
    provenance.record(cfg.report_dir("sdist"), "sdist", final, tools)
    rows = [*summary_rows(ctx, final, proof, imported), ("built with", provenance.summary(tools))]
    ctx.console.summary("sdist", rows)


def smoke(ctx: Context, work: Path, wheel: Path) -> str:
    """Install the sdist-built wheel into a fresh venv and run the smoke code."""
    python = venvs.ensure_venv(ctx, work / "smoke-venv", Path(sys.executable))
    venvs.install(
        ctx,
        python,
        [],
        wheel=wheel,
        distribution=ctx.config.distribution,
        title="install the sdist-built wheel into a fresh venv",
    )
    proc = ctx.console.run(
        [str(python), "-c", smoke_code(ctx.config)], cwd=work, env=ctx.env(), title="import it", capture=True
    )
    return proc.stdout.strip()


def summary_rows(ctx: Context, final: Path, proof: Proof, imported: str) -> list[tuple[str, str]]:
    left_out = ", ".join(proof.trimmed) or "nothing"
    return [
        ("sdist", str(final)),
        ("size", f"{final.stat().st_size / 1024:.0f} KiB"),
        ("complete", f"Cargo.lock + {len(path_dependencies(ctx.config))} path dependencies"),
        ("locked deps", f"{proof.packages} registry packages, each at the version Cargo.lock pins"),
        ("left out", f"{left_out} (workspace members the python crate does not need)"),
        ("proof", f"{proof.seconds:.1f}s from scratch: fresh target dir and CARGO_HOME, offline"),
        ("offline build", f"ok, imported as: {imported}"),
    ]
