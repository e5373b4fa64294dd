"""The ``publish-check`` session: the release gate over ``dist/``.

Every artifact in ``dist/`` (wheels of any platform and the sdist) goes
through every rule that applies to it; each rule yields
:class:`ci.core.findings.Finding` rows, printed as an artifact x rule table and
written to ``reports/publish-check/report.md``. The session fails when any row
fails, and each failure names the file and the rule.

Every wheel and sdist is read as hostile: :func:`ci.blocks.archives.check_archive`
looks at its directory first (member count, sizes, compression ratios, paths,
links) and proves the members decompress, in bounded pieces; when that fails,
no other rule reads the artifact's contents.

Rules
    ``dist-contents`` dist/ holds wheels and sdists (regular files) only: no other
                      file, no folder, no link
    ``archive-limits`` ``publish.max-*``: members, sizes, ratios, metadata size
    ``archive-paths`` relative paths without ``..``, drive or backslash; files and
                      folders only (no links, devices, fifos)
    ``identity``      the file name's distribution is the project's (normalised)
    ``zip``           the wheel is a readable zip and its RECORD matches its bytes
    ``twine``         ``twine check --strict`` (metadata renders, is complete)
    ``version``       one version in the file name, the metadata, the python
                      crate's Cargo.toml, pyproject.toml and the git tag
    ``tags``          abi3, ``cp3X`` serving the lowest allowed Python, WHEEL tags
                      equal the file name's, platform one of ``publish.platforms``
    ``abi3audit``     no symbol outside the limited API (abi3 wheels)
    ``auditwheel``    ``auditwheel show``: the policy holds, no external library
    ``bundled-libs``  ``<pkg>.libs/`` holds exactly ``linux-wheel.bundled-libraries``,
                      wired by DT_NEEDED and RPATH
    ``contents``      check-wheel-contents (W010 accepted for ``<pkg>.libs/`` only)
    ``stray-files``   nothing but the package, its ``.libs``, the ``.dist-info``
    ``licenses``      licence texts of every library bundled or linked statically in
                      ``.dist-info/licenses/`` (configured, else the library's own)
    ``sdist``         ``Cargo.lock`` and path dependencies inside; builds offline
    ``smoke``         installed in a fresh venv per allowed CPython, ``smoke`` runs,
                      ``__version__`` matches, bundled libraries load from the wheel
    ``release-set``   (``-- --release``) one wheel per platform plus the sdist,
                      one version, nothing stale
    Windows wheels add the rows of :func:`ci.blocks.pe.windows_wheel_findings`.
"""

from __future__ import annotations

import dataclasses
import email.parser
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from installer.records import InvalidRecordEntry, RecordEntry, parse_record_file
from packaging.tags import Tag

from ci.blocks import archives, crosschecks, provenance, toolchain, venvs
from ci.blocks import pe as dll
from ci.blocks import sdists as sdist
from ci.blocks import wheels as wheelcheck
from ci.core import artifacts
from ci.core import findings as checks
from ci.core.config import SuiteConfig
from ci.core.console import probe, run_group
from ci.core.context import Context
from ci.core.errors import CheckFailed, SuiteError
from ci.core.findings import Finding
from ci.core.project import Project

SESSION = "publish-check"
POLICY_PLATFORM = {
    "manylinux2014": "manylinux_2_17_x86_64",
    "manylinux_2_17": "manylinux_2_17_x86_64",
    "manylinux_2_28": "manylinux_2_28_x86_64",
    "manylinux_2_34": "manylinux_2_34_x86_64",
}
DIST_INFO_ALLOWED = re.compile(r"(METADATA|WHEEL|RECORD|entry_points\.txt|licenses/.+|sboms/.+)")
STRAY_NAMES = re.compile(
    r"(^|/)(__pycache__/|\.git|\.DS_Store$|\.nox/|target/|\.pytest_cache/)"
    r"|\.(pyc|pyo|orig|rej|swp|bak|o|a|obj|lib|pdb|profraw)$|~$"
)
# A failure of one of these rules means the wheel is not installed anywhere.
GATE_RULES = frozenset({"zip", archives.RULE_LIMITS, archives.RULE_PATHS, "identity"})
SDIST_ERRORS: tuple[type[Exception], ...] = (*archives.READ_ERRORS, CheckFailed)
SMOKE_WRAPPER = r"""
import importlib, json, os, sys
exec(compile({smoke!r}, "<smoke>", "exec"), {{"__name__": "__smoke__"}})
top = importlib.import_module({top!r})
libs = set()
if os.path.exists("/proc/self/maps"):
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[-1]).startswith(tuple({prefixes!r})):
                libs.add(os.path.realpath(parts[-1]))
print("SUITE-SMOKE " + json.dumps({{
    "version": getattr(top, "__version__", None),
    "package_dir": os.path.realpath(os.path.dirname(top.__file__)),
    "libs": sorted(libs),
}}))
"""


@dataclass(frozen=True)
class Versions:
    """The version each source of truth states."""

    expected: str  # the Python package version (pyproject or the python crate)
    cargo: str
    pyproject: str | None  # None when [project].version is dynamic
    tag: str | None


# --------------------------------------------------------------- helpers


def normalize(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version.lstrip("v")))
    except InvalidVersion:
        return version


def git_tag(root: Path, env: Mapping[str, str]) -> str | None:
    """The release tag being built: GitHub's ref when it is a tag, else
    ``git describe --exact-match``; None when HEAD is not tagged."""
    if env.get("GITHUB_REF_TYPE") == "tag" and env.get("GITHUB_REF_NAME"):
        return env["GITHUB_REF_NAME"]
    git = shutil.which("git", path=env.get("PATH"))
    if not git:
        return None
    proc = probe([git, "describe", "--tags", "--exact-match", "HEAD"], cwd=root, env=env)
    return proc.stdout.strip() or None if proc is not None and proc.returncode == 0 else None


def project_versions(project: Project, env: Mapping[str, str]) -> Versions:
    cfg = project.config
    cargo = project.python_crate.version
    pyproject = project.python_project.get("version")
    return Versions(
        expected=normalize(pyproject or cargo),
        cargo=normalize(cargo),
        pyproject=normalize(pyproject) if pyproject else None,
        tag=git_tag(cfg.root, env),
    )


def wheel_tags(name: str) -> tuple[str, str, frozenset[Tag]]:
    """(normalized name, version, tags) of a wheel file name."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        dist, version, _build, tags = parse_wheel_filename(name)
    except InvalidWheelFilename as e:
        raise CheckFailed(f"{name}: invalid wheel file name ({e})") from None
    return str(dist), str(version), frozenset(tags)


def sdist_version(name: str) -> tuple[str, str]:
    from packaging.utils import InvalidSdistFilename, parse_sdist_filename

    try:
        dist, version = parse_sdist_filename(name)
    except InvalidSdistFilename as e:
        raise CheckFailed(f"{name}: invalid sdist file name ({e})") from None
    return str(dist), str(version)


def dist_info_dir(members: Iterable[str]) -> str | None:
    tops = {PurePosixPath(m).parts[0] for m in members}
    found = [t for t in tops if t.endswith(".dist-info")]
    return found[0] if len(found) == 1 else None


def metadata_of(members: Mapping[str, bytes], info: str) -> email.message.Message:
    return email.parser.BytesParser().parsebytes(members.get(f"{info}/METADATA", b""))


def is_linux(tags: frozenset[Tag]) -> bool:
    return any("linux" in t.platform for t in tags)


def is_windows(tags: frozenset[Tag]) -> bool:
    return any(t.platform.startswith("win") for t in tags)


def lowest_python_tag(cfg: SuiteConfig) -> str:
    lowest = min(cfg.python_versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return "cp" + lowest.replace(".", "")


# ----------------------------------------------------------- wheel rules


# PEP 427: any hashlib algorithm except the broken md5 and sha1.
WEAK_HASHES = frozenset({"md5", "sha1"})


def record_entries(name: str, record: bytes) -> tuple[dict[str, RecordEntry], list[str]]:
    """RECORD's entries by path (read with ``installer``) and its problems."""
    entries: dict[str, RecordEntry] = {}
    problems: list[str] = []
    try:
        for row in parse_record_file(record.decode("utf-8").splitlines()):
            entry = RecordEntry.from_elements(*row)
            algorithm = entry.hash_.name if entry.hash_ else None
            if algorithm is not None and (algorithm in WEAK_HASHES or algorithm not in hashlib.algorithms_available):
                problems.append(f"{entry.path}: hash algorithm {algorithm!r} is not allowed (PEP 427)")
            entries[entry.path] = entry
    except (UnicodeDecodeError, InvalidRecordEntry, ValueError) as e:
        problems.append(f"RECORD is not a valid CSV of path,hash,size: {e}")
    return entries, problems


def record_findings(name: str, members: Mapping[str, bytes], info: str | None) -> list[Finding]:
    """``zip``: RECORD lists every member with a valid hash (any PEP 427
    algorithm) and its size; only RECORD itself may go unhashed."""
    record = f"{info}/RECORD"
    if info is None or record not in members:
        return [Finding(name, "zip", "fail", "no single .dist-info/RECORD")]
    listed, problems = record_entries(name, members[record])
    for member in members:  # one member's bytes at a time (members may be read lazily)
        entry = listed.get(member)
        if member == record:
            continue
        if entry is None:
            problems.append(f"{member} is not in RECORD")
        elif entry.hash_ is None or not entry.validate(members[member]):
            problems.append(f"{member}: hash/size differ from RECORD")
    problems += [f"RECORD lists {m}, which is not in the wheel" for m in listed if m not in members]
    if problems:
        return [Finding(name, "zip", "fail", "; ".join(problems[:5]))]
    return [Finding(name, "zip", "pass", f"{len(members)} members, RECORD matches")]


def version_findings(name: str, file_version: str, meta_version: str | None, v: Versions) -> list[Finding]:
    stated = {"file name": normalize(file_version), "Cargo.toml": v.cargo}
    if meta_version is not None:
        stated["metadata"] = normalize(meta_version)
    if v.pyproject:
        stated["pyproject.toml"] = v.pyproject
    if v.tag:
        stated[f"tag {v.tag}"] = normalize(v.tag)
    wrong = {k: x for k, x in stated.items() if x != v.expected}
    if wrong:
        detail = ", ".join(f"{k} says {x}" for k, x in wrong.items())
        return [Finding(name, "version", "fail", f"expected {v.expected}: {detail}")]
    return [Finding(name, "version", "pass", f"{v.expected} ({', '.join(stated)})")]


def tag_findings(
    cfg: SuiteConfig, name: str, tags: frozenset[Tag], members: Mapping[str, bytes], info: str | None
) -> list[Finding]:
    problems = []
    want_py = lowest_python_tag(cfg)
    for t in sorted(tags, key=str):
        if t.abi != "abi3":
            problems.append(f"{t}: ABI tag {t.abi}, not abi3 (one wheel serves every CPython)")
        m = re.fullmatch(r"cp3(\d+)", t.interpreter)
        if not m or int(m.group(1)) > int(want_py[3:]):
            problems.append(
                f"{t}: interpreter tag {t.interpreter} does not serve {want_py} (the lowest of python-versions)"
            )
    platforms = {t.platform for t in tags}
    if cfg.publish.platforms and not platforms & set(cfg.publish.platforms):
        problems.append(
            f"platform {', '.join(sorted(platforms))} is none of publish.platforms ({', '.join(cfg.publish.platforms)})"
        )
    if info is not None:
        wheel_meta = email.parser.BytesParser().parsebytes(members.get(f"{info}/WHEEL", b""))
        declared = {str(x) for x in wheel_meta.get_all("Tag") or []}
        if declared != {str(t) for t in tags}:
            problems.append(f"WHEEL declares {sorted(declared)}, file name says {sorted(map(str, tags))}")
    if problems:
        return [Finding(name, "tags", "fail", "; ".join(problems))]
    return [Finding(name, "tags", "pass", ", ".join(sorted(map(str, tags))))]


def stray_findings(cfg: SuiteConfig, name: str, members: Mapping[str, bytes], info: str | None) -> list[Finding]:
    pkg = cfg.import_name
    allowed_top = {pkg, wheelcheck.libs_dir(pkg), *cfg.publish.extra_toplevel}
    problems = []
    for member in members:
        parts = PurePosixPath(member).parts
        top = parts[0]
        if info is not None and top == info:
            rest = "/".join(parts[1:])
            if not DIST_INFO_ALLOWED.fullmatch(rest):
                problems.append(member)
            continue
        if top.endswith(".data") and info and top == info.replace(".dist-info", ".data"):
            continue
        if (top not in allowed_top and PurePosixPath(top).stem not in allowed_top) or STRAY_NAMES.search(member):
            problems.append(member)
    if problems:
        return [Finding(name, "stray-files", "fail", "unexpected: " + ", ".join(sorted(problems)[:8]))]
    return [Finding(name, "stray-files", "pass")]


def license_findings(cfg: SuiteConfig, name: str, members: Mapping[str, bytes], info: str | None) -> list[Finding]:
    """``licenses``: each native library the wheel carries, bundled or linked
    statically (cargo metadata), has its licence texts in ``.dist-info/licenses/``:
    the configured ones, else its own (see :mod:`ci.blocks.licences`)."""
    from ci.blocks import licences

    try:
        graph = licences.project_graph(cfg, os.environ)
    except SuiteError as e:
        return [Finding(name, "licenses", "fail", f"cannot tell which libraries are linked statically: {e.message}")]
    problems = licences.problems(cfg, members, info, graph)
    if problems:
        return [Finding(name, "licenses", "fail", p) for p in problems]
    if not licences.carried(members, graph):
        return [Finding(name, "licenses", "n/a", "carries no native library")]
    return [Finding(name, "licenses", "pass", "licence texts for " + licences.describe(cfg, members, graph))]


def bundled_findings(cfg: SuiteConfig, name: str, members: archives.ZipMembers) -> list[Finding]:
    """``bundled-libs``, reading only the ``.so`` files and ``<pkg>.libs/``.
    bundling_problems holds every extension module's bytes at once, so together
    they must fit in ``publish.max-member-size``."""
    libs = wheelcheck.libs_dir(cfg.import_name) + "/"
    native = members.only(lambda m: m.endswith(".so") or m.startswith(libs))
    held = sum(native.size(m) for m in native if not m.startswith(libs))
    if held > members.limits.max_member_size:
        return [
            Finding(
                name,
                "bundled-libs",
                "fail",
                f"the extension modules total {held} bytes, over "
                f"max-member-size ({members.limits.max_member_size}); not read into memory at once",
            )
        ]
    try:
        problems = wheelcheck.bundling_problems(native, cfg.import_name, cfg.linux_wheel.bundled_libraries)
    except CheckFailed as e:
        problems = [e.message]
    if problems:
        return [Finding(name, "bundled-libs", "fail", "; ".join(problems))]
    files = wheelcheck.bundled_files(native, cfg.import_name)
    return [Finding(name, "bundled-libs", "pass", ", ".join(files) or "nothing bundled (as configured)")]


# ------------------------------------------------------ tool-based rules


def tool_run(ctx: Context, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a checker, shown, with its output captured (its verdict becomes a
    Finding, not an exception); it and its children end after 600 s."""
    ctx.console.say(f"$ {shlex.join(argv)}")
    try:
        return run_group(
            argv, cwd=cwd, env=ctx.env(NO_COLOR="1", COLUMNS="200", TERM="dumb"), capture=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {e}")


def timed(
    argv: list[str], cwd: Path, env: Mapping[str, str], seconds: float
) -> subprocess.CompletedProcess[str] | None:
    """Run ``argv`` in its own process group; None (the group ended) when it
    outlives ``seconds``."""
    try:
        return run_group(argv, cwd=cwd, env=env, capture=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])


def twine_findings(ctx: Context, path: Path, work: Path) -> list[Finding]:
    proc = tool_run(ctx, [ctx.tool("twine"), "check", "--strict", str(path)], work)
    if proc.returncode != 0:
        return [Finding(path.name, "twine", "fail", last_lines(proc.stdout + proc.stderr))]
    return [Finding(path.name, "twine", "pass")]


def abi3audit_findings(ctx: Context, path: Path, tags: frozenset[Tag], work: Path) -> list[Finding]:
    if not any(t.abi == "abi3" for t in tags):
        return [Finding(path.name, "abi3audit", "n/a", "not an abi3 wheel (see 'tags')")]
    proc = tool_run(ctx, [ctx.tool("abi3audit"), "--strict", "--report", str(path)], work)
    try:
        report = json.loads(proc.stdout)
        results = [r["result"] for spec in report["specs"].values() for r in spec.get("wheel", [])]
    except (ValueError, KeyError, TypeError):
        return [Finding(path.name, "abi3audit", "fail", last_lines(proc.stdout + proc.stderr))]
    bad = []
    for r in results:
        if r.get("non_abi3_symbols"):
            bad.append("non-abi3 symbols: " + ", ".join(sorted(r["non_abi3_symbols"])[:5]))
        if r.get("future_abi3_objects"):
            bad.append("symbols newer than the baseline: " + ", ".join(sorted(r["future_abi3_objects"])[:5]))
        if r.get("is_abi3") is False:
            bad.append("an extension is not built for abi3")
    if proc.returncode != 0 or bad:
        return [Finding(path.name, "abi3audit", "fail", "; ".join(bad) or last_lines(proc.stdout + proc.stderr))]
    if not results:
        return [Finding(path.name, "abi3audit", "fail", "no extension module to audit")]
    return [Finding(path.name, "abi3audit", "pass", f"{len(results)} extension(s), limited API only")]


def glibc_of(platform: str) -> tuple[int, int] | None:
    m = re.match(r"manylinux_(\d+)_(\d+)_", platform)
    if m:
        return int(m.group(1)), int(m.group(2))
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    return next((v for k, v in legacy.items() if platform.startswith(k + "_")), None)


def newer_symbols(report: Mapping[str, object], glibc: tuple[int, int]) -> list[str]:
    """``libc.so.6 GLIBC_2.25``-style entries newer than ``glibc``."""
    out = []
    versioned = report.get("versioned_symbols") or {}
    assert isinstance(versioned, dict)
    for lib, versions in sorted(versioned.items()):
        for v in versions:
            m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", v)
            if m and (int(m.group(1)), int(m.group(2))) > glibc:
                out.append(f"{lib} {v}")
    return out


def auditwheel_findings(ctx: Context, cfg: SuiteConfig, path: Path, tags: frozenset[Tag], work: Path) -> list[Finding]:
    proc = tool_run(ctx, [ctx.tool("auditwheel"), "show", "--json", str(path)], work)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return [Finding(path.name, "auditwheel", "fail", last_lines(proc.stdout + proc.stderr))]
    problems = []
    overall = glibc_of(report.get("overall_tag", "")) if report.get("overall_tag") else None
    claimed = [g for g in (glibc_of(t.platform) for t in tags) if g]
    policy = POLICY_PLATFORM.get(cfg.linux_wheel.policy)
    if report.get("external_libs"):
        problems.append("external libraries not in the wheel: " + ", ".join(sorted(report["external_libs"])))
    if overall is None:
        problems.append(f"not manylinux at all (auditwheel: {report.get('overall_tag') or 'linux'})")
    else:
        if claimed and min(claimed) < overall:
            problems.append(
                f"file name claims glibc {'.'.join(map(str, min(claimed)))} but the wheel "
                f"needs {report.get('overall_tag')} (symbols: "
                f"{', '.join(newer_symbols(report, min(claimed))) or '?'})"
            )
        if policy and overall > glibc_of(policy):  # type: ignore[operator]
            problems.append(f"policy {cfg.linux_wheel.policy} not met: needs {report.get('overall_tag')}")
    if problems:
        return [Finding(path.name, "auditwheel", "fail", "; ".join(problems))]
    return [Finding(path.name, "auditwheel", "pass", f"{report.get('overall_tag')}, no external libraries")]


def contents_findings(
    ctx: Context, cfg: SuiteConfig, path: Path, members: Mapping[str, bytes], work: Path
) -> list[Finding]:
    """check-wheel-contents, configured: the package and (when the wheel has
    bundled libraries) ``<pkg>.libs`` are the expected toplevel entries; W010
    ("no Python modules") is accepted for exactly ``<pkg>.libs/`` and nothing else."""
    pkg = cfg.import_name
    libs = wheelcheck.libs_dir(pkg)
    toplevel = [pkg, *cfg.publish.extra_toplevel]
    has_libs = any(m.startswith(libs + "/") for m in members)
    if has_libs:
        toplevel.append(libs)
    proc = tool_run(
        ctx, [ctx.tool("check-wheel-contents"), "--no-config", "--toplevel", ",".join(toplevel), str(path)], work
    )
    text = proc.stdout + proc.stderr
    issues = []
    accepted = []
    for block in re.split(r"\n(?=\S)", text.strip()):
        m = re.search(r": (W\d{3}|E\d{3}): (.*)", block, re.S)
        if not m:
            continue
        code, rest = m.group(1), m.group(2)
        listed = [ln.strip() for ln in rest.splitlines()[1:] if ln.strip()]
        if code == "W010" and has_libs and listed == [f"{libs}/"]:
            accepted.append(f"W010 for {libs}/ (bundled native libraries)")
            continue
        issues.append(f"{code} {rest.splitlines()[0]} {' '.join(listed)}".strip())
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not issues and not accepted):
        return [Finding(path.name, "contents", "fail", last_lines(text))]
    if issues:
        return [Finding(path.name, "contents", "fail", "; ".join(issues))]
    return [Finding(path.name, "contents", "pass", "; ".join(accepted) or "clean")]


# ------------------------------------------------------------- artifacts


def wheel_findings(ctx: Context, path: Path, versions: Versions, work: Path) -> list[Finding]:
    """Every rule for one wheel: the archive's limits first; only when they hold
    is a member read (lazily, one capped read at a time)."""
    cfg = ctx.config
    name = path.name
    limits = archives.limits_of(cfg.publish)
    guard = archives.check_archive(path, limits)
    if checks.failures(guard):
        return guard
    try:
        _dist, file_version, tags = wheel_tags(name)
    except CheckFailed as e:
        return [Finding(name, "tags", "fail", e.message), *guard]
    try:
        with archives.wheel_members(path, limits) as members:
            # The archive rows go last so that the table keeps its familiar columns first.
            return wheel_content_findings(ctx, path, members, file_version, tags, versions, work) + guard
    except archives.ArchiveError as e:  # the file changed after check_archive read it
        return [Finding(name, e.rule, "fail", e.detail), *guard]


def wheel_content_findings(
    ctx: Context,
    path: Path,
    members: archives.ZipMembers,
    file_version: str,
    tags: frozenset[Tag],
    versions: Versions,
    work: Path,
) -> list[Finding]:
    cfg = ctx.config
    name = path.name
    info = dist_info_dir(members)
    meta = metadata_of(members, info) if info else None
    found = record_findings(name, members, info)
    found += twine_findings(ctx, path, work)
    found += version_findings(name, file_version, meta.get("Version") if meta else None, versions)
    found += tag_findings(cfg, name, tags, members, info)
    found += abi3audit_findings(ctx, path, tags, work)
    if is_linux(tags):
        found += auditwheel_findings(ctx, cfg, path, tags, work)
        found += bundled_findings(cfg, name, members)
    else:
        found += [
            Finding(name, "auditwheel", "n/a", "not a Linux wheel"),
            Finding(name, "bundled-libs", "n/a", "not a Linux wheel"),
        ]
    found += contents_findings(ctx, cfg, path, members, work)
    found += stray_findings(cfg, name, members, info)
    found += license_findings(cfg, name, members, info)
    if is_windows(tags):
        found += dll.windows_wheel_findings(path, cfg)
    return found


def sdist_metadata(path: Path, limits: archives.Limits) -> tuple[list[str], email.message.Message | None]:
    """Member names and the top PKG-INFO of an sdist that check_archive passed
    (PKG-INFO read with a cap, whatever its header says)."""
    with tarfile.open(path, "r:gz") as tar:
        infos = tar.getmembers()
        pkg_info = next((m for m in infos if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")), None)
        raw = tar.extractfile(pkg_info) if pkg_info else None
        meta = email.parser.BytesParser().parsebytes(raw.read(limits.max_metadata_size + 1)) if raw else None
    return [m.name for m in infos], meta


def sdist_findings(ctx: Context, path: Path, versions: Versions, work: Path, build: bool) -> list[Finding]:
    cfg = ctx.config
    name = path.name
    limits = archives.limits_of(cfg.publish)
    guard = archives.check_archive(path, limits)
    if checks.failures(guard):
        return guard
    try:
        _dist, file_version = sdist_version(name)
        members, meta = sdist_metadata(path, limits)
    except SDIST_ERRORS as e:
        return [Finding(name, "zip", "fail", f"not a readable sdist: {e}"), *guard]
    found = [Finding(name, "zip", "pass", f"{len(members)} members")]
    found += twine_findings(ctx, path, work)
    found += version_findings(name, file_version, meta.get("Version") if meta else None, versions)
    stray = [m for m in members if STRAY_NAMES.search(m)]
    found.append(
        Finding(
            name, "stray-files", "fail" if stray else "pass", ("unexpected: " + ", ".join(stray[:8])) if stray else ""
        )
    )
    return found + sdist_build_findings(ctx, path, build) + guard


def sdist_build_findings(ctx: Context, path: Path, build: bool) -> list[Finding]:
    name = path.name
    problems = sdist.check_completeness(ctx.config, path)
    if problems:
        return [Finding(name, "sdist", "fail", "; ".join(problems))]
    if not build:
        return [Finding(name, "sdist", "pass", "complete (offline build skipped: --no-sdist-build)")]
    try:
        wheel = sdist.build_from_sdist(ctx, path)
        wheel.unlink(missing_ok=True)
        return [Finding(name, "sdist", "pass", "complete; a wheel builds from it offline")]
    except SuiteError as e:
        return [Finding(name, "sdist", "fail", f"offline build from the sdist failed: {e.message}")]


# ----------------------------------------------------------------- smoke


def runnable_here(tags: frozenset[Tag], version: str) -> bool:
    """True when CPython ``version`` on this machine can install a wheel with ``tags``."""
    from packaging import tags as ptags

    if sys.platform != "linux":
        return False
    py = tuple(int(x) for x in version.split("."))
    supported = set(ptags.cpython_tags(python_version=py, platforms=list(ptags.platform_tags())))
    return bool(supported & set(tags))


def smoke_findings(
    ctx: Context,
    wheels: list[Path],
    interpreters: list[toolchain.Interpreter],
    missing: list[str],
    versions: Versions,
    work: Path,
) -> list[Finding]:
    cfg = ctx.config
    found: list[Finding] = []
    code = SMOKE_WRAPPER.format(
        smoke=sdist.smoke_code(cfg), top=cfg.import_name, prefixes=list(cfg.linux_wheel.bundled_libraries) or ["libgmp"]
    )
    for wheel in wheels:
        try:
            _d, _v, tags = wheel_tags(wheel.name)
        except CheckFailed:
            continue
        ran = []
        for interp in interpreters:
            if not runnable_here(tags, interp.version):
                continue
            ran.append(interp.version)
            found.append(smoke_one(ctx, wheel, interp, code, versions, work))
        if not ran:
            found.append(Finding(wheel.name, "smoke", "n/a", "this machine cannot run it"))
        elif missing:
            found.append(Finding(wheel.name, "smoke", "n/a", f"no interpreter here for {', '.join(missing)}"))
    return found


def smoke_one(
    ctx: Context, wheel: Path, interp: toolchain.Interpreter, code: str, versions: Versions, work: Path
) -> Finding:
    label = f"Python {interp.version}"
    with artifacts.staging_dir(work, f"smoke-{interp.version}") as tmp:
        proc = smoke_run(ctx, wheel, interp, code, tmp)
        if isinstance(proc, str):
            return Finding(wheel.name, "smoke", "fail", f"{label}: {proc}")
        ctx.console.say(f"smoke {wheel.name} on {label}: exit {proc.returncode}\n{proc.stdout.strip()}")
        if proc.returncode != 0:
            return Finding(wheel.name, "smoke", "fail", f"{label}: {last_lines(proc.stdout + proc.stderr)}")
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("SUITE-SMOKE ")), None)
        if line is None:
            return Finding(wheel.name, "smoke", "fail", f"{label}: no smoke report")
        report = json.loads(line[len("SUITE-SMOKE ") :])
        problems = smoke_problems(ctx.config, wheel, report, versions)
        if problems:
            return Finding(wheel.name, "smoke", "fail", f"{label}: " + "; ".join(problems))
        where = (
            f"libs from the wheel: {', '.join(Path(x).name for x in report['libs'])}"
            if report["libs"]
            else "no shared libgmp loaded"
        )
        return Finding(wheel.name, "smoke", "pass", f"{label}: smoke ok, {where}")


def smoke_run(
    ctx: Context, wheel: Path, interp: toolchain.Interpreter, code: str, tmp: Path
) -> subprocess.CompletedProcess[str] | str:
    """Install ``wheel`` into a fresh venv in ``tmp`` (offline) and run the
    smoke code, each under ``[timeouts] smoke``; the run, or why there is none."""
    python = venvs.ensure_venv(ctx, tmp / "venv", interp.path)
    env = ctx.env(PIP_NO_INDEX="1", UV_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    uv = venvs.find_uv(env)
    install = (
        [uv, "pip", "install", "--quiet", "--offline", "--no-deps", "--python", str(python), str(wheel)]
        if uv
        else [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)]
    )
    seconds = ctx.config.timeouts.smoke
    late = f"timed out after {seconds:.0f}s (tool.maturin-suite.timeouts.smoke)"
    proc = timed(install, tmp, env, seconds)
    if proc is None:
        return f"install {late}"
    if proc.returncode != 0:
        return f"install failed: {last_lines(proc.stderr)}"
    run_dir = tmp / "run"
    run_dir.mkdir()
    return timed([str(python), "-I", "-c", code], run_dir, env, seconds) or f"the smoke code {late}"


def smoke_problems(cfg: SuiteConfig, wheel: Path, report: dict[str, Any], versions: Versions) -> list[str]:
    """What the smoke report says is wrong: the version, libraries loaded from
    outside the wheel, bundled libraries not loaded."""
    problems = []
    if report["version"] is None or normalize(str(report["version"])) != versions.expected:
        problems.append(f"__version__ is {report['version']!r}, expected {versions.expected}")
    libs_dir = str(Path(report["package_dir"]).parent / wheelcheck.libs_dir(cfg.import_name))
    bundled = wheelcheck.bundled_files(dict.fromkeys(archives.file_names(wheel), b""), cfg.import_name)
    foreign = [lib for lib in report["libs"] if not lib.startswith(libs_dir + os.sep)]
    if foreign:
        problems.append(f"loaded from outside the wheel: {', '.join(foreign)}")
    if bundled and not report["libs"]:
        problems.append("the bundled libraries were not loaded")
    return problems


# ------------------------------------------------------------ release set


def release_findings(cfg: SuiteConfig, wheels: list[Path], sdists: list[Path], versions: Versions) -> list[Finding]:
    by_platform: dict[str, list[str]] = {p: [] for p in cfg.publish.platforms}
    found = [release_wheel_finding(w, versions, by_platform) for w in wheels]
    for s in sdists:
        try:
            _d, version = sdist_version(s.name)
        except CheckFailed:
            version = "?"
        ok = normalize(version) == versions.expected
        stale = f"stale or foreign: version {version}, release is {versions.expected}"
        found.append(Finding(s.name, "release-set", "pass" if ok else "fail", "" if ok else stale))
    current = [s for s in sdists if s.name.endswith(f"-{versions.expected}.tar.gz")]
    if len(current) != 1:
        why = f"needs exactly one sdist of {versions.expected}, found {len(current)}"
        found.append(Finding("(release)", "release-set", "fail", why))
    for plat, names in by_platform.items():
        if len(names) != 1:
            why = f"needs exactly one {plat} wheel, found {len(names)}: {', '.join(names) or '-'}"
            found.append(Finding("(release)", "release-set", "fail", why))
    return found


def release_wheel_finding(wheel: Path, versions: Versions, by_platform: dict[str, list[str]]) -> Finding:
    """One wheel of a release set: this release's version, a configured
    platform (recorded in ``by_platform``)."""
    try:
        _d, version, tags = wheel_tags(wheel.name)
    except CheckFailed:
        return Finding(wheel.name, "release-set", "fail", "unparseable wheel name")
    problems = []
    if normalize(version) != versions.expected:
        problems.append(f"stale or foreign: version {version}, release is {versions.expected}")
    plats = {t.platform for t in tags} & set(by_platform)
    if not plats:
        problems.append("platform not in publish.platforms")
    for p in plats:
        by_platform[p].append(wheel.name)
    return Finding(wheel.name, "release-set", "fail" if problems else "pass", "; ".join(problems))


# ------------------------------------------------------------ the session


def parse_args(posargs: tuple[str, ...]) -> dict[str, bool]:
    known = {"--release": "release", "--no-sdist-build": "no_sdist_build", "--no-smoke": "no_smoke"}
    unknown = [a for a in posargs if a not in known]
    if unknown:
        raise SuiteError(f"publish-check: unknown argument(s) {' '.join(unknown)}", hint=f"known: {', '.join(known)}")
    return {v: k in posargs for k, v in known.items()}


def regular_file(path: Path) -> bool:
    """A regular file itself (not a link to one, not a fifo or device)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def collect(dist: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """(wheels, sdists, other files) in dist/, ignoring in-flight partial writes
    (links, folders and special files are none of these: see dist_contents_findings)."""
    if not dist.is_dir():
        return [], [], []
    files = sorted(p for p in dist.iterdir() if regular_file(p) and not p.name.startswith(artifacts.TMP_MARK))
    wheels = [p for p in files if p.name.endswith(".whl")]
    sdists = [p for p in files if p.name.endswith(".tar.gz")]
    other = [p for p in files if p not in wheels and p not in sdists]
    return wheels, sdists, other


def dist_contents_findings(dist: Path) -> list[Finding]:
    """``dist-contents``: dist/ holds wheels and sdists, as regular files, and
    nothing else (a link or a fifo named like a wheel is never opened)."""
    found = []
    for p in sorted(dist.iterdir()) if dist.is_dir() else []:
        if p.name.startswith(artifacts.TMP_MARK):
            continue
        try:
            mode = p.lstat().st_mode
        except OSError:
            continue  # gone meanwhile
        if stat.S_ISLNK(mode):
            found.append(Finding(p.name, "dist-contents", "fail", "a symbolic link, not a file"))
        elif stat.S_ISDIR(mode):
            found.append(Finding(p.name + "/", "dist-contents", "fail", "a folder: dist/ holds only wheels and sdists"))
        elif not stat.S_ISREG(mode):
            found.append(Finding(p.name, "dist-contents", "fail", "not a regular file"))
        elif not p.name.endswith((".whl", ".tar.gz")):
            found.append(Finding(p.name, "dist-contents", "fail", "not a wheel or an sdist"))
    return found


def identity_findings(distribution: str, path: Path) -> list[Finding]:
    """``identity``: the distribution the file name states is the project's."""
    from packaging.utils import canonicalize_name

    try:
        dist = wheel_tags(path.name)[0] if path.name.endswith(".whl") else sdist_version(path.name)[0]
    except CheckFailed as e:
        return [Finding(path.name, "identity", "fail", f"names no distribution: {e.message}")]
    want = canonicalize_name(distribution)
    if canonicalize_name(dist) != want:
        return [Finding(path.name, "identity", "fail", f"a file of {dist}, not of this project's {want}")]
    return [Finding(path.name, "identity", "pass", want)]


def project_findings(ctx: Context) -> list[Finding]:
    """The project cross-checks (module names, abi3 vs requires-python,
    python-source), as rows of the artifact ``(project)``."""
    return [
        Finding(
            "(project)", c.name, "n/a" if c.skipped else ("pass" if c.ok else "fail"), "; ".join(c.problems) or c.detail
        )
        for c in crosschecks.cross_checks(ctx)
    ]


def check_dist(ctx: Context, *, release: bool, build_sdist: bool = True, smoke: bool = True) -> list[Finding]:
    """Every finding for what is in dist/ now (the session minus reporting)."""
    cfg = ctx.config
    env = ctx.env()
    work = cfg.work_dir(SESSION)
    work.mkdir(parents=True, exist_ok=True)
    wheels, sdists, _other = collect(cfg.dist_dir)
    if not wheels and not sdists:
        raise CheckFailed(
            f"nothing to check: {cfg.dist_dir} holds no wheel or sdist",
            hint="build them first: nox -s linux-wheel sdist",
        )
    versions = project_versions(ctx.project, env)
    distribution = ctx.project.config.distribution or cfg.distribution
    found: list[Finding] = []
    for w in wheels:
        with ctx.console.step(f"check {w.name}"):
            found += wheel_findings(ctx, w, versions, work) + identity_findings(distribution, w)
    for s in sdists:
        with ctx.console.step(f"check {s.name}"):
            found += sdist_findings(ctx, s, versions, work, build_sdist) + identity_findings(distribution, s)
    found += dist_contents_findings(cfg.dist_dir)
    found += project_findings(ctx)
    if smoke:
        with ctx.console.step("smoke-install the wheels this machine can run"):
            interpreters, missing = toolchain.find_interpreters(cfg.python_versions, env)
            good = [
                w
                for w in wheels
                if not any(f.artifact == w.name and f.rule in GATE_RULES and f.status == "fail" for f in found)
            ]
            found += smoke_findings(ctx, good, interpreters, missing, versions, work)
    if release:
        found += release_findings(cfg, wheels, sdists, versions)
    return found


def write_report(cfg: SuiteConfig, found: list[Finding], release: bool) -> Path:
    out = cfg.report_dir(SESSION)
    out.mkdir(parents=True, exist_ok=True)
    fails = checks.failures(found)
    lines = [
        f"# publish-check{' --release' if release else ''}",
        "",
        f"{'FAILED' if fails else 'passed'}: {len(found)} findings, {len(fails)} failing",
        "",
        checks.table(found),
        "",
        "## Findings",
        "",
    ]
    lines += [f"- {f.line()}" for f in found]
    report = out / "report.md"
    with artifacts.staging_dir(out, "report") as tmp:
        (tmp / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        artifacts.publish(tmp / "report.md", out)
    return report


def write_json_report(cfg: SuiteConfig, found: list[Finding], release: bool) -> tuple[Path, int, int]:
    """``report.json``: every finding, and per artifact the toolchain that
    built it (the sessions' provenance records, matched by content hash).
    Returns the path, the artifacts checked and how many have a record."""
    wheels, sdists, _other = collect(cfg.dist_dir)
    built = provenance.of([*wheels, *sdists], cfg.reports_dir)
    data = {
        "release": release,
        "passed": not checks.failures(found),
        "artifacts": {
            name: {"provenance": record, "findings": [dataclasses.asdict(f) for f in found if f.artifact == name]}
            for name, record in built.items()
        },
        "other_findings": [dataclasses.asdict(f) for f in found if f.artifact not in built],
    }
    out = cfg.report_dir(SESSION)
    with artifacts.staging_dir(out, "report") as tmp:
        (tmp / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        artifacts.publish(tmp / "report.json", out)
    return out / "report.json", len(built), sum(1 for r in built.values() if r)


def run(ctx: Context) -> None:
    args = parse_args(ctx.posargs)
    cfg = ctx.config
    found = check_dist(ctx, release=args["release"], build_sdist=not args["no_sdist_build"], smoke=not args["no_smoke"])
    report = write_report(cfg, found, args["release"])
    report_json, checked, known = write_json_report(cfg, found, args["release"])
    ctx.console.say(checks.table(found))
    fails = checks.failures(found)
    artifacts_seen = sorted({f.artifact for f in found})
    ctx.console.summary(
        SESSION,
        [
            ("artifacts", str(len(artifacts_seen))),
            ("findings", f"{len(found)} ({len(fails)} failing)"),
            ("mode", "release (complete set required)" if args["release"] else "check what is there"),
            ("report", str(report)),
            ("provenance", f"{known} of {checked} artifacts built by a session here, toolchains in {report_json}"),
        ],
    )
    if fails:
        raise CheckFailed("not fit to publish:\n  " + "\n  ".join(f.line() for f in fails))
