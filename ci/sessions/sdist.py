"""The ``sdist`` session: ``maturin sdist`` into ``dist/``, proven complete
(Cargo.lock and every path dependency inside) by an offline build from the
unpacked archive and an import of the wheel built from it."""

from __future__ import annotations

import sys
from pathlib import Path

from ci.blocks import maturin, toolchain, venvs
from ci.blocks.sdists import build_from_sdist, check_completeness, path_dependencies, smoke_code
from ci.core import artifacts
from ci.core.context import Context
from ci.core.errors import CheckFailed


def run(ctx: Context) -> None:
    cfg = ctx.config
    toolchain.require_cargo(ctx.env())
    if cfg.gmp == "system" or cfg.native:
        toolchain.require_native(cfg.native, ctx.env())
    work = cfg.work_dir("sdist")
    with artifacts.staging_dir(work, "sdist") as staging:
        sdist = maturin.build_sdist(ctx, staging)
        with ctx.console.step("check the sdist holds Cargo.lock and its path dependencies"):
            problems = check_completeness(cfg, sdist)
            if problems:
                raise CheckFailed("sdist is incomplete:\n  " + "\n  ".join(problems))
        wheel = build_from_sdist(ctx, sdist)
        try:
            venv = work / "smoke-venv"
            python = venvs.ensure_venv(ctx, venv, Path(sys.executable))
            venvs.install(ctx, python, [], wheel=wheel, distribution=cfg.distribution,
                          title="install the sdist-built wheel into a fresh venv")
            proc = ctx.console.run([str(python), "-c", smoke_code(cfg)], cwd=work,
                                   env=ctx.env(), title="import it", capture=True)
        finally:
            wheel.unlink(missing_ok=True)
        final = artifacts.publish(sdist, cfg.dist_dir)
    ctx.console.summary("sdist", [
        ("sdist", str(final)),
        ("size", f"{final.stat().st_size / 1024:.0f} KiB"),
        ("complete", f"Cargo.lock + {len(path_dependencies(cfg))} path dependencies"),
        ("offline build", f"ok, imported as: {proc.stdout.strip()}"),
    ])
