"""The ``sdist`` session: ``maturin sdist``, then proof that it is complete.

The proof: the archive holds the workspace ``Cargo.lock`` and every path
dependency of the python crate, and a wheel builds from the unpacked sdist
alone, offline (``cargo --offline``, no index), in a folder outside the
checkout, and imports in a fresh venv with a small real computation. Only
then is the sdist moved into ``dist/`` (atomically).
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from ci.blocks import maturin
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.context import Context
from ci.core.project import load_project


def path_dependencies(cfg: SuiteConfig) -> list[Path]:
    """Crate folders the python crate reaches through path dependencies
    (cargo metadata, transitively), relative to the workspace root."""
    project = load_project(cfg.root)
    return [folder.relative_to(cfg.workspace) for folder in project.path_closure(project.python_crate)
            if folder.is_relative_to(cfg.workspace)]


def sdist_members(path: Path) -> list[PurePosixPath]:
    """Member paths without the leading ``name-version/`` folder."""
    with tarfile.open(path) as tar:
        return [PurePosixPath(*PurePosixPath(m.name).parts[1:]) for m in tar.getmembers()
                if len(PurePosixPath(m.name).parts) > 1]


def check_completeness(cfg: SuiteConfig, sdist: Path) -> list[str]:
    """Problems with the sdist's contents (empty when complete)."""
    members = set(sdist_members(sdist))
    problems = []
    if PurePosixPath("Cargo.lock") not in members:
        problems.append(f"{sdist.name}: no Cargo.lock at the top (cargo --locked cannot build it)")
    for dep in path_dependencies(cfg):
        manifest = PurePosixPath(*dep.parts) / "Cargo.toml"
        if manifest not in members:
            problems.append(f"{sdist.name}: path dependency {dep.as_posix()} is missing ({manifest})")
    return problems


def smoke_code(cfg: SuiteConfig) -> str:
    """The configured smoke test, or an import of the package."""
    if cfg.smoke:
        return cfg.smoke
    return (
        f"import {cfg.import_name} as m; "
        "print(m.__name__, getattr(m, '__version__', '?'))"
    )


def scratch_dir(cfg: SuiteConfig) -> Path:
    """A stable folder outside the checkout (so cargo can reuse its build there)."""
    tag = hashlib.sha256(str(cfg.root).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"maturin-suite-sdist-{tag}"


def build_from_sdist(ctx: Context, sdist: Path) -> Path:
    """Unpack ``sdist`` outside the checkout and build a wheel from it offline."""
    cfg = ctx.config
    scratch = scratch_dir(cfg)
    scratch.mkdir(parents=True, exist_ok=True)
    with artifacts.staging_dir(scratch, "unpacked") as unpacked, \
            artifacts.staging_dir(scratch, "wheel") as out:
        with tarfile.open(sdist) as tar:
            tar.extractall(unpacked, filter="data")
        (top,) = [p for p in unpacked.iterdir() if p.is_dir()]
        crate_rel = cfg.python_crate.relative_to(cfg.workspace)
        manifest = top / crate_rel / "Cargo.toml"
        if not manifest.is_file():
            manifest = top / "Cargo.toml"
        env = ctx.env(CARGO_NET_OFFLINE="true", CARGO_TARGET_DIR=str(scratch / "target"),
                      PIP_NO_INDEX="1", UV_OFFLINE="1")
        wheel = maturin.build_wheel(
            ctx, out, manifest=manifest, profile="dev",
            extra_args=["--auditwheel", "skip", "--locked"],
            env=env, title="build a wheel from the unpacked sdist (offline)",
        )
        kept = scratch / wheel.name
        wheel.replace(kept)
        return kept
