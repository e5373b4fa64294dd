"""publish-rehearsal against a real pypiserver on loopback, with a tiny real
wheel and sdist (built here in milliseconds) standing in for q-kangaroo."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import os
import re
import socket
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_failure, assert_ok, copy_repo, group_venv, run_nox

from ci.core.config import SuiteConfig, load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import CheckFailed, StepFailed
from ci.sessions import publish_rehearsal as rehearsal

NAME = "rehearsal-demo"
MODULE = "rehearsal_demo"
SMOKE = f"import {MODULE}; print('demo', {MODULE}.answer())"


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def build_wheel(dest: Path, version: str = "1.2.3") -> Path:
    """A pure-Python wheel of rehearsal-demo, written by hand (valid RECORD)."""
    info = f"{MODULE}-{version}.dist-info"
    files = {
        f"{MODULE}/__init__.py": f"__version__ = {version!r}\n\ndef answer():\n    return 42\n".encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\nSummary: publish-rehearsal test package\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test_rehearsal\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([*(_record_line(k, v) for k, v in files.items()), f"{info}/RECORD,,"]) + "\n"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{MODULE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
        zf.writestr(f"{info}/RECORD", record)
    return path


def build_sdist(dest: Path, version: str = "1.2.3") -> Path:
    top = f"{MODULE}-{version}"
    pkg_info = (
        f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version}\nSummary: publish-rehearsal test package\n"
    ).encode()
    path = dest / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            (f"{top}/PKG-INFO", pkg_info),
            (f"{top}/{MODULE}/__init__.py", b"def answer():\n    return 42\n"),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def rehearsal_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pypiserver[passlib] and twine exactly as the 'rehearsal' group pins them."""
    return group_venv("rehearsal", tmp_path_factory.mktemp("rehearsal-venv") / "venv")


def demo_config(tmp_path: Path, smoke: str = SMOKE) -> SuiteConfig:
    """The repository's config, pointed at the demo package and tmp folders."""
    return dataclasses.replace(
        load_config(REPO),
        distribution=NAME,
        module=MODULE,
        smoke=smoke,
        workspace=tmp_path,
        dist_dir=tmp_path / "dist",
        reports_dir=tmp_path / "reports",
    )


def make_ctx(cfg: SuiteConfig, tool_bin: Path | None) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    env = dict(os.environ)
    env.pop("GITHUB_ACTIONS", None)
    return Context(config=cfg, console=Console(stream=out), tool_bin=tool_bin, base_env=env), out


def assert_port_closed(url: str) -> None:
    m = re.match(r"http://127\.0\.0\.1:(\d+)/", url)
    assert m, url
    with socket.socket() as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", int(m.group(1)))) != 0, f"{url} still answers"


def served_url(text: str) -> str:
    m = re.search(r"pypiserver on (http://127\.0\.0\.1:\d+/)|--port (\d+)", text)
    assert m, text[-2000:]
    return m.group(1) or f"http://127.0.0.1:{m.group(2)}/"


@pytest.mark.slow
def test_rehearsal_uploads_installs_from_the_index_and_is_refused_a_reupload(
    tmp_path: Path, rehearsal_bin: Path
) -> None:
    cfg = demo_config(tmp_path)
    wheel = build_wheel(cfg.dist_dir)
    sdist = build_sdist(cfg.dist_dir)
    ctx, out = make_ctx(cfg, rehearsal_bin)
    rehearsal.run(ctx)
    text = out.getvalue()
    assert "twine upload 2 file(s)" in text and wheel.name in text and sdist.name in text
    assert "demo 42" in text  # the smoke code ran in the venv installed from the index
    assert f"{NAME} 1.2.3 from the rehearsal index only" in text
    assert re.search(r"re-upload of 1\.2\.3 refused by the index \(HTTP \d{3}[^)]*\): .*already exists", text), text
    assert_port_closed(served_url(text))
    # Nothing left behind but the dist files we made.
    assert sorted(p.name for p in cfg.dist_dir.iterdir()) == sorted([wheel.name, sdist.name])
    assert list(cfg.work_dir("publish-rehearsal").iterdir()) == []


@pytest.mark.slow
def test_server_is_stopped_when_a_step_fails(tmp_path: Path, rehearsal_bin: Path) -> None:
    cfg = demo_config(tmp_path, smoke="raise SystemExit('smoke test failed on purpose')")
    build_wheel(cfg.dist_dir)
    ctx, out = make_ctx(cfg, rehearsal_bin)
    with pytest.raises(StepFailed):
        rehearsal.run(ctx)
    text = out.getvalue()
    assert "pypi-server log (last lines)" in text
    assert re.search(r"pypi-server on port \d+: stopped", text), text
    assert_port_closed(served_url(text))
    assert list(cfg.work_dir("publish-rehearsal").iterdir()) == []


@pytest.mark.slow
def test_an_index_that_accepts_a_reupload_fails_the_rehearsal(tmp_path: Path, rehearsal_bin: Path) -> None:
    cfg = demo_config(tmp_path)
    build_wheel(cfg.dist_dir)
    ctx, _ = make_ctx(cfg, rehearsal_bin)
    release = rehearsal.select_release(ctx)
    packages = tmp_path / "packages"
    packages.mkdir()
    log = tmp_path / "server.log"
    port = rehearsal.free_loopback_port()
    # A permissive index: no authentication and --overwrite (PyPI is neither).
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [
                str(rehearsal_bin / "pypi-server"),
                "run",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-a",
                ".",
                "-P",
                ".",
                "--overwrite",
                "--disable-fallback",
                "--health-endpoint",
                "/health",
                str(packages),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    index = rehearsal.Index(f"http://127.0.0.1:{port}/", log, proc)
    try:
        rehearsal.wait_until_up(index)
        with pytest.raises(CheckFailed, match="accepted a second upload"):
            rehearsal.rehearse(ctx, index, release, rehearsal.upload_env(ctx, "unused"), tmp_path)
    finally:
        assert rehearsal.stop(proc) == "stopped"
    assert_port_closed(index.url)


def test_empty_dist_fails_clearly(tmp_path: Path) -> None:
    ctx, _ = make_ctx(demo_config(tmp_path), None)
    with pytest.raises(CheckFailed) as info:
        rehearsal.run(ctx)
    assert "holds no wheel or sdist of rehearsal-demo" in str(info.value)
    assert "nox -s linux-wheel" in str(info.value)


def test_sdist_only_fails_clearly(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path)
    cfg.dist_dir.mkdir()
    build_sdist(cfg.dist_dir)
    ctx, _ = make_ctx(cfg, None)
    with pytest.raises(CheckFailed, match="has no wheel of rehearsal-demo 1.2.3"):
        rehearsal.run(ctx)


def test_release_selection(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path)
    build_wheel(cfg.dist_dir, "1.0.0")
    (cfg.dist_dir / "other_pkg-9.9-py3-none-any.whl").write_bytes(b"not ours")
    (cfg.dist_dir / f"{rehearsal.artifacts.TMP_MARK}x.whl").write_bytes(b"partial")
    ctx, _ = make_ctx(cfg, None)
    release = rehearsal.select_release(ctx)
    assert (release.version, [f.name for f in release.files]) == ("1.0.0", [f"{MODULE}-1.0.0-py3-none-any.whl"])
    build_wheel(cfg.dist_dir, "1.1.0")
    with pytest.raises(CheckFailed, match=r"several versions of rehearsal-demo \(1\.0\.0, 1\.1\.0\)"):
        rehearsal.select_release(ctx)


@pytest.mark.slow
def test_session_on_a_fresh_copy(tmp_path: Path) -> None:
    """`nox -s publish-rehearsal` in a fresh copy: a clear failure before any
    wheel exists, a pass once dist/ holds one (the demo package, configured as
    the distribution, stands in for the wheel sessions' output)."""
    ws = copy_repo(tmp_path / "repo")
    assert_clean_failure(run_nox(ws, "-s", "publish-rehearsal"), "holds no wheel or sdist", "nox -s linux-wheel")

    pyproject = ws / "pyproject.toml"
    text = pyproject.read_text()
    text = re.sub(r'(?m)^module = ".*"$', f'module = "{MODULE}"', text, count=1)
    text = re.sub(r'(?m)^distribution = ".*"$', f'distribution = "{NAME}"', text, count=1)
    text = re.sub(r'(?ms)^smoke = """.*?"""$', f'smoke = "{SMOKE}"', text, count=1)
    pyproject.write_text(text)
    build_wheel(ws / "dist")
    out = assert_ok(run_nox(ws, "-s", "publish-rehearsal"))
    assert "demo 42" in out
    assert re.search(r"re-upload of 1\.2\.3 refused by the index \(HTTP \d{3}", out), out[-3000:]
    assert_port_closed(served_url(out))
