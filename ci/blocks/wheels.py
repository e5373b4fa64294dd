"""Reading built wheels: members, tags, ELF dynamic sections, bundled libraries.

Shared by ``linux-wheel`` (a self-check before a wheel is published into
``dist/``) and ``publish-check`` (the release gate). ELF files are read with
pyelftools (a dependency of auditwheel), wheel names with ``packaging``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ci.core.errors import CheckFailed

ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class ElfDynamic:
    """What the dynamic loader reads from one ELF file."""

    needed: tuple[str, ...]
    rpath: tuple[str, ...]  # DT_RPATH and DT_RUNPATH entries, in order
    soname: str | None


def elf_dynamic(data: bytes) -> ElfDynamic:
    """DT_NEEDED, DT_RPATH/DT_RUNPATH and DT_SONAME of an ELF image."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    needed: list[str] = []
    rpath: list[str] = []
    soname: str | None = None
    try:
        elf = ELFFile(io.BytesIO(data))
        for section in elf.iter_sections():
            if not isinstance(section, DynamicSection):
                continue
            for tag in section.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(tag.needed)  # type: ignore[attr-defined]
                elif tag.entry.d_tag == "DT_RPATH":
                    rpath += tag.rpath.split(":")  # type: ignore[attr-defined]
                elif tag.entry.d_tag == "DT_RUNPATH":
                    rpath += tag.runpath.split(":")  # type: ignore[attr-defined]
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = tag.soname  # type: ignore[attr-defined]
    except ELFError as e:
        raise CheckFailed(f"not a readable ELF file: {e}") from None
    return ElfDynamic(tuple(needed), tuple(rpath), soname)


def read_members(wheel: Path) -> dict[str, bytes]:
    """All members of a wheel (a zip), or CheckFailed naming the file."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise CheckFailed(f"{wheel.name}: member {bad} is corrupt (CRC mismatch)")
            return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckFailed(f"{wheel.name}: not a readable zip archive ({e})") from None


def libs_dir(import_name: str) -> str:
    """auditwheel's / maturin's folder for bundled libraries: ``<pkg>.libs``."""
    return f"{import_name}.libs"


def bundled_files(members: Mapping[str, bytes], import_name: str) -> list[str]:
    """Names (not paths) of the files in ``<pkg>.libs/``."""
    prefix = libs_dir(import_name) + "/"
    return sorted(PurePosixPath(m).name for m in members if m.startswith(prefix))


def matches_library(filename: str, prefix: str) -> bool:
    """``libgmp-7376c9af.so.10`` and ``libgmp.so.10`` both match ``libgmp``."""
    return re.fullmatch(rf"{re.escape(prefix)}(-[0-9a-f]{{8}})?\.so(\.\d+)*", filename) is not None


def extension_modules(members: Mapping[str, bytes]) -> dict[str, bytes]:
    """The ELF extension modules of a wheel (``*.so`` outside ``*.libs/``)."""
    return {
        name: data
        for name, data in members.items()
        if name.endswith(".so") and data[:4] == ELF_MAGIC and not PurePosixPath(name).parts[0].endswith(".libs")
    }


def bundling_problems(members: Mapping[str, bytes], import_name: str, bundled: tuple[str, ...]) -> list[str]:
    """Why the wheel's ``<pkg>.libs/`` is not exactly the ``bundled`` libraries,
    properly wired (empty when it is).

    Each configured library must be in ``<pkg>.libs/`` and be named in the
    DT_NEEDED of an extension module whose RPATH reaches that folder; nothing
    else may be there. With no bundled libraries, the folder must not exist and
    no extension may still need a library of that name from the system.
    """
    libs = libs_dir(import_name)
    files = bundled_files(members, import_name)
    problems: list[str] = []
    extensions = {name: elf_dynamic(data) for name, data in extension_modules(members).items()}
    if not extensions:
        return [f"no ELF extension module found outside {libs}/"]
    for prefix in bundled:
        found = [f for f in files if matches_library(f, prefix)]
        users = [(n, d) for n, d in extensions.items() if any(matches_library(x, prefix) for x in d.needed)]
        if not found:
            problems.append(f"{prefix} is not bundled: no {prefix}*.so* in {libs}/")
        if not users:
            problems.append(f"no extension module links {prefix} (DT_NEEDED)")
        for name, dyn in users:
            for need in (x for x in dyn.needed if matches_library(x, prefix)):
                if need not in files:
                    problems.append(f"{name} needs {need}, which is not in {libs}/")
            depth = len(PurePosixPath(name).parts) - 1
            want = "$ORIGIN/" + "/".join([".."] * depth + [libs])
            if want not in dyn.rpath:
                problems.append(f"{name}: RPATH {':'.join(dyn.rpath) or '(none)'} does not reach {want}")
    for f in files:
        if not any(matches_library(f, p) for p in bundled):
            problems.append(f"{libs}/{f} is bundled but not configured (linux-wheel.bundled-libraries)")
    return problems


def unbundled_needs(members: Mapping[str, bytes], libraries: tuple[str, ...]) -> list[str]:
    """Extension modules that still load one of ``libraries`` from the system."""
    out = []
    for name, data in extension_modules(members).items():
        for need in elf_dynamic(data).needed:
            if any(matches_library(need, lib) for lib in libraries):
                out.append(f"{name} needs {need}")
    return out
