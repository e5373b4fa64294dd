"""PE import closure of Windows wheels (windows-gnu-wheel, publish-check).

:func:`windows_wheel_findings` reads every PE file (``.pyd``, ``.dll``) of a
wheel with :mod:`pefile` and checks, for each imported DLL (normal and
delay-load imports), that it is one of:

- a file inside the wheel (delvewheel's ``<pkg>.libs/``, or next to the
  importer), found case-insensitively as Windows does;
- a Windows system DLL or an API set (``api-ms-win-*``/``ext-ms-*``): the list
  is delvewheel's ``_dll_list.ignore_names`` for the wheel's architecture (every
  DLL with exports found in System32 on Windows 7 SP1 .. 11 install media), not
  one made up here;
- ``python3.dll`` (the stable ABI), or a runtime that CPython itself ships for
  the wheel's tags (delvewheel's ``ignore_abi3``: ``vcruntime140.dll``).

Because every PE in the wheel is scanned, the closure is followed through the
bundled DLLs too. Rules (the ``rule`` of each :class:`~ci.core.findings.Finding`):

``pe-parse``          every ``.pyd``/``.dll`` is a PE file pefile can read
``pe-machine``        its machine matches the platform tag (win_amd64 -> AMD64)
``pe-closure``        every import resolves as above
``dll-search-path``   a DLL bundled in another folder than its importer is in a
                      folder that the package's ``__init__.py`` adds with
                      ``os.add_dll_directory`` (delvewheel's patch)
``abi3-python-dll``   abi3 wheels: extensions import ``python3.dll`` and no PE
                      imports a versioned ``python3X.dll``
``bundled-dlls``      ``windows-wheel.bundled-dlls`` are all in the wheel
``dll-licenses``      each bundled DLL has its licence texts (windows-wheel.licenses,
                      then publish.licenses, by name prefix) byte-identical in
                      ``.dist-info/licenses/``

delvewheel renames bundled DLLs to ``<name>-<32 hex>.dll`` (so that another
package's ``libgmp-10.dll`` in the same process cannot be picked up instead);
:func:`original_name` undoes that for the floor and licence rules.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ci.blocks import archives
from ci.core.config import SuiteConfig
from ci.core.findings import Finding

ABI3_DLL = "python3.dll"
VERSIONED_PYTHON_DLL = re.compile(r"python3\d+t?(_d)?\.dll")
API_SET = re.compile(r"(api|ext)-ms-.*\.dll")
MANGLED = re.compile(r"(?P<stem>.+)-[0-9a-f]{32}(?P<ext>\.dll)", re.IGNORECASE)
PE_SUFFIXES = (".pyd", ".dll")
MACHINES = {"win_amd64": 0x8664, "win32": 0x14C, "win_arm64": 0xAA64}
DEPS_HINT = "the Python running the suite needs pefile and delvewheel: pip install pefile delvewheel"


class MissingDependency(Exception):
    """pefile or delvewheel is not importable."""


@dataclass(frozen=True)
class PEFile:
    """One PE file of a wheel: its path there, machine and imported DLL names."""

    path: str
    machine: int
    imports: tuple[str, ...]


def original_name(filename: str) -> str:
    """``libgmp-10-<32 hex>.dll`` -> ``libgmp-10.dll`` (delvewheel's mangling)."""
    m = MANGLED.fullmatch(filename)
    return f"{m['stem']}{m['ext']}" if m else filename


def read_pe(path: str, data: bytes) -> PEFile:
    """Parse ``data`` with pefile; raise ValueError when it is no PE file."""
    try:
        import pefile
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependency(str(e)) from None
    try:
        pe = pefile.PE(data=data, fast_load=True)
        pe.parse_data_directories(
            directories=[
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
                pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
            ]
        )
    except pefile.PEFormatError as e:
        raise ValueError(str(e)) from None
    names: list[str] = []
    for attr in ("DIRECTORY_ENTRY_IMPORT", "DIRECTORY_ENTRY_DELAY_IMPORT"):
        for entry in getattr(pe, attr, []):
            names.append(entry.dll.decode("ascii", "replace"))
    machine = pe.FILE_HEADER.Machine
    pe.close()
    return PEFile(path, machine, tuple(names))


def system_dlls(machine: int) -> frozenset[str]:
    """Lower-case names of the DLLs every supported Windows has (delvewheel's list)."""
    try:
        from delvewheel import _dll_list
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingDependency(str(e)) from None
    arch = _dll_list.MachineType.machine_field_to_type(machine)
    if arch is None:
        return frozenset()
    return frozenset(_dll_list.ignore_names[arch])


def python_runtime_dlls(python_tag: str, abi_tag: str, platform_tag: str) -> frozenset[str]:
    """DLLs that CPython installs for these tags (delvewheel's tables)."""
    from delvewheel import _dll_list

    found: set[str] = set()
    if abi_tag == "abi3":
        for pattern, names in _dll_list.ignore_abi3.items():
            if re.fullmatch(pattern, f"{python_tag}-{platform_tag}"):
                found |= names
    else:
        for pattern, names in _dll_list.ignore_by_abi_platform.items():
            if re.fullmatch(pattern, f"{abi_tag}-{platform_tag}"):
                found |= names
    return frozenset(found)


def wheel_tags(wheel: Path) -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) from the file name (first of each set)."""
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) < 5:
        raise ValueError(f"{wheel.name} is not a wheel file name")
    return parts[-3].split(".")[0], parts[-2].split(".")[0], parts[-1].split(".")[0]


def _dll_dirs_added(init_source: str) -> bool:
    return "add_dll_directory" in init_source


def license_requirements(cfg: SuiteConfig) -> dict[str, tuple[str, ...]]:
    """DLL name prefix -> licence files: windows-wheel.licenses, then publish.licenses."""
    merged: dict[str, tuple[str, ...]] = dict(cfg.publish.licenses)
    merged.update(cfg.windows_wheel.licenses)
    return merged


def licenses_for(dll: str, requirements: Mapping[str, tuple[str, ...]]) -> tuple[str, ...] | None:
    name = original_name(dll).lower()
    best = None
    for prefix, files in requirements.items():
        if name.startswith(prefix.lower()) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, files)
    return best[1] if best else None


def _rule_findings(wheel_name: str, rule: str, problems: Iterable[str], ok: str) -> list[Finding]:
    """One failing finding per problem, or one passing finding saying ``ok``."""
    problems = list(problems)
    if problems:
        return [Finding(wheel_name, rule, "fail", p) for p in problems]
    return [Finding(wheel_name, rule, "pass", ok)]


def parse_pe_members(members: Mapping[str, bytes]) -> tuple[list[PEFile], list[str]]:
    """The wheel's ``.pyd``/``.dll`` files parsed (by path), and those that are no PE file."""
    parsed: list[PEFile] = []
    problems = []
    for path in sorted(p for p in members if p.lower().endswith(PE_SUFFIXES)):
        try:
            parsed.append(read_pe(path, members[path]))
        except ValueError as e:
            problems.append(f"{path} is not a readable PE file ({e})")
    return parsed, problems


def machine_problems(parsed: Iterable[PEFile], platform_tag: str, want_machine: int | None) -> list[str]:
    return [
        f"{p.path}: machine 0x{p.machine:x}, {platform_tag} needs 0x{want_machine:x}"
        for p in parsed
        if want_machine is not None and p.machine != want_machine
    ]


def files_by_name(members: Iterable[str]) -> dict[str, list[str]]:
    """The wheel's files by lower-case base name (Windows file names are case-insensitive)."""
    by_name: dict[str, list[str]] = {}
    for path in members:
        by_name.setdefault(PurePosixPath(path).name.lower(), []).append(path)
    return by_name


@dataclass
class ImportCheck:
    """The pe-closure, dll-search-path and abi3-python-dll problems of a wheel's PE files."""

    members: Mapping[str, bytes]
    by_name: Mapping[str, list[str]]
    system: frozenset[str]
    runtime: frozenset[str]
    abi_tag: str
    closure: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    abi3: list[str] = field(default_factory=list)

    def check(self, pe: PEFile) -> None:
        """Record the problems of every DLL that ``pe`` imports."""
        top = pe.path.split("/")[0]
        init = self.members.get(f"{top}/__init__.py", b"").decode("utf-8", "replace")
        for dll in pe.imports:
            low = dll.lower()
            if low in self.by_name:
                self.check_search_path(pe, dll, top, init)
            elif low == ABI3_DLL or low in self.runtime:
                continue
            elif VERSIONED_PYTHON_DLL.fullmatch(low):
                if self.abi_tag == "abi3":
                    self.abi3.append(
                        f"{pe.path} imports {dll}: an abi3 extension must link python3.dll only "
                        f"(build with pyo3's abi3 feature / a python3.dll import library)"
                    )
            elif API_SET.fullmatch(low) or low in self.system:
                continue
            else:
                self.closure.append(
                    f"{pe.path} imports {dll}, which is neither in the wheel nor a Windows "
                    f"system DLL: bundle it (delvewheel repair --add-path <folder with {dll}>)"
                )
        if (
            self.abi_tag == "abi3"
            and pe.path.lower().endswith(".pyd")
            and not any(i.lower() == ABI3_DLL for i in pe.imports)
        ):
            self.abi3.append(f"{pe.path} does not import python3.dll (imports: {', '.join(pe.imports)})")

    def check_search_path(self, pe: PEFile, dll: str, top: str, init: str) -> None:
        """A DLL bundled in another folder than its importer must be on the package's DLL search path."""
        importer_dir = str(PurePosixPath(pe.path).parent)
        target = self.by_name[dll.lower()][0]
        target_dir = str(PurePosixPath(target).parent)
        if target_dir != importer_dir and not (_dll_dirs_added(init) and PurePosixPath(target_dir).name in init):
            self.search.append(
                f"{pe.path} imports {dll} from {target_dir}/, but {top}/__init__.py does "
                f"not add that folder with os.add_dll_directory (Python >= 3.8 no longer "
                f"uses PATH for DLLs): repair the wheel with delvewheel"
            )


def bundled_dll_problems(cfg: SuiteConfig, bundled: Iterable[str]) -> list[str]:
    """windows-wheel.bundled-dlls that are not in the wheel."""
    present = {original_name(PurePosixPath(b).name).lower() for b in bundled}
    return [
        f"{name} is not in the wheel (tool.maturin-suite.windows-wheel.bundled-dlls)"
        for name in cfg.windows_wheel.bundled_dlls
        if name.lower() not in present
    ]


def analyse(
    wheel_name: str,
    members: Mapping[str, bytes],
    cfg: SuiteConfig,
) -> list[Finding]:
    """All findings for a wheel given as ``{path in wheel: bytes}``."""
    python_tag, abi_tag, platform_tag = wheel_tags(Path(wheel_name))
    parsed, parse_problems = parse_pe_members(members)
    out = _rule_findings(wheel_name, "pe-parse", parse_problems, f"{len(parsed)} PE files")
    if not any(p.path.lower().endswith(".pyd") for p in parsed):
        out.append(Finding(wheel_name, "pe-closure", "fail", "no .pyd extension module in the wheel"))
        return out

    want_machine = MACHINES.get(platform_tag)
    out += _rule_findings(
        wheel_name, "pe-machine", machine_problems(parsed, platform_tag, want_machine), f"all {platform_tag}"
    )

    imports = ImportCheck(
        members,
        files_by_name(members),
        system_dlls(want_machine or (parsed[0].machine if parsed else 0x8664)),
        python_runtime_dlls(python_tag, abi_tag, platform_tag),
        abi_tag,
    )
    for pe in parsed:
        imports.check(pe)
    bundled = sorted(p.path for p in parsed if p.path.lower().endswith(".dll"))
    out += import_findings(wheel_name, imports, len(parsed), bundled, abi_tag)
    out += _rule_findings(
        wheel_name,
        "bundled-dlls",
        bundled_dll_problems(cfg, bundled),
        f"{', '.join(cfg.windows_wheel.bundled_dlls) or 'no floor'} present",
    )
    out += _rule_findings(
        wheel_name, "dll-licenses", license_problems(members, bundled, cfg), "licence texts of bundled DLLs present"
    )
    return out


def import_findings(
    wheel_name: str, imports: ImportCheck, count: int, bundled: list[str], abi_tag: str
) -> list[Finding]:
    """The closure, DLL search path and python3.dll rows of the import check."""
    names = ", ".join(PurePosixPath(b).name for b in bundled) or "none"
    out = _rule_findings(wheel_name, "pe-closure", imports.closure, f"{count} PE files resolve; bundled: {names}")
    out += _rule_findings(
        wheel_name, "dll-search-path", imports.search, "bundled DLLs are on the package's DLL search path"
    )
    if abi_tag == "abi3":
        out += _rule_findings(
            wheel_name, "abi3-python-dll", imports.abi3, "extensions link python3.dll, no python3X.dll"
        )
    else:
        out.append(Finding(wheel_name, "abi3-python-dll", "n/a", f"abi tag {abi_tag}"))
    return out


def license_problems(members: Mapping[str, bytes], bundled: Iterable[str], cfg: SuiteConfig) -> list[str]:
    """Bundled DLLs whose licence texts are not in .dist-info/licenses/."""
    requirements = license_requirements(cfg)
    shipped: dict[str, bytes] = {
        PurePosixPath(p).name: members[p] for p in members if re.match(r"[^/]+\.dist-info/licenses/", p)
    }
    problems = []
    for path in bundled:
        name = PurePosixPath(path).name
        files = licenses_for(name, requirements)
        if files is None:
            problems.append(
                f"{path}: no licence configured for {original_name(name)} "
                f"(add its prefix to tool.maturin-suite.windows-wheel.licenses)"
            )
            continue
        for rel in files:
            want = cfg.root / rel
            got = shipped.get(Path(rel).name)
            if got is None:
                problems.append(f"{path}: licence {Path(rel).name} missing from .dist-info/licenses/")
            elif want.is_file() and got != want.read_bytes():
                problems.append(f"{path}: .dist-info/licenses/**/{Path(rel).name} differs from {rel}")
    return problems


def read_wheel(wheel: Path) -> dict[str, bytes]:
    """Every file of a (trusted, small) wheel in memory; tests use it."""
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def windows_wheel_findings(wheel: Path, cfg: SuiteConfig) -> list[Finding]:
    """Findings of every rule above for the Windows wheel at ``wheel``. Its
    members are read lazily, one capped read at a time (publish-check's
    limits), so memory stays bounded whatever the wheel holds."""
    try:
        with archives.wheel_members(wheel, archives.limits_of(cfg.publish)) as members:
            return analyse(wheel.name, members, cfg)
    except archives.ArchiveError as e:
        return [Finding(wheel.name, "pe-parse", "fail", f"cannot read the wheel: {e.detail}")]
    except MissingDependency as e:
        return [Finding(wheel.name, "pe-closure", "fail", f"{e}; {DEPS_HINT}")]
    except ValueError as e:
        return [Finding(wheel.name, "pe-parse", "fail", str(e))]
