"""Wheels and sdists read as hostile input: the directory first, then bounded reads.

:func:`check_archive` is the first thing publish-check does with every file of
``dist/``. It looks at the archive's directory only, never at a member's
bytes: a zip's central directory (walked by hand before :mod:`zipfile` builds
one object per entry) and then its ``infolist()``; a tar's member headers,
streamed through a gzip decoder that refuses to run past a byte budget and to
hand tarfile one header record larger than ``max-metadata-size`` (pax and GNU
long-name records are read into memory whole). Only when every limit holds are
the members read, in bounded pieces, to prove they decompress and match their
checksums. Afterwards :func:`wheel_members` hands out a wheel's files lazily,
one capped read at a time (a header's size claim is never trusted).

Rules (the ``rule`` of each :class:`~ci.core.findings.Finding`):

``archive-limits``  member count, total and per-member uncompressed size,
                    compression ratio (per member and overall, above 1 MiB),
                    METADATA / PKG-INFO / WHEEL size, zip compression method
``archive-paths``   no absolute path, ``..`` part, backslash, drive letter,
                    NUL or over-long name, no duplicate, no link (zip S_IFLNK,
                    tar symlink or hard link), device, fifo or sparse member
``zip``             the archive is readable at all (publish-check's rule)
"""

from __future__ import annotations

import io
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ci.core.config import PublishConfig
from ci.core.errors import CheckFailed
from ci.core.findings import Finding

RULE_LIMITS = "archive-limits"
RULE_PATHS = "archive-paths"
RULE_READ = "zip"
MIB = 1024 * 1024
CHUNK = MIB
# Members (and archives) smaller than this are never called bombs: a few KiB
# of zeros compress 300-fold and are harmless.
RATIO_FLOOR = MIB
MAX_NAME = 1024  # bytes of one member name
MAX_EXTRA = 1024  # bytes of a zip entry's extra field plus comment
SHOWN = 10  # violations listed one by one per rule; the rest are counted
TAR_OVERHEAD = 4 * tarfile.BLOCKSIZE  # header, pax record and padding per member
DRIVE = re.compile(r"^[A-Za-z]:")
READ_ERRORS: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    OSError,
    ValueError,
    OverflowError,
    struct.error,
    NotImplementedError,
    RuntimeError,
)
END = struct.Struct("<4s4H2LH")  # end of central directory record
END64_LOCATOR = struct.Struct("<4sLQL")
END64 = struct.Struct("<4sQ2H2L4Q")
CENTRAL = struct.Struct("<4s6H3L5H2L")  # one central directory entry, before its name


class ArchiveError(CheckFailed):
    """An archive broke a rule while being read (``rule`` names it)."""

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    """``publish.max-*``: what any one archive may claim (sizes in bytes)."""

    max_members: int = 10_000
    max_total_size: int = 512 * MIB
    max_member_size: int = 128 * MIB
    max_ratio: float = 200.0
    max_metadata_size: int = MIB


def limits_of(publish: PublishConfig) -> Limits:
    return Limits(
        publish.max_members,
        publish.max_total_size,
        publish.max_member_size,
        publish.max_ratio,
        publish.max_metadata_size,
    )


@dataclass(frozen=True)
class Entry:
    """One member as the archive's directory describes it."""

    name: str
    size: int  # uncompressed, as claimed
    packed: int | None  # compressed size (zip); None in a tar (one stream)
    kind: str  # file, dir, symlink, hardlink, device, fifo, sparse, special
    target: str = ""  # a link's target
    refused: str = ""  # why its bytes will not be read (zip: method, encryption)


def reason(e: BaseException) -> str:
    return str(e) or type(e).__name__


def unreadable(path: Path, e: BaseException) -> str:
    """The message for an archive that cannot be read (as publish-check words it)."""
    if path.name.endswith(".whl"):
        return f"{path.name}: not a readable zip archive ({reason(e)})"
    return f"not a readable sdist: {reason(e)}"


def is_metadata(name: str) -> bool:
    p = PurePosixPath(name)
    return p.name == "PKG-INFO" or (p.name in ("METADATA", "WHEEL") and p.parent.name.endswith(".dist-info"))


# ------------------------------------------------------------- the rules


def shown(name: str) -> str:
    """A member name fit for a report line (control characters escaped)."""
    return name if name.isprintable() else repr(name)[1:-1]


def path_problems(e: Entry, seen: set[str]) -> list[str]:
    """Ways the member's path or type could escape or confuse an unpacker."""
    name = shown(e.name)
    out = []
    if name.startswith("/"):
        out.append(f"{name}: absolute path")
    if DRIVE.match(name):
        out.append(f"{name}: drive letter")
    if "\\" in name:
        out.append(f"{name}: backslash in the path")
    if ".." in name.split("/"):
        out.append(f"{name}: '..' in the path")
    if len(e.name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        out.append(f"{name[:60]}...: name longer than {MAX_NAME} bytes")
    if e.name in seen:
        out.append(f"{name}: appears more than once")
    seen.add(e.name)
    if e.kind not in ("file", "dir"):
        target = f" -> {shown(e.target)}" if e.target else ""
        out.append(f"{name}{target}: a {e.kind} member (only files and folders are allowed)")
    return out


def size_problems(e: Entry, lim: Limits) -> list[str]:
    name = shown(e.name)
    out = []
    if e.size > lim.max_member_size:
        out.append(f"{name}: {e.size} bytes uncompressed, over max-member-size ({lim.max_member_size})")
    if e.packed is not None and e.size > RATIO_FLOOR and e.size > lim.max_ratio * max(e.packed, 1):
        out.append(
            f"{name}: {e.size} bytes from {e.packed} compressed (ratio {e.size / max(e.packed, 1):.0f}), "
            f"over max-ratio ({lim.max_ratio:g})"
        )
    if is_metadata(e.name) and e.size > lim.max_metadata_size:
        out.append(f"{name}: {e.size} bytes, over max-metadata-size ({lim.max_metadata_size})")
    if e.refused:
        out.append(f"{name}: {e.refused}")
    return out


@dataclass
class Tally:
    """The limits, applied member by member while the directory is walked."""

    limits: Limits
    archive_size: int
    count: int = 0
    total: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, e: Entry) -> bool:
        """Account for one member; False once the walk must stop."""
        lim = self.limits
        self.count += 1
        if self.count > lim.max_members:
            self.problems.append((RULE_LIMITS, f"more than {lim.max_members} members, over max-members"))
            return False
        self.total += e.size
        self.problems += [(RULE_PATHS, p) for p in path_problems(e, self.seen)]
        self.problems += [(RULE_LIMITS, p) for p in size_problems(e, lim)]
        if self.total > lim.max_total_size:
            self.problems.append(
                (
                    RULE_LIMITS,
                    f"at {shown(e.name)} the members total more than {lim.max_total_size} "
                    f"bytes uncompressed, over max-total-size",
                )
            )
            return False
        if self.total > RATIO_FLOOR and self.total > lim.max_ratio * self.archive_size:
            self.problems.append(
                (
                    RULE_LIMITS,
                    f"at {shown(e.name)} the members total {self.total} bytes from a "
                    f"{self.archive_size}-byte archive, over max-ratio ({lim.max_ratio:g})",
                )
            )
            return False
        return True

    def walk(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            if not self.add(e):
                return

    def findings(self, artifact: str) -> list[Finding]:
        if not self.problems:
            ratio = self.total / max(self.archive_size, 1)
            return [
                Finding(
                    artifact,
                    RULE_LIMITS,
                    "pass",
                    f"{self.count} members, {self.total} bytes uncompressed (ratio {ratio:.1f})",
                ),
                Finding(artifact, RULE_PATHS, "pass", "plain relative paths, files and folders only"),
            ]
        return problem_findings(artifact, self.problems)


def problem_findings(artifact: str, problems: list[tuple[str, str]]) -> list[Finding]:
    """One fail row per problem, the first SHOWN of each rule, then a count."""
    found = []
    for rule in dict.fromkeys(r for r, _ in problems):
        details = [d for r, d in problems if r == rule]
        found += [Finding(artifact, rule, "fail", d) for d in details[:SHOWN]]
        if len(details) > SHOWN:
            found.append(Finding(artifact, rule, "fail", f"... and {len(details) - SHOWN} more"))
    return found


# -------------------------------------------------------------------- zip


def central_directory(f: BinaryIO, size: int) -> tuple[int, int]:
    """(start, length) of a zip's central directory, located as zipfile does."""
    tail_at = max(0, size - END.size - 0xFFFF)
    f.seek(tail_at)
    tail = f.read()
    at = len(tail) - END.size
    if not (at >= 0 and tail[at : at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")  # the record is followed by a comment
    if at < 0 or len(tail) - at < END.size:
        raise zipfile.BadZipFile("File is not a zip file")
    length = END.unpack_from(tail, at)[5]
    end_at = tail_at + at
    locator_at = end_at - END64_LOCATOR.size
    if locator_at >= END64.size:
        f.seek(locator_at)
        if f.read(4) == b"PK\x06\x07":
            f.seek(locator_at - END64.size)
            record = f.read(END64.size)
            if len(record) == END64.size and record[:4] == b"PK\x06\x06":
                length = END64.unpack(record)[8]
                end_at -= END64.size + END64_LOCATOR.size
    start = end_at - length  # zipfile: offset + concat, concat = end - length - offset
    if start < 0:
        raise zipfile.BadZipFile("central directory starts before the file")
    return start, length


def central_problems(path: Path, lim: Limits) -> list[tuple[str, str]]:
    """Entry count and name/extra lengths, read from the raw central directory
    before zipfile makes an object per entry (a million entries would cost GBs)."""
    out: list[tuple[str, str]] = []
    with path.open("rb") as f:
        start, length = central_directory(f, path.stat().st_size)
        f.seek(start)
        done = count = 0
        while done < length:
            head = f.read(CENTRAL.size)
            if len(head) != CENTRAL.size or head[:4] != b"PK\x01\x02":
                raise zipfile.BadZipFile("Bad magic number for central directory")
            name_len, extra_len, comment_len = CENTRAL.unpack(head)[10:13]
            count += 1
            if count > lim.max_members:
                return [*out, (RULE_LIMITS, f"more than {lim.max_members} members, over max-members")]
            if name_len > MAX_NAME:
                out.append((RULE_PATHS, f"entry {count}: a name of {name_len} bytes, longer than {MAX_NAME} bytes"))
            if extra_len + comment_len > MAX_EXTRA:
                out.append(
                    (
                        RULE_LIMITS,
                        f"entry {count}: {extra_len + comment_len} bytes of extra field "
                        f"and comment, more than {MAX_EXTRA}",
                    )
                )
            f.seek(name_len + extra_len + comment_len, io.SEEK_CUR)
            done += CENTRAL.size + name_len + extra_len + comment_len
    return out


def zip_entry(info: zipfile.ZipInfo) -> Entry:
    fmt = stat.S_IFMT(info.external_attr >> 16)
    if info.is_dir() or fmt == stat.S_IFDIR:
        kind = "dir"
    else:
        kind = {
            0: "file",
            stat.S_IFREG: "file",
            stat.S_IFLNK: "symlink",
            stat.S_IFCHR: "device",
            stat.S_IFBLK: "device",
            stat.S_IFIFO: "fifo",
        }.get(fmt, "special")
    refused = ""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        refused = f"compression method {info.compress_type} (only stored and deflate members are read)"
    elif info.flag_bits & 0x1:
        refused = "encrypted"
    return Entry(info.filename, info.file_size, info.compress_size, kind, refused=refused)


def verify_zip(zf: zipfile.ZipFile) -> None:
    """Decompress every member in bounded pieces: zipfile checks each CRC at its end."""
    for info in zf.infolist():
        if info.is_dir():
            continue
        with zf.open(info) as f:
            while f.read(CHUNK):
                pass


def check_zip(path: Path, lim: Limits) -> list[Finding]:
    early = central_problems(path, lim)
    if early:
        return problem_findings(path.name, early)
    with zipfile.ZipFile(path) as zf:
        tally = Tally(lim, path.stat().st_size)
        tally.walk(zip_entry(i) for i in zf.infolist())
        if not tally.problems:
            verify_zip(zf)
    return tally.findings(path.name)


# -------------------------------------------------------------------- tar


class GzipStream:
    """The decompressed bytes of a gzip file for tarfile: forward only, at most
    ``budget`` bytes in all, at most ``max_read`` bytes per read() call (tarfile
    reads a pax or GNU long-name record in one call, whatever its header says)."""

    def __init__(self, raw: BinaryIO, budget: int, max_read: int) -> None:
        self._raw, self._budget, self._max_read = raw, budget, max_read
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self._buf = bytearray()
        self._pos = self._made = 0
        self._eof = False

    def read(self, size: int = -1, /) -> bytes:
        if size < 0 or size > self._max_read:
            raise ArchiveError(
                RULE_LIMITS, f"a tar header record of {size} bytes, over max-metadata-size ({self._max_read})"
            )
        return self._take(size, keep=True)

    def seek(self, pos: int, whence: int = io.SEEK_SET, /) -> int:
        if whence != io.SEEK_SET or pos < self._pos:
            raise io.UnsupportedOperation("the tar stream is read forward only")
        while self._pos < pos and self._take(min(pos - self._pos, CHUNK), keep=False):
            pass
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("read only")

    def close(self) -> None:
        self._buf.clear()

    def drain(self) -> bool:
        """Read to the end (zlib checks the gzip CRC and length there); True
        when only NUL bytes were left (the padding after a tar's end marker)."""
        clean = True
        while chunk := self._take(CHUNK, keep=True):
            clean = clean and not chunk.strip(b"\0")
        return clean

    def _take(self, n: int, *, keep: bool) -> bytes:
        """The next ``n`` bytes (fewer at the end); with keep=False a non-empty
        token instead, so that skipping copies nothing."""
        while len(self._buf) < n and not self._eof:
            self._fill()
        got = min(n, len(self._buf))
        out = bytes(self._buf[:got]) if keep else b"-" * min(got, 1)
        del self._buf[:got]
        self._pos += got
        return out

    def _fill(self) -> None:
        if self._z.eof:  # one gzip member ended; another may follow (NUL padding between is allowed)
            data = self._z.unused_data.lstrip(b"\0")
            while not data:
                chunk = self._raw.read(CHUNK)
                if not chunk:
                    self._eof = True
                    return
                data = chunk.lstrip(b"\0")
            self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)
        else:
            data = self._z.unconsumed_tail or self._raw.read(CHUNK)
        if data:
            out = self._z.decompress(data, CHUNK)
        else:
            out = self._z.flush()
            if not self._z.eof:
                raise EOFError("the gzip stream ends before its end-of-stream marker")
        self._made += len(out)
        if self._made > self._budget:
            raise ArchiveError(
                RULE_LIMITS, f"the tar stream runs past {self._budget} bytes uncompressed (max-total-size plus headers)"
            )
        self._buf += out


def tar_entry(info: tarfile.TarInfo) -> Entry:
    if info.issparse():
        kind = "sparse"
    elif info.isreg():
        kind = "file"
    elif info.isdir():
        kind = "dir"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    elif info.ischr() or info.isblk():
        kind = "device"
    elif info.isfifo():
        kind = "fifo"
    else:
        kind = "special"
    return Entry(info.name, info.size, None, kind, target=info.linkname)


def tar_entries(stream: GzipStream) -> Iterator[Entry]:
    """The member headers, one at a time (tarfile skips a member's data only
    when asked for the next header, so a stopped walk reads no further)."""
    tar = tarfile.TarFile(fileobj=stream, mode="r")
    while (info := tar.next()) is not None:
        yield tar_entry(info)
    at = tar.offset
    if not stream.drain():  # tarfile stops at a bad header: what follows would go unchecked
        raise tarfile.ReadError(f"data after the end of the archive (offset {at}) that tarfile does not read")


def check_tar(path: Path, lim: Limits) -> list[Finding]:
    budget = lim.max_total_size + TAR_OVERHEAD * (lim.max_members + 1)
    with path.open("rb") as raw:
        stream = GzipStream(raw, budget, max(lim.max_metadata_size, tarfile.BLOCKSIZE))
        tally = Tally(lim, path.stat().st_size)
        tally.walk(tar_entries(stream))
    return tally.findings(path.name)


# ------------------------------------------------------------ entry points


def check_archive(path: Path, limits: Limits) -> list[Finding]:
    """``archive-limits`` and ``archive-paths`` rows for a wheel (zip) or an
    sdist (tar.gz), from the directory alone; only when both pass is every
    member decompressed (in bounded pieces) to prove it is intact. An
    unreadable archive is one ``zip`` fail row, never an exception."""
    try:
        if path.name.endswith(".whl"):
            return check_zip(path, limits)
        return check_tar(path, limits)
    except ArchiveError as e:
        return [Finding(path.name, e.rule, "fail", e.detail)]
    except READ_ERRORS as e:
        return [Finding(path.name, RULE_READ, "fail", unreadable(path, e))]


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """A member's bytes, never more than ``cap`` whatever its header claims:
    at most ``cap + 1`` bytes are read, in pieces (one big read would have zlib
    hold the output twice), into a buffer that becomes the result uncopied."""
    out = io.BytesIO()
    with zf.open(info) as f:
        while out.tell() <= cap and (piece := f.read(min(CHUNK, cap + 1 - out.tell()))):
            out.write(piece)
    if out.tell() > cap:
        raise ArchiveError(RULE_LIMITS, f"{info.filename}: more than {cap} bytes uncompressed")
    return out.getvalue()


class ZipMembers(Mapping[str, bytes]):
    """A checked wheel's files by name; each one read (capped) when asked for,
    so only one member's bytes need be in memory at a time."""

    def __init__(self, zf: zipfile.ZipFile, limits: Limits, keep: Callable[[str], bool] | None = None) -> None:
        self._zf, self.limits = zf, limits
        self._infos = {i.filename: i for i in zf.infolist() if not i.is_dir() and (keep is None or keep(i.filename))}

    def __getitem__(self, name: str) -> bytes:
        info = self._infos[name]
        cap = self.limits.max_metadata_size if is_metadata(name) else self.limits.max_member_size
        try:
            return read_member(self._zf, info, cap)
        except READ_ERRORS as e:
            raise ArchiveError(RULE_READ, f"{name}: unreadable ({reason(e)})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._infos  # without reading it (Mapping's default would)

    def size(self, name: str) -> int:
        """The uncompressed size the directory claims (reads are capped anyway)."""
        return self._infos[name].file_size

    def only(self, keep: Callable[[str], bool]) -> ZipMembers:
        return ZipMembers(self._zf, self.limits, lambda m: m in self._infos and keep(m))


@contextmanager
def wheel_members(path: Path, limits: Limits) -> Iterator[ZipMembers]:
    """The files of a wheel that :func:`check_archive` passed, read lazily."""
    try:
        zf = zipfile.ZipFile(path)
    except READ_ERRORS as e:
        raise ArchiveError(RULE_READ, unreadable(path, e)) from None
    with zf:
        yield ZipMembers(zf, limits)


def file_names(path: Path) -> list[str]:
    """The file members of a wheel, read from its directory alone."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()]
    except READ_ERRORS as e:
        raise ArchiveError(RULE_READ, unreadable(path, e)) from None
