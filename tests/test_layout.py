"""The engine's architecture, enforced: three floors (sessions, blocks, core),
each importing only the floors below it; no session imports another session;
only ci/core/noxsupport.py knows nox; every noxfile session reaches its module
in one hop; functions stay short."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "ci"
FLOORS = {"sessions": 2, "blocks": 1, "core": 0}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__")


def imports_of(path: Path) -> set[str]:
    """Every ``ci.*`` module a file imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m == "ci" or m.startswith("ci.")}


def engine_files() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py"))


def floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def import_edges(files: list[Path], imports: Callable[[Path], set[str]] = imports_of) -> list[tuple[str, str]]:
    known = {module_name(f) for f in files}
    edges: set[tuple[str, str]] = set()
    for f in files:
        for target in imports(f):
            # ``from ci.blocks import cargo`` names the module ci.blocks.cargo.
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != module_name(f):
                edges.add((module_name(f), target))
    return sorted(edges)


def layering_problems(files: list[Path], imports: Callable[[Path], set[str]] = imports_of) -> list[str]:
    problems = []
    for src, dst in import_edges(files, imports):
        s, d = floor(src), floor(dst)
        if s is None or d is None:
            continue
        if src.startswith("ci.sessions.") and dst.startswith("ci.sessions.") and dst != "ci.sessions":
            problems.append(f"session {src} imports session {dst}")
        elif d > s:
            problems.append(f"{src} (floor {s}) imports {dst} (floor {d}), a floor above it")
    return problems


def test_every_engine_file_lives_on_a_floor() -> None:
    loose = [module_name(f) for f in engine_files() if floor(module_name(f)) is None and f.name != "__init__.py"]
    assert loose == []


def test_floors_import_only_downwards_and_sessions_never_each_other() -> None:
    assert layering_problems(engine_files()) == []


def test_the_layering_check_catches_a_session_importing_a_session(tmp_path: Path) -> None:
    """Break the rule once, in a copy: the check must name the edge."""
    files = engine_files()
    victim = ENGINE / "sessions" / "sdist.py"
    copy = tmp_path / "sdist.py"
    copy.write_text(victim.read_text(encoding="utf-8") + "\nfrom ci.sessions import publish_check\n")

    problems = layering_problems(files, lambda p: imports_of(copy if p == victim else p))
    assert problems == ["session ci.sessions.sdist imports session ci.sessions.publish_check"]


def test_a_block_importing_a_session_is_caught(tmp_path: Path) -> None:
    block = ENGINE / "blocks" / "venvs.py"
    copy = tmp_path / "venvs.py"
    copy.write_text(block.read_text(encoding="utf-8") + "\nfrom ci.sessions.lint import run\n")
    problems = layering_problems(engine_files(), lambda p: imports_of(copy if p == block else p))
    assert problems == ["ci.blocks.venvs (floor 1) imports ci.sessions.lint (floor 2), a floor above it"]


def test_only_noxsupport_imports_nox() -> None:
    users = []
    for f in engine_files():
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if any(n == "nox" or n.startswith("nox.") for n in names):
                users.append(module_name(f))
    assert sorted(set(users)) == ["ci.core.noxsupport"]


def noxfile_sessions() -> dict[str, str]:
    """noxfile function -> the ci.sessions module it hands to the engine."""
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    found = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "engine":
                    found[fn.name] = ast.literal_eval(call.args[2])
    return found


def test_each_session_is_one_module_with_a_run_function() -> None:
    sessions = noxfile_sessions()
    assert len(sessions) >= 10
    for name in sessions.values():
        path = ENGINE / "sessions" / f"{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "run" for n in tree.body), path
    on_disk = {p.stem for p in (ENGINE / "sessions").glob("*.py") if p.stem != "__init__"}
    assert on_disk == set(sessions.values()), "a session module no noxfile session uses"


@pytest.mark.parametrize("path", engine_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_functions_are_short(path: Path) -> None:
    long = [
        f"{n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and (n.end_lineno or 0) - n.lineno + 1 > 50
    ]
    assert long == []
