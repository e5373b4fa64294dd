"""The ``python-tests`` session: build the extension once, test it on every
allowed CPython on the machine.

The extension is abi3, so one wheel serves every interpreter: it is built once
(``maturin build --profile dev``, no manylinux repair: this wheel never leaves
the machine) into the session's work folder, then installed into one venv per
interpreter, and pytest runs there. A re-run with no source change reuses
cargo's incremental build, the venvs and, when the wheel's bytes did not
change, the installation.
"""

from __future__ import annotations

from pathlib import Path

from ci import maturin, toolchain, venvs
from ci.artifacts import staging_dir
from ci.config import read_toml
from ci.context import Context
from ci.errors import ConfigError, StepFailed


def test_requirements(ctx: Context) -> list[str]:
    """The python crate's ``[dependency-groups]`` test group, else pytest."""
    data = read_toml(ctx.config.python_pyproject)
    group = data.get("dependency-groups", {}).get(ctx.config.test_group)
    if not group:
        return ["pytest"]
    return [r for r in group if isinstance(r, str)]


def pytest_command(ctx: Context, python: Path, version: str) -> list[str]:
    work = ctx.config.work_dir("python-tests")
    junit = ctx.config.report_dir("python-tests") / f"junit-py{version}.xml"
    return [
        str(python), "-m", "pytest", str(ctx.config.python_tests),
        # Keep pytest's cache out of the source tree.
        "-o", f"cache_dir={work / 'pytest-cache'}",
        f"--junitxml={junit}",
        *ctx.posargs,
    ]


PYTHONS_ENV = "MATURIN_SUITE_PYTHONS"


def selected_versions(ctx: Context) -> tuple[str, ...]:
    """The configured versions, narrowed by ``MATURIN_SUITE_PYTHONS=3.11,3.12``
    (for a quicker local loop on one interpreter)."""
    wanted = ctx.base_env.get(PYTHONS_ENV, "").strip()
    if not wanted:
        return ctx.config.python_versions
    chosen = tuple(v.strip() for v in wanted.split(",") if v.strip())
    unknown = [v for v in chosen if v not in ctx.config.python_versions]
    if unknown or not chosen:
        raise ConfigError(
            f"{PYTHONS_ENV}={wanted!r} names versions outside "
            f"tool.maturin-suite.python-versions ({', '.join(ctx.config.python_versions)})"
        )
    return chosen


def run_python_tests(ctx: Context) -> None:
    cfg = ctx.config
    env = ctx.env()
    toolchain.require_cargo(env)
    interpreters, missing = toolchain.require_interpreters(selected_versions(ctx), env)
    if cfg.gmp == "system" or cfg.native:
        with ctx.console.step("check native libraries"):
            toolchain.require_native(cfg.native, env)
    work = cfg.work_dir("python-tests")
    wheel_dir = work / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with staging_dir(work, "build") as staging:
        built = maturin.build_wheel(
            # Never leaves the machine: no manylinux repair, and no
            # compression (the dev build's .so is ~9 MB with debug info).
            ctx, staging, profile="dev",
            extra_args=["--auditwheel", "skip", "--compression-method", "stored"],
            title="maturin build (dev profile, for testing)",
        )
        wheel = wheel_dir / built.name
        for old in wheel_dir.glob("*.whl"):
            old.unlink()
        built.replace(wheel)
    cfg.report_dir("python-tests").mkdir(parents=True, exist_ok=True)
    requirements = test_requirements(ctx)
    results: list[tuple[str, str]] = []
    failures: list[str] = []
    for interp in interpreters:
        venv = work / f"venv-{interp.version}"
        python = venvs.ensure_venv(ctx, venv, interp.path)
        installed = venvs.install(
            ctx, python, requirements, wheel=wheel, distribution=cfg.distribution,
            title=f"install {wheel.name} into Python {interp.version}",
        )
        try:
            ctx.console.run(
                pytest_command(ctx, python, interp.version),
                cwd=work,
                env=env,
                title=f"pytest on Python {interp.version}",
            )
            results.append((f"Python {interp.version}", f"passed ({interp.path}{'' if installed else ', no reinstall'})"))
        except StepFailed as e:
            results.append((f"Python {interp.version}", f"FAILED (exit {e.returncode})"))
            failures.append(interp.version)
    for version in missing:
        results.append((f"Python {version}", "skipped: no interpreter found"))
    results.append(("wheel", str(wheel)))
    ctx.console.summary("python-tests", results)
    if failures:
        raise StepFailed(f"pytest failed on Python {', '.join(failures)}", 1)

