"""The ``python-tests`` session: pytest against the extension on one CPython.

nox parametrises the session over ``tool.maturin-suite.python-versions``
(``nox -s python-tests -p 3.12`` picks one; a missing interpreter is skipped
with nox's own line, and is an error in CI or with
``--error-on-missing-interpreters``). The session venv of that Python is the
test venv. The extension is abi3, so one wheel serves every interpreter: it
is built once per nox run (``maturin build --profile dev``, no manylinux
repair: it never leaves the machine) and every selected Python installs that
same file. An unchanged wheel is not reinstalled.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ci.blocks import maturin, toolchain, venvs
from ci.core.artifacts import staging_dir
from ci.core.context import Context

SESSION = "python-tests"
# One build per nox process (one run): workspace -> wheel.
_BUILT: dict[Path, Path] = {}


def pytest_command(ctx: Context, python: Path, version: str) -> list[str]:
    work = ctx.config.work_dir(SESSION)
    junit = ctx.config.report_dir(SESSION) / f"junit-py{version}.xml"
    return [
        str(python),
        "-m",
        "pytest",
        str(ctx.config.python_tests),
        # Keep pytest's cache out of the source tree.
        "-o",
        f"cache_dir={work / 'pytest-cache'}",
        f"--junitxml={junit}",
        *ctx.posargs,
    ]


def test_wheel(ctx: Context) -> Path:
    """The dev wheel of this run, built on the first call."""
    workspace = ctx.config.workspace
    if workspace in _BUILT and _BUILT[workspace].is_file():
        ctx.console.say(f"--- reuse this run's wheel {_BUILT[workspace].name}")
        return _BUILT[workspace]
    work = ctx.config.work_dir(SESSION)
    wheel_dir = work / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    with staging_dir(work, "build") as staging:
        # abi3: any interpreter builds the same wheel. Always the one running
        # nox, so that `-p 3.12` after `-p 3.9` does not make pyo3's build
        # script (keyed on the interpreter) recompile the crate.
        built = maturin.build_wheel(
            # No manylinux repair, no compression (the dev .so is ~9 MB).
            ctx,
            staging,
            profile="dev",
            extra_args=["--auditwheel", "skip", "--compression-method", "stored", "--interpreter", sys.executable],
            env=ctx.env(PYO3_PYTHON=sys.executable),
            title="maturin build (dev profile, for testing)",
        )
        wheel = wheel_dir / built.name
        for old in wheel_dir.glob("*.whl"):
            old.unlink()
        built.replace(wheel)
    _BUILT[workspace] = wheel
    return wheel


def run(ctx: Context) -> None:
    cfg = ctx.config
    env = ctx.env()
    if cfg.gmp == "system" or cfg.native:
        with ctx.console.step("check native libraries"):
            toolchain.require_native(cfg.native, env)
    python = ctx.tool("python", hint="run through nox: the session venv holds the Python under test")
    version = toolchain.python_version(Path(python))
    wheel = test_wheel(ctx)
    cfg.report_dir(SESSION).mkdir(parents=True, exist_ok=True)
    installed = venvs.install(
        ctx,
        Path(python),
        venvs.test_requirements(ctx),
        wheel=wheel,
        distribution=cfg.distribution,
        title=f"install {wheel.name} into Python {version}",
    )
    ctx.console.run(
        pytest_command(ctx, Path(python), version),
        cwd=cfg.work_dir(SESSION),
        env=env,
        title=f"pytest on Python {version}",
        timeout=(cfg.timeouts.tests, "tool.maturin-suite.timeouts.tests"),
    )
    ctx.console.summary(
        f"{SESSION} (Python {version})",
        [
            ("Python", f"{version} ({python})"),
            ("wheel", f"{wheel}{'' if installed else ' (already installed, unchanged)'}"),
        ],
    )
