"""A catalogue of broken Windows wheels, each rejected by
ci.blocks.pe.windows_wheel_findings with the right rule, while the good wheel passes.

Everything is a real PE file: DLLs compiled here with MinGW-w64 gcc (import
libraries for python3.dll / python312.dll / a DLL that does not exist are
made with dlltool from .def stubs), bundled by the real delvewheel; and the
real wheel built by ``nox -s windows-gnu-wheel`` (slow tests).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import run_nox

from ci.blocks import pe as dll
from ci.core.config import PublishConfig, load_config
from ci.core.findings import failures

ROOT = Path(__file__).resolve().parents[1]
GCC = shutil.which("x86_64-w64-mingw32-gcc")
DLLTOOL = shutil.which("x86_64-w64-mingw32-dlltool")
needs_mingw = pytest.mark.skipif(
    not (GCC and DLLTOOL),
    reason="needs MinGW-w64: apt-get install gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64",
)


# --------------------------------------------------------------------------
# building real PE files


def import_lib(tmp: Path, dll_name: str, symbols: list[str]) -> Path:
    """An import library for ``dll_name`` exporting ``symbols`` (dlltool)."""
    stem = dll_name.removesuffix(".dll")
    d = tmp / f"{stem}.def"
    d.write_text(f"LIBRARY {dll_name}\nEXPORTS\n" + "".join(f"    {s}\n" for s in symbols))
    lib = tmp / f"lib{stem}.dll.a"
    subprocess.run([DLLTOOL, "-d", str(d), "-l", str(lib), "-D", dll_name], check=True)
    return lib


def compile_dll(tmp: Path, name: str, source: str, *link: str | Path) -> Path:
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    subprocess.run([GCC, "-O1", "-shared", "-o", str(out), str(src), *map(str, link)], check=True)
    return out


def libs_dir(wheel: Path) -> str:
    """The wheel's delvewheel folder (``<pkg>.libs``)."""
    return member(wheel, r"[^/]+\.libs/[^/]+\.dll").split("/")[0]


EXTENSION_C = r"""
typedef struct _object PyObject;
__declspec(dllimport) void Py_IncRef(PyObject *);
__declspec(dllimport) int foo_answer(void);
__declspec(dllexport) PyObject *PyInit__core(void) {
    Py_IncRef((PyObject *)0);
    return (PyObject *)(long long)foo_answer();
}
"""
FOO_C = "__declspec(dllexport) int foo_answer(void) { return 42; }\n"
BROKEN_C = r"""
__declspec(dllimport) int missing_function(void);
__declspec(dllexport) int broken(void) { return missing_function(); }
"""
PY312_C = r"""
typedef struct _object PyObject;
__declspec(dllimport) void Py_IncRef(PyObject *);
__declspec(dllexport) PyObject *PyInit__core(void) { Py_IncRef((PyObject *)0); return 0; }
"""


@pytest.fixture(scope="session")
def pe_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (GCC and DLLTOOL):
        pytest.skip("needs MinGW-w64 gcc and dlltool")
    tmp = tmp_path_factory.mktemp("pe")
    libfoo = tmp / "libfoo-1.dll.a"
    foo = compile_dll(tmp, "libfoo-1.dll", FOO_C, f"-Wl,--out-implib,{libfoo}")
    py3 = import_lib(tmp, "python3.dll", ["Py_IncRef"])
    py312 = import_lib(tmp, "python312.dll", ["Py_IncRef"])
    missing = import_lib(tmp, "libmissing-7.dll", ["missing_function"])
    return {
        "libfoo-1.dll": foo,
        "_core.pyd": compile_dll(tmp, "_core.pyd", EXTENSION_C, py3, libfoo),
        "py312.pyd": compile_dll(tmp, "py312.pyd", PY312_C, py312),
        "libbroken-1.dll": compile_dll(tmp, "libbroken-1.dll", BROKEN_C, missing),
    }


def write_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
        info = next(n.split("/")[0] for n in files if ".dist-info/" in n)
        z.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"]))
    return path


@pytest.fixture(scope="session")
def synthetic(pe_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A small real wheel (extension + libfoo-1.dll) repaired by delvewheel, and its config."""
    tmp = tmp_path_factory.mktemp("synthetic")
    info = "demo-1.0.dist-info"
    raw = write_wheel(
        tmp / "demo-1.0-cp39-abi3-win_amd64.whl",
        {
            "demo/__init__.py": b'"""demo"""\nfrom ._core import *\n',
            "demo/_core.pyd": pe_files["_core.pyd"].read_bytes(),
            f"{info}/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp39-abi3-win_amd64\n",
        },
    )
    out = tmp / "repaired"
    delvewheel = [sys.executable, "-m", "delvewheel"]
    subprocess.run(
        [*delvewheel, "repair", "--add-path", str(pe_files["libfoo-1.dll"].parent), "-w", str(out), str(raw)],
        check=True,
        capture_output=True,
    )
    repaired = next(out.glob("*.whl"))
    (tmp / "LICENSE-foo.txt").write_text("libfoo licence\n")
    wheel = rewrite(
        repaired, tmp / "good" / repaired.name, add={f"{info}/licenses/LICENSE-foo.txt": b"libfoo licence\n"}
    )
    base = load_config(ROOT)
    cfg = dataclasses.replace(
        base,
        root=tmp,
        windows_wheel=dataclasses.replace(
            base.windows_wheel, bundled_dlls=("libfoo-1.dll",), licenses={"libfoo": ("LICENSE-foo.txt",)}
        ),
        publish=PublishConfig(),
    )
    return wheel, cfg


def rewrite(
    wheel: Path,
    out: Path,
    *,
    drop: Callable[[str], bool] = lambda n: False,
    add: dict[str, bytes] | None = None,
    replace: dict[str, bytes] | None = None,
) -> Path:
    """A copy of ``wheel`` at ``out`` with members dropped, added or replaced."""
    out.parent.mkdir(parents=True, exist_ok=True)
    replace = replace or {}
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if drop(item.filename):
                continue
            dst.writestr(item.filename, replace.get(item.filename, src.read(item)))
        for name, data in (add or {}).items():
            dst.writestr(name, data)
    return out


def member(wheel: Path, pattern: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        (found,) = [n for n in z.namelist() if re.fullmatch(pattern, n)]
    return found


def unpatched_init(wheel: Path) -> bytes:
    """__init__.py with delvewheel's os.add_dll_directory patch cut out."""
    with zipfile.ZipFile(wheel) as z:
        text = z.read(member(wheel, r"[^/]+/__init__\.py")).decode()
    cut = re.sub(r"\n# start delvewheel patch.*?# end delvewheel patch\n", "\n", text, flags=re.S)
    assert cut != text and "add_dll_directory" not in cut
    return cut.encode()


# --------------------------------------------------------------------------
# the catalogue: name -> (mutation, rules that must fail, text in a failure)


def catalogue(pe: dict[str, Path]) -> dict[str, tuple[Callable[[Path, Path], Path], set[str], str]]:
    return {
        "bundled DLL removed": (
            lambda w, o: rewrite(w, o, drop=lambda n: n.endswith(".dll") and ".libs/" in n),
            {"pe-closure", "bundled-dlls"},
            "neither in the wheel nor a Windows system DLL",
        ),
        "bundled DLL imports a missing DLL": (
            lambda w, o: rewrite(w, o, add={f"{libs_dir(w)}/libbroken-1.dll": pe["libbroken-1.dll"].read_bytes()}),
            {"pe-closure", "dll-licenses"},
            "libbroken-1.dll imports libmissing-7.dll",
        ),
        "extension imports python312.dll": (
            lambda w, o: rewrite(w, o, replace={member(w, r"[^/]+/_core\.pyd"): pe["py312.pyd"].read_bytes()}),
            {"abi3-python-dll"},
            "python312.dll",
        ),
        "no os.add_dll_directory patch": (
            lambda w, o: rewrite(w, o, replace={member(w, r"[^/]+/__init__\.py"): unpatched_init(w)}),
            {"dll-search-path"},
            "os.add_dll_directory",
        ),
        "licence of a bundled DLL missing": (
            lambda w, o: rewrite(w, o, drop=lambda n: ".dist-info/licenses/" in n),
            {"dll-licenses"},
            "missing from .dist-info/licenses/",
        ),
        "a .dll that is no PE file": (
            lambda w, o: rewrite(w, o, add={f"{libs_dir(w)}/garbage.dll": b"MZ but not really"}),
            {"pe-parse"},
            "not a readable PE file",
        ),
    }


CASES = [
    "bundled DLL removed",
    "bundled DLL imports a missing DLL",
    "extension imports python312.dll",
    "no os.add_dll_directory patch",
    "licence of a bundled DLL missing",
    "a .dll that is no PE file",
]


def failing_rules(wheel: Path, cfg) -> tuple[set[str], list[str]]:
    bad = failures(dll.windows_wheel_findings(wheel, cfg))
    return {f.rule for f in bad}, [f.detail for f in bad]


@needs_mingw
def test_good_synthetic_wheel_passes(synthetic) -> None:
    wheel, cfg = synthetic
    findings = dll.windows_wheel_findings(wheel, cfg)
    assert not failures(findings), [f.line() for f in failures(findings)]
    rules = {f.rule for f in findings}
    assert {"pe-closure", "abi3-python-dll", "dll-search-path", "dll-licenses", "bundled-dlls"} <= rules
    closure = next(f for f in findings if f.rule == "pe-closure")
    assert "libfoo-1-" in closure.detail  # delvewheel bundled (and mangled) it


@needs_mingw
@pytest.mark.parametrize("case", CASES)
def test_broken_synthetic_wheel_is_rejected(case: str, synthetic, pe_files, tmp_path: Path) -> None:
    wheel, cfg = synthetic
    mutate, rules, text = catalogue(pe_files)[case]
    broken = mutate(wheel, tmp_path / wheel.name)
    failed, details = failing_rules(broken, cfg)
    assert failed == rules, details
    assert any(text in d for d in details), details


@needs_mingw
def test_missing_import_named_even_when_unbundled(pe_files, tmp_path: Path) -> None:
    """A wheel that was never repaired: the extension's own DLL is reported."""
    wheel = write_wheel(
        tmp_path / "demo-1.0-cp39-abi3-win_amd64.whl",
        {
            "demo/__init__.py": b"",
            "demo/_core.pyd": pe_files["_core.pyd"].read_bytes(),
            "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        },
    )
    failed, details = failing_rules(wheel, load_config(ROOT))
    assert "pe-closure" in failed
    assert any("demo/_core.pyd imports libfoo-1.dll" in d for d in details)


def test_original_name_undoes_delvewheel_mangling() -> None:
    assert dll.original_name("libgmp-10-2f6728fd8353f21cca877a5c1a4dbd0f.dll") == "libgmp-10.dll"
    assert dll.original_name("libgmp-10.dll") == "libgmp-10.dll"
    assert dll.original_name("python3.dll") == "python3.dll"


def test_system_dll_list_comes_from_delvewheel() -> None:
    system = dll.system_dlls(0x8664)
    assert {"kernel32.dll", "msvcrt.dll", "ntdll.dll", "bcryptprimitives.dll"} <= system
    assert "libgmp-10.dll" not in system and "python3.dll" not in system


# --------------------------------------------------------------------------
# the real wheel (built by the session)


@pytest.fixture(scope="session")
def real_wheel(tmp_path_factory: pytest.TempPathFactory, windows_ws: Path) -> Path:
    """The session's wheel, built with nox in the shared repository copy."""
    cfg = load_config(windows_ws)
    found = sorted(cfg.dist_dir.glob("*-win_amd64.whl"))
    if not found:
        proc = run_nox(windows_ws, "-s", "windows-gnu-wheel", "--", "--skip-wine")
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        found = sorted(cfg.dist_dir.glob("*-win_amd64.whl"))
    copy = tmp_path_factory.mktemp("real") / found[-1].name
    shutil.copyfile(found[-1], copy)
    return copy


@pytest.mark.slow
def test_real_wheel_passes_and_bundles_gmp(real_wheel: Path) -> None:
    findings = dll.windows_wheel_findings(real_wheel, load_config(ROOT))
    assert not failures(findings), [f.line() for f in failures(findings)]
    with zipfile.ZipFile(real_wheel) as z:
        names = [dll.original_name(n.split("/")[-1]) for n in z.namelist() if n.endswith(".dll")]
        core = dll.read_pe("_core.pyd", z.read(member(real_wheel, r"q_kangaroo/_core\.pyd")))
    assert "libgmp-10.dll" in names
    assert "python3.dll" in [i.lower() for i in core.imports]
    assert not any(dll.VERSIONED_PYTHON_DLL.fullmatch(i.lower()) for i in core.imports)


@pytest.mark.slow
@needs_mingw
@pytest.mark.parametrize("case", CASES)
def test_broken_real_wheel_is_rejected(case: str, real_wheel: Path, pe_files, tmp_path: Path) -> None:
    mutate, rules, text = catalogue(pe_files)[case]
    broken = mutate(real_wheel, tmp_path / real_wheel.name)
    failed, details = failing_rules(broken, load_config(ROOT))
    assert failed == rules, details
    assert any(text in d for d in details), details
