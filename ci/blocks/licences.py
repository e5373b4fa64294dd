"""Licences of the native libraries a wheel carries (PEP 639 ``.dist-info/licenses/``).

Shared by ``linux-wheel`` (supplies missing texts, then refuses a wheel that
still lacks one) and ``publish-check`` (rule ``licenses``).

Which libraries a wheel carries (:func:`bundled` + :func:`graph_libraries`):

bundled
    every shared library inside the wheel: ``*.so*`` in a top-level
    ``*.libs/`` folder (auditwheel's / maturin's ``libgmp-1a2b3c4d.so.10``)
    and every ``.dll`` (delvewheel's ``libgmp-10-<32 hex>.dll``).
static
    C libraries that a ``-sys`` crate of :data:`SYS_CRATES` in the Python
    crate's dependency graph builds from its own sources and links into the
    extension: ``cargo metadata`` with dependencies (offline, ``--locked``),
    its resolved features. gmp-mpfr-sys without ``use-system-libs`` links GMP
    (plus MPFR and MPC with those features); with ``use-system-libs`` they are
    shared libraries, bundled by the repair step and found as above.

What each one needs in ``.dist-info/licenses/`` (:func:`problems`), the first
that applies:

configured
    ``publish.licenses`` / ``windows-wheel.licenses`` (name prefix -> files
    relative to the root): each file by name, byte-identical. Configured
    texts always win.
supplied
    a library of :data:`KNOWN` whose own sources are at hand (the ``-sys``
    crate's folder, e.g. in the cargo registry): its texts under
    ``licenses/<NAME>/`` (GMP: ``COPYING``, ``COPYING.LESSERv3``,
    ``COPYINGv2``, ``COPYINGv3`` of ``gmp-*-c``), byte-identical to them.
    :func:`supply` writes them into a wheel (``License-File`` metadata, RECORD).
otherwise
    a failure naming the library and the key to configure.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ci.core.config import PREFIX, SuiteConfig
from ci.core.console import probe
from ci.core.errors import CheckFailed, ConfigError, ToolMissing
from ci.core.project import find_cargo

RULE = "licenses"


@dataclass(frozen=True)
class Library:
    """A C library the suite knows the licence texts of."""

    name: str  # "GMP": the folder of its texts in licenses/
    prefix: str  # file name prefix and publish.licenses key: "libgmp"
    texts: tuple[str, ...]  # its licence files in its source folder
    source_glob: str  # its source folder inside the -sys crate


@dataclass(frozen=True)
class SysCrate:
    """A ``-sys`` crate that builds C libraries from source and links them statically."""

    crate: str
    system_feature: str  # the feature that links the system's shared libraries instead
    links: tuple[tuple[str, str | None], ...]  # (library prefix, feature that adds it, None: always)


KNOWN = (
    Library("GMP", "libgmp", ("COPYING", "COPYING.LESSERv3", "COPYINGv2", "COPYINGv3"), "gmp-*-c"),
    Library("MPFR", "libmpfr", ("COPYING", "COPYING.LESSER"), "mpfr-*-c"),
    Library("MPC", "libmpc", ("COPYING.LESSER",), "mpc-*-c"),
)
SYS_CRATES = (SysCrate("gmp-mpfr-sys", "use-system-libs", (("libgmp", None), ("libmpfr", "mpfr"), ("libmpc", "mpc"))),)
SHARED_LIB = re.compile(r"(?P<stem>[^/]+?)(-[0-9a-f]{8})?\.so(\.\d+)*")
MANGLED_DLL = re.compile(r"(?P<stem>[^/]+?)(-[0-9a-f]{32})?\.dll", re.IGNORECASE)
CARGO_HINT = "run 'cargo fetch --locked' once (network) so that cargo metadata can resolve offline"


@dataclass(frozen=True)
class Carried:
    """One native library inside a wheel, and how it got there."""

    prefix: str  # a KNOWN prefix ("libgmp") or the file's stem ("libfoo")
    how: str  # "bundled as pkg.libs/libgmp-1a2b3c4d.so.10", "linked statically (...)"

    @property
    def label(self) -> str:
        lib = known(self.prefix)
        return lib.name if lib else self.prefix


@dataclass(frozen=True)
class Graph:
    """What the Python crate's dependency graph says about native libraries."""

    static: tuple[Carried, ...] = ()
    # Library prefix -> the folder of the -sys crate that carries its sources.
    sources: Mapping[str, Path] = field(default_factory=dict)


def known(prefix: str) -> Library | None:
    """The KNOWN library a file stem belongs to (``libgmp-10`` -> GMP), longest prefix first."""
    hits = [lib for lib in KNOWN if prefix.lower().startswith(lib.prefix)]
    return max(hits, key=lambda lib: len(lib.prefix)) if hits else None


# ------------------------------------------------------------- detection


def library_stem(member: str) -> str | None:
    """``pkg.libs/libgmp-1a2b3c4d.so.10`` -> ``libgmp``; ``libgmp-10-<32 hex>.dll``
    -> ``libgmp-10``; None when ``member`` is no bundled shared library."""
    path = PurePosixPath(member)
    if path.suffix.lower() == ".dll":
        m = MANGLED_DLL.fullmatch(path.name)
        return m["stem"] if m else None
    if len(path.parts) == 2 and path.parts[0].endswith(".libs"):
        m = SHARED_LIB.fullmatch(path.name)
        return m["stem"] if m else None
    return None


def bundled(members: Iterable[str]) -> list[Carried]:
    """Every shared library a wheel's members bundle."""
    out = []
    for member in sorted(members):
        stem = library_stem(member)
        if stem is not None:
            lib = known(stem)
            out.append(Carried(lib.prefix if lib else stem, f"bundled as {member}"))
    return out


def cargo_metadata(workspace: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """``cargo metadata`` with dependencies, resolved offline (``--locked``);
    online when the offline resolution lacks a download."""
    cargo = find_cargo(env)
    base = [cargo, "metadata", "--format-version", "1", "--locked", "--manifest-path", str(workspace / "Cargo.toml")]
    proc = probe([*base, "--offline"], env=env, timeout=300)
    if proc is not None and proc.returncode != 0 and "offline" in proc.stderr:
        proc = probe(base, env=env, timeout=300)  # a dependency was never downloaded here
    if proc is None:
        raise ToolMissing(f"cargo metadata did not start or answer in 300 s ({cargo})")
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        errors = [ln.removeprefix("error: ") for ln in lines if ln.startswith("error: ")] or lines[-1:]
        raise ConfigError(
            f"cargo metadata failed for {workspace / 'Cargo.toml'}: {'; '.join(errors) or '(no output)'}",
            hint=CARGO_HINT,
        )
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def reachable(metadata: Mapping[str, Any], manifest: Path) -> dict[str, set[str]]:
    """Package id -> resolved features, for every package the crate at
    ``manifest`` reaches through normal dependencies (itself included)."""
    ids = [p["id"] for p in metadata["packages"] if Path(p["manifest_path"]).resolve() == manifest.resolve()]
    if not ids:
        raise ConfigError(f"cargo metadata does not list the Python crate {manifest}")
    nodes = {n["id"]: n for n in (metadata.get("resolve") or {}).get("nodes", [])}
    seen: dict[str, set[str]] = {}
    todo = ids[:1]
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in nodes:
            continue
        seen[pid] = set(nodes[pid].get("features", []))
        todo += [
            d["pkg"] for d in nodes[pid].get("deps", []) if any(k.get("kind") is None for k in d.get("dep_kinds", []))
        ]
    return seen


def graph_libraries(metadata: Mapping[str, Any], manifest: Path) -> Graph:
    """The libraries linked statically into the extension of the crate at
    ``manifest``, and where the sources of every known library are."""
    packages = {p["id"]: p for p in metadata["packages"]}
    static: list[Carried] = []
    sources: dict[str, Path] = {}
    for pid, features in reachable(metadata, manifest).items():
        pkg = packages[pid]
        sys_crate = next((s for s in SYS_CRATES if s.crate == pkg["name"]), None)
        if sys_crate is None:
            continue
        folder = Path(pkg["manifest_path"]).parent
        dynamic = sys_crate.system_feature in features
        for prefix, feature in sys_crate.links:
            if feature is None or feature in features:
                sources.setdefault(prefix, folder)
                if not dynamic:
                    how = f"linked statically: {pkg['name']} {pkg['version']} without {sys_crate.system_feature}"
                    static.append(Carried(prefix, how))
    return Graph(tuple(static), sources)


_GRAPHS: dict[tuple[Path, Path], Graph] = {}


def project_graph(cfg: SuiteConfig, env: Mapping[str, str]) -> Graph:
    """:func:`graph_libraries` of the project, read once per process."""
    key = (cfg.workspace, cfg.python_manifest)
    if key not in _GRAPHS:
        _GRAPHS[key] = graph_libraries(cargo_metadata(cfg.workspace, env), cfg.python_manifest)
    return _GRAPHS[key]


def carried(members: Iterable[str], graph: Graph) -> list[Carried]:
    """Every library in the wheel, one entry per library (the ways it got there joined)."""
    by_prefix: dict[str, list[str]] = {}
    for c in [*bundled(members), *graph.static]:
        by_prefix.setdefault(c.prefix, []).append(c.how)
    return [Carried(p, "; ".join(hows)) for p, hows in by_prefix.items()]


# ---------------------------------------------------------- requirements


def configured(cfg: SuiteConfig) -> dict[str, tuple[str, ...]]:
    """Library prefix -> licence files (relative to the root): publish.licenses,
    then windows-wheel.licenses."""
    return {**cfg.publish.licenses, **cfg.windows_wheel.licenses}


def configured_for(prefix: str, table: Mapping[str, tuple[str, ...]]) -> str | None:
    """The configured key that names ``prefix`` (the longest that it starts with)."""
    keys = [k for k in table if prefix.lower().startswith(k.lower())]
    return max(keys, key=len) if keys else None


def own_texts(prefix: str, graph: Graph) -> dict[str, Path]:
    """``<NAME>/<file>`` -> the file in the library's own sources (all of its
    texts, or nothing)."""
    lib, crate_dir = known(prefix), graph.sources.get(prefix)
    if lib is None or crate_dir is None:
        return {}
    for folder in sorted(crate_dir.glob(lib.source_glob)):
        found = {f"{lib.name}/{t}": folder / t for t in lib.texts if (folder / t).is_file()}
        if len(found) == len(lib.texts):
            return found
    return {}


def to_supply(cfg: SuiteConfig, libraries: Iterable[Carried], graph: Graph) -> dict[str, Path]:
    """Path under ``licenses/`` -> source file, for every library that has no
    configured texts but whose own texts are at hand."""
    table = configured(cfg)
    out: dict[str, Path] = {}
    for lib in libraries:
        if configured_for(lib.prefix, table) is None:
            out.update(own_texts(lib.prefix, graph))
    return out


def licence_files(members: Mapping[str, bytes], info: str | None) -> dict[str, str]:
    """Path under ``<info>/licenses/`` -> member name."""
    head = f"{info}/licenses/"
    return {m[len(head) :]: m for m in members if info and m.startswith(head)}


def compare(want: Mapping[str, Path | None], shipped: Mapping[str, str], members: Mapping[str, bytes]) -> list[str]:
    """What of ``want`` (name -> the file it must equal, None: any bytes) is
    not in ``shipped`` (name -> member) with the same bytes."""
    missing = [n for n in want if n not in shipped]
    differ = [
        f"{n} differs from {src}"
        for n, src in want.items()
        if n in shipped and src is not None and src.is_file() and members[shipped[n]] != src.read_bytes()
    ]
    return ([f"missing {', '.join(missing)}"] if missing else []) + differ


def configured_problems(cfg: SuiteConfig, key: str, members: Mapping[str, bytes], info: str | None) -> list[str]:
    """The configured files, each by name anywhere in licenses/, equal to the file in the project."""
    shipped = {PurePosixPath(rel).name: m for rel, m in licence_files(members, info).items()}
    want: dict[str, Path | None] = {PurePosixPath(rel).name: cfg.root / rel for rel in configured(cfg)[key]}
    return compare(want, shipped, members)


def supplied_problems(lib: Carried, members: Mapping[str, bytes], info: str | None, graph: Graph) -> list[str]:
    """The library's own texts at ``<NAME>/<file>``, equal to its sources (when at hand)."""
    want: dict[str, Path | None] = {**own_texts(lib.prefix, graph)}
    spec = known(lib.prefix)
    if not want and spec is not None:  # its sources are not at hand: the files, any bytes
        want = {f"{spec.name}/{t}": None for t in spec.texts}
    return compare(want, licence_files(members, info), members)


def config_key(cfg: SuiteConfig, key: str) -> str:
    table = "windows-wheel" if key in cfg.windows_wheel.licenses else "publish"
    return f"{PREFIX}.{table}.licenses.{key}"


def problems(cfg: SuiteConfig, members: Mapping[str, bytes], info: str | None, graph: Graph) -> list[str]:
    """One line per library of the wheel whose licence texts are not in
    ``<info>/licenses/``, naming it, how it is carried and the expected files."""
    table = configured(cfg)
    where = f"{info or '(no .dist-info)'}/licenses/"
    out = []
    for lib in carried(members, graph):
        key = configured_for(lib.prefix, table)
        texts = own_texts(lib.prefix, graph)
        if key is not None:
            bad, fix = configured_problems(cfg, key, members, info), f"configured in {config_key(cfg, key)}"
        elif known(lib.prefix) is not None:
            bad = supplied_problems(lib, members, info, graph)
            origin = f"from {next(iter(texts.values())).parent}" if texts else "from the library's sources"
            fix = f"linux-wheel adds them {origin}, or configure {PREFIX}.publish.licenses.{lib.prefix}"
        else:
            bad = ["no licence text known"]
            fix = f"configure {PREFIX}.publish.licenses.{lib.prefix} with its licence files"
        if bad:
            out.append(f"{lib.label} ({lib.how}): {'; '.join(bad)} in {where} ({fix})")
    return out + declared_problems(members, info)


def declared_problems(members: Mapping[str, bytes], info: str | None) -> list[str]:
    """PEP 639: every ``License-File`` of METADATA is a file in licenses/."""
    if info is None or f"{info}/METADATA" not in members:
        return []
    meta = email.parser.BytesParser().parsebytes(members[f"{info}/METADATA"], headersonly=True)
    shipped = licence_files(members, info)
    absent = [str(f) for f in meta.get_all("License-File") or [] if str(f) not in shipped]
    return [f"METADATA declares License-File {f}, which is not in {info}/licenses/" for f in absent]


def describe(cfg: SuiteConfig, members: Mapping[str, bytes], graph: Graph) -> str:
    """What the licence texts of a passing wheel cover, for a summary."""
    table = configured(cfg)
    parts = []
    for lib in carried(members, graph):
        source = "configured" if configured_for(lib.prefix, table) else "its own texts"
        parts.append(f"{lib.label} ({source})")
    return ", ".join(parts) or "no native library carried"


# --------------------------------------------------------------- writing


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def with_license_files(metadata: bytes, names: Iterable[str]) -> bytes:
    """METADATA with a ``License-File`` header for each of ``names`` not yet declared."""
    text = metadata.decode("utf-8")
    head, sep, body = text.partition("\n\n")
    declared = set(email.parser.Parser().parsestr(head + "\n\n").get_all("License-File") or [])
    added = [f"License-File: {n}" for n in names if n not in declared]
    return (head + "".join("\n" + a for a in added) + sep + body).encode("utf-8")


def new_record(record: bytes, files: Mapping[str, bytes], record_name: str) -> bytes:
    """RECORD with the rows of ``files`` replaced or added (RECORD's own row last)."""
    rows = [r for r in csv.reader(io.StringIO(record.decode("utf-8"))) if r and r[0] not in files]
    rows = [r for r in rows if r[0] != record_name]
    rows += [[name, record_hash(data), str(len(data))] for name, data in files.items()]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([*rows, [record_name, "", ""]])
    return out.getvalue().encode("utf-8")


def dist_info(names: Iterable[str]) -> str:
    found = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts[0].endswith(".dist-info")}
    if len(found) != 1:
        raise CheckFailed(f"a wheel needs exactly one .dist-info folder, found {sorted(found) or 'none'}")
    return found.pop()


def supply(wheel: Path, texts: Mapping[str, Path]) -> list[str]:
    """Write ``texts`` (path under ``licenses/`` -> file) into ``wheel`` in place
    (atomically), with their ``License-File`` metadata and RECORD rows; the
    paths added."""
    if not texts:
        return []
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        data = {i.filename: zf.read(i) for i in infos}
    info = dist_info(data)
    changed = {f"{info}/licenses/{rel}": src.read_bytes() for rel, src in texts.items()}
    changed[f"{info}/METADATA"] = with_license_files(data[f"{info}/METADATA"], texts)
    record = f"{info}/RECORD"
    data.update(changed)
    data[record] = new_record(data[record], changed, record)
    stamp = next(i.date_time for i in infos if i.filename == f"{info}/METADATA")
    old = {i.filename: i for i in infos}
    tmp = wheel.with_name(wheel.name + ".licences")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for name in [n for n in data if n != record] + [record]:
            zinfo = old.get(name) or zipfile.ZipInfo(name, date_time=stamp)
            if name not in old:
                zinfo.compress_type, zinfo.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            out.writestr(zinfo, data[name])
    os.replace(tmp, wheel)
    return sorted(texts)
