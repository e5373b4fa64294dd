"""The ``setup`` session: install what sessions need from this machine, as
``ci/requirements.toml`` declares it (the table and its probes are in
:mod:`ci.blocks.needs`).

``nox -s setup -- coverage lint`` reads the table for this platform (``linux``
or ``windows``) and this distribution (``/etc/os-release``: ``apt-on``
entries), probes what is installed and installs the rest:

* Debian/Ubuntu packages with ``apt-get install`` (as root, else with sudo;
  ``apt-get update`` first when the package lists are empty, and once more
  when the install fails);
* MSYS2 packages with ``pacman -S --needed``;
* the Rust toolchain of the wanted host, rustup components and targets with
  ``rustup``;
* cargo tools with ``cargo install --locked <tool>@<version>`` (what is on
  PATH, in ``$CARGO_HOME/bin`` or in the suite's tool cache at the right
  version is kept).

Interpreters are only checked (actions/setup-python or pyenv provide them).
Every need is printed as ``present``, ``installed`` or ``cannot`` with the
exact command; the session fails, naming them, when any is ``cannot``.
``-- --dry-run`` prints the commands a machine with none of it would run,
without probing or installing; ``-- --distro=ubuntu-24.04`` plans for another
distribution's apt. Session names may carry nox's Python suffix
(``python-tests-3.12``).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ci.blocks import needs
from ci.blocks.needs import Step, Want
from ci.core.context import Context
from ci.core.errors import ConfigError, SuiteError, ToolMissing

SESSION = "setup"
USAGE = "nox -s setup -- [--dry-run] [--distro=ID-VERSION] SESSION [SESSION...]"
# Variables of a session's build that must not reach `cargo install`.
NOT_FOR_CARGO_INSTALL = ("CARGO_TARGET_DIR", "RUSTFLAGS", "LLVM_PROFILE_FILE", "CARGO_BUILD_TARGET")


@dataclass(frozen=True)
class Args:
    sessions: tuple[str, ...]
    dry_run: bool = False
    distro: str | None = None


def parse_args(posargs: Sequence[str], declared: Sequence[str]) -> Args:
    sessions: list[str] = []
    dry_run, distro = False, None
    for arg in posargs:
        if arg == "--dry-run":
            dry_run = True
        elif arg.startswith("--distro="):
            distro = arg.split("=", 1)[1]
        elif arg.startswith("-"):
            raise ConfigError(f"setup: unknown option {arg!r}", hint=USAGE)
        else:
            sessions.append(arg)
    if not sessions:
        raise ConfigError(
            f"setup: name the sessions to set up ({USAGE})",
            hint=f"{needs.REQUIREMENTS_FILE} declares: {', '.join(sorted(declared))}",
        )
    return Args(tuple(dict.fromkeys(sessions)), dry_run, distro)


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


# --------------------------------------------------------------------------
# running the steps


def step_env(ctx: Context, step: Step) -> dict[str, str]:
    kind = step.wants[0].kind
    if kind == "apt":
        return ctx.env(DEBIAN_FRONTEND="noninteractive")
    env = ctx.env()
    if kind == "cargo-tool":
        for name in NOT_FOR_CARGO_INSTALL:
            env.pop(name, None)
    return env


def run_commands(ctx: Context, commands: Sequence[Sequence[str]], env: Mapping[str, str]) -> bool:
    """Run ``commands`` in order; False at the first that fails or cannot start."""
    for argv in commands:
        try:
            proc = ctx.console.run(argv, cwd=ctx.root, env=env, check=False)
        except SuiteError as e:  # the program is not installed
            ctx.console.say(e.message)
            return False
        if proc.returncode != 0:
            return False
    return True


def run_step(ctx: Context, step: Step) -> None:
    """One install step; apt gets ``apt-get update`` when its lists are empty,
    and once more (then a second try) when the install fails on stale lists."""
    if step.commands is None:
        return
    env = step_env(ctx, step)
    if step.wants[0].kind != "apt":
        run_commands(ctx, step.commands, env)
        return
    install = step.commands[0]
    update = (*install[: install.index("apt-get")], "apt-get", "update", "-qq")
    if needs.apt_lists_empty():
        run_commands(ctx, [update], env)
    if not run_commands(ctx, [install], env) and run_commands(ctx, [update], env):
        run_commands(ctx, [install], env)


Status = tuple[str, str]  # ("present" | "installed" | "cannot", command)


def provide(ctx: Context, items: Sequence[Want], cargo_install: Mapping[str, Sequence[str]]) -> dict[Want, Status]:
    """Probe ``items``, install the missing ones, probe again."""
    with ctx.console.step("probe what is installed"):
        have = needs.present(items, ctx.env())
    missing = [w for w in items if w not in have]
    steps = needs.install_steps(missing, ctx.env(), cargo_install)
    for step in steps:
        if step.runnable:
            with ctx.console.step(f"install {', '.join(str(w) for w in step.wants)}"):
                run_step(ctx, step)
    after: set[Want] = set()
    if missing:
        with ctx.console.step("probe again"):
            after = needs.present(missing, ctx.env())
    status: dict[Want, Status] = {w: ("present", "") for w in have}
    for step in steps:
        status.update({w: ("installed" if w in after else "cannot", step.shown) for w in step.wants})
    return status


# --------------------------------------------------------------------------
# the session


def dry_run(ctx: Context, items: Sequence[Want], cargo_install: Mapping[str, Sequence[str]]) -> int:
    """Print the commands a machine with none of ``items`` would run; their number."""
    steps = needs.install_steps(items, ctx.env(), cargo_install)
    lines = ["commands (dry run: nothing probed, nothing installed):"]
    count = 0
    for step in steps:
        if step.commands is None:
            lines.append(f"  # {', '.join(str(w) for w in step.wants)}: {step.shown}")
            continue
        if step.wants[0].kind == "apt":
            update = step.commands[0][: step.commands[0].index("apt-get")]
            lines.append(f"  $ {' '.join([*update, 'apt-get', 'update', '-qq'])}")
            count += 1
        lines += [f"  $ {shlex.join(c)}" for c in step.commands]
        count += len(step.commands)
    ctx.console.say("\n".join(lines))
    return count


def report(ctx: Context, items: Sequence[Want], status: Mapping[Want, Status]) -> list[Want]:
    """Print one row per need; the needs that could not be provided."""
    rows = [["need", "status", "command"]]
    rows += [[str(w), *status[w]] for w in items]
    ctx.console.say(table(rows))
    return [w for w in items if status[w][0] == "cannot"]


def run(ctx: Context) -> None:
    req = needs.load(ctx.root / needs.REQUIREMENTS_FILE, ctx.config.python_versions)
    args = parse_args(ctx.posargs, list(req.sessions))
    platform = needs.this_platform()
    distro = needs.this_distro() if args.distro is None else args.distro
    items = needs.wants(needs.combined(req, args.sessions, platform), platform, distro)
    ctx.console.say(
        f"set-up of {', '.join(args.sessions)} on {platform} ({distro or 'distribution unknown'}): "
        f"{len(items)} needs in {needs.REQUIREMENTS_FILE}"
    )
    rows = [("sessions", " ".join(args.sessions)), ("platform", f"{platform} {distro}".strip())]
    if args.dry_run:
        count = dry_run(ctx, items, req.cargo_install)
        ctx.console.summary(SESSION, [*rows, ("needs", str(len(items))), ("dry run", f"{count} commands")])
        return
    status = provide(ctx, items, req.cargo_install)
    cannot = report(ctx, items, status)
    counts = {s: sum(v[0] == s for v in status.values()) for s in ("present", "installed", "cannot")}
    ctx.console.summary(SESSION, [*rows, *((k, str(v)) for k, v in counts.items())])
    if cannot:
        raise ToolMissing(
            f"setup could not provide {len(cannot)} need(s): {', '.join(str(w) for w in cannot)}",
            hint="; ".join(f"{w}: {status[w][1]}" for w in cannot),
        )
