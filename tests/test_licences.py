"""Licences of what a wheel carries (ci/blocks/licences.py): detection of
bundled and statically linked native libraries (real ``cargo metadata`` of
this repository and of the static-gmp fixture), the texts required in
``.dist-info/licenses/``, the texts the suite supplies from gmp-mpfr-sys's
own sources in the cargo registry, and end to end: a real wheel of this
repository without its licence texts fails publish-check naming GMP, and the
static-gmp fixture's wheel gets GMP's COPYING texts and passes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import artifact_factory as af
import pytest
from conftest import FIXTURES, assert_clean_failure, assert_ok, copy_fixture, copy_repo, run_nox

from ci.blocks import licences
from ci.core.config import SuiteConfig, load_config
from ci.sessions import publish_check

REPO = Path(__file__).resolve().parent.parent
GMP_TEXTS = ("COPYING", "COPYING.LESSERv3", "COPYINGv2", "COPYINGv3")
SYSTEM_LIBGMP = Path("/usr/lib/x86_64-linux-gnu/libgmp.so.10")


def registry_gmp_source() -> Path:
    """GMP's source folder inside the locked gmp-mpfr-sys crate, found in the
    cargo registry by hand (not by the code under test)."""
    lock = (REPO / "Cargo.lock").read_text()
    version = re.search(r'name = "gmp-mpfr-sys"\nversion = "([^"]+)"', lock)
    assert version, "gmp-mpfr-sys is not in Cargo.lock"
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    found = sorted(home.glob(f"registry/src/*/gmp-mpfr-sys-{version.group(1)}/gmp-*-c"))
    if not found:
        pytest.skip(f"gmp-mpfr-sys {version.group(1)} is not in the cargo registry (cargo fetch)")
    return found[0]


def static_copy(tmp_path: Path, features: list[str] | None = None) -> Path:
    """A copy of the static-gmp fixture, gmp-mpfr-sys's features optionally replaced."""
    ws = tmp_path / "static-gmp"
    shutil.copytree(FIXTURES / "static-gmp", ws, ignore=shutil.ignore_patterns("target", ".nox"))
    if features is not None:
        manifest = ws / "numcore" / "Cargo.toml"
        text = manifest.read_text()
        new = re.sub(r"(gmp-mpfr-sys = \{.*features = )\[[^\]]*\]", lambda m: m.group(1) + json.dumps(features), text)
        assert new != text
        manifest.write_text(new)
    return ws


def graph_of(ws: Path) -> licences.Graph:
    cfg = load_config(ws)
    return licences.graph_libraries(licences.cargo_metadata(cfg.workspace, os.environ), cfg.python_manifest)


def without_licences(cfg: SuiteConfig) -> SuiteConfig:
    return dataclasses.replace(
        cfg,
        publish=dataclasses.replace(cfg.publish, licenses={}),
        windows_wheel=dataclasses.replace(cfg.windows_wheel, licenses={}),
    )


# ------------------------------------------------------------ detection


def test_bundled_libraries_are_named_by_their_files() -> None:
    names = [
        "q_kangaroo/__init__.py",
        "q_kangaroo/_core.abi3.so",  # the extension itself
        "q_kangaroo/_core.pyd",
        "q_kangaroo.libs/libgmp-7376c9af.so.10",  # auditwheel / maturin repair
        "q_kangaroo.libs/libgmp-10-0123456789abcdef0123456789abcdef.dll",  # delvewheel
        "q_kangaroo.libs/libgcc_s_seh-1.dll",
        "q_kangaroo.libs/libwinpthread-1-fedcba9876543210fedcba9876543210.dll",
        "q_kangaroo.libs/libfoo.so.3",
    ]
    found = {(c.prefix, c.how) for c in licences.bundled(names)}
    assert found == {
        ("libgmp", "bundled as q_kangaroo.libs/libgmp-7376c9af.so.10"),
        ("libgmp", "bundled as q_kangaroo.libs/libgmp-10-0123456789abcdef0123456789abcdef.dll"),
        ("libgcc_s_seh-1", "bundled as q_kangaroo.libs/libgcc_s_seh-1.dll"),
        ("libwinpthread-1", "bundled as q_kangaroo.libs/libwinpthread-1-fedcba9876543210fedcba9876543210.dll"),
        ("libfoo", "bundled as q_kangaroo.libs/libfoo.so.3"),
    }
    # One entry per library, the ways it got there joined.
    (gmp,) = [c for c in licences.carried(names, licences.Graph()) if c.prefix == "libgmp"]
    assert gmp.label == "GMP" and gmp.how.count("bundled as") == 2


def test_cargo_metadata_tells_static_gmp_from_the_system_one(tmp_path: Path) -> None:
    source = registry_gmp_source()
    # This repository: gmp-mpfr-sys with use-system-libs -> GMP is a shared
    # library (bundled by the repair step), nothing is linked statically.
    repo = graph_of(REPO)
    assert repo.static == ()
    assert repo.sources["libgmp"] == source.parent
    # The static-gmp fixture: GMP built from source and linked in.
    (gmp,) = graph_of(static_copy(tmp_path / "a")).static
    assert gmp.prefix == "libgmp"
    assert gmp.how == f"linked statically: gmp-mpfr-sys {source.parent.name.rsplit('-', 1)[1]} without use-system-libs"
    # Its features decide: mpfr adds MPFR; use-system-libs links nothing in.
    with_mpfr = graph_of(static_copy(tmp_path / "b", ["c-no-tests", "mpfr"]))
    assert [c.prefix for c in with_mpfr.static] == ["libgmp", "libmpfr"]
    assert graph_of(static_copy(tmp_path / "c", ["use-system-libs"])).static == ()


def test_an_unreadable_workspace_is_one_failing_row(tmp_path: Path) -> None:
    ws = static_copy(tmp_path)
    cfg = load_config(ws)
    (ws / "numcore" / "Cargo.toml").write_text("[package\nname = ")
    found = publish_check.license_findings(cfg, "x.whl", {}, None)
    assert [(f.rule, f.status) for f in found] == [("licenses", "fail")]
    assert found[0].detail.startswith("cannot tell which libraries are linked statically: cargo metadata failed")
    assert "unclosed table" in found[0].detail and "numcore" in found[0].detail
    assert "\n" not in found[0].detail


# --------------------------------------------------- requirement, supply


def real_wheel(ws: Path, dest: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A wheel of the static-gmp fixture's package made of real files: the
    package source, this machine's libgmp.so.10 bundled, maturin-style metadata."""
    if not SYSTEM_LIBGMP.is_file():
        pytest.skip(f"{SYSTEM_LIBGMP} is not installed (apt-get install libgmp10)")
    info = "abacus_static-0.7.1.dist-info"
    members = {
        "abacus/__init__.py": (ws / "bindings" / "python" / "abacus" / "__init__.py").read_bytes(),
        "abacus.libs/libgmp-0123abcd.so.10": SYSTEM_LIBGMP.read_bytes(),
        f"{info}/METADATA": b"Metadata-Version: 2.4\nName: abacus-static\nVersion: 0.7.1\n"
        b"Summary: Fixture\nLicense-Expression: MIT\nRequires-Python: >=3.9\n"
        b"Description-Content-Type: text/plain\n\nFixture.\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
        b"Tag: cp39-abi3-manylinux_2_17_x86_64\n",
        **(extra or {}),
        f"{info}/RECORD": b"",
    }
    dest.mkdir(parents=True, exist_ok=True)
    return af.write_wheel(members, dest / "abacus_static-0.7.1-cp39-abi3-manylinux_2_17_x86_64.whl")


def test_gmp_texts_are_required_then_supplied_from_its_own_sources(tmp_path: Path) -> None:
    source = registry_gmp_source()
    ws = static_copy(tmp_path)
    cfg, graph = load_config(ws), graph_of(ws)
    wheel = real_wheel(ws, tmp_path / "dist")
    members = af.read_wheel(wheel)
    (problem,) = licences.problems(cfg, members, af.dist_info(members), graph)
    assert problem.startswith("GMP (bundled as abacus.libs/libgmp-0123abcd.so.10; linked statically: gmp-mpfr-sys")
    assert "missing GMP/COPYING, GMP/COPYING.LESSERv3, GMP/COPYINGv2, GMP/COPYINGv3" in problem
    assert str(source) in problem  # where linux-wheel takes them from
    added = licences.supply(wheel, licences.to_supply(cfg, licences.carried(members, graph), graph))
    assert added == [f"GMP/{t}" for t in GMP_TEXTS]
    members = af.read_wheel(wheel)
    info = af.dist_info(members)
    for text in GMP_TEXTS:
        assert members[f"{info}/licenses/GMP/{text}"] == (source / text).read_bytes()
        assert f"License-File: GMP/{text}\n".encode() in members[f"{info}/METADATA"]
    assert licences.problems(cfg, members, info, graph) == []
    assert licences.describe(cfg, members, graph) == "GMP (its own texts)"
    assert [f.status for f in publish_check.record_findings(wheel.name, members, info)] == ["pass"]
    if shutil.which("twine"):
        proc = subprocess.run(["twine", "check", "--strict", str(wheel)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # Supplying twice adds nothing twice.
    licences.supply(wheel, licences.to_supply(cfg, licences.carried(members, graph), graph))
    assert af.read_wheel(wheel)[f"{info}/METADATA"].count(b"License-File: GMP/COPYING\n") == 1


def test_broken_texts_are_named(tmp_path: Path) -> None:
    ws = static_copy(tmp_path)
    cfg, graph = load_config(ws), graph_of(ws)
    wheel = real_wheel(ws, tmp_path / "good")
    members = af.read_wheel(wheel)
    licences.supply(wheel, licences.to_supply(cfg, licences.carried(members, graph), graph))
    good = af.read_wheel(wheel)
    info = af.dist_info(good)

    def problems_of(change) -> list[str]:
        changed = change(dict(good))
        return licences.problems(cfg, changed, info, graph)

    dropped = problems_of(lambda m: {k: v for k, v in m.items() if not k.endswith("/GMP/COPYINGv2")})
    assert len(dropped) == 2
    assert dropped[0].startswith("GMP (") and "missing GMP/COPYINGv2 in" in dropped[0]
    assert dropped[1] == f"METADATA declares License-File GMP/COPYINGv2, which is not in {info}/licenses/"
    edited = problems_of(lambda m: {**m, f"{info}/licenses/GMP/COPYING": b"edited"})
    assert len(edited) == 1 and "GMP/COPYING differs from" in edited[0]
    unknown = problems_of(lambda m: {**m, "abacus.libs/libfoo-0123abcd.so.1": SYSTEM_LIBGMP.read_bytes()})
    assert unknown == [
        f"libfoo (bundled as abacus.libs/libfoo-0123abcd.so.1): no licence text known in "
        f"{info}/licenses/ (configure tool.maturin-suite.publish.licenses.libfoo with its "
        f"licence files)"
    ]


def test_configured_texts_win(tmp_path: Path) -> None:
    ws = static_copy(tmp_path)
    notice = ws / "bindings" / "GMP-NOTICE.txt"
    notice.write_text("GMP is linked into abacus; see the GNU LGPL v3.\n")
    base = load_config(ws)
    cfg = dataclasses.replace(
        base, publish=dataclasses.replace(base.publish, licenses={"libgmp": ("bindings/GMP-NOTICE.txt",)})
    )
    graph = graph_of(ws)
    wheel = real_wheel(ws, tmp_path / "dist")
    members = af.read_wheel(wheel)
    assert licences.to_supply(cfg, licences.carried(members, graph), graph) == {}
    (problem,) = licences.problems(cfg, members, af.dist_info(members), graph)
    assert "missing GMP-NOTICE.txt" in problem
    assert problem.endswith("(configured in tool.maturin-suite.publish.licenses.libgmp)")
    info = af.dist_info(members)
    shipped = real_wheel(ws, tmp_path / "configured", {f"{info}/licenses/bindings/GMP-NOTICE.txt": notice.read_bytes()})
    members = af.read_wheel(shipped)
    assert licences.problems(cfg, members, info, graph) == []
    assert licences.describe(cfg, members, graph) == "GMP (configured)"
    assert licences.problems(without_licences(cfg), members, info, graph) != []


# ------------------------------------------------------------ end to end


@pytest.mark.slow
def test_repo_wheel_without_its_licence_texts_fails_naming_gmp(tmp_path: Path) -> None:
    """A real wheel of this repository (nox -s linux-wheel in a fresh copy):
    its configured GMP texts pass; without them publish-check names GMP; with
    nothing configured, linux-wheel adds GMP's own COPYING texts."""
    source = registry_gmp_source()
    ws = copy_repo(tmp_path / "ws")
    built = assert_ok(run_nox(ws, "-s", "linux-wheel"))
    assert re.search(r"licences\s+GMP \(configured\)", built), built[-3000:]
    (wheel,) = (ws / "dist").glob("*.whl")
    stripped = af.rewrite(wheel, tmp_path / "stripped", lambda m: {k: v for k, v in m.items() if "/licenses/" not in k})
    shutil.copy2(stripped, wheel)
    failed = assert_clean_failure(
        run_nox(ws, "-s", "publish-check", "--", "--no-sdist-build", "--no-smoke"),
        "[licenses] FAIL: GMP (bundled as q_kangaroo.libs/libgmp-",
        "missing GMP-NOTICE.txt, GMP-LGPL-3.0.txt, GMP-GPL-3.0.txt",
    )
    assert "Traceback" not in failed
    # The project ships no texts: the suite supplies GMP's own.
    root = ws / "pyproject.toml"
    root.write_text(re.sub(r"\nlicenses\.libgmp = \[[^\]]*\]\n", "\n", root.read_text()))
    crate = ws / "crates" / "qsym-python" / "pyproject.toml"
    crate.write_text(re.sub(r"\nlicense-files = \[[^\]]*\]\n", "\n", crate.read_text()))
    assert load_config(ws).publish.licenses == {}
    rebuilt = assert_ok(run_nox(ws, "-s", "linux-wheel"))
    assert "added to .dist-info/licenses/: GMP/COPYING, GMP/COPYING.LESSERv3, GMP/COPYINGv2, GMP/COPYINGv3" in rebuilt
    (wheel,) = (ws / "dist").glob("*.whl")
    members = af.read_wheel(wheel)
    info = af.dist_info(members)
    assert not any(k.startswith(f"{info}/licenses/licenses/") for k in members)
    for text in GMP_TEXTS:
        assert members[f"{info}/licenses/GMP/{text}"] == (source / text).read_bytes()
    checked = assert_ok(run_nox(ws, "-s", "publish-check", "--", "--no-sdist-build", "--no-smoke"))
    assert (
        "[licenses] PASS: licence texts for GMP (its own texts)"
        in (ws / "reports" / "publish-check" / "report.md").read_text()
    ), checked[-3000:]


@pytest.mark.slow
def test_static_gmp_fixture_gets_gmp_texts_from_the_registry(tmp_path: Path) -> None:
    """gmp = "static": GMP is inside the extension and the fixture ships no
    licence text; linux-wheel adds GMP's COPYING files from gmp-mpfr-sys in
    the cargo registry, and the release gate passes (GMP from the machine's
    shared build cache, compiled at most once)."""
    source = registry_gmp_source()
    ws = copy_fixture("static-gmp", tmp_path / "ws")
    built = assert_ok(run_nox(ws, "-s", "linux-wheel", timeout=3600))
    assert re.search(r"licences\s+GMP \(its own texts\)", built), built[-3000:]
    (wheel,) = (ws / "dist").glob("*.whl")
    members = af.read_wheel(wheel)
    info = af.dist_info(members)
    assert not any(".libs/" in k for k in members)  # nothing bundled: GMP is linked in
    for text in GMP_TEXTS:
        assert members[f"{info}/licenses/GMP/{text}"] == (source / text).read_bytes()
        assert f"License-File: GMP/{text}\n".encode() in members[f"{info}/METADATA"]
    assert_ok(run_nox(ws, "-s", "publish-check", "--", "--no-sdist-build"))
    report = (ws / "reports" / "publish-check" / "report.md").read_text()
    assert f"{wheel.name}: [licenses] PASS: licence texts for GMP (its own texts)" in report
    assert f"{wheel.name}: [smoke] PASS" in report
    # One text gone: the gate names the library, how it is carried and the file.
    broken = af.rewrite(
        wheel, tmp_path / "broken", lambda m: {k: v for k, v in m.items() if not k.endswith("/GMP/COPYINGv2")}
    )
    shutil.copy2(broken, wheel)
    assert_clean_failure(
        run_nox(ws, "-s", "publish-check", "--", "--no-sdist-build", "--no-smoke"),
        "[licenses] FAIL: GMP (linked statically: gmp-mpfr-sys",
        "without use-system-libs): missing GMP/COPYINGv2 in",
    )
