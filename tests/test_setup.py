"""The set-up entry (``nox -s setup -- <session>...``, ci/sessions/setup.py)
installs what ci/requirements.toml says the sessions need here, and .ci/run
uses it instead of its own install lines; the wheel-tests session tests a
built wheel without rebuilding it; the release path runs from a fresh clone
with nox installed from the hashed lock only.

The fast tests run the session in-process (a real Context, the real table,
the real probes of this machine); the slow ones run nox, apt-get, maturin.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, nox_env, output, run_nox

from ci.blocks import needs
from ci.core.config import load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import ConfigError, ToolMissing
from ci.sessions import setup

CONFIG = load_config(REPO)
# What .ci/run installed with its own apt-get line before it called the
# set-up entry (commit ddcc37b), plus its `rustup target add`.
OLD_CI_RUN_APT = {
    "gcc",
    "libc6-dev",
    "libgmp-dev",
    "git",
    "ca-certificates",
    "m4",
    "make",
    "pkg-config",
    "llvm-22",
    "gcc-mingw-w64-x86-64-win32",
    "binutils-mingw-w64-x86-64",
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "wine",
    "wine64",
}
OLD_CI_RUN_TARGETS = {"x86_64-pc-windows-gnu"}
on_debian = pytest.mark.skipif(
    not (shutil.which("dpkg-query") and shutil.which("apt-get") and shutil.which("rustup")),
    reason="a Debian/Ubuntu machine with rustup",
)


def run_setup(*posargs: str, root: Path = REPO) -> str:
    """``setup.run`` in-process, as nox would call it; what it printed."""
    stream = io.StringIO()
    ctx = Context(
        config=dataclasses.replace(CONFIG, root=root),
        console=Console(stream=stream),
        posargs=posargs,
        base_env=dict(os.environ),
    )
    try:
        setup.run(ctx)
    finally:
        sys.stderr.write(stream.getvalue())
    return stream.getvalue()


def ci_run_sessions() -> list[str]:
    """The sessions .ci/run sets up (its `nox -s setup -- ...` line)."""
    text = re.sub(r"\\\n\s*", " ", (REPO / ".ci" / "run").read_text(encoding="utf-8"))
    m = re.search(r"^python3 -m nox -s setup -- (.+)$", text, re.M)
    assert m, "no `python3 -m nox -s setup -- ...` line in .ci/run"
    return m.group(1).split()


def apt_packages(text: str) -> set[str]:
    lines = re.findall(
        r"\$ (?:sudo DEBIAN_FRONTEND=noninteractive )?apt-get install -y -qq "
        r"--no-install-recommends (.+)",
        text,
    )
    return {p for line in lines for p in line.split()}


# ---------------------------------------------------------------- .ci/run


def test_ci_run_calls_the_setup_entry_in_order() -> None:
    text = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    steps = [
        r"^\$SUDO apt-get update -qq$",
        r"^python3 -m pip install .*--require-hashes -r ci/requirements-nox\.txt$",
        r"^python3 -m nox -s setup -- ",
        r"^\s*pyenv global ",
        r"^python3 -m nox -s suite-tests$",
    ]
    where = [m.start() if (m := re.search(p, text, re.M)) else -1 for p in steps]
    assert -1 not in where and where == sorted(where), dict(zip(steps, where, strict=True))
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "apt-get install" not in code and "rustup" not in code  # the table's job now
    last = [line for line in text.splitlines() if line.strip() and not line.startswith(("#", "echo"))][-1]
    assert last == "python3 -m nox -s suite-tests"


def test_ci_run_sets_up_what_it_used_to_install() -> None:
    """The union of the table's needs for the sessions .ci/run sets up is
    what .ci/run installed by hand before (on its Debian 12 machine)."""
    sessions = ci_run_sessions()
    tested = {
        "rust-tests",
        "python-tests",
        "sdist",
        "linux-wheel",
        "windows-gnu-wheel",
        "publish-check",
        "coverage",
        "lint",
        "lint-workflows",
        "publish-rehearsal",
    }
    assert tested <= set(sessions)
    text = run_setup("--dry-run", "--distro=debian-12", *sessions)
    assert apt_packages(text) == OLD_CI_RUN_APT
    targets = {t for line in re.findall(r"\$ rustup target add (.+)", text) for t in line.split()}
    assert targets == OLD_CI_RUN_TARGETS
    assert "$ rustup component add llvm-tools rustfmt clippy" in text
    assert "$ cargo install --locked cargo-tarpaulin@0.37.5 --no-default-features" in text


def test_dry_run_for_another_distribution() -> None:
    text = run_setup("--dry-run", "--distro=ubuntu-24.04", "coverage", "windows-gnu-wheel")
    packages = apt_packages(text)
    assert "libgmp-dev" in packages and "gcc-mingw-w64-x86-64-win32" in packages
    assert not packages & {"llvm-22", "rustc-web", "wine"}  # Debian 12's apt-on only
    assert "$ rustup component add llvm-tools" in text
    assert "dry run   " in text and "nothing probed, nothing installed" in text


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "setup: name the sessions to set up"),
        (("--force", "sdist"), "setup: unknown option '--force'"),
        (("sdits",), "declares no session 'sdits'"),
    ],
)
def test_bad_arguments_are_one_line(args: tuple[str, ...], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        run_setup(*args)
    assert expected in e.value.message and "\n" not in e.value.message


def test_a_session_without_a_table_for_this_platform(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    text = (REPO / needs.REQUIREMENTS_FILE).read_text(encoding="utf-8")
    (tmp_path / needs.REQUIREMENTS_FILE).write_text(text + "\n[sessions.windows-only.windows]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"no \[sessions.windows-only.linux\]: windows-only does not run on linux"):
        run_setup("--dry-run", "windows-only", root=tmp_path)


# ---------------------------------------------------------------- real runs


@on_debian
def test_setup_finds_everything_present_here() -> None:
    """This machine was set up: every need of these sessions is present."""
    text = run_setup("sdist", "lint", "python-tests-3.12")
    rows = {line.split("  ")[0] for line in text.splitlines() if re.search(r"\s{2}present\b", line)}
    assert {"apt package libgmp-dev", "rustup component clippy", "python 3.12"} <= rows
    assert re.search(r"present\s+\d+", text) and re.search(r"installed\s+0", text) and re.search(r"cannot\s+0", text)


def table_with(tmp_path: Path, extra_apt: str) -> Path:
    (tmp_path / "ci").mkdir(parents=True)
    text = (
        (REPO / needs.REQUIREMENTS_FILE)
        .read_text(encoding="utf-8")
        .replace("[sessions.publish-rehearsal.linux]\n", f'[sessions.publish-rehearsal.linux]\napt = ["{extra_apt}"]\n')
    )
    (tmp_path / needs.REQUIREMENTS_FILE).write_text(text, encoding="utf-8")
    return tmp_path


@on_debian
@pytest.mark.slow
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() != 0 and not shutil.which("sudo"), reason="root or sudo")
def test_setup_installs_an_apt_package_then_finds_it(tmp_path: Path) -> None:
    """GNU hello (a few KiB) is installed by the set-up entry, then present; removed afterwards."""
    if needs.installed_packages("apt", ["hello"], os.environ):
        pytest.skip("hello is installed on this machine already")
    root = table_with(tmp_path, "hello")
    try:
        text = run_setup("publish-rehearsal", root=root)
        assert re.search(
            r"apt package hello\s+installed\s+(sudo DEBIAN_FRONTEND=noninteractive )?apt-get install "
            r"-y -qq --no-install-recommends hello",
            text,
        ), text
        assert re.search(r"installed\s+1", text)
        again = run_setup("publish-rehearsal", root=root)
        assert re.search(r"apt package hello\s+present", again)
    finally:
        prefix = list(needs.admin_prefix(os.environ) or ())
        subprocess.run([*prefix, "dpkg", "--purge", "hello"], capture_output=True, check=False)


@on_debian
@pytest.mark.slow
def test_setup_names_what_it_cannot_provide(tmp_path: Path) -> None:
    root = table_with(tmp_path, "no-such-package-pe")
    with pytest.raises(ToolMissing) as e:
        run_setup("publish-rehearsal", root=root)
    assert e.value.message == "setup could not provide 1 need(s): apt package no-such-package-pe"
    assert "apt-get install -y -qq --no-install-recommends no-such-package-pe" in (e.value.hint or "")


@pytest.mark.slow
def test_setup_session_through_nox(tmp_path: Path) -> None:
    ws = copy_repo(tmp_path / "repo")
    text = assert_ok(run_nox(ws, "-s", "setup", "--", "--dry-run", "coverage"))
    assert "$ rustup component add llvm-tools" in text and "Session setup was successful" in text
    assert_clean_failure(run_nox(ws, "-s", "setup", "--", "coverge"), "declares no session 'coverge'")
    assert_clean_failure(run_nox(ws, "-s", "setup"), "setup: name the sessions to set up")


# ---------------------------------------------------------------- wheel-tests: build once, test everywhere


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository with a manylinux wheel built by `nox -s linux-wheel`."""
    ws = copy_repo(tmp_path_factory.mktemp("wheel-tests") / "repo")
    assert_ok(run_nox(ws, "-s", "linux-wheel"))
    return ws


def only_wheel(ws: Path) -> Path:
    (wheel,) = (ws / "dist").glob("*manylinux*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_tests_run_pytest_against_the_built_file(built: Path) -> None:
    wheel = only_wheel(built)
    before = wheel.stat().st_mtime_ns
    text = assert_ok(run_nox(built, "-s", "wheel-tests", "-p", "3.12", "--", f"dist/{wheel.name}", "-q"))
    assert "13 passed" in text and "(= the wheel's file, SHA-256)" in text
    # Nothing rebuilt: no maturin or cargo command ran (cargo metadata, which reads the project, aside).
    ran = re.findall(r"^\$ (\S+)(?: (\S+))?", text, re.M)
    assert not [
        r for r in ran if Path(r[0]).name in ("maturin", "rustc") or (Path(r[0]).name == "cargo" and r[1] != "metadata")
    ], ran
    assert wheel.stat().st_mtime_ns == before
    assert (built / "reports" / "wheel-tests" / "junit-py3.12.xml").is_file()
    # A folder (dist/ by default): the wheel of this platform is picked.
    (built / "dist" / wheel.name.replace("manylinux_2_17_x86_64.manylinux2014_x86_64", "win_amd64")).write_bytes(
        wheel.read_bytes()
    )
    text = assert_ok(run_nox(built, "-s", "wheel-tests", "-p", "3.9"))
    assert wheel.name in text and "13 passed" in text


@pytest.mark.slow
def test_wheel_tests_refuse_bad_input(built: Path, tmp_path: Path) -> None:
    wheel = only_wheel(built)
    assert_clean_failure(
        run_nox(built, "-s", "wheel-tests", "-p", "3.12", "--", "dist/nope.whl"),
        "wheel-tests: dist/nope.whl does not exist",
    )
    other = tmp_path / "other"
    other.mkdir()
    win = other / wheel.name.replace("manylinux_2_17_x86_64.manylinux2014_x86_64", "win_amd64")
    shutil.copy2(wheel, win)
    assert_clean_failure(
        run_nox(built, "-s", "wheel-tests", "-p", "3.12", "--", str(other)),
        "no wheel of q-kangaroo in",
        "installs on this interpreter",
        win.name,
    )
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy2(wheel, two / wheel.name)
    shutil.copy2(wheel, two / wheel.name.replace("cp39-abi3", "cp312-abi3"))
    assert_clean_failure(
        run_nox(built, "-s", "wheel-tests", "-p", "3.12", "--", str(two)), "2 wheels of q-kangaroo in", "name one"
    )


@pytest.mark.slow
def test_wheel_tests_prove_the_imported_module_is_the_wheels(built: Path) -> None:
    """A venv whose extension no longer is the wheel's file (tampered after
    install; the unchanged wheel is not reinstalled) is caught before pytest."""
    wheel = only_wheel(built)
    assert_ok(run_nox(built, "-s", "wheel-tests", "-p", "3.13", "--", f"dist/{wheel.name}", "-q"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if re.search(r"/_core\.[^/]*so$", n))
    installed = next((built / ".nox").glob(f"wheel-tests-3-13/lib/python3.13/site-packages/{member}"))
    data = installed.read_bytes()
    installed.unlink()  # uv hard-links from its cache: never write through the link
    installed.write_bytes(data + b"\0")
    assert_clean_failure(
        run_nox(built, "-s", "wheel-tests", "-p", "3.13", "--", f"dist/{wheel.name}"),
        "which is not the file in",
        wheel.name,
    )


@pytest.mark.slow
def test_wheel_tests_fail_when_a_test_fails(built: Path) -> None:
    tests = built / CONFIG.python_tests.relative_to(REPO)  # type: ignore[union-attr]
    (tests / "test_pe_broken.py").write_text("def test_broken():\n    assert False\n", encoding="utf-8")
    try:
        proc = run_nox(built, "-s", "wheel-tests", "-p", "3.12", "--", f"dist/{only_wheel(built).name}")
    finally:
        (tests / "test_pe_broken.py").unlink()
    text = assert_clean_failure(proc, "1 failed, 13 passed")
    assert "command failed with exit code 1" in text and "pytest" in output(proc).splitlines()[-1], text[-800:]


# ---------------------------------------------------------------- the release path from a fresh clone


def lock_only_nox(dest: Path) -> Path:
    """A fresh venv (not on PATH) with nox installed only from the hashed lock."""
    venv.create(dest, with_pip=True)
    python = dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(REPO / "ci" / "requirements-nox.txt"),
        ],
        check=True,
    )
    return python


@pytest.mark.slow
def test_release_tag_passes_from_a_fresh_clone_with_nox_from_the_lock(tmp_path: Path) -> None:
    """`nox -t release` builds (sdist, linux-wheel, windows-gnu-wheel), gates
    (publish-check) and rehearses (publish-rehearsal) a good set."""
    python = lock_only_nox(tmp_path / "nox-venv")
    ws = copy_repo(tmp_path / "clone")
    start = time.monotonic()
    proc = subprocess.run(
        [str(python), "-m", "nox", "--no-color", "-t", "release"],
        cwd=ws,
        env=nox_env(),
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    text = output(proc)
    bad = re.findall(r"^nox > \* (\S+): (?!success)", text, re.M)
    first = text.find(f"nox > Running session {bad[0]}") if bad else -1
    assert proc.returncode == 0, text[first : first + 6000] if first >= 0 else text[-6000:]
    sys.stderr.write(f"nox -t release from a fresh clone: {time.monotonic() - start:.0f}s\n")
    for session in ("sdist", "linux-wheel", "windows-gnu-wheel", "publish-check", "publish-rehearsal"):
        assert f"* {session}: success" in text, session
    assert "setup" not in re.findall(r"^nox > \* (\S+):", text, re.M)  # no plan runs the set-up entry
    dist = sorted(p.name for p in (ws / "dist").iterdir())
    assert (
        any(n.endswith(".tar.gz") for n in dist)
        and any("manylinux" in n for n in dist)
        and any("win_amd64" in n for n in dist)
    ), dist
