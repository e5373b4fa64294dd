"""The ``rust-tests`` session: the whole cargo workspace, ``--locked``.

The PyO3 extension crate is left out of ``cargo test`` by design: it is a
``cdylib`` built to be loaded by Python, so it deliberately does not link
libpython. Its behaviour is tested from Python by ``python-tests``; the Rust
logic lives in the other crates, which this session tests in full.
"""

from __future__ import annotations

from ci.blocks import toolchain
from ci.blocks.cargo import NEXTEST_PROFILE, junit_counts, python_crate_name, target_dir, test_command
from ci.core import artifacts
from ci.core.context import Context


def run(ctx: Context) -> None:
    env = ctx.env()
    cargo = toolchain.require_cargo(env)
    if ctx.config.gmp == "system" or ctx.config.native:
        with ctx.console.step("check native libraries"):
            toolchain.require_native(ctx.config.native, env)
    nextest = toolchain.has_nextest(cargo, env)
    report_dir = ctx.config.report_dir("rust-tests")
    rows = [("runner", "cargo-nextest" if nextest else "cargo test (cargo-nextest not installed)")]
    try:
        ctx.console.run(
            test_command(ctx, cargo, nextest),
            cwd=ctx.config.workspace,
            env=env,
            title="cargo nextest run" if nextest else "cargo test",
        )
    finally:
        junit = target_dir(ctx) / "nextest" / NEXTEST_PROFILE / "junit.xml"
        if nextest and junit.is_file():
            published = artifacts.publish(junit, report_dir)
            tests, failed, skipped = junit_counts(published)
            rows.append(("tests", f"{tests} run, {failed} failed, {skipped} skipped"))
            rows.append(("junit", str(published.relative_to(ctx.root)
                                      if published.is_relative_to(ctx.root) else published)))
        rows.append(("excluded", f"{python_crate_name(ctx)} (extension module; tested by python-tests)"))
        ctx.console.summary("rust-tests", rows)

