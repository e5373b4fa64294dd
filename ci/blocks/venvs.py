"""Test venvs, one per interpreter, owned by the session that made them.

uv is found as nox finds it: the ``uv`` package beside the interpreter running
nox (``nox[uv]``, however nox was installed: pip, venv, pipx, uv tool), then
PATH; without uv, the standard library's venv and pip. A venv remembers (in a marker file) the
hash of what was installed into it, so an unchanged wheel is not reinstalled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ci.core.config import read_toml
from ci.core.context import Context

MARKER = "suite-installed.json"


def find_uv(env: Mapping[str, str]) -> str | None:
    """uv's binary: the ``uv`` package installed beside nox first (nox[uv]
    puts it there, and its bin/ need not be on PATH), then PATH."""
    try:
        from uv import find_uv_bin
    except ImportError:
        pass
    else:
        try:
            return str(find_uv_bin())
        except FileNotFoundError:
            pass
    return shutil.which("uv", path=env.get("PATH"))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def wheel_fingerprint(wheel: Path) -> str:
    """A digest of a wheel's contents that ignores what changes on every build
    without changing the code: maturin's SBOM carries a random serial number
    (and RECORD lists the SBOM's hash). Uses each member's CRC, so nothing is
    decompressed."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            name = info.filename
            if "/sboms/" in name or name.endswith(".dist-info/RECORD"):
                continue
            h.update(f"{name}\0{info.CRC:08x}\0{info.file_size}\n".encode())
    return h.hexdigest()


def ensure_venv(ctx: Context, venv: Path, interpreter: Path) -> Path:
    """Create ``venv`` for ``interpreter`` unless it exists and still runs it."""
    python = venv_python(venv)
    cfg = venv / "pyvenv.cfg"
    if python.exists() and cfg.exists():
        home = next(
            (line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines() if line.startswith("home")), ""
        )
        if Path(home) == interpreter.parent or Path(home).resolve() == interpreter.resolve().parent:
            return python
        shutil.rmtree(venv)  # ours (made by this function), for another interpreter
    uv = find_uv(ctx.env())
    if uv:
        cmd = [uv, "venv", "--quiet", "--python", str(interpreter), str(venv)]
    else:
        cmd = [str(interpreter), "-m", "venv", str(venv)]
    ctx.console.run(cmd, cwd=ctx.root, env=ctx.env(), title=f"create venv {venv.name}")
    return python


def install(
    ctx: Context,
    python: Path,
    requirements: Sequence[str],
    *,
    wheel: Path | None = None,
    distribution: str | None = None,
    title: str = "install",
) -> bool:
    """Install ``requirements`` and (re)install ``wheel`` into the venv of
    ``python``, unless exactly the same set is there already (same names, same
    wheel bytes). Returns True when something was installed."""
    venv = python.parent.parent
    key = {"requirements": list(requirements), "wheel": wheel_fingerprint(wheel) if wheel else None}
    marker = venv / MARKER
    if marker.exists() and json.loads(marker.read_text()) == key:
        return False
    marker.unlink(missing_ok=True)
    env = ctx.env()
    uv = find_uv(env)
    if uv:
        # --no-config: the suite's own tool pins ([tool.uv] in the root
        # pyproject.toml) must not constrain the project's test venvs.
        cmd = [uv, "pip", "install", "--quiet", "--no-config", "--python", str(python), *requirements]
        if wheel is not None:
            cmd += ["--reinstall-package", distribution or wheel.name.split("-")[0], str(wheel)]
        ctx.console.run(cmd, cwd=ctx.root, env=env, title=title)
    else:
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if requirements:
            ctx.console.run([*pip, *requirements], cwd=ctx.root, env=env, title=title)
        if wheel is not None:
            ctx.console.run(
                [*pip, "--force-reinstall", "--no-deps", str(wheel)],
                cwd=ctx.root,
                env=env,
                title=f"{title}: {wheel.name}",
            )
    marker.write_text(json.dumps(key))
    return True


def test_requirements(ctx: Context) -> list[str]:
    """The python crate's ``[dependency-groups]`` test group, else pytest."""
    data = read_toml(ctx.config.python_pyproject)
    group = data.get("dependency-groups", {}).get(ctx.config.test_group)
    if not group:
        return ["pytest"]
    return [r for r in group if isinstance(r, str)]
