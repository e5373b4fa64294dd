"""The ``adopt`` session: ``nox -s adopt -- PATH [--force]`` writes this suite
into the maturin workspace at PATH.

It writes ``noxfile.py`` (without the suite's own ``self`` sessions), the whole
``ci/`` package and ``.github/workflows/``, and adds to PATH's root
``pyproject.toml`` (created if missing) only the tables it lacks: a
``[tool.maturin-suite]`` table derived from ``cargo metadata`` and the Python
crate's ``pyproject.toml`` (one printed line per setting, with its reason),
the dependency groups the sessions install, and ``[tool.uv]
constraint-dependencies``. It refuses, before writing anything, to overwrite
a file it did not write (or one edited since it wrote it) unless ``--force``;
files it wrote earlier and nobody changed are updated in place: re-running
adopt from a newer suite is the upgrade. ``.maturin-suite-adopted.json`` in
PATH records the hash of every file it wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.blocks import adoption
from ci.core.config import PREFIX, TABLE, read_toml
from ci.core.context import Context
from ci.core.errors import ConfigError

SESSION = "adopt"
USAGE = "usage: nox -s adopt -- PATH [--force]"


def parse_args(posargs: Sequence[str], source: Path) -> tuple[Path, bool]:
    """(the workspace to adopt into, --force)."""
    flags = [a for a in posargs if a.startswith("-")]
    paths = [a for a in posargs if not a.startswith("-")]
    unknown = [f for f in flags if f != "--force"]
    if unknown or len(paths) != 1:
        why = (
            f"unknown option {unknown[0]}"
            if unknown
            else ("no PATH given" if not paths else f"{len(paths)} paths given")
        )
        raise ConfigError(f"adopt: {why}", hint=USAGE)
    dest = Path(paths[0]).expanduser().absolute().resolve()
    if not dest.is_dir():
        raise ConfigError(f"adopt: {dest} is not a folder", hint=USAGE)
    if dest == source.resolve():
        raise ConfigError(f"adopt: {dest} is the suite's own checkout", hint="name another workspace")
    return dest, "--force" in flags


def decide(ctx: Context, dest: Path) -> tuple[str | None, adoption.Derived | None]:
    """The ``[tool.maturin-suite]`` text to add (None: PATH has one, kept)."""
    pyproject = dest / "pyproject.toml"
    existing = read_toml(pyproject) if pyproject.exists() else {}
    if TABLE in existing.get("tool", {}):
        ctx.console.say(f"  [{PREFIX}] exists in {pyproject}: kept as it is (not derived again)")
        return None, None
    with ctx.console.step(f"read the cargo workspace at {dest}"):
        ws = adoption.read_workspace(dest, ctx.env())
    derived = adoption.derive(ws, ctx.env())
    ctx.console.say(f"decided ({len(derived.settings)} settings):")
    for setting in derived.settings:
        ctx.console.say(f"  {setting.line()}")
    for note in derived.notes:
        ctx.console.say(f"  note: {note}")
    source = f"cargo metadata and {adoption.rel(ws.python.folder / 'pyproject.toml', dest)}"
    return adoption.suite_table(derived, source), derived


def refuse(dest: Path, plan: adoption.FilePlan) -> None:
    conflicts = plan.with_action("conflict")
    if not conflicts:
        return
    shown = ", ".join(f"{a.path} ({a.reason})" for a in conflicts[:8])
    more = f" and {len(conflicts) - 8} more" if len(conflicts) > 8 else ""
    raise ConfigError(
        f"adopt: refusing to overwrite {len(conflicts)} file(s) in {dest}: {shown}{more}",
        hint=f"move them away, or re-run with '-- {dest} --force' to overwrite them (their content is lost)",
    )


def write(
    dest: Path,
    files: Mapping[str, adoption.SuiteFile],
    plan: adoption.FilePlan,
    manifest: Mapping[str, Sequence[str]],
    merge: adoption.Merge,
) -> None:
    """Manifest first (an interrupted run leaves only files it recognises), then files, then pyproject."""
    adoption.write_manifest(dest, files, manifest, merge.added)
    for action in plan.actions:
        if action.action in ("new", "update", "overwrite"):
            f = files[action.path]
            adoption.write_file(dest / action.path, f.data, f.mode)
        elif action.action == "remove":
            (dest / action.path).unlink()
    if merge.added:
        pyproject = dest / "pyproject.toml"
        mode = pyproject.stat().st_mode & 0o777 if pyproject.exists() else 0o644
        adoption.write_file(pyproject, merge.text.encode("utf-8"), mode)


def folder_counts(paths: Sequence[str]) -> str:
    """``noxfile.py, ci/ (44 files), .github/workflows/ (2 files)``."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        if path.startswith(".github/"):
            folder = path.rsplit("/", 1)[0] + "/"
        else:
            folder = path.split("/", 1)[0] + "/" if "/" in path else path
        groups.setdefault(folder, []).append(path)
    return ", ".join(", ".join(v) if len(v) <= 3 else f"{k} ({len(v)} files)" for k, v in groups.items())


def report(ctx: Context, dest: Path, plan: adoption.FilePlan, merge: adoption.Merge) -> None:
    for name in ("new", "unchanged"):
        paths = [a.path for a in plan.with_action(name)]
        if paths:
            ctx.console.say(f"  {name:<9} {folder_counts(paths)}")
    for action in plan.with_action("update", "overwrite", "remove", "keep"):
        ctx.console.say(f"  {action.action:<9} {action.path}{f' ({action.reason})' if action.reason else ''}")
    for note in merge.notes:
        ctx.console.say(f"  note: {note}")
    counts = {name: len(plan.with_action(name)) for name in ("new", "update", "overwrite", "unchanged", "remove")}
    ctx.console.summary(
        SESSION,
        [
            ("workspace", str(dest)),
            ("files", ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none"),
            ("pyproject.toml", "added " + ", ".join(f"[{t}]" for t in merge.added) if merge.added else "unchanged"),
            ("manifest", adoption.MANIFEST),
            ("next", f"cd {dest} && nox -s doctor  (then review [{PREFIX}] and .github/workflows)"),
        ],
    )


def renames(ctx: Context, merge: adoption.Merge) -> dict[str, str]:
    """The suite's PyPI page in the workflows becomes the adopting project's."""
    ours = ctx.config.distribution
    theirs = adoption.distribution_of(merge.config) if merge.config is not None else ""
    return {adoption.pypi_page(ours): adoption.pypi_page(theirs)} if ours and theirs else {}


def run(ctx: Context) -> None:
    dest, force = parse_args(ctx.posargs, ctx.root)
    suite, _ = decide(ctx, dest)
    groups, pins = adoption.source_tables(ctx.root)
    merge = adoption.merge_pyproject(dest / "pyproject.toml", suite, groups, pins)
    files = adoption.suite_files(ctx.root, renames(ctx, merge))
    manifest = adoption.read_manifest(dest)
    plan = adoption.plan_files(dest, files, manifest, force)
    refuse(dest, plan)
    write(dest, files, plan, manifest, merge)
    report(ctx, dest, plan, merge)
