"""Finding the tools a session needs, with install advice when one is missing.

Every ``require_*`` function either returns what it found or raises
:class:`ToolMissing` with a message that says how to install the missing piece
on Debian/Ubuntu, in a manylinux (yum) image and in MSYS2.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ci.core import project
from ci.core.config import NativeLibrary
from ci.core.console import probe
from ci.core.errors import ToolMissing

CARGO_HINT = project.CARGO_HINT


suite_cache = project.suite_cache


def _which(name: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(name, path=env.get("PATH"))


def require_cargo(env: Mapping[str, str]) -> str:
    """Path of cargo, checked to run."""
    cargo = _which("cargo", env)
    if cargo is None:
        raise ToolMissing("cargo (the Rust toolchain) was not found on PATH", hint=project.CARGO_HINT)
    proc = probe([cargo, "--version"], env=env)
    if proc is None or proc.returncode != 0:
        detail = "did not start" if proc is None else f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
        raise ToolMissing(f"cargo at {cargo} does not run ({detail})", hint=project.CARGO_HINT)
    return cargo


def has_nextest(cargo: str, env: Mapping[str, str]) -> bool:
    """True when ``cargo nextest`` is installed."""
    # cargo runs ``cargo-<name>`` from PATH or $CARGO_HOME/bin: look there
    # instead of starting cargo (a rustup proxy) once more.
    home = env.get("CARGO_HOME") or str(Path.home() / ".cargo")
    path = os.pathsep.join([env.get("PATH", ""), str(Path(home) / "bin"), str(Path(cargo).parent)])
    return shutil.which("cargo-nextest", path=path) is not None


def install_advice(lib: NativeLibrary) -> str:
    parts = []
    if lib.debian:
        parts.append(f"Debian/Ubuntu: apt-get install {lib.debian}")
    if lib.yum:
        parts.append(f"manylinux/CentOS: yum install -y {lib.yum}")
    if lib.msys2:
        parts.append(f"MSYS2: pacman -S {lib.msys2}")
    return "; ".join(parts) or f"install the development files of {lib.name}"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    stage: str  # "compiler", "header", "library" or "ok"
    output: str


def probe_native(lib: NativeLibrary, env: Mapping[str, str]) -> ProbeResult:
    """Compile and link a one-line program against ``lib`` with the C compiler
    cargo's build scripts use (``$CC``, else cc/gcc)."""
    cc = env.get("CC") or _which("cc", env) or _which("gcc", env)
    if not cc or not (shutil.which(cc.split()[0], path=env.get("PATH")) or Path(cc.split()[0]).exists()):
        return ProbeResult(False, "compiler", "no C compiler (set CC, or install gcc)")
    with tempfile.TemporaryDirectory(prefix="suite-probe-") as tmp:
        src = Path(tmp, "probe.c")
        src.write_text(f"#include <{lib.header}>\nint main(void) {{ return 0; }}\n")
        flags = env.get("CFLAGS", "").split()
        compile_ = probe([*cc.split(), *flags, "-c", str(src), "-o", str(Path(tmp, "probe.o"))], env=env)
        if compile_ is None or compile_.returncode != 0:
            return ProbeResult(False, "header", compile_.stderr.strip() if compile_ else f"{cc} did not start")
        link = probe(
            [
                *cc.split(),
                str(Path(tmp, "probe.o")),
                *env.get("LDFLAGS", "").split(),
                f"-l{lib.link}",
                "-o",
                str(Path(tmp, "probe")),
            ],
            env=env,
        )
        if link is None or link.returncode != 0:
            return ProbeResult(False, "library", link.stderr.strip() if link else f"{cc} did not start")
    return ProbeResult(True, "ok", "")


def probe_key(lib: NativeLibrary, env: Mapping[str, str]) -> str:
    """What a native probe's verdict depends on: the library, the compiler
    (path and modification time) and the variables that steer it."""
    cc = (env.get("CC") or _which("cc", env) or _which("gcc", env) or "").split()
    exe = shutil.which(cc[0], path=env.get("PATH")) if cc else None
    stamp = Path(exe).stat().st_mtime_ns if exe else 0
    parts = [repr(lib), " ".join(cc), str(exe), str(stamp), *(env.get(k, "") for k in ("CFLAGS", "LDFLAGS", "PATH"))]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def require_native(libs: Sequence[NativeLibrary], env: Mapping[str, str], cache: Path | None = None) -> None:
    """Fail early, clearly, when a native library's header or library is missing.

    With ``cache`` (a folder of the session's), a library that compiled and
    linked with the same compiler and flags before is not probed again; a
    session whose build then fails calls this without ``cache`` to explain it.
    """
    for lib in libs:
        marker = cache / f"{probe_key(lib, env)}.ok" if cache else None
        if marker is not None and marker.is_file():
            continue
        result = probe_native(lib, env)
        if result.ok:
            if marker is not None:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(lib.name)
            continue
        if result.stage == "compiler":
            raise ToolMissing(
                f"no C compiler found to check for {lib.name}",
                hint="Debian/Ubuntu: apt-get install gcc; manylinux: present; MSYS2: pacman -S mingw-w64-x86_64-gcc",
            )
        what = f"header <{lib.header}>" if result.stage == "header" else f"library -l{lib.link}"
        detail = result.output.splitlines()[-1] if result.output else ""
        raise ToolMissing(
            f"{lib.name}: the {what} was not found ({detail})",
            hint=install_advice(lib),
        )


@dataclass(frozen=True)
class Interpreter:
    version: str  # "3.12"
    path: Path


_VERSION_PROBE = (
    "import platform, sys; "
    "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2], "
    "getattr(sys, '_base_executable', '') or sys.executable)"
)


def _probe_python(path: Path) -> tuple[str, Path] | None:
    """``("3.12", base interpreter)`` if ``path`` runs as CPython, else None.
    For a venv's python the base interpreter is returned, so test venvs are
    never layered on another venv."""
    proc = probe([str(path), "-c", _VERSION_PROBE], timeout=30)
    if proc is None:
        return None
    parts = proc.stdout.strip().split(" ", 2)
    if proc.returncode != 0 or len(parts) != 3 or parts[0] != "CPython":
        return None
    return parts[1], Path(parts[2])


def _candidates(version: str, env: Mapping[str, str]) -> list[Path]:
    found: list[Path] = []
    exe = "python.exe" if os.name == "nt" else f"python{version}"
    on_path = _which(f"python{version}", env)
    if on_path:
        found.append(Path(on_path))
    if Path(sys.executable).name and "{}.{}".format(*sys.version_info[:2]) == version:
        found.append(Path(sys.executable))
    pyenv_root = Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv")
    versions = pyenv_root / "versions"
    if versions.is_dir():

        def key(p: Path) -> tuple[int, ...]:
            return tuple(int(x) for x in re.findall(r"\d+", p.name))

        for d in sorted(versions.glob(f"{version}.*"), key=key, reverse=True):
            if re.fullmatch(rf"{re.escape(version)}\.\d+", d.name):
                found.append(d / "bin" / exe)
    return found


def find_interpreters(versions: Sequence[str], env: Mapping[str, str]) -> tuple[list[Interpreter], list[str]]:
    """CPython interpreters for each of ``versions``: (found, versions not found).

    Looks on PATH (``python3.X``), at the interpreter running the suite, and in
    pyenv's ``versions`` folder.
    """
    found: list[Interpreter] = []
    missing: list[str] = []
    for version in versions:
        for cand in _candidates(version, env):
            probed = _probe_python(cand) if cand.exists() else None
            if probed and probed[0] == version:
                found.append(Interpreter(version, probed[1] if probed[1].exists() else cand))
                break
        else:
            missing.append(version)
    return found, missing


def python_version(python: Path) -> str:
    """``"3.12"`` for a venv's interpreter: read from its ``pyvenv.cfg``
    (uv, virtualenv and venv all record it), else asked of the interpreter."""
    cfg = python.parent.parent / "pyvenv.cfg"
    if cfg.is_file():
        for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version") and value.strip():
                return ".".join(value.strip().split(".")[:2])
    probed = _probe_python(python)
    if probed is None:
        raise ToolMissing(f"{python} does not run as CPython")
    return probed[0]
