"""Adoption: what ``nox -s adopt -- PATH`` reads from another maturin
workspace, decides, and writes there.

* :func:`read_workspace` reads ``cargo metadata`` of PATH (resolved offline
  when the lock allows it, else the declared dependencies) and finds the
  Python crate;
* :func:`derive` turns those facts and the Python crate's ``pyproject.toml``
  into ``[tool.maturin-suite]`` settings, each with the reason it was chosen;
* :func:`suite_files` is what is copied (the noxfile without the suite's own
  ``self`` sessions, the whole ``ci/`` package, the workflows);
* :func:`plan_files` decides per file: new, unchanged, an update of a file
  adopt wrote earlier (the manifest ``.maturin-suite-adopted.json`` records
  the hash of every file it wrote), or a conflict (a file it did not write, or
  one edited since) that only ``--force`` overwrites;
* :func:`merge_pyproject` appends only the missing tables to PATH's root
  ``pyproject.toml`` as text (no TOML writer needed) and re-reads the result.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci.blocks.workflows import workflow_files
from ci.core.config import PREFIX, TABLE, SuiteConfig, parse_config, read_toml
from ci.core.console import probe
from ci.core.errors import ConfigError, ToolMissing
from ci.core.project import CARGO_HINT, Crate, crates_of, find_cargo

MANIFEST = ".maturin-suite-adopted.json"
NEWEST_MINOR = 13  # python-versions run from requires-python's lower bound up to 3.13
OLDEST_MINOR = 6
SELF_TAG = "self"  # noxfile sessions that test the suite itself: not adopted
TEST_GROUPS = ("test", "tests", "testing", "dev")
GMP_SYS = "gmp-mpfr-sys"


# --------------------------------------------------------------------------
# TOML text (tomllib reads; these few lines write the simple values adopt needs)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value: Any, *, inline: bool = False) -> str:
    """A TOML literal for a string, number, bool, list or (inline) table;
    long lists one item a line unless ``inline``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's; DEL must be escaped in TOML, not in JSON.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        items = [toml_value(v, inline=True) for v in value]
        if not inline and (len(items) > 3 or sum(map(len, items)) > 80):
            return "[\n" + "".join(f"    {i},\n" for i in items) + "]"
        return "[" + ", ".join(items) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


# --------------------------------------------------------------------------
# Reading the workspace


@dataclass(frozen=True)
class Workspace:
    """What ``cargo metadata`` and the manifests of PATH say."""

    root: Path
    crates: tuple[Crate, ...]
    python: Crate
    python_why: str
    pyproject: Mapping[str, Any]  # the Python crate's
    metadata: Mapping[str, Any]
    resolved: bool  # full dependency graph (else: members' declared dependencies)
    resolve_note: str = ""


def cargo_json(argv: list[str], env: Mapping[str, str]) -> tuple[dict[str, Any] | None, str]:
    proc = probe(argv, env=env, timeout=300)
    if proc is None:
        raise ToolMissing(f"cargo metadata did not start or answer in 300 s ({argv[0]})", hint=CARGO_HINT)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    data: dict[str, Any] = json.loads(proc.stdout)
    return data, ""


def workspace_metadata(root: Path, env: Mapping[str, str]) -> tuple[dict[str, Any], bool, str]:
    """``cargo metadata`` of ``root``: resolved offline if possible, else ``--no-deps``."""
    manifest = root / "Cargo.toml"
    if not manifest.is_file():
        raise ConfigError(f"{root} has no Cargo.toml: adopt needs the root of a cargo workspace")
    argv = [find_cargo(env), "metadata", "--format-version", "1", "--offline", "--manifest-path", str(manifest)]
    data, why = cargo_json(argv, env)
    if data is not None:
        return data, True, ""
    bare, last = cargo_json([*argv, "--no-deps"], env)
    if bare is None:
        raise ConfigError(f"cargo metadata failed for {manifest}: {last}")
    return bare, False, f"declared dependencies (cargo could not resolve offline: {why})"


def maturin_backend(pyproject: Path) -> dict[str, Any] | None:
    """The parsed ``pyproject.toml`` if it builds with maturin, else None."""
    if not pyproject.is_file():
        return None
    data = read_toml(pyproject)
    return data if data.get("build-system", {}).get("build-backend") == "maturin" else None


def find_python_crate(crates: Sequence[Crate]) -> tuple[Crate, dict[str, Any], str]:
    """The member with a maturin ``pyproject.toml``, else the one depending on pyo3."""
    built = [(c, d) for c in crates if (d := maturin_backend(c.folder / "pyproject.toml")) is not None]
    hint = f'add [{PREFIX}] with python-crate = "<folder>" to the root pyproject.toml and re-run'
    if len(built) == 1:
        return built[0][0], built[0][1], "the only workspace member whose pyproject.toml builds with maturin"
    if built:
        raise ConfigError(
            f"{len(built)} workspace members build with maturin "
            f"({', '.join(c.name for c, _ in built)}); adopt cannot choose",
            hint=hint,
        )
    pyo3 = [c for c in crates if "pyo3" in c.dependencies]
    if len(pyo3) != 1:
        found = ", ".join(c.name for c in pyo3) or "none"
        raise ConfigError(
            f"no workspace member has a maturin pyproject.toml, and {len(pyo3)} depend on pyo3 "
            f"({found}); adopt cannot tell which is the Python crate",
            hint=hint,
        )
    crate = pyo3[0]
    if not (crate.folder / "pyproject.toml").is_file():
        raise ConfigError(
            f"{crate.name} depends on pyo3 but {crate.folder} has no pyproject.toml",
            hint="maturin needs one: 'maturin init' or see maturin's documentation",
        )
    return crate, read_toml(crate.folder / "pyproject.toml"), "the only workspace member that depends on pyo3"


def read_workspace(root: Path, env: Mapping[str, str]) -> Workspace:
    metadata, resolved, note = workspace_metadata(root, env)
    actual = Path(metadata.get("workspace_root", root)).resolve()
    if actual != root.resolve():
        raise ConfigError(
            f"{root} is a member of the cargo workspace at {actual}, not its root",
            hint=f"run: nox -s adopt -- {actual}",
        )
    crates = crates_of(metadata)
    if not crates:
        raise ConfigError(f"cargo metadata lists no workspace member in {root}")
    python, pyproject, why = find_python_crate(crates)
    return Workspace(root.resolve(), crates, python, why, pyproject, metadata, resolved, note)


def dependency_features(ws: Workspace, name: str) -> tuple[str, frozenset[str]] | None:
    """(version or requirement, enabled features) of package ``name``, or None when absent."""
    if ws.resolved:
        ids = {p["id"]: p["version"] for p in ws.metadata["packages"] if p["name"] == name}
        if not ids:
            return None
        nodes = (ws.metadata.get("resolve") or {}).get("nodes") or []
        features = {f for n in nodes if n["id"] in ids for f in n.get("features", [])}
        return ", ".join(sorted(set(ids.values()))), frozenset(features)
    declared = [d for p in ws.metadata["packages"] for d in p.get("dependencies", []) if d["name"] == name]
    if not declared:
        return None
    features = {f for d in declared for f in d.get("features", [])}
    if any(d.get("uses_default_features", True) for d in declared):
        features.add("default")
    return ", ".join(sorted({str(d.get("req", "*")) for d in declared})), frozenset(features)


# --------------------------------------------------------------------------
# Deciding


@dataclass(frozen=True)
class Setting:
    """One decision: the key (``linux-wheel.bundled-libraries``), its value
    (None: not written, the suite's default applies) and why."""

    key: str
    value: Any
    why: str
    written: bool = True  # False: reported only (the suite's default or maturin's own setting applies)

    def line(self) -> str:
        shown = "(default)" if self.value is None else toml_value(self.value, inline=True)
        return f"{self.key} = {shown}{'' if self.written else ' (not written)'}  <- {self.why}"


@dataclass(frozen=True)
class NativeLib:
    name: str
    header: str
    link: str
    debian: str
    yum: str
    msys2: str
    soname: str
    dll: str


NATIVE = {
    "gmp": NativeLib(
        "GMP", "gmp.h", "gmp", "libgmp-dev", "gmp-devel", "mingw-w64-x86_64-gmp", "libgmp", "libgmp-10.dll"
    ),
    "mpfr": NativeLib(
        "MPFR", "mpfr.h", "mpfr", "libmpfr-dev", "mpfr-devel", "mingw-w64-x86_64-mpfr", "libmpfr", "libmpfr-6.dll"
    ),
    "mpc": NativeLib(
        "MPC", "mpc.h", "mpc", "libmpc-dev", "libmpc-devel", "mingw-w64-x86_64-mpc", "libmpc", "libmpc-3.dll"
    ),
}


@dataclass(frozen=True)
class Derived:
    settings: tuple[Setting, ...]
    notes: tuple[str, ...] = ()

    def value(self, key: str) -> Any:
        return next((s.value for s in self.settings if s.key == key), None)


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def abi3_floor(features: Iterable[str]) -> int | None:
    minors = [int(m[1]) for f in features if (m := re.fullmatch(r"abi3-py3(\d+)", f))]
    return min(minors) if minors else None


def python_versions(requires: str | None, abi3: int | None) -> tuple[list[str], str]:
    """CPython versions to test, from the lower bound of requires-python up to 3.13."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    candidates = [f"3.{m}" for m in range(OLDEST_MINOR, NEWEST_MINOR + 1)]
    if requires:
        try:
            spec = SpecifierSet(requires)
        except InvalidSpecifier:
            raise ConfigError(f"requires-python {requires!r} is not a valid version specifier") from None
        chosen = [v for v in candidates if spec.contains(v, prereleases=True)]
        if not chosen:
            raise ConfigError(f"requires-python {requires!r} admits none of CPython 3.{OLDEST_MINOR}-3.{NEWEST_MINOR}")
        return chosen, f"requires-python {requires!r}, up to 3.{NEWEST_MINOR}"
    if abi3 is not None:
        return candidates[abi3 - OLDEST_MINOR :], f"no requires-python; pyo3's abi3-py3{abi3}, up to 3.{NEWEST_MINOR}"
    default = list(SuiteConfig(python_crate=Path(".")).python_versions)
    return default, "no requires-python and no abi3 feature: the suite's default"


def pyo3_settings(ws: Workspace) -> list[Setting]:
    maturin = ws.pyproject.get("tool", {}).get("maturin", {})
    project = ws.pyproject.get("project", {})
    pp = rel(ws.python.folder / "pyproject.toml", ws.root)
    if maturin.get("module-name"):
        module = Setting("module", str(maturin["module-name"]), f"tool.maturin.module-name of {pp}")
    else:
        lib = ws.python.lib_name or ws.python.name.replace("-", "_")
        module = Setting("module", lib, f"no tool.maturin.module-name: the [lib] name of {ws.python.name}")
    if project.get("name"):
        dist = Setting("distribution", str(project["name"]), f"[project].name of {pp}")
    else:
        dist = Setting("distribution", ws.python.name, f"{pp} has no [project].name: the crate's name")
    pyo3 = dependency_features(ws, "pyo3")
    floor = abi3_floor(pyo3[1]) if pyo3 else None
    versions, why = python_versions(project.get("requires-python"), floor)
    return [module, dist, Setting("python-versions", versions, why)]


def python_source(ws: Workspace, import_name: str) -> tuple[Path, Setting]:
    """Where the Python package lives (maturin's python-source); reported, not written."""
    maturin = ws.pyproject.get("tool", {}).get("maturin", {})
    source = ws.python.folder / str(maturin.get("python-source", ""))
    where = rel(source / import_name, ws.root)
    if maturin.get("python-source"):
        why = f"tool.maturin.python-source: the package {import_name}/ is {where}/"
    elif (source / import_name).is_dir():
        why = f"no tool.maturin.python-source: maturin's mixed layout ({where}/)"
    else:
        why = "no tool.maturin.python-source and no package folder: a pure extension module"
    return source, Setting("python-source", rel(source, ws.python.folder), why, written=False)


def has_tests(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for pattern in ("test_*.py", "*_test.py") for p in folder.rglob(pattern))


def test_settings(ws: Workspace, source: Path) -> list[Setting]:
    crate = ws.python.folder
    candidates = [
        crate / "tests",
        source / "tests",
        crate / "python" / "tests",
        ws.root / "tests",
        ws.root / "python" / "tests",
    ]
    found = next((c for c in dict.fromkeys(candidates) if has_tests(c)), None)
    if found is not None:
        tests = Setting("python-tests", rel(found, ws.root), "the first of the usual test folders holding test_*.py")
    else:
        tests = Setting(
            "python-tests",
            rel(crate, ws.root),
            "NO Python tests found (test_*.py): python-tests "
            "fails until there are some; the Python crate's folder meanwhile",
        )
    groups = ws.pyproject.get("dependency-groups", {})
    group = next((g for g in TEST_GROUPS if g in groups), None)
    pp = rel(crate / "pyproject.toml", ws.root)
    if group:
        chosen = Setting("test-group", group, f"[dependency-groups].{group} of {pp}, installed for pytest")
    else:
        chosen = Setting(
            "test-group", None, f"{pp} has no test dependency group: pytest is installed alone", written=False
        )
    return [tests, chosen]


def through_rug(ws: Workspace) -> tuple[str, frozenset[str]] | None:
    """Declared dependencies only: rug pulls gmp-mpfr-sys without use-system-libs,
    with MPFR for its float and MPC for its complex numbers."""
    rug = dependency_features(ws, "rug")
    if rug is None:
        return None
    wants = rug[1] | ({"float", "complex"} if "default" in rug[1] else set())
    libs = {"mpfr"} if wants & {"float", "complex"} else set()
    return f"(through rug {rug[0]})", frozenset(libs | ({"mpc"} if "complex" in wants else set()))


def gmp_settings(ws: Workspace, env: Mapping[str, str]) -> list[Setting]:
    found = dependency_features(ws, GMP_SYS)
    if found is None and not ws.resolved:
        found = through_rug(ws)
    source = "resolved dependency graph" if ws.resolved else ws.resolve_note
    if found is None:
        return [
            Setting("gmp", "none", f"no package depends on {GMP_SYS} ({source})"),
            Setting("linux-wheel.bundled-libraries", [], "nothing native to bundle"),
        ]
    version, features = found
    libs = [
        NATIVE[k]
        for k in ("gmp", "mpfr", "mpc")
        if k == "gmp" or k in features or ("default" in features and not ws.resolved)
    ]
    names = "/".join(lib.name for lib in libs)
    if "use-system-libs" not in features:
        why = (
            f"{GMP_SYS} {version} without use-system-libs ({source}): it compiles {names} from "
            "its own source and links it statically"
        )
        return [
            Setting("gmp", "static", why),
            Setting("linux-wheel.bundled-libraries", [], f"{names} is linked into the extension: nothing to bundle"),
        ]
    why = f"{GMP_SYS} {version} with use-system-libs ({source}): the system's {names} is linked dynamically"
    settings = [
        Setting("gmp", "system", why),
        Setting("native", [native_entry(lib) for lib in libs], f"checked before every build: {names}"),
        Setting(
            "linux-wheel.bundled-libraries",
            [lib.soname for lib in libs],
            "shared libraries the manylinux repair copies into the wheel",
        ),
        Setting("windows-wheel.bundled-dlls", [lib.dll for lib in libs], "the MinGW DLLs of the same"),
    ]
    multiarch = multiarch_dir(env)
    if multiarch:
        settings.append(
            Setting(
                "linux-wheel.library-dirs", [multiarch], "the Debian multiarch directory, which zig does not search"
            )
        )
    return settings


def native_entry(lib: NativeLib) -> dict[str, str]:
    return {
        "name": lib.name,
        "header": lib.header,
        "link": lib.link,
        "debian": lib.debian,
        "yum": lib.yum,
        "msys2": lib.msys2,
    }


def multiarch_dir(env: Mapping[str, str]) -> str | None:
    proc = probe([env.get("CC") or "cc", "-print-multiarch"], env=env, timeout=30)
    triple = proc.stdout.strip() if proc is not None and proc.returncode == 0 else ""
    folder = Path("/usr/lib") / triple
    return str(folder) if triple and folder.is_dir() else None


def derive(ws: Workspace, env: Mapping[str, str]) -> Derived:
    """Every ``[tool.maturin-suite]`` setting adopt writes, with its reason."""
    settings = [
        Setting("workspace", ".", "the cargo workspace root (cargo metadata workspace_root)"),
        Setting("python-crate", rel(ws.python.folder, ws.root), f"{ws.python.name}: {ws.python_why}"),
    ]
    settings += pyo3_settings(ws)
    import_name = str(next(s.value for s in settings if s.key == "module")).split(".")[0]
    source, where = python_source(ws, import_name)
    settings += [where, *test_settings(ws, source), *gmp_settings(ws, env)]
    settings += [
        Setting("linux-wheel.policy", "manylinux2014", "the oldest manylinux zig can target (glibc 2.17)"),
        Setting("linux-wheel.mode", "auto", "zig on every machine, no Docker needed"),
        Setting(
            "publish.platforms",
            ["manylinux_2_17_x86_64", "win_amd64"],
            "the wheels the release workflow builds (linux-wheel, windows-gnu-wheel)",
        ),
    ]
    notes = [f"smoke is not set: built wheels are only imported; add a real computation ({PREFIX}.smoke)"]
    if not ws.resolved:
        notes.append(f"settings come from the {ws.resolve_note}")
    return Derived(tuple(settings), tuple(notes))


def suite_table(derived: Derived, source: str) -> str:
    """``[tool.maturin-suite]`` (and its sub-tables) as TOML text, a comment per setting."""
    top: list[str] = []
    subs: dict[str, list[str]] = {}
    arrays: list[str] = []
    for s in derived.settings:
        if not s.written:
            continue
        if s.key == "native":
            for entry in s.value:
                arrays += [
                    "",
                    f"# {s.why}",
                    f"[[{PREFIX}.native]]",
                    *(f"{toml_key(k)} = {toml_value(v)}" for k, v in entry.items()),
                ]
            continue
        table, _, key = s.key.rpartition(".")
        lines = top if not table else subs.setdefault(table, [])
        lines += [f"# {s.why}", f"{toml_key(key)} = {toml_value(s.value)}"]
    head = [
        f"# Written by `nox -s adopt` from {source}.",
        "# Each setting says where it comes from. Review them; adopt never changes",
        "# this table again (delete it and re-run adopt to derive it anew).",
        f"[{PREFIX}]",
    ]
    text = head + top + arrays
    for table, lines in subs.items():
        text += ["", f"[{PREFIX}.{table}]", *lines]
    return "\n".join(text) + "\n"


# --------------------------------------------------------------------------
# The suite's files


@dataclass(frozen=True)
class SuiteFile:
    data: bytes
    mode: int


def is_self_session(decorator: ast.expr) -> bool:
    """``@nox.session(..., tags=[..., "self", ...])``."""
    if not isinstance(decorator, ast.Call):
        return False
    return any(
        kw.arg == "tags"
        and isinstance(kw.value, ast.List | ast.Tuple)
        and any(isinstance(e, ast.Constant) and e.value == SELF_TAG for e in kw.value.elts)
        for kw in decorator.keywords
    )


def drop_unused_imports(text: str) -> str:
    """Remove names no longer used from single-statement ``from ci... import`` lines."""
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    lines = text.splitlines(keepends=True)
    for node in reversed(tree.body):
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ci.")):
            continue
        kept = [a for a in node.names if (a.asname or a.name) in used]
        if len(kept) == len(node.names):
            continue
        last = lines[(node.end_lineno or node.lineno) - 1]
        comment = "  #" + last.split("#", 1)[1].rstrip("\n") if "#" in last else ""
        names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in kept)
        new = [f"from {node.module} import {names}{comment}\n"] if kept else []
        lines[node.lineno - 1 : node.end_lineno] = new
    return "".join(lines)


def standalone_noxfile(text: str) -> str:
    """The noxfile without the sessions tagged ``self`` (the suite's own tests)."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    drop: set[int] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(is_self_session(d) for d in node.decorator_list):
            start = min(d.lineno for d in node.decorator_list) - 1
            end = node.end_lineno or node.lineno
            while end < len(lines) and not lines[end].strip():
                end += 1  # the blank lines after it
            drop.update(range(start, end))
    kept = "".join(line for i, line in enumerate(lines) if i not in drop)
    return drop_unused_imports(kept).rstrip() + "\n"


def session_groups(noxfile: str) -> list[str]:
    """Dependency groups the noxfile's sessions install (``engine(..., groups=[...])``)."""
    groups: list[str] = []
    for call in ast.walk(ast.parse(noxfile)):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "engine":
            for kw in call.keywords:
                if kw.arg == "groups":
                    groups += [str(g) for g in ast.literal_eval(kw.value)]
    return list(dict.fromkeys(groups))


def group_closure(all_groups: Mapping[str, Any], wanted: Iterable[str]) -> list[str]:
    """``wanted`` and every group they include, in the source's order."""
    seen: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in seen or name not in all_groups:
            continue
        seen.add(name)
        todo += [e["include-group"] for e in all_groups[name] if isinstance(e, dict) and "include-group" in e]
    return [g for g in all_groups if g in seen]


def engine_files(source: Path) -> Iterable[Path]:
    for path in sorted((source / "ci").rglob("*")):
        parts = path.relative_to(source).parts
        if (
            path.is_file()
            and not any(p.startswith(".") or p == "__pycache__" for p in parts)
            and path.suffix not in (".pyc", ".pyo")
        ):
            yield path


def pypi_page(distribution: str) -> str:
    """The project page the release workflow's publish environment links to."""
    return f"https://pypi.org/p/{distribution}"


def suite_files(source: Path, renames: Mapping[str, str] | None = None) -> dict[str, SuiteFile]:
    """Relative path -> content of every file adopt writes (the root pyproject
    aside); ``renames`` are text replacements made in the workflows (the
    suite's own PyPI page becomes the adopting project's)."""
    nox = source / "noxfile.py"
    files = {
        "noxfile.py": SuiteFile(
            standalone_noxfile(nox.read_text(encoding="utf-8")).encode(), nox.stat().st_mode & 0o777
        )
    }
    for path in engine_files(source):
        files[path.relative_to(source).as_posix()] = SuiteFile(path.read_bytes(), path.stat().st_mode & 0o777)
    for path in workflow_files(source):
        text = path.read_text(encoding="utf-8")
        for old, new in (renames or {}).items():
            text = text.replace(old, new)
        files[path.relative_to(source).as_posix()] = SuiteFile(text.encode("utf-8"), path.stat().st_mode & 0o777)
    return files


# --------------------------------------------------------------------------
# Which files may be written


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(dest: Path) -> dict[str, list[str]]:
    """``{relative path: [every sha256 adopt wrote there]}`` from PATH's manifest."""
    path = dest / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        return {str(k): [str(h) for h in v] for k, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(
            f"{path} is not a manifest adopt wrote (no 'files' table of hashes)",
            hint="delete it and re-run with --force to take over every file",
        ) from None


@dataclass(frozen=True)
class FileAction:
    path: str
    action: str  # new | unchanged | update | overwrite | conflict | remove | keep
    reason: str = ""


@dataclass
class FilePlan:
    actions: list[FileAction] = field(default_factory=list)

    def with_action(self, *names: str) -> list[FileAction]:
        return [a for a in self.actions if a.action in names]


def file_action(dest: Path, rel_path: str, new: bytes, written: Sequence[str], force: bool) -> FileAction:
    target = dest / rel_path
    if target.is_symlink() or (target.exists() and not target.is_file()):
        return FileAction(rel_path, "conflict", "not a regular file")
    if not target.exists():
        return FileAction(rel_path, "new")
    current = digest(target.read_bytes())
    if current == digest(new):
        return FileAction(rel_path, "unchanged")
    if current in written:
        return FileAction(rel_path, "update", "written by adopt earlier, unchanged since")
    reason = "edited since adopt wrote it" if written else "not written by adopt"
    return FileAction(rel_path, "overwrite" if force else "conflict", reason)


def plan_files(
    dest: Path, files: Mapping[str, SuiteFile], manifest: Mapping[str, Sequence[str]], force: bool
) -> FilePlan:
    plan = FilePlan([file_action(dest, p, f.data, manifest.get(p, ()), force) for p, f in files.items()])
    for stale in sorted(set(manifest) - set(files)):
        target = dest / stale
        if not target.is_file():
            continue
        ours = digest(target.read_bytes()) in manifest[stale]
        plan.actions.append(
            FileAction(
                stale,
                "remove" if ours else "keep",
                "no longer part of the suite" + ("" if ours else "; edited since, kept"),
            )
        )
    return plan


def write_file(target: Path, data: bytes, mode: int) -> None:
    """Atomically: a temporary file beside ``target``, then a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(
    dest: Path, files: Mapping[str, SuiteFile], old: Mapping[str, Sequence[str]], tables: Sequence[str]
) -> None:
    """Record every hash adopt writes now, keeping those it wrote before (so an
    interrupted upgrade still recognises its files), and the pyproject tables
    it ever added; the file is rewritten only when that changes."""
    path = dest / MANIFEST
    try:
        added_before = [str(t) for t in json.loads(path.read_text(encoding="utf-8")).get("pyproject-tables", [])]
    except (OSError, ValueError, AttributeError):
        added_before = []
    entries = {p: list(dict.fromkeys([*old.get(p, ()), digest(f.data)])) for p, f in sorted(files.items())}
    data = {
        "written-by": "nox -s adopt (maturin-suite)",
        "files": entries,
        "pyproject-tables": list(dict.fromkeys([*added_before, *tables])),
    }
    text = (json.dumps(data, indent=2) + "\n").encode()
    if not path.is_file() or path.read_bytes() != text:
        write_file(path, text, 0o644)


# --------------------------------------------------------------------------
# The root pyproject.toml


@dataclass(frozen=True)
class Merge:
    text: str
    added: tuple[str, ...]
    notes: tuple[str, ...]
    config: SuiteConfig | None = None  # the merged [tool.maturin-suite], validated


HEADER = {"dependency-groups": r"dependency-groups", "tool.uv": r"tool\s*\.\s*uv"}


def insert_after_header(text: str, table: str, lines: Sequence[str], path: Path) -> str:
    """``lines`` added at the top of ``[table]`` (its header must be a plain ``[table]`` line)."""
    m = re.search(rf"^[ \t]*\[[ \t]*{HEADER[table]}[ \t]*\][ \t]*(#.*)?$", text, re.M)
    if not m:
        raise ConfigError(
            f"{path}: [{table}] is not written as a [{table}] header, so adopt cannot add to it",
            hint="add by hand: " + "; ".join(lines),
        )
    return text[: m.end()] + "\n" + "\n".join(lines) + text[m.end() :]


def group_lines(groups: Mapping[str, Any], names: Iterable[str]) -> list[str]:
    return [f"{toml_key(g)} = {toml_value(groups[g])}" for g in names]


def merge_groups(text: str, data: Mapping[str, Any], groups: Mapping[str, Any], path: Path) -> Merge:
    have = data.get("dependency-groups")
    banner = "# The tools the suite's sessions install (names only; pins in [tool.uv] and ci/constraints.txt)."
    if have is None:
        block = "\n".join([banner, "[dependency-groups]", *group_lines(groups, groups)])
        return Merge(f"{text}\n{block}\n", ("dependency-groups",), ())
    missing = [g for g in groups if g not in have]
    differ = [g for g in groups if g in have and have[g] != groups[g]]
    notes = tuple(
        f"[dependency-groups].{g} exists and differs from the suite's; yours is kept "
        f"(the suite's: {toml_value(groups[g], inline=True)})"
        for g in differ
    )
    if not missing:
        return Merge(text, (), notes)
    new = insert_after_header(text, "dependency-groups", group_lines(groups, missing), path)
    return Merge(new, tuple(f"dependency-groups.{g}" for g in missing), notes)


def merge_uv(text: str, data: Mapping[str, Any], pins: Sequence[str], path: Path) -> Merge:
    uv = data.get("tool", {}).get("uv")
    line = f"constraint-dependencies = {toml_value(list(pins))}"
    if uv is None:
        block = "# The one pin of each tool the suite installs (ci/constraints.txt is exported from them).\n"
        return Merge(f"{text}\n{block}[tool.uv]\n{line}\n", ("tool.uv",), ())
    if "constraint-dependencies" in uv:
        return Merge(
            text,
            (),
            (
                "[tool.uv] constraint-dependencies exists; yours is kept (every session "
                "install is pinned by ci/constraints.txt)",
            ),
        )
    return Merge(insert_after_header(text, "tool.uv", [line], path), ("tool.uv.constraint-dependencies",), ())


def merge_pyproject(path: Path, suite: str | None, groups: Mapping[str, Any], pins: Sequence[str]) -> Merge:
    """The root ``pyproject.toml`` with the missing tables added (text), re-read and validated."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    data = read_toml(path) if path.exists() else {}
    if text and not text.endswith("\n"):
        text += "\n"
    added: list[str] = []
    notes: list[str] = []
    if suite is not None and TABLE not in data.get("tool", {}):
        text = f"{text}\n{suite}" if text else suite
        added.append(PREFIX)
    merge = merge_groups(text, data, groups, path)
    text, added, notes = merge.text, [*added, *merge.added], [*notes, *merge.notes]
    merge = merge_uv(text, data, pins, path)
    text, added, notes = merge.text, [*added, *merge.added], [*notes, *merge.notes]
    return Merge(text, tuple(added), tuple(notes), check_merged(text, path, groups))


def check_merged(text: str, path: Path, groups: Mapping[str, Any]) -> SuiteConfig:
    """The merged text parses, holds every group, and its suite table is valid."""
    try:
        merged = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(
            f"adding the suite's tables to {path} would make it invalid TOML ({e})",
            hint=f"add [{PREFIX}], [dependency-groups] and [tool.uv] by hand",
        ) from None
    missing = [g for g in groups if g not in merged.get("dependency-groups", {})]
    if missing:
        raise ConfigError(f"{path}: [dependency-groups] lacks {', '.join(missing)} after adopt")
    return parse_config(merged, path.parent, source=str(path))


def distribution_of(cfg: SuiteConfig) -> str:
    """The distribution name: the table's, else the Python crate's ``[project].name``."""
    if cfg.distribution:
        return cfg.distribution
    return str(read_toml(cfg.python_pyproject).get("project", {}).get("name") or "")


def source_tables(source: Path) -> tuple[dict[str, Any], list[str]]:
    """The suite's dependency groups (those its noxfile installs, with what they
    include, and the engine's own ``nox`` group) and its pins."""
    data = read_toml(source / "pyproject.toml")
    all_groups = data.get("dependency-groups", {})
    wanted = ["nox", *session_groups(standalone_noxfile((source / "noxfile.py").read_text(encoding="utf-8")))]
    groups = {g: all_groups[g] for g in group_closure(all_groups, wanted)}
    pins = [str(p) for p in data.get("tool", {}).get("uv", {}).get("constraint-dependencies", [])]
    return groups, pins
