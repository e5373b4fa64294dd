"""The sdist proof, shared by the ``sdist`` and ``publish-check`` sessions.

The proof: the archive holds the workspace ``Cargo.lock`` and every path
dependency of the python crate, and a wheel builds from the unpacked sdist
alone, as pip would build it (``maturin build`` in the sdist's top folder):

* from scratch, every time: in a fresh folder under the system temp dir
  (outside the checkout, removed afterwards) with an empty cargo target dir
  and a private ``CARGO_HOME`` that holds only links to the registry index
  and the downloaded ``.crate`` files, never compiled artifacts, so no
  earlier build can stand in for the sdist's own sources;
* offline (``--offline``, ``CARGO_NET_OFFLINE``, no package index);
* with the versions the repository locks. maturin trims the workspace in the
  sdist (members the python crate does not need are left out), so the full
  ``Cargo.lock`` names members that are gone and ``--locked`` would refuse
  it for no real reason. The sdist's dependencies are resolved offline
  instead (``cargo metadata``, which keeps the locked versions and drops the
  unused entries) and every registry package of the result must be exactly
  one the repository's ``Cargo.lock`` pins; anything else fails naming the
  package and both versions.

A build that fails because the sdist lacks a file (rustc's ``couldn't read``
from ``include_str!``/``include_bytes!``) fails with one line naming the
file, the source line that reads it, and how to get it into the sdist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import tomllib
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci.blocks import maturin
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.context import Context
from ci.core.errors import CheckFailed
from ci.core.project import load_project

TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError)
# Variables that would let a cache or another build stand in for the proof's.
NOT_PASSED_ON = (
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
)
COULDNT_READ = re.compile(r"^error: couldn't read `(?P<path>[^`]+)`: No such file or directory")
LOCATION = re.compile(r"^\s*--> (?P<file>.+?):(?P<line>\d+):(?P<col>\d+)\s*$")
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
FETCH_HINT = "download the locked crates once with `cargo fetch` in the workspace; the proof itself runs offline"

# (name, version, source) of one Cargo.lock entry; source is "" for path crates.
LockKey = tuple[str, str, str]


@dataclass(frozen=True)
class Proof:
    """A wheel built from an unpacked sdist, and what the proof checked."""

    wheel: Path
    packages: int  # registry packages found at the repository's locked versions
    trimmed: tuple[str, ...]  # workspace members maturin left out of the sdist
    seconds: float


def path_dependencies(cfg: SuiteConfig) -> list[Path]:
    """Crate folders the python crate reaches through path dependencies
    (cargo metadata, transitively), relative to the workspace root."""
    project = load_project(cfg.root)
    return [
        folder.relative_to(cfg.workspace)
        for folder in project.path_closure(project.python_crate)
        if folder.is_relative_to(cfg.workspace)
    ]


def sdist_members(path: Path) -> list[PurePosixPath]:
    """Member paths without the leading ``name-version/`` folder."""
    try:
        with tarfile.open(path) as tar:
            names = tar.getnames()
    except TAR_ERRORS as e:
        raise CheckFailed(f"{path.name}: not a readable sdist: {e}") from None
    return [PurePosixPath(*PurePosixPath(n).parts[1:]) for n in names if len(PurePosixPath(n).parts) > 1]


def check_completeness(cfg: SuiteConfig, sdist: Path) -> list[str]:
    """Problems with the sdist's contents (empty when complete)."""
    members = set(sdist_members(sdist))
    problems = []
    if PurePosixPath("Cargo.lock") not in members:
        problems.append(f"{sdist.name}: no Cargo.lock at the top (the locked versions cannot be proven)")
    for dep in path_dependencies(cfg):
        manifest = PurePosixPath(*dep.parts) / "Cargo.toml"
        if manifest not in members:
            problems.append(f"{sdist.name}: path dependency {dep.as_posix()} is missing ({manifest})")
    return problems


def smoke_code(cfg: SuiteConfig) -> str:
    """The configured smoke test, or an import of the package."""
    if cfg.smoke:
        return cfg.smoke
    return f"import {cfg.import_name} as m; print(m.__name__, getattr(m, '__version__', '?'))"


# ------------------------------------------------------------ unpacking


def unpack(sdist: Path, dest: Path) -> Path:
    """Extract ``sdist`` into ``dest`` (tarfile's ``data`` filter: no member
    may leave ``dest`` or be a device); returns its one top folder."""
    try:
        with tarfile.open(sdist) as tar:
            tar.extractall(dest, filter="data")
    except TAR_ERRORS as e:
        raise CheckFailed(f"{sdist.name}: cannot be unpacked safely: {e}") from None
    tops = [p for p in dest.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "pyproject.toml").is_file():
        raise CheckFailed(
            f"{sdist.name}: expected one top folder holding pyproject.toml, "
            f"found {', '.join(sorted(p.name for p in dest.iterdir())) or 'nothing'}"
        )
    return tops[0].resolve()


def sdist_manifest(top: Path) -> Path:
    """The Cargo.toml maturin builds: ``[tool.maturin] manifest-path`` of the
    sdist's pyproject.toml, else the top ``Cargo.toml``."""
    try:
        data = tomllib.loads((top / "pyproject.toml").read_text(encoding="utf-8"))
        rel = str(data.get("tool", {}).get("maturin", {}).get("manifest-path", "Cargo.toml"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError) as e:
        raise CheckFailed(f"the sdist's pyproject.toml cannot be read: {e}") from None
    manifest = (top / rel).resolve()
    if not manifest.is_relative_to(top) or not manifest.is_file():
        raise CheckFailed(f"the sdist's pyproject.toml names manifest-path {rel!r}, which is not a file inside it")
    return manifest


# ------------------------------------------------------------ private cargo


def real_cargo_home(env: Mapping[str, str]) -> Path:
    if env.get("CARGO_HOME"):
        return Path(env["CARGO_HOME"])
    return Path(env.get("HOME") or Path.home()) / ".cargo"


def private_cargo_home(scratch: Path, env: Mapping[str, str]) -> Path:
    """A new ``CARGO_HOME`` whose registry index and ``.crate`` cache are links
    to the user's (downloaded crates are reused); nothing else: no extracted
    or compiled crates, no config, no installed tools."""
    home = scratch / "cargo-home"
    (home / "registry").mkdir(parents=True)
    for part in ("index", "cache"):
        shared = real_cargo_home(env) / "registry" / part
        if shared.is_dir():
            (home / "registry" / part).symlink_to(shared.resolve(), target_is_directory=True)
    return home


def proof_env(ctx: Context, scratch: Path, home: Path) -> dict[str, str]:
    env = ctx.env(
        CARGO_HOME=str(home),
        CARGO_TARGET_DIR=str(scratch / "target"),
        CARGO_NET_OFFLINE="true",
        PIP_NO_INDEX="1",
        UV_OFFLINE="1",
    )
    for name in NOT_PASSED_ON:
        env.pop(name, None)
    return env


def first_error(text: str) -> str:
    """The first ``error`` line of cargo/rustc/maturin output, with the source
    location that follows it (or the last line when there is none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("error") and not line.startswith("error: could not compile"):
            loc = next((m for m in map(LOCATION.match, lines[i + 1 : i + 4]) if m), None)
            return f"{line.strip()} (at {loc['file']}:{loc['line']})" if loc else line.strip()
    return lines[-1].strip() if lines else "(no output)"


def resolve_offline(ctx: Context, top: Path, env: Mapping[str, str]) -> Path:
    """``cargo metadata --offline`` in the unpacked sdist (no ``--locked``):
    cargo keeps the versions its Cargo.lock pins, drops the entries of members
    the sdist left out, and writes the lock. Returns the workspace root."""
    argv = [
        ctx.project.cargo,
        "metadata",
        "--format-version",
        "1",
        "--offline",
        "--manifest-path",
        str(sdist_manifest(top)),
    ]
    proc = ctx.console.run(
        argv,
        cwd=top,
        env=env,
        capture=True,
        check=False,
        title="resolve the sdist's dependencies offline (cargo metadata, no --locked)",
    )
    if proc.returncode != 0:
        ctx.console.say(proc.stderr)
        not_fetched = any(s in proc.stderr for s in ("offline mode", "failed to download", "no matching package"))
        raise CheckFailed(
            f"cargo cannot resolve the sdist's dependencies offline: {first_error(proc.stderr)}",
            hint=FETCH_HINT if not_fetched else None,
        )
    return Path(json.loads(proc.stdout)["workspace_root"]).resolve()


# ------------------------------------------------------------ locked versions


def read_lock(path: Path) -> dict[LockKey, str]:
    """``{(name, version, source): checksum}`` of every package in a Cargo.lock."""
    try:
        packages = tomllib.loads(path.read_text(encoding="utf-8")).get("package", [])
        return {
            (str(p["name"]), str(p["version"]), str(p.get("source", ""))): str(p.get("checksum", "")) for p in packages
        }
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as e:
        raise CheckFailed(f"cannot read {path} as a Cargo.lock: {e!r}") from None


def lock_problems(repo: Mapping[LockKey, str], sdist: Mapping[LockKey, str]) -> list[str]:
    """Each registry (or git) package the sdist resolves that the repository's
    lock does not pin exactly, named with both versions."""
    problems = []
    for (name, version, source), checksum in sorted(sdist.items()):
        if not source:
            continue  # a crate of the workspace itself
        key = (name, version, source)
        if key in repo:
            if checksum and repo[key] and checksum != repo[key]:
                problems.append(f"{name} {version} has checksum {checksum}, the repository's Cargo.lock {repo[key]}")
            continue
        locked = sorted(v for (n, v, s) in repo if n == name and s == source)
        if locked:
            problems.append(
                f"{name} resolves to {version} in the sdist, the repository's Cargo.lock pins {' and '.join(locked)}"
            )
        else:
            origin = "" if source == CRATES_IO else f" ({source})"
            problems.append(f"{name} {version}{origin} is not in the repository's Cargo.lock")
    return problems


def check_locked_versions(cfg: SuiteConfig, sdist_lock: Path) -> tuple[int, tuple[str, ...]]:
    """Compare the sdist's resolved lock with the repository's; returns the
    number of registry packages checked and the members the sdist left out."""
    repo_lock = cfg.workspace / "Cargo.lock"
    if not repo_lock.is_file():
        raise CheckFailed(
            f"the repository has no Cargo.lock ({repo_lock}): the sdist's versions cannot be proven",
            hint="run `cargo generate-lockfile` in the workspace and commit Cargo.lock",
        )
    repo, sdist = read_lock(repo_lock), read_lock(sdist_lock)
    problems = lock_problems(repo, sdist)
    if problems:
        raise CheckFailed("the sdist does not build with the versions Cargo.lock pins: " + "; ".join(problems))
    members = {name for (name, _v, source) in sdist if not source}
    trimmed = sorted({name for (name, _v, source) in repo if not source} - members)
    return sum(1 for (_n, _v, source) in sdist if source), tuple(trimmed)


# ------------------------------------------------------------ missing files


def tree_path(path: str, top: Path, root: Path) -> str | None:
    """``path`` as rustc printed it (relative to the workspace root it ran
    in, or absolute), relative to the sdist's top folder; None outside it."""
    full = Path(os.path.normpath(root / path))
    return full.relative_to(top).as_posix() if full.is_relative_to(top) else None


def missing_files(text: str, top: Path, root: Path) -> list[tuple[str, str]]:
    """``(file, "source:line")`` for each file rustc could not read because it
    is not in the unpacked sdist (include_str!, include_bytes!, include!)."""
    lines = text.splitlines()
    found: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        wanted = COULDNT_READ.match(line)
        loc = next((m for m in map(LOCATION.match, lines[i + 1 : i + 4]) if m), None) if wanted else None
        if not wanted or not loc:
            continue
        file, source = tree_path(wanted["path"], top, root), tree_path(loc["file"], top, root)
        if file and source and (file, f"{source}:{loc['line']}") not in found:
            found.append((file, f"{source}:{loc['line']}"))
    return found


def reading_crate(cfg: SuiteConfig, source: str) -> str:
    """The workspace folder of the crate whose source file ``source`` is."""
    project = load_project(cfg.root)
    folders = [
        c.folder.relative_to(cfg.workspace).as_posix()
        for c in project.members
        if c.folder.is_relative_to(cfg.workspace)
    ]
    inside = [f for f in folders if f == "." or source.startswith(f + "/")]
    return max(inside, key=len, default=".")


def include_advice(cfg: SuiteConfig, file: str, source: str) -> str:
    """One sentence: the sdist lacks ``file``, ``source`` reads it, and how to
    get it in. maturin (1.16) takes ``tool.maturin.include`` paths relative to
    the python crate's pyproject.toml (no ``..``) and puts the files at the
    sdist's top, which is the workspace root: so ``include`` can carry a
    workspace file only when that pyproject.toml is at the workspace root.
    Files inside a crate's folder come with the crate (``cargo package``)
    unless its Cargo.toml leaves them out."""
    crate = reading_crate(cfg, source.rsplit(":", 1)[0])
    py_dir = cfg.python_crate.relative_to(cfg.workspace).as_posix()
    head = f"the sdist lacks {file}, which {source} reads"
    if not (cfg.workspace / file).exists():
        head += " (it is not in the repository either)"
    if crate != "." and file.startswith(f"{crate}/"):
        return f"{head}: {crate}/Cargo.toml keeps it out of the crate's package (package.include/exclude): let it in"
    move = (
        f"move the file into the crate that reads it ({crate}/) and adjust the path"
        if crate != "."
        else "let it into the crate's package in Cargo.toml (package.include/exclude)"
    )
    if py_dir == ".":
        return (
            f'{head}: add include = [{{ path = "{file}", format = "sdist" }}] to [tool.maturin] '
            f"in pyproject.toml, or {move}"
        )
    return (
        f"{head}: {move}; tool.maturin.include in {py_dir}/pyproject.toml cannot carry it "
        f"(maturin takes those paths from under {py_dir}/ and puts them at the sdist's top)"
    )


def build_failure(cfg: SuiteConfig, text: str, top: Path, root: Path) -> CheckFailed:
    missing = missing_files(text, top, root)
    if missing:
        return CheckFailed("; ".join(include_advice(cfg, file, source) for file, source in missing))
    return CheckFailed(f"the wheel does not build from the unpacked sdist: {first_error(text)}")


# ------------------------------------------------------------ the proof


def build_offline(ctx: Context, top: Path, root: Path, out: Path, env: Mapping[str, str]) -> Path:
    """``maturin build`` in the sdist's top folder (as pip would), into ``out``."""
    out.mkdir()
    argv = [maturin.maturin(ctx), "build", "--profile", "dev", "--out", str(out), "--auditwheel", "skip"]
    proc = ctx.console.run(
        argv,
        cwd=top,
        env=env,
        capture=True,
        check=False,
        title="build a wheel from the unpacked sdist (offline, empty target dir and CARGO_HOME)",
    )
    text = (proc.stdout or "") + (proc.stderr or "")
    ctx.console.say(text.rstrip())
    if proc.returncode != 0:
        raise build_failure(ctx.config, text, top, root)
    return maturin.only_file(out, "*.whl", "wheel")


@contextmanager
def proven_wheel(ctx: Context, sdist: Path) -> Iterator[Proof]:
    """Build a wheel from ``sdist`` from scratch (see the module docstring);
    the wheel and every folder of the build are removed afterwards."""
    start = time.monotonic()
    with artifacts.staging_dir(Path(tempfile.gettempdir()), "maturin-suite-sdist-proof") as scratch:
        top = unpack(sdist, scratch / "unpacked")
        env = proof_env(ctx, scratch, private_cargo_home(scratch, ctx.env()))
        root = resolve_offline(ctx, top, env)
        packages, trimmed = check_locked_versions(ctx.config, root / "Cargo.lock")
        wheel = build_offline(ctx, top, root, scratch / "wheel", env)
        check_locked_versions(ctx.config, root / "Cargo.lock")  # the build kept them
        yield Proof(wheel, packages, trimmed, time.monotonic() - start)


def build_from_sdist(ctx: Context, sdist: Path) -> Path:
    """The proof for callers that want only the wheel: it is moved to the
    ``sdist-proof`` work folder, and the caller removes it."""
    keep = ctx.config.work_dir("sdist-proof")
    keep.mkdir(parents=True, exist_ok=True)
    with proven_wheel(ctx, sdist) as proof:
        kept = keep / proof.wheel.name
        shutil.move(proof.wheel, kept)
    return kept
