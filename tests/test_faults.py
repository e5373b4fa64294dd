"""Fault injection: real signals to real nox runs, a real second run in the
same checkout, a real read-only and a real full ``dist/``, ``dist`` as a file.
Each fault must end in one clear line and a non-zero exit, with no
traceback, no process left behind, no staging folder and nothing partial in
``dist/``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import assert_clean_failure, copy_fixture, nox_env, nox_python, output, run_nox

pytestmark = pytest.mark.slow

ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounts a read-only / full filesystem (needs root)"
)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini-ws fixture with the suite dropped in (dist-dir = out/dist)."""
    return copy_fixture("mini-ws", tmp_path_factory.mktemp("faults") / "ws")


def start(ws: Path, *args: str) -> subprocess.Popen[str]:
    """nox in a process group of its own, so the test can see every process it starts."""
    return subprocess.Popen(
        [nox_python(), "-m", "nox", "--no-color", *args],
        cwd=ws,
        env=nox_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(predicate: object, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the run to reach the point of the fault")


def group_members(pgid: int) -> list[str]:
    """Live processes (not zombies) of a process group, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(stat.parent.name)
    return found


def staging(ws: Path) -> list[Path]:
    return sorted((ws / "target" / "suite" / "sdist").glob("sdist-*"))


def dist_names(ws: Path) -> list[str]:
    dist = ws / "out" / "dist"
    return sorted(p.name for p in dist.iterdir()) if dist.is_dir() else []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_to_nox_alone_ends_everything_cleanly(ws: Path, signum: int) -> None:
    """The signal goes to nox only (as a CI cancel or a closed terminal sends
    it), while maturin/cargo build: the children are ended, the staging
    folder is removed, dist/ is untouched."""
    before = dist_names(ws)
    proc = start(ws, "-s", "sdist")
    wait_for(lambda: staging(ws))
    time.sleep(1.0)
    os.kill(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "interrupted" in out, out[-3000:]
    wait_for(lambda: not group_members(proc.pid), timeout=30)
    assert staging(ws) == []
    assert dist_names(ws) == before


def test_a_second_run_in_the_same_checkout_is_refused(ws: Path) -> None:
    first = start(ws, "-s", "sdist")
    try:
        wait_for(lambda: staging(ws))
        second = run_nox(ws, "-s", "sdist")
        assert_clean_failure(second, "another suite run is using this checkout", f"PID {first.pid}, session sdist")
    finally:
        out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    assert [n for n in dist_names(ws) if n.endswith(".tar.gz")], dist_names(ws)


def test_read_only_sessions_may_run_beside_a_run(ws: Path) -> None:
    first = start(ws, "-s", "sdist")
    try:
        wait_for(lambda: staging(ws))
        doctor = run_nox(ws, "-s", "doctor")
        assert "another suite run" not in output(doctor)
    finally:
        first.communicate(timeout=600)


def test_dist_that_is_a_file_is_one_line(ws: Path) -> None:
    dist = ws / "out" / "dist"
    moved = dist.with_name("dist.saved")
    if dist.exists():
        dist.rename(moved)
    dist.write_text("a file, not a folder")
    try:
        text = assert_clean_failure(run_nox(ws, "-s", "sdist"), f"File exists: {dist} in artifacts.publish")
        assert dist.read_text() == "a file, not a folder"
        assert text.count("error: ") == 1
    finally:
        dist.unlink()
        if moved.exists():
            moved.rename(dist)


@contextmanager
def mounted(target: Path, *options: str) -> Iterator[None]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


@ROOT_ONLY
def test_read_only_dist_is_one_line(ws: Path) -> None:
    dist = ws / "out" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    before = dist_names(ws)
    subprocess.run(["mount", "--bind", str(dist), str(dist)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(dist)], check=True)
        assert_clean_failure(run_nox(ws, "-s", "sdist"), f"Read-only file system: {dist}")
        assert dist_names(ws) == before
    finally:
        subprocess.run(["umount", str(dist)], check=True)
    assert not [n for n in dist_names(ws) if ".partial-" in n]


@ROOT_ONLY
def test_full_dist_is_one_line_and_leaves_nothing_partial(ws: Path) -> None:
    dist = ws / "out" / "dist"
    moved = dist.with_name("dist.saved")
    if dist.exists():
        dist.rename(moved)
    try:
        with mounted(dist, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
            filler = dist / "filler.bin"
            with filler.open("wb", buffering=0) as f, pytest.raises(OSError):
                while True:  # fill the filesystem to the last byte
                    f.write(b"\0" * 4096)
            assert_clean_failure(run_nox(ws, "-s", "sdist"), f"No space left on device: {dist}")
            assert [p.name for p in dist.iterdir()] == ["filler.bin"]
    finally:
        if moved.exists():
            dist.rmdir()
            moved.rename(dist)
