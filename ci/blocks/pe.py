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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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
        pe.parse_data_directories(directories=[
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_IMPORT"],
            pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"],
        ])
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


def analyse(
    wheel_name: str,
    members: Mapping[str, bytes],
    cfg: SuiteConfig,
) -> list[Finding]:
    """All findings for a wheel given as ``{path in wheel: bytes}``."""
    python_tag, abi_tag, platform_tag = wheel_tags(Path(wheel_name))
    out: list[Finding] = []

    def add(rule: str, problems: Iterable[str], ok: str) -> None:
        problems = list(problems)
        if problems:
            out.extend(Finding(wheel_name, rule, "fail", p) for p in problems)
        else:
            out.append(Finding(wheel_name, rule, "pass", ok))

    pe_paths = sorted(p for p in members if p.lower().endswith(PE_SUFFIXES))
    parsed: list[PEFile] = []
    parse_problems = []
    for path in pe_paths:
        try:
            parsed.append(read_pe(path, members[path]))
        except ValueError as e:
            parse_problems.append(f"{path} is not a readable PE file ({e})")
    add("pe-parse", parse_problems, f"{len(parsed)} PE files")
    if not any(p.path.lower().endswith(".pyd") for p in parsed):
        out.append(Finding(wheel_name, "pe-closure", "fail", "no .pyd extension module in the wheel"))
        return out

    want_machine = MACHINES.get(platform_tag)
    add(
        "pe-machine",
        [f"{p.path}: machine 0x{p.machine:x}, {platform_tag} needs 0x{want_machine:x}"
         for p in parsed if want_machine is not None and p.machine != want_machine],
        f"all {platform_tag}",
    )

    # Windows file names are case-insensitive: index the wheel's files by
    # lower-case base name.
    by_name: dict[str, list[str]] = {}
    for path in members:
        by_name.setdefault(PurePosixPath(path).name.lower(), []).append(path)
    system = system_dlls(want_machine or (parsed[0].machine if parsed else 0x8664))
    runtime = python_runtime_dlls(python_tag, abi_tag, platform_tag)
    closure_problems: list[str] = []
    search_problems: list[str] = []
    abi3_problems: list[str] = []
    bundled_used: set[str] = set()
    for pe in parsed:
        importer_dir = str(PurePosixPath(pe.path).parent)
        top = pe.path.split("/")[0]
        init = members.get(f"{top}/__init__.py", b"").decode("utf-8", "replace")
        for dll in pe.imports:
            low = dll.lower()
            if low in by_name:
                target = by_name[low][0]
                bundled_used.add(target)
                target_dir = str(PurePosixPath(target).parent)
                if target_dir != importer_dir and not (
                    _dll_dirs_added(init) and PurePosixPath(target_dir).name in init
                ):
                    search_problems.append(
                        f"{pe.path} imports {dll} from {target_dir}/, but {top}/__init__.py does "
                        f"not add that folder with os.add_dll_directory (Python >= 3.8 no longer "
                        f"uses PATH for DLLs): repair the wheel with delvewheel"
                    )
            elif low == ABI3_DLL or low in runtime:
                continue
            elif VERSIONED_PYTHON_DLL.fullmatch(low):
                if abi_tag == "abi3":
                    abi3_problems.append(
                        f"{pe.path} imports {dll}: an abi3 extension must link python3.dll only "
                        f"(build with pyo3's abi3 feature / a python3.dll import library)"
                    )
            elif API_SET.fullmatch(low) or low in system:
                continue
            else:
                closure_problems.append(
                    f"{pe.path} imports {dll}, which is neither in the wheel nor a Windows "
                    f"system DLL: bundle it (delvewheel repair --add-path <folder with {dll}>)"
                )
        if abi_tag == "abi3" and pe.path.lower().endswith(".pyd") and not any(
            i.lower() == ABI3_DLL for i in pe.imports
        ):
            abi3_problems.append(f"{pe.path} does not import python3.dll (imports: {', '.join(pe.imports)})")
    bundled = sorted(p.path for p in parsed if p.path.lower().endswith(".dll"))
    add("pe-closure", closure_problems,
        f"{len(parsed)} PE files resolve; bundled: {', '.join(PurePosixPath(b).name for b in bundled) or 'none'}")
    add("dll-search-path", search_problems, "bundled DLLs are on the package's DLL search path")
    if abi_tag == "abi3":
        add("abi3-python-dll", abi3_problems, "extensions link python3.dll, no python3X.dll")
    else:
        out.append(Finding(wheel_name, "abi3-python-dll", "n/a", f"abi tag {abi_tag}"))

    present = {original_name(PurePosixPath(b).name).lower() for b in bundled}
    add(
        "bundled-dlls",
        [f"{name} is not in the wheel (tool.maturin-suite.windows-wheel.bundled-dlls)"
         for name in cfg.windows_wheel.bundled_dlls if name.lower() not in present],
        f"{', '.join(cfg.windows_wheel.bundled_dlls) or 'no floor'} present",
    )

    add("dll-licenses", license_problems(members, bundled, cfg), "licence texts of bundled DLLs present")
    return out


def license_problems(members: Mapping[str, bytes], bundled: Iterable[str], cfg: SuiteConfig) -> list[str]:
    """Bundled DLLs whose licence texts are not in .dist-info/licenses/."""
    requirements = license_requirements(cfg)
    shipped: dict[str, bytes] = {
        PurePosixPath(p).name: data for p, data in members.items()
        if re.match(r"[^/]+\.dist-info/licenses/", p)
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
    with zipfile.ZipFile(wheel) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def windows_wheel_findings(wheel: Path, cfg: SuiteConfig) -> list[Finding]:
    """Findings of every rule above for the Windows wheel at ``wheel``."""
    try:
        members = read_wheel(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        return [Finding(wheel.name, "pe-parse", "fail", f"cannot read the wheel: {e}")]
    try:
        return analyse(wheel.name, members, cfg)
    except MissingDependency as e:
        return [Finding(wheel.name, "pe-closure", "fail", f"{e}; {DEPS_HINT}")]
    except ValueError as e:
        return [Finding(wheel.name, "pe-parse", "fail", str(e))]
