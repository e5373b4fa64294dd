"""The ``lint`` session: every static check of the repository, all run even
when one fails, then one line naming each that failed.

* ruff check and ruff format --check over the engine, tests and noxfile
  (rules in the root ``pyproject.toml``, ``[tool.ruff]``);
* mypy --strict over ``ci/`` (``[tool.mypy]``);
* cargo fmt --check and cargo clippy over the whole workspace, every target,
  warnings denied.
"""

from __future__ import annotations

from ci.blocks import toolchain
from ci.core.context import Context
from ci.core.errors import StepFailed

SESSION = "lint"
PYTHON_PATHS = ("ci", "tests", "bench", "noxfile.py")


def checks(ctx: Context, cargo: str) -> list[tuple[str, list[str]]]:
    """(name, command) of every check, in the order they run."""
    ruff = ctx.tool("ruff", hint="ruff comes from the 'lint' dependency group (run through nox)")
    mypy = ctx.tool("mypy", hint="mypy comes from the 'lint' dependency group (run through nox)")
    manifest = str(ctx.config.workspace / "Cargo.toml")
    return [
        ("ruff check", [ruff, "check", "--no-fix", *PYTHON_PATHS]),
        ("ruff format --check", [ruff, "format", "--check", "--diff", *PYTHON_PATHS]),
        ("mypy --strict ci/", [mypy]),
        ("cargo fmt --check", [cargo, "fmt", "--all", "--check", "--manifest-path", manifest]),
        (
            "cargo clippy -D warnings",
            [
                cargo,
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--manifest-path",
                manifest,
                "--",
                "-D",
                "warnings",
            ],
        ),
    ]


def run(ctx: Context) -> None:
    env = ctx.env()
    cargo = ctx.project.cargo  # the model ran cargo metadata with it: it runs
    if ctx.config.gmp == "system" or ctx.config.native:
        toolchain.require_native(ctx.config.native, env)
    rows: list[tuple[str, str]] = []
    failed: list[str] = []
    for name, argv in checks(ctx, cargo):
        proc = ctx.console.run(argv, cwd=ctx.root, env=env, title=name, check=False)
        rows.append((name, "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"))
        if proc.returncode != 0:
            failed.append(name)
    ctx.console.summary(SESSION, rows)
    if failed:
        raise StepFailed(f"lint failed: {', '.join(failed)}", 1, hint="ruff format . / cargo fmt --all fix formatting")
