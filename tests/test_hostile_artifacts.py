"""publish-check reads every file of dist/ as hostile (issue 13).

Real hostile archives are built here with zipfile/tarfile (a 2 GiB zip bomb,
links, ``..`` and absolute members, devices, too many members, huge metadata
and header records, corrupt and lying archives, foreign and stray files) and
each must become a fail row naming the file and the rule, never an exception,
and without reading what the archive's directory already condemns. The bomb
is checked in a subprocess whose peak RSS is measured.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import random
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ci.blocks import archives
from ci.core import findings as checks
from ci.core.config import PublishConfig, load_config, parse_config, read_toml
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import ConfigError
from ci.core.findings import Finding
from ci.core.project import Crate, Project
from ci.sessions import publish_check

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
MIB = 1024 * 1024
LIMITS = archives.Limits()
WHEEL = "q_kangaroo-0.3.0-cp39-abi3-manylinux_2_17_x86_64.whl"
SDIST = "q_kangaroo-0.3.0.tar.gz"
TOP = "q_kangaroo-0.3.0"
INFO = "q_kangaroo-0.3.0.dist-info"
PKG_INFO = b"Metadata-Version: 2.4\nName: q-kangaroo\nVersion: 0.3.0\n"


# ------------------------------------------------------------- builders


def wheel_files() -> dict[str, bytes]:
    return {
        "q_kangaroo/__init__.py": b"__version__ = '0.3.0'\n",
        f"{INFO}/METADATA": PKG_INFO,
        f"{INFO}/WHEEL": b"Wheel-Version: 1.0\nTag: cp39-abi3-manylinux_2_17_x86_64\n",
        f"{INFO}/RECORD": b"",
    }


def zinfo(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def make_wheel(
    path: Path, files: dict[str, bytes] | None = None, extra: Sequence[tuple[zipfile.ZipInfo, bytes]] = ()
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (wheel_files() if files is None else files).items():
            zf.writestr(zinfo(name), data)
        for info, data in extra:
            zf.writestr(info, data)
    return path


def tar_member(name: str, data: bytes = b"", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_sdist(
    path: Path,
    members: Sequence[tuple[tarfile.TarInfo, bytes]] = (),
    *,
    fmt: int = tarfile.PAX_FORMAT,
    base: bool = True,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = [tar_member(f"{TOP}/PKG-INFO", PKG_INFO), tar_member(f"{TOP}/Cargo.lock", b"# lock\n")] if base else []
    with tarfile.open(path, "w:gz", format=fmt) as tar:
        for info, data in head + list(members):
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def random_text(n: int) -> bytes:
    """Bytes that barely compress (so that no ratio rule fires)."""
    return random.Random(n).randbytes(n // 2).hex().encode()


def fails(found: list[Finding], rule: str, artifact: str) -> list[str]:
    return [f.detail for f in checks.failures(found) if f.rule == rule and f.artifact == artifact]


def assert_fails(found: list[Finding], rule: str, artifact: str, *needles: str) -> None:
    details = fails(found, rule, artifact)
    assert details, "\n".join(f.line() for f in found)
    for needle in needles:
        assert any(needle in d for d in details), f"{needle!r} not in {details}"


# --------------------------------------------------------- the gate itself


def gate_ctx(dist: Path, work: Path, **publish: Any) -> Context:
    """publish-check's context for ``dist`` without cargo (a stub project model)."""
    cfg = load_config(REPO)
    cfg = dataclasses.replace(
        cfg,
        dist_dir=dist,
        reports_dir=work / "reports",
        workspace=work,
        publish=dataclasses.replace(cfg.publish, **publish),
    )
    crate = Crate(
        name="qsym-python",
        version="0.3.0",
        manifest=cfg.python_crate / "Cargo.toml",
        features={},
        dependencies=(),
        dependency_features={},
        path_dependencies=(),
        lib_name="_core",
        kinds=frozenset({"cdylib"}),
    )
    model = Project(
        config=cfg, members=(crate,), target_directory=work / "target", python_project={"name": cfg.distribution}
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")}
    return Context(config=cfg, console=Console(stream=sys.stderr), base_env=env, model=model)


def gate(dist: Path, work: Path, **publish: Any) -> list[Finding]:
    return publish_check.check_dist(gate_ctx(dist, work, **publish), release=False, build_sdist=False, smoke=False)


def gate_main(dist: Path, work: Path) -> None:
    """Entry point of the measured subprocess: the gate over ``dist``, rows printed."""
    for f in gate(dist, work):
        print(f.line())


@pytest.fixture
def no_content_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stubs the content rules (their tools are not needed here) and records
    which artifacts reached them."""
    reached: list[str] = []

    def wheel(ctx: Context, path: Path, *args: object) -> list[Finding]:
        reached.append(path.name)
        return []

    def sdist_meta(path: Path, limits: archives.Limits) -> tuple[list[str], None]:
        reached.append(path.name)
        raise tarfile.ReadError("stubbed")

    monkeypatch.setattr(publish_check, "wheel_content_findings", wheel)
    monkeypatch.setattr(publish_check, "sdist_metadata", sdist_meta)
    return reached


class Hung(BaseException):
    """Raised by the alarm (not an OSError: the code under test must not catch it)."""


@pytest.fixture
def alarm() -> Iterator[None]:
    """Fail instead of hanging (a fifo opened for reading blocks forever)."""

    def boom(*_: object) -> None:
        raise Hung("the gate hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------ the 2 GiB bomb


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel with a 2 GiB member of zeros (ZIP_DEFLATED, zip64): about 2 MB on disk."""
    path = tmp_path_factory.mktemp("bomb") / "dist" / WHEEL
    make_wheel(path)
    zeros = bytes(MIB)
    with (
        zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf,
        zf.open(zinfo("q_kangaroo/data.bin"), "w", force_zip64=True) as f,
    ):
        for _ in range(2048):
            f.write(zeros)
    assert path.stat().st_size < 8 * MIB
    return path


@pytest.mark.slow
def test_zip_bomb_is_refused_from_its_directory(bomb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("a member of the bomb was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    start = time.perf_counter()
    found = archives.check_archive(bomb, LIMITS)
    print(f"check_archive on the 2 GiB bomb: {time.perf_counter() - start:.3f} s")
    assert_fails(
        found,
        "archive-limits",
        bomb.name,
        "q_kangaroo/data.bin: 2147483648 bytes uncompressed",
        "max-member-size",
        "max-ratio",
        "max-total-size",
    )


@pytest.mark.slow
def test_zip_bomb_gate_peak_rss_and_time(bomb: Path, tmp_path: Path) -> None:
    """The whole gate over a dist/ holding the bomb, in a fresh process; its
    peak RSS comes from RUSAGE_CHILDREN of a driver that runs nothing else."""
    child = (
        "import sys; from pathlib import Path; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
        "import test_hostile_artifacts as t; t.gate_main(Path(sys.argv[3]), Path(sys.argv[4]))"
    )
    driver = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print('MEASURED', p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
        "time.perf_counter() - t); print(p.stdout); print(p.stderr[-3000:])"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            driver,
            sys.executable,
            "-c",
            child,
            str(REPO),
            str(TESTS),
            str(bomb.parent),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    head, _, rest = proc.stdout.partition("\n")
    _tag, code, rss_kib, seconds = head.split()
    rss_mb = int(rss_kib) / 1024
    print(f"gate over the 2 GiB bomb: peak RSS {rss_mb:.1f} MiB, {float(seconds):.2f} s")
    assert code == "0", rest
    assert "Traceback" not in rest, rest
    assert f"{bomb.name}: [archive-limits] FAIL: q_kangaroo/data.bin" in rest, rest
    assert rss_mb < 300, f"peak RSS {rss_mb:.1f} MiB"


# ------------------------------------------------------------ links and paths


def test_clean_wheel_and_sdist_pass_both_rules(tmp_path: Path) -> None:
    for path in (make_wheel(tmp_path / WHEEL), make_sdist(tmp_path / SDIST)):
        found = archives.check_archive(path, LIMITS)
        assert {(f.rule, f.status) for f in found} == {("archive-limits", "pass"), ("archive-paths", "pass")}, found


def test_wheel_with_a_symlink_member(tmp_path: Path) -> None:
    link = zinfo("q_kangaroo/passwd", stat.S_IFLNK | 0o777)
    path = make_wheel(tmp_path / WHEEL, extra=[(link, b"../../../../etc/passwd")])
    assert_fails(archives.check_archive(path, LIMITS), "archive-paths", WHEEL, "q_kangaroo/passwd: a symlink member")


def test_wheel_with_a_fifo_member(tmp_path: Path) -> None:
    path = make_wheel(tmp_path / WHEEL, extra=[(zinfo("q_kangaroo/pipe", stat.S_IFIFO | 0o644), b"")])
    assert_fails(archives.check_archive(path, LIMITS), "archive-paths", WHEEL, "q_kangaroo/pipe: a fifo member")


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("/etc/cron.d/evil", "absolute path"),
        ("../evil.py", "'..' in the path"),
        ("q_kangaroo/../../evil.py", "'..' in the path"),
        ("q_kangaroo\\..\\evil.py", "backslash"),
        ("C:/Windows/evil.dll", "drive letter"),
        ("q_kangaroo/" + "x" * 1100, "entry 5: a name of 1111 bytes, longer than 1024 bytes"),
    ],
)
def test_wheel_member_paths(tmp_path: Path, name: str, needle: str) -> None:
    path = make_wheel(tmp_path / WHEEL, extra=[(zinfo(name), b"x = 1\n")])
    assert_fails(archives.check_archive(path, LIMITS), "archive-paths", WHEEL, needle)


def test_wheel_with_a_duplicate_member(tmp_path: Path) -> None:
    """Two entries of one name: RECORD would check one, an installer unpack the other."""
    path = tmp_path / WHEEL
    with pytest.warns(UserWarning, match="Duplicate name"):
        make_wheel(path, extra=[(zinfo("q_kangaroo/__init__.py"), b"import os; os.system('evil')\n")])
    assert_fails(
        archives.check_archive(path, LIMITS), "archive-paths", WHEEL, "q_kangaroo/__init__.py: appears more than once"
    )


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        (tar_member("../evil"), "../evil: '..' in the path"),
        (tar_member(f"{TOP}/../../evil.py", b"x"), "'..' in the path"),
        (tar_member("/etc/profile.d/evil.sh", b"x"), "/etc/profile.d/evil.sh: absolute path"),
        (
            tar_member(f"{TOP}/escape", type=tarfile.SYMTYPE, linkname="../../../etc/passwd"),
            f"{TOP}/escape -> ../../../etc/passwd: a symlink member",
        ),
        (tar_member(f"{TOP}/abs", type=tarfile.SYMTYPE, linkname="/etc/shadow"), "-> /etc/shadow: a symlink"),
        (tar_member(f"{TOP}/hard", type=tarfile.LNKTYPE, linkname="/etc/shadow"), "a hardlink member"),
        (tar_member(f"{TOP}/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3), f"{TOP}/null: a device member"),
        (tar_member(f"{TOP}/disk", type=tarfile.BLKTYPE, devmajor=8, devminor=0), "a device member"),
        (tar_member(f"{TOP}/pipe", type=tarfile.FIFOTYPE), f"{TOP}/pipe: a fifo member"),
        (tar_member(f"{TOP}/" + "x" * 2000, b"x"), "longer than 1024 bytes"),
        (tar_member("C:\\evil.bat", b"x"), "drive letter"),
        (tar_member(f"{TOP}/x\n- {WHEEL}: [zip] PASS", b"x", type=tarfile.SYMTYPE), f"{TOP}/x\\n- {WHEEL}"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-out",
        "symlink-abs",
        "hardlink",
        "chardev",
        "blockdev",
        "fifo",
        "long-name",
        "drive",
        "newline-in-name",
    ],
)
def test_sdist_member_paths_and_types(tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], needle: str) -> None:
    path = make_sdist(tmp_path / SDIST, [member])
    assert_fails(archives.check_archive(path, LIMITS), "archive-paths", SDIST, needle)


# ------------------------------------------------------------------ limits


def test_too_many_zip_members_caught_before_zipfile_reads_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {**wheel_files(), **{f"q_kangaroo/m{i}.py": b"" for i in range(LIMITS.max_members)}}
    path = make_wheel(tmp_path / WHEEL, files)

    class NoZipFile:
        def __init__(self, *_: object, **__: object) -> None:
            raise AssertionError("zipfile parsed the whole central directory")

    monkeypatch.setattr(zipfile, "ZipFile", NoZipFile)
    assert_fails(
        archives.check_archive(path, LIMITS),
        "archive-limits",
        WHEEL,
        f"more than {LIMITS.max_members} members, over max-members",
    )


def test_too_many_sdist_members(tmp_path: Path) -> None:
    path = make_sdist(tmp_path / SDIST, [tar_member(f"{TOP}/m{i}.py", b"") for i in range(20)])
    found = archives.check_archive(path, dataclasses.replace(LIMITS, max_members=10))
    assert_fails(found, "archive-limits", SDIST, "more than 10 members, over max-members")


def test_twenty_mb_metadata(tmp_path: Path) -> None:
    files = {**wheel_files(), f"{INFO}/METADATA": PKG_INFO + random_text(20 * MIB)}
    path = make_wheel(tmp_path / WHEEL, files)
    assert_fails(
        archives.check_archive(path, LIMITS),
        "archive-limits",
        WHEEL,
        f"{INFO}/METADATA: {len(files[f'{INFO}/METADATA'])} bytes, over max-metadata-size ({MIB})",
    )


def test_twenty_mb_pkg_info(tmp_path: Path) -> None:
    path = make_sdist(tmp_path / SDIST, [tar_member(f"{TOP}/src/PKG-INFO", random_text(20 * MIB))])
    assert_fails(
        archives.check_archive(path, LIMITS),
        "archive-limits",
        SDIST,
        f"{TOP}/src/PKG-INFO: {20 * MIB} bytes, over max-metadata-size",
    )


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT], ids=["pax-record", "gnu-longname"])
def test_huge_tar_header_record_is_not_read_into_memory(tmp_path: Path, fmt: int) -> None:
    """tarfile reads a pax record or GNU long name whole, whatever size its
    header claims: the stream refuses one read over max-metadata-size."""
    if fmt == tarfile.PAX_FORMAT:
        info, data = tar_member(f"{TOP}/x.py", b"x", pax_headers={"comment": "x" * (8 * MIB)})
    else:
        info, data = tar_member(f"{TOP}/" + "x" * (8 * MIB), b"x")
    path = make_sdist(tmp_path / SDIST, [(info, data)], fmt=fmt)
    assert path.stat().st_size < MIB
    assert_fails(
        archives.check_archive(path, LIMITS), "archive-limits", SDIST, "tar header record of", "over max-metadata-size"
    )


def test_tar_member_claiming_100_gb_is_refused_without_reading_on(tmp_path: Path) -> None:
    """The header claims 100 GB (GNU base-256 size) and no data follows: the
    walk stops at the header instead of skipping through the claim."""
    pkg_info, data = tar_member(f"{TOP}/PKG-INFO", PKG_INFO)
    huge = tarfile.TarInfo(f"{TOP}/huge.bin")
    huge.size = 100 * 1024**3
    raw = (
        pkg_info.tobuf(format=tarfile.GNU_FORMAT)
        + data.ljust(512, b"\0")
        + huge.tobuf(format=tarfile.GNU_FORMAT)
        + bytes(4096)
    )
    path = tmp_path / SDIST
    path.write_bytes(gzip.compress(raw))
    start = time.perf_counter()
    found = archives.check_archive(path, LIMITS)
    assert time.perf_counter() - start < 2
    assert_fails(
        found, "archive-limits", SDIST, f"{TOP}/huge.bin: {100 * 1024**3} bytes uncompressed, over max-member-size"
    )


def test_gzip_bomb_sdist(tmp_path: Path) -> None:
    """64 MiB of zeros in a 64 KiB tar.gz: refused by the overall ratio from the header."""
    path = make_sdist(tmp_path / SDIST, [tar_member(f"{TOP}/zeros.bin", bytes(64 * MIB))])
    assert path.stat().st_size < MIB
    assert_fails(archives.check_archive(path, LIMITS), "archive-limits", SDIST, "over max-ratio (200)")


def test_zip_member_ratio_and_sizes_from_settings(tmp_path: Path) -> None:
    path = make_wheel(tmp_path / WHEEL, extra=[(zinfo("q_kangaroo/zeros.bin"), bytes(4 * MIB))])
    found = archives.check_archive(path, LIMITS)
    assert_fails(found, "archive-limits", WHEEL, "q_kangaroo/zeros.bin: 4194304 bytes from", "over max-ratio (200)")
    tight = archives.Limits(max_ratio=10_000, max_member_size=2 * MIB, max_total_size=3 * MIB)
    found = archives.check_archive(path, tight)
    assert_fails(found, "archive-limits", WHEEL, f"over max-member-size ({2 * MIB})", "over max-total-size")


def test_zip_entry_with_a_huge_extra_field(tmp_path: Path) -> None:
    info = zinfo("q_kangaroo/x.py")
    info.extra = struct.pack("<HH", 0xCAFE, 1996) + bytes(1996)
    path = make_wheel(tmp_path / WHEEL, extra=[(info, b"x = 1\n")])
    assert_fails(
        archives.check_archive(path, LIMITS),
        "archive-limits",
        WHEEL,
        "entry 5: 2000 bytes of extra field and comment, more than 1024",
    )


def test_tar_stream_budget(tmp_path: Path) -> None:
    """Header records within max-metadata-size each, but more of them than
    the sizes allow for: the decoder stops at its budget."""
    members = [tar_member(f"{TOP}/m{i}.py", b"x", pax_headers={"comment": "x" * (900 * 1024)}) for i in range(2)]
    path = make_sdist(tmp_path / SDIST, members, base=False)
    found = archives.check_archive(path, archives.Limits(max_members=2, max_total_size=MIB))
    assert_fails(found, "archive-limits", SDIST, "the tar stream runs past")


def test_zip_compression_methods_other_than_deflate_are_not_read(tmp_path: Path) -> None:
    """bzip2 and lzma members are decompressed by zipfile without an output
    cap per call; a wheel has no reason to use them."""
    info = zinfo("q_kangaroo/data.bin")
    info.compress_type = zipfile.ZIP_BZIP2
    path = make_wheel(tmp_path / WHEEL, extra=[(info, b"x" * 1000)])
    assert_fails(
        archives.check_archive(path, LIMITS), "archive-limits", WHEEL, "q_kangaroo/data.bin: compression method 12"
    )


# ------------------------------------------------------- corrupt and lying


def flip(path: Path, at: int, n: int = 64) -> Path:
    data = bytearray(path.read_bytes())
    for i in range(at, min(at + n, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def lie_about_size(path: Path, member: str, size: int) -> Path:
    """Patch the uncompressed size of ``member`` in its local header and its
    central directory entry (the CRC still covers the real bytes)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
        start = zf.start_dir  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    struct.pack_into("<L", data, info.header_offset + 22, size)
    at = start
    while data[at : at + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack_from("<3H", data, at + 28)
        if data[at + 46 : at + 46 + n].decode() == member:
            struct.pack_into("<L", data, at + 24, size)
        at += 46 + n + m + k
    path.write_bytes(bytes(data))
    return path


def corrupt_cases(tmp: Path) -> dict[str, Path]:
    big = {**wheel_files(), "q_kangaroo/data.py": random_text(400_000)}
    cases = {
        "junk.whl": tmp / "junk" / WHEEL,
        "truncated.whl": make_wheel(tmp / "truncated" / WHEEL, big),
        "flipped.whl": make_wheel(tmp / "flipped" / WHEEL, big),
        "junk.tar.gz": tmp / "junk" / SDIST,
        "plain-tar.tar.gz": tmp / "plain" / SDIST,
        "truncated.tar.gz": make_sdist(tmp / "truncated" / SDIST, [tar_member(f"{TOP}/d", random_text(400_000))]),
        "flipped.tar.gz": make_sdist(tmp / "flipped" / SDIST, [tar_member(f"{TOP}/d", random_text(400_000))]),
        "bad-crc.tar.gz": make_sdist(tmp / "crc" / SDIST),
        "hidden-members.tar.gz": tmp / "hidden" / SDIST,
    }
    for path in cases.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    cases["junk.whl"].write_bytes(random.Random(1).randbytes(5000))
    cases["junk.tar.gz"].write_bytes(random.Random(2).randbytes(5000))
    cases["truncated.whl"].write_bytes(cases["truncated.whl"].read_bytes()[:-300])
    flip(cases["flipped.whl"], cases["flipped.whl"].stat().st_size // 3)
    with tarfile.open(cases["plain-tar.tar.gz"], "w") as tar:  # not gzipped at all
        info, data = tar_member(f"{TOP}/PKG-INFO", PKG_INFO)
        tar.addfile(info, io.BytesIO(data))
    cases["truncated.tar.gz"].write_bytes(cases["truncated.tar.gz"].read_bytes()[:-2000])
    flip(cases["flipped.tar.gz"], cases["flipped.tar.gz"].stat().st_size // 2)
    flip(cases["bad-crc.tar.gz"], cases["bad-crc.tar.gz"].stat().st_size - 8, 4)  # the gzip trailer's CRC
    # A broken header block, then a member tarfile never reaches (another unpacker might).
    pkg_info, data = tar_member(f"{TOP}/PKG-INFO", PKG_INFO)
    evil, code = tar_member(f"{TOP}/setup.py", b"import os; os.system('evil')\n")
    cases["hidden-members.tar.gz"].write_bytes(
        gzip.compress(
            pkg_info.tobuf()
            + data.ljust(512, b"\0")
            + b"garbage".ljust(512, b"\1")
            + evil.tobuf()
            + code.ljust(512, b"\0")
            + bytes(1024)
        )
    )
    return cases


def test_corrupt_archives_are_one_zip_row_each(tmp_path: Path, alarm: None) -> None:
    for case, path in corrupt_cases(tmp_path).items():
        found = archives.check_archive(path, LIMITS)
        assert [(f.artifact, f.rule, f.status) for f in found] == [(path.name, "zip", "fail")], (case, found)
        words = "not a readable zip archive" if path.name.endswith(".whl") else "not a readable sdist"
        assert words in found[0].detail, (case, found[0].detail)


def test_a_member_larger_than_its_claim_is_read_no_further(tmp_path: Path) -> None:
    """The directory says 1000 bytes; the data inflates to 400 kB. zipfile stops
    at the claim and the CRC gives the lie away."""
    path = make_wheel(tmp_path / WHEEL, {**wheel_files(), "q_kangaroo/data.py": random_text(400_000)})
    lie_about_size(path, "q_kangaroo/data.py", 1000)
    found = archives.check_archive(path, LIMITS)
    assert_fails(found, "zip", WHEEL, f"{WHEEL}: not a readable zip archive", "CRC")


def test_member_reads_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_wheel(tmp_path / WHEEL, extra=[(zinfo("q_kangaroo/big.py"), random_text(3 * MIB))])
    asked: list[int] = []
    read = zipfile.ZipExtFile.read

    def spy(self: zipfile.ZipExtFile, n: int = -1) -> bytes:
        asked.append(n)
        return read(self, n)

    monkeypatch.setattr(zipfile.ZipExtFile, "read", spy)
    with (
        zipfile.ZipFile(path) as zf,
        pytest.raises(archives.ArchiveError, match="q_kangaroo/big.py: more than 1048576 bytes"),
    ):
        archives.read_member(zf, zf.getinfo("q_kangaroo/big.py"), MIB)
    # Never "everything": at most cap + 1 bytes, in pieces (a header's size claim is not trusted).
    assert sum(asked) == MIB + 1 and all(0 < n <= archives.CHUNK for n in asked), asked
    with archives.wheel_members(path, archives.Limits(max_member_size=MIB)) as members:
        assert f"{INFO}/METADATA" in members and "nothing" not in members and len(members) == 5
        assert members[f"{INFO}/METADATA"] == PKG_INFO
        with pytest.raises(archives.ArchiveError, match="more than 1048576 bytes"):
            members["q_kangaroo/big.py"]

        def never(*_: object) -> bytes:
            raise AssertionError("a membership test read the member")

        monkeypatch.setattr(archives, "read_member", never)
        assert "q_kangaroo/big.py" in members


# ------------------------------------------- wiring into publish-check


def test_hostile_artifacts_skip_every_content_rule(tmp_path: Path, no_content_checks: list[str]) -> None:
    dist = tmp_path / "dist"
    make_wheel(dist / WHEEL, extra=[(zinfo("q_kangaroo/x", stat.S_IFLNK | 0o777), b"/etc/passwd")])
    make_sdist(dist / SDIST, [tar_member("../evil", b"x")])
    found = gate(dist, tmp_path)
    assert no_content_checks == []
    for name, rule in ((WHEEL, "archive-paths"), (SDIST, "archive-paths")):
        assert fails(found, rule, name), found
        rules = {f.rule for f in found if f.artifact == name}
        assert rules == {"archive-paths", "identity"}, rules  # no zip, twine, version, ... row


def test_corrupt_wheel_in_the_gate(tmp_path: Path, no_content_checks: list[str]) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / WHEEL).write_bytes(b"PK\x03\x04 this is not a zip")
    found = gate(dist, tmp_path)
    assert_fails(found, "zip", WHEEL, f"{WHEEL}: not a readable zip archive")
    assert no_content_checks == []


def test_clean_artifacts_reach_the_content_rules(tmp_path: Path, no_content_checks: list[str]) -> None:
    dist = tmp_path / "dist"
    make_wheel(dist / WHEEL)
    make_sdist(dist / SDIST)
    found = gate(dist, tmp_path)
    assert sorted(no_content_checks) == sorted([WHEEL, SDIST])
    assert fails(found, "identity", WHEEL) == [] and fails(found, "archive-limits", WHEEL) == []


def test_wheel_of_another_distribution(tmp_path: Path, no_content_checks: list[str]) -> None:
    dist = tmp_path / "dist"
    foreign = make_wheel(dist / "evil_pkg-0.3.0-cp39-abi3-manylinux_2_17_x86_64.whl")
    foreign_sdist = make_sdist(dist / "evil-pkg-0.3.0.tar.gz")
    normalised = make_wheel(dist / "Q.Kangaroo-0.3.0-cp39-abi3-manylinux_2_17_x86_64.whl")
    found = gate(dist, tmp_path)
    assert_fails(found, "identity", foreign.name, "a file of evil-pkg, not of this project's q-kangaroo")
    assert_fails(found, "identity", foreign_sdist.name, "not of this project's q-kangaroo")
    assert [f.status for f in found if f.artifact == normalised.name and f.rule == "identity"] == ["pass"]


def test_extension_modules_held_at_once_fit_max_member_size(tmp_path: Path) -> None:
    """bundling_problems holds every extension module's bytes together."""
    so = [(zinfo(f"q_kangaroo/_m{i}.abi3.so"), b"\x7fELF" + random_text(600 * 1024)) for i in range(2)]
    path = make_wheel(tmp_path / WHEEL, extra=so)
    cfg = load_config(REPO)
    with archives.wheel_members(path, archives.Limits(max_member_size=MIB)) as members:
        found = publish_check.bundled_findings(cfg, WHEEL, members)
    assert_fails(found, "bundled-libs", WHEEL, "the extension modules total 1228808 bytes, over max-member-size")


def test_identity_compares_normalised_names() -> None:
    for configured in ("q-kangaroo", "Q_Kangaroo", "q.kangaroo"):
        for name in (WHEEL, SDIST, "Q.Kangaroo-0.3.0.tar.gz"):
            assert publish_check.identity_findings(configured, Path(name))[0].status == "pass", (configured, name)


def test_identity_of_unparseable_names() -> None:
    found = publish_check.identity_findings("q-kangaroo", Path("q_kangaroo.whl"))
    assert found[0].status == "fail" and "names no distribution" in found[0].detail


def test_dist_holds_only_wheels_and_sdists(tmp_path: Path, no_content_checks: list[str], alarm: None) -> None:
    dist = tmp_path / "dist"
    make_wheel(dist / WHEEL)
    (dist / "nested").mkdir()
    make_wheel(dist / "nested" / WHEEL)
    (dist / "notes.txt").write_text("release notes\n")
    (dist / "zero-0.3.0-py3-none-any.whl").symlink_to("/dev/zero")
    elsewhere = make_wheel(tmp_path / "elsewhere" / WHEEL)
    (dist / "q_kangaroo-0.3.0-cp39-abi3-win_amd64.whl").symlink_to(elsewhere)
    os.mkfifo(dist / SDIST)  # opened for reading, it would block forever
    (dist / f"{publish_check.artifacts.TMP_MARK}{WHEEL}.x").write_bytes(b"in flight")
    found = gate(dist, tmp_path)
    assert_fails(found, "dist-contents", "nested/", "a folder")
    assert_fails(found, "dist-contents", "notes.txt", "not a wheel or an sdist")
    assert_fails(found, "dist-contents", "zero-0.3.0-py3-none-any.whl", "a symbolic link")
    assert_fails(found, "dist-contents", "q_kangaroo-0.3.0-cp39-abi3-win_amd64.whl", "a symbolic link")
    assert_fails(found, "dist-contents", SDIST, "not a regular file")
    assert no_content_checks == [WHEEL]
    assert not any(f.artifact.startswith(publish_check.artifacts.TMP_MARK) for f in found)


# ------------------------------------------------------------------ config


def test_limits_default_in_config_and_block_alike() -> None:
    assert archives.limits_of(PublishConfig()) == archives.Limits()
    assert archives.limits_of(load_config(REPO).publish) == archives.Limits(
        max_members=10_000, max_total_size=512 * MIB, max_member_size=128 * MIB, max_ratio=200.0, max_metadata_size=MIB
    )


def with_publish(key: str, value: object) -> dict[str, Any]:
    data = read_toml(REPO / "pyproject.toml")
    data["tool"]["maturin-suite"].setdefault("publish", {})[key] = value
    return data


def test_limits_are_read_from_the_toml() -> None:
    cfg = parse_config(with_publish("max-members", 50), REPO)
    assert archives.limits_of(cfg.publish).max_members == 50
    assert parse_config(with_publish("max-ratio", 50), REPO).publish.max_ratio == 50.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max-members", 0, "tool.maturin-suite.publish.max-members must be at least 1; got 0"),
        ("max-total-size", 1.5, "tool.maturin-suite.publish.max-total-size must be an integer"),
        ("max-member-size", "1 GB", "tool.maturin-suite.publish.max-member-size must be an integer"),
        ("max-ratio", 0.5, "tool.maturin-suite.publish.max-ratio must be at least 1"),
        ("max-metadata-size", -1, "tool.maturin-suite.publish.max-metadata-size must be at least 1"),
        ("max-bytes", 1, "unknown key tool.maturin-suite.publish.max-bytes"),
    ],
)
def test_bad_limit_is_named(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_publish(key, value), REPO)
    assert message in str(info.value)


@pytest.mark.slow
def test_windows_wheel_rules_read_members_lazily(tmp_path: Path) -> None:
    """The PE rules of a Windows wheel never hold the whole wheel in memory:
    360 MiB of (highly compressible) data members are not read at all."""
    import subprocess
    import sys
    import zipfile

    wheel = tmp_path / "q_kangaroo-0.3.0-cp39-abi3-win_amd64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(3):
            with zf.open(f"q_kangaroo/data{i}.bin", "w", force_zip64=True) as out:
                block = b"\0" * (1 << 20)
                for _ in range(120):
                    out.write(block)
        zf.writestr("q_kangaroo/__init__.py", "")
    code = (
        "import resource, sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})\n"
        "from ci.core.config import load_config; from ci.blocks import pe\n"
        f"cfg = load_config(Path({str(Path(__file__).resolve().parent.parent)!r}))\n"
        f"rows = pe.windows_wheel_findings(Path({str(wheel)!r}), cfg)\n"
        "print(rows[-1].detail)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    detail, peak_mib = proc.stdout.strip().splitlines()[-2:]
    assert "no .pyd extension module" in detail
    assert int(peak_mib) < 150, f"peak RSS {peak_mib} MiB"
