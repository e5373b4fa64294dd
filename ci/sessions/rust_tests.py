"""The ``rust-tests`` session: the whole cargo workspace, ``--locked``.

The PyO3 extension crate is left out of ``cargo test`` by design: it is a
``cdylib`` built to be loaded by Python, so it deliberately does not link
libpython. Its behaviour is tested from Python by ``python-tests``; the Rust
logic lives in the other crates, which this session tests in full.

cargo-nextest does not run doctests, so ``cargo test --doc`` follows (when the
workspace has a library crate), also after failing tests; its counts are a
row of their own in the summary and ``reports/rust-tests/doctests.xml``. Any
failure (tests or doctests) fails the session once the summary is printed.
"""

from __future__ import annotations

import time
from pathlib import Path

from ci.blocks import toolchain
from ci.blocks.cargo import (
    NEXTEST_PROFILE,
    DoctestRun,
    doctest_crates,
    junit_counts,
    python_crate_name,
    run_doctests,
    target_dir,
    test_command,
    write_doctest_junit,
)
from ci.core import artifacts
from ci.core.context import Context
from ci.core.errors import StepFailed


def shown(ctx: Context, path: Path) -> str:
    return str(path.relative_to(ctx.root) if path.is_relative_to(ctx.root) else path)


def nextest_rows(ctx: Context, nextest: bool, started: float) -> list[tuple[str, str]]:
    """The summary rows of nextest's JUnit report (published into reports/),
    when this run wrote one: a report older than the run (an earlier run's,
    e.g. under a shared CARGO_TARGET_DIR) is never reported as this run's."""
    junit = target_dir(ctx) / "nextest" / NEXTEST_PROFILE / "junit.xml"
    if not (nextest and junit.is_file()):
        return []
    if junit.stat().st_mtime < started:
        return [("junit", f"none from this run (ignored {junit}, written before it started)")]
    published = artifacts.publish(junit, ctx.config.report_dir("rust-tests"))
    tests, failed, skipped = junit_counts(published)
    return [("tests", f"{tests} run, {failed} failed, {skipped} skipped"), ("junit", shown(ctx, published))]


def doctest_rows(ctx: Context, run: DoctestRun | None, libraries: bool) -> list[tuple[str, str]]:
    """The doctests' summary rows; their JUnit report is written here."""
    if not libraries:
        return [("doctests", "none (no library crate besides the extension)")]
    if run is None:
        return [("doctests", "not run")]
    junit = write_doctest_junit(run, ctx.config.report_dir("rust-tests"))
    outcome = run.summary() if run.failed or not run.error else f"{run.summary()}; {run.error}"
    return [("doctests", outcome), ("doctests junit", shown(ctx, junit))]


def run_tests(ctx: Context, cargo: str, nextest: bool) -> StepFailed | None:
    """The workspace's tests (not the doctests): the failure, returned, not raised."""
    try:
        ctx.console.run(
            test_command(ctx, cargo, nextest),
            cwd=ctx.config.workspace,
            env=ctx.env(),
            title="cargo nextest run" if nextest else "cargo test",
            timeout=(ctx.config.timeouts.tests, "tool.maturin-suite.timeouts.tests"),
        )
    except StepFailed as e:
        return e
    return None


def check_native(ctx: Context, *, cached: bool) -> None:
    """The configured C libraries compile and link (a verdict that held for
    this compiler and these flags before is reused when ``cached``)."""
    if ctx.config.gmp == "system" or ctx.config.native:
        cache = ctx.project.work_dir("native-probes") if cached else None
        with ctx.console.step("check native libraries"):
            toolchain.require_native(ctx.config.native, ctx.env(), cache)


def forget_earlier_reports(ctx: Context) -> None:
    """This session's reports in reports/rust-tests/ are only ever this run's."""
    for name in ("junit.xml", "doctests.xml"):
        (ctx.config.report_dir("rust-tests") / name).unlink(missing_ok=True)


def run(ctx: Context) -> None:
    env = ctx.env()
    cargo = ctx.project.cargo
    started = time.time() - 1.0  # file times have coarse resolution on some filesystems
    forget_earlier_reports(ctx)
    check_native(ctx, cached=True)
    nextest = toolchain.has_nextest(cargo, env)
    rows = [("runner", "cargo-nextest" if nextest else "cargo test (cargo-nextest not installed)")]
    libraries = bool(doctest_crates(ctx))
    failure: StepFailed | None = None
    doctests: DoctestRun | None = None
    try:
        failure = run_tests(ctx, cargo, nextest)
        if libraries:
            doctests = run_doctests(ctx, cargo, env)
    finally:
        rows += nextest_rows(ctx, nextest, started)
        rows += doctest_rows(ctx, doctests, libraries)
        rows.append(("excluded", f"{python_crate_name(ctx)} (extension module; tested by python-tests)"))
        ctx.console.summary("rust-tests", rows)
    if failure is not None:
        check_native(ctx, cached=False)  # a library gone since: say so, not cargo's error
    raise_failures(failure, doctests)


def raise_failures(failure: StepFailed | None, doctests: DoctestRun | None) -> None:
    """One error for the failed tests and the failed doctests together."""
    doctest_error = doctests.error if doctests else None
    if failure is None and doctest_error is None:
        return
    messages = [m for m in (failure.message if failure else None, doctest_error) if m]
    returncode = failure.returncode if failure else (doctests.returncode if doctests else 0)
    raise StepFailed("; ".join(messages), returncode or 1, hint=failure.hint if failure else None)
