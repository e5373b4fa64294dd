"""Which toolchain built each artifact.

A session that writes an artifact into ``dist/`` records, in
``reports/<session>/provenance.json`` (written atomically), the artifact's
name, SHA-256 and size and the versions of what built it: rustc, maturin,
zig, the MinGW gcc, GMP. publish-check joins these records to the files it
checks by hash, so its JSON report says what built each artifact, and never
attributes a file to a build that did not make it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ci.core import artifacts
from ci.core.console import probe

RECORD = "provenance.json"


def first_line(argv: Sequence[str], env: Mapping[str, str]) -> str | None:
    """The first line a program prints for a version query, or None."""
    proc = probe(argv, env=env, timeout=60)
    if proc is None or proc.returncode != 0:
        return None
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0].strip() if text else None


def system_gmp_version(cc: str, env: Mapping[str, str]) -> str | None:
    """``6.2.1`` from the ``gmp.h`` the C compiler sees."""
    proc = probe([*cc.split(), "-dM", "-E", "-include", "gmp.h", "-x", "c", "/dev/null"], env=env, timeout=60)
    if proc is None or proc.returncode != 0:
        return None
    macros = dict(re.findall(r"#define (__GNU_MP_VERSION(?:_MINOR|_PATCHLEVEL)?) (\d+)", proc.stdout))
    parts = [macros.get(k) for k in ("__GNU_MP_VERSION", "__GNU_MP_VERSION_MINOR", "__GNU_MP_VERSION_PATCHLEVEL")]
    return ".".join(p for p in parts if p) if all(parts) else None


def toolchain(
    env: Mapping[str, str], queries: Mapping[str, Sequence[str]], known: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """Versions by name: each query's first output line, plus ``known`` values
    found otherwise (e.g. GMP); names whose version is unknown are left out."""
    found = {name: first_line(argv, env) for name, argv in queries.items()}
    found.update(known or {})
    return {name: value for name, value in found.items() if value}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def record(report_dir: Path, session: str, artifact: Path, tools: Mapping[str, str]) -> Path:
    """Write this run's provenance of ``artifact`` (replacing earlier runs')."""
    entry = {
        "artifact": artifact.name,
        "sha256": sha256(artifact),
        "size": artifact.stat().st_size,
        "session": session,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "toolchain": dict(tools),
    }
    report_dir.mkdir(parents=True, exist_ok=True)
    with artifacts.staging_dir(report_dir, "provenance") as tmp:
        (tmp / RECORD).write_text(json.dumps([entry], indent=2) + "\n", encoding="utf-8")
        return artifacts.publish(tmp / RECORD, report_dir)


def summary(tools: Mapping[str, str]) -> str:
    return "; ".join(f"{name}: {value}" for name, value in tools.items()) or "unknown"


def known_records(reports_dir: Path) -> dict[str, dict[str, Any]]:
    """Every recorded artifact by SHA-256, from ``reports/*/provenance.json``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(reports_dir.glob(f"*/{RECORD}")):
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
                found[entry["sha256"]] = entry
    return found


def of(files: Sequence[Path], reports_dir: Path) -> dict[str, dict[str, Any] | None]:
    """Each file's record (matched by content hash), or None when no session
    of this checkout recorded building exactly these bytes."""
    records = known_records(reports_dir)
    return {f.name: records.get(sha256(f)) for f in files}


def locked_version(workspace: Path, package: str) -> str | None:
    """The version of ``package`` that the workspace's Cargo.lock pins."""
    import tomllib

    try:
        lock = tomllib.loads((workspace / "Cargo.lock").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    versions = [p.get("version") for p in lock.get("package", []) if p.get("name") == package]
    return str(versions[0]) if versions else None


def gmp_of(gmp_mode: str, workspace: Path, cc: str, env: Mapping[str, str]) -> str | None:
    """GMP as the build used it: the system's header version, or the
    gmp-mpfr-sys release that compiled it from source."""
    if gmp_mode == "system":
        version = system_gmp_version(cc, env)
        return f"{version} (system, bundled)" if version else None
    if gmp_mode == "static":
        crate = locked_version(workspace, "gmp-mpfr-sys")
        return f"built from source by gmp-mpfr-sys {crate} (static)" if crate else None
    return None
