"""Real broken artifacts, derived from a good wheel and sdist.

Wheels are rewritten member by member (RECORD is regenerated unless the case
is about RECORD); ELF files that break a rule are compiled with gcc.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

# References two CPython functions outside the limited API (abi3).
NON_ABI3_C = """
extern void *PyCode_New(void);
extern void *_PyObject_GetDictPtr(void);
void *suite_probe(void) { return (void *)PyCode_New + (long)_PyObject_GetDictPtr; }
"""
# getrandom() first appeared in glibc 2.25: the .so needs GLIBC_2.25.
NEW_GLIBC_C = """
#include <sys/types.h>
#include <sys/random.h>
long suite_entropy(void *buf, unsigned long n) { return getrandom(buf, n, 0); }
"""


# Uses GMP from the system (an unrepaired extension: DT_NEEDED libgmp.so.10).
SYSTEM_GMP_C = """
#include <gmp.h>
const char *suite_gmp_version(void) { return gmp_version; }
"""


def compile_shared(source: str, out: Path, libs: tuple[str, ...] = ()) -> bytes:
    """A real ELF shared object built by gcc from ``source``."""
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-o", str(out), str(src), *(f"-l{x}" for x in libs)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def read_wheel(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist() if not i.is_dir()}


def dist_info(members: Mapping[str, bytes]) -> str:
    (info,) = {PurePosixPath(m).parts[0] for m in members if PurePosixPath(m).parts[0].endswith(".dist-info")}
    return info


def record_for(members: Mapping[str, bytes], info: str) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for name, data in members.items():
        if name == f"{info}/RECORD":
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", str(len(data))])
    writer.writerow([f"{info}/RECORD", "", ""])
    return out.getvalue().encode()


def write_wheel(members: Mapping[str, bytes], dest: Path, *, fix_record: bool = True) -> Path:
    members = dict(members)
    if fix_record:
        info = dist_info(members)
        members[f"{info}/RECORD"] = record_for(members, info)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return dest


def rewrite(
    src: Path,
    dest_dir: Path,
    change: Callable[[dict[str, bytes]], dict[str, bytes]],
    *,
    name: str | None = None,
    fix_record: bool = True,
) -> Path:
    members = change(read_wheel(src))
    dest_dir.mkdir(parents=True, exist_ok=True)
    return write_wheel(members, dest_dir / (name or src.name), fix_record=fix_record)


def set_metadata(members: dict[str, bytes], field: str, value: str) -> dict[str, bytes]:
    info = dist_info(members)
    lines = members[f"{info}/METADATA"].decode().split("\n")
    out = [f"{field}: {value}" if ln.startswith(f"{field}: ") else ln for ln in lines]
    members[f"{info}/METADATA"] = "\n".join(out).encode()
    return members


def set_wheel_tags(members: dict[str, bytes], tags: list[str]) -> dict[str, bytes]:
    info = dist_info(members)
    lines = [ln for ln in members[f"{info}/WHEEL"].decode().splitlines() if not ln.startswith("Tag: ")]
    members[f"{info}/WHEEL"] = ("\n".join(lines + [f"Tag: {t}" for t in tags]) + "\n").encode()
    return members


def rename_version(members: dict[str, bytes], old: str, new: str) -> dict[str, bytes]:
    """The whole wheel re-versioned (dist-info folder and METADATA)."""
    info = dist_info(members)
    new_info = info.replace(f"-{old}.dist-info", f"-{new}.dist-info")
    moved = {(new_info + m[len(info) :] if m.startswith(info + "/") else m): d for m, d in members.items()}
    return set_metadata(moved, "Version", new)


def repack_sdist(src: Path, dest: Path, drop: Callable[[str], bool]) -> Path:
    """The sdist without the members ``drop`` selects (paths below the top folder)."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w:gz") as tout:
        for m in tin.getmembers():
            rel = "/".join(PurePosixPath(m.name).parts[1:])
            if rel and drop(rel):
                continue
            tout.addfile(m, tin.extractfile(m) if m.isfile() else None)
    return dest


def corrupt(src: Path, dest: Path) -> Path:
    """Bytes flipped in the middle of the archive (a real download error)."""
    data = bytearray(src.read_bytes())
    mid = len(data) // 3
    for i in range(mid, mid + 64):
        data[i] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


def copy_set(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(f, dest / f.name)
    return dest
