"""linux-wheel: mode selection, build environment, the maturin in-place-patch
workaround, and real end-to-end builds (a fresh copy of this repository; the
static-gmp fixture twice, proving the GMP build cache is reused)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from conftest import assert_clean_failure, assert_ok, copy_fixture, copy_repo, nox_env, nox_python, run_nox

from ci.blocks import wheels as wheelcheck
from ci.core.config import load_config
from ci.core.errors import ToolMissing
from ci.sessions import linux_wheel

REPO = Path(__file__).resolve().parent.parent


def repo_cfg(**linux: object):
    cfg = load_config(REPO)
    return dataclasses.replace(cfg, linux_wheel=dataclasses.replace(cfg.linux_wheel, **linux))


def fake_engine(folder: Path, answers: bool) -> dict[str, str]:
    """A PATH whose only docker either answers ``info`` or fails like a CLI without a daemon."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    body = "echo 27.3.1" if answers else 'echo "Cannot connect to the Docker daemon" >&2; exit 1'
    script.write_text(f'#!/bin/sh\n[ "$1" = info ] || exit 2\n{body}\n')
    script.chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin"}


# ------------------------------------------------------------------ fast


def test_canonical_name_puts_pep600_tag_first() -> None:
    assert (
        linux_wheel.canonical_wheel_name("q_kangaroo-0.3.0-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
        == "q_kangaroo-0.3.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    )
    same = "abacus_static-0.7.1-cp39-abi3-manylinux_2_28_x86_64.whl"
    assert linux_wheel.canonical_wheel_name(same) == same


@pytest.mark.parametrize("answers", [False, True])
def test_auto_mode_is_zig_whether_or_not_an_engine_answers(tmp_path: Path, answers: bool) -> None:
    """auto must take the same route on a laptop without Docker and on a
    GitHub runner with it (issue 11, defect 4)."""
    mode = linux_wheel.resolve_mode(repo_cfg(mode="auto"), fake_engine(tmp_path, answers=answers))
    assert mode.name == "zig" and mode.engine is None


def test_container_mode_is_taken_when_configured(tmp_path: Path) -> None:
    mode = linux_wheel.resolve_mode(repo_cfg(mode="container"), fake_engine(tmp_path, answers=True))
    assert mode.name == "container" and mode.engine == str(tmp_path / "docker")


def test_container_mode_without_engine_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing) as exc:
        linux_wheel.resolve_mode(repo_cfg(mode="container"), fake_engine(tmp_path, answers=False))
    assert 'mode = "zig"' in (exc.value.hint or "")


def test_container_command_builds_gmp_instead_of_yum() -> None:
    cfg = repo_cfg(mode="container")
    out = cfg.work_dir("linux-wheel") / "staging-x"
    cmd = linux_wheel.container_command("/usr/bin/docker", cfg, out, "1.16.0")
    assert cmd[:3] == ["/usr/bin/docker", "run", "--rm"]
    assert f"{cfg.workspace}:/io" in cmd
    assert "quay.io/pypa/manylinux2014_x86_64" in cmd
    assert "SUITE_GMP=system" in cmd and "SUITE_OUT=/io/target/suite/linux-wheel/staging-x" in cmd
    script = cmd[-1]
    assert "yum install" not in script and "--enable-fat" in script
    assert "gmp-mpfr-sys-*/gmp-*-c" in script  # the GMP source that ships in the locked crate


def test_build_env_points_zig_at_the_multiarch_dir_and_keeps_rustflags(tmp_path: Path) -> None:
    from ci.core.console import Console
    from ci.core.context import Context

    cfg = repo_cfg()
    ctx = Context(config=cfg, console=Console(), base_env={"PATH": "/usr/bin", "RUSTFLAGS": "-C debuginfo=1"})
    env = linux_wheel.build_env(ctx, linux_wheel.Mode("zig", "test"), tmp_path / "t")
    assert env["RUSTFLAGS"] == "-C debuginfo=1 -L native=/usr/lib/x86_64-linux-gnu"
    assert env["CARGO_TARGET_DIR"] == str(tmp_path / "t")
    assert "GMP_MPFR_SYS_CACHE" not in env
    static = dataclasses.replace(cfg, gmp="static")
    ctx = Context(config=static, console=Console(), base_env={"PATH": "/usr/bin", "XDG_CACHE_HOME": str(tmp_path)})
    env = linux_wheel.build_env(ctx, linux_wheel.Mode("zig", "test"), tmp_path / "t")
    assert env["GMP_MPFR_SYS_CACHE"] == str(tmp_path / "maturin-suite" / "gmp-mpfr-sys")
    assert "RUSTFLAGS" not in env


def test_clean_patched_outputs_removes_only_repaired_cdylibs(tmp_path: Path) -> None:
    patchelf = shutil.which("patchelf")
    if not shutil.which("gcc") or not patchelf:
        pytest.skip("needs gcc and patchelf")
    src = tmp_path / "x.c"
    src.write_text("int f(void) { return 1; }\n")
    deps = tmp_path / "target" / linux_wheel.TARGET / "release" / "deps"
    deps.mkdir(parents=True)
    patched = deps / "lib_core.so"
    clean = tmp_path / "target" / "release" / "lib_core.so"
    clean.parent.mkdir(parents=True)
    for out in (patched, clean):
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    subprocess.run([patchelf, "--add-needed", "libgmp-7376c9af.so.10", str(patched)], check=True)
    removed = linux_wheel.clean_patched_outputs(tmp_path / "target", "lib_core")
    assert removed == [patched] and not patched.exists() and clean.exists()


# ------------------------------------------------------------------ slow


def dist_listing(dist: Path) -> list[str]:
    return sorted(p.name for p in dist.iterdir()) if dist.is_dir() else []


@pytest.mark.slow
def test_fresh_clone_interrupt_build_twice_and_fail_cleanly(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "ws")
    dist = ws / "dist"
    dist.mkdir()
    (dist / "other-session.txt").write_text("not ours")
    # 1. Interrupted mid-build: nothing partial appears in dist/.
    proc = subprocess.Popen(
        [nox_python(), "-m", "nox", "--no-color", "-s", "linux-wheel"],
        cwd=ws,
        env=nox_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not list((ws / "target" / "suite" / "linux-wheel").glob("staging-*")):
        time.sleep(1)
    time.sleep(5)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    assert dist_listing(dist) == ["other-session.txt"]
    # 2. Cold, then warm (maturin's repair patched cargo's output in place the first time).
    first = assert_ok(run_nox(ws, "-s", "linux-wheel"))
    second = assert_ok(run_nox(ws, "-s", "linux-wheel"))
    assert "patched by an earlier repair" in second
    wheels = [p for p in dist.glob("*.whl")]
    assert [w.name for w in wheels] == ["q_kangaroo-0.3.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"]
    assert "libgmp-" in first
    report = (
        json.loads(
            subprocess.run(
                ["auditwheel", "show", "--json", str(wheels[0])], capture_output=True, text=True, check=True
            ).stdout
        )
        if shutil.which("auditwheel")
        else None
    )
    if report is not None:
        assert report["overall_tag"] == "manylinux_2_17_x86_64" and report["external_libs"] == {}
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
    assert any(n.startswith("q_kangaroo.libs/libgmp-") for n in names)
    assert any(n.endswith(".dist-info/licenses/licenses/GMP-LGPL-3.0.txt") for n in names)
    # 3. A failing build: a clear error, dist/ exactly as before.
    before = {p.name: p.stat().st_mtime_ns for p in dist.iterdir()}
    lib = ws / "crates" / "qsym-python" / "src" / "lib.rs"
    lib.write_text(lib.read_text() + "\nfn broken( {\n")
    assert_clean_failure(run_nox(ws, "-s", "linux-wheel"), "command failed")
    assert {p.name: p.stat().st_mtime_ns for p in dist.iterdir()} == before


def gmp_cache_files(cache: Path) -> dict[str, int]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_static_gmp_fixture_reuses_the_gmp_cache_in_a_fresh_checkout(tmp_path: Path) -> None:
    cache_home = tmp_path / "xdg-cache"
    env = {"XDG_CACHE_HOME": str(cache_home)}
    first_ws = copy_fixture("static-gmp", tmp_path / "first")
    first = assert_ok(run_nox(first_ws, "-s", "linux-wheel", env=env, timeout=3600))
    assert "compiled from source, saved to the cache" in first
    cache = cache_home / "maturin-suite" / "gmp-mpfr-sys"
    saved = gmp_cache_files(cache)
    assert any(name.endswith("libgmp.a") for name in saved), saved
    # A second checkout with an empty cargo target dir: GMP comes from the cache.
    second_ws = copy_fixture("static-gmp", tmp_path / "second")
    second = assert_ok(run_nox(second_ws, "-s", "linux-wheel", env=env, timeout=3600))
    assert "reused from the cache (no configure/make)" in second
    assert gmp_cache_files(cache) == saved  # read, not rewritten
    (wheel,) = (second_ws / "dist").glob("*.whl")
    assert wheel.name.startswith("abacus_static-0.7.1-cp39-abi3-manylinux_2_17_x86_64")
    members = wheelcheck.read_members(wheel)
    assert wheelcheck.bundled_files(members, "abacus") == []
    assert wheelcheck.unbundled_needs(members, ("libgmp",)) == []  # GMP is inside the extension
    # The release gate accepts it (nothing to bundle, so no .libs rules apply).
    check = assert_ok(run_nox(second_ws, "-s", "publish-check", "--", "--no-sdist-build", env=env))
    assert "abacus_static" in check and "smoke" in check
