"""The ``publish-rehearsal`` session: the release upload, rehearsed end to end
against a real package index on loopback.

1. Start ``pypi-server`` (pypiserver) on ``127.0.0.1`` and a free port, serving
   a fresh temporary folder, uploads protected by an htpasswd file (written
   with passlib) like PyPI's are by a token; no fallback to pypi.org.
2. ``twine upload`` every file of ``dist/`` for the package's version.
3. Check the index lists every uploaded file under ``/simple/<name>/``.
4. Create a fresh venv and install the package *only* from that index (no
   other index, no cache, binary only), check the installed version, and run
   the configured smoke code.
5. Upload one file again: the index must refuse it (a real index never lets a
   released version change); the refusal and its HTTP status are reported.

The server is always stopped (terminate, then kill after a timeout), also
when a step fails.
"""

from __future__ import annotations

import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from ci.blocks import venvs
from ci.blocks.sdists import smoke_code
from ci.core import artifacts
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError, StepFailed

LOOPBACK = "127.0.0.1"
USER = "rehearsal"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
TWINE_HINT = "twine and pypiserver come from the 'rehearsal' dependency group (nox installs them)"
# Variables that would let pip/uv find the package somewhere other than the
# rehearsal index.
FOREIGN_SOURCES = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_NO_INDEX",
    "UV_OFFLINE",
)


@dataclass(frozen=True)
class Release:
    """The files of ``dist/`` that make up one version of the distribution."""

    name: str
    version: str
    files: tuple[Path, ...]

    @property
    def wheels(self) -> tuple[Path, ...]:
        return tuple(f for f in self.files if f.suffix == ".whl")


@dataclass(frozen=True)
class Index:
    url: str  # upload URL, e.g. http://127.0.0.1:PORT/
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def simple(self) -> str:
        return self.url + "simple/"


def distribution_files(dist: Path, distribution: str) -> dict[str, list[Path]]:
    """``{version: [files]}`` of the wheels and sdists of ``distribution`` in ``dist``."""
    wanted = canonicalize_name(distribution)
    found: dict[str, list[Path]] = {}
    if not dist.is_dir():
        return found
    for path in sorted(dist.iterdir()):
        if path.name.startswith(artifacts.TMP_MARK) or not path.is_file():
            continue
        try:
            if path.suffix == ".whl":
                name, version, _, _ = parse_wheel_filename(path.name)
            elif path.name.endswith(".tar.gz"):
                name, version = parse_sdist_filename(path.name)
            else:
                continue
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if name == wanted:
            found.setdefault(str(version), []).append(path)
    return found


def select_release(ctx: Context) -> Release:
    """The version to rehearse: the package's configured version when ``dist/``
    has it, else the only version there."""
    cfg = ctx.config
    by_version = distribution_files(cfg.dist_dir, cfg.distribution)
    if not by_version:
        raise CheckFailed(
            f"{cfg.dist_dir} holds no wheel or sdist of {cfg.distribution}",
            hint="build them first: nox -s linux-wheel sdist (and windows-gnu-wheel)",
        )
    try:
        configured: str | None = str(Version(ctx.project.version))
    except (ConfigError, ValueError):
        configured = None
    if configured in by_version:
        version = configured
    elif len(by_version) == 1:
        (version,) = by_version
    else:
        raise CheckFailed(
            f"{cfg.dist_dir} holds several versions of {cfg.distribution} "
            f"({', '.join(sorted(by_version))}) and none is the package's version {configured}",
            hint="remove the stale files from dist/ or rebuild",
        )
    return Release(cfg.distribution, version, tuple(by_version[version]))


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def write_htpasswd(ctx: Context, path: Path, user: str, password: str) -> None:
    """An htpasswd file made by passlib, run in the session venv's Python."""
    code = (
        "import sys\n"
        "from passlib.apache import HtpasswdFile\n"
        "f = HtpasswdFile(sys.argv[1], new=True)\n"
        "f.set_password(sys.argv[2], sys.stdin.read())\n"
        "f.save()\n"
    )
    python = ctx.tool("python", hint=TWINE_HINT)
    proc = probe([python, "-c", code, str(path), user], stdin=password, env=ctx.env())
    if proc is None or proc.returncode != 0:
        why = proc.stderr.strip()[-800:] if proc else "python did not start"
        raise StepFailed(
            f"could not write the htpasswd file with passlib: {why}", proc.returncode if proc else 1, hint=TWINE_HINT
        )


def wait_until_up(index: Index, timeout: float = START_TIMEOUT) -> None:
    """Poll the index's health endpoint until it answers (bounded)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if index.process.poll() is not None:
            raise StepFailed(
                f"pypi-server exited with code {index.process.returncode} before answering:\n" + tail(index.log),
                index.process.returncode,
            )
        try:
            with urllib.request.urlopen(index.url + "health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    raise StepFailed(f"pypi-server did not answer on {index.url} within {timeout:.0f}s ({last})\n" + tail(index.log), 1)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> str:
    """Terminate ``process``; kill it if it does not exit in time."""
    if process.poll() is not None:
        return f"had exited ({process.returncode})"
    process.terminate()
    try:
        process.wait(timeout=timeout)
        return "stopped"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
        return "killed after terminate timed out"


@contextmanager
def package_index(ctx: Context, packages: Path, htpasswd: Path, log: Path) -> Iterator[Index]:
    """A running pypiserver on loopback; stopped on exit, whatever happened."""
    server = ctx.tool("pypi-server", hint=TWINE_HINT)
    port = free_loopback_port()
    argv = [
        server,
        "run",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--passwords",
        str(htpasswd),
        "--authenticate",
        "update",
        "--disable-fallback",
        "--health-endpoint",
        "/health",
        str(packages),
    ]
    ctx.console.say(f"$ {' '.join(argv)}")
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=ctx.env(), stdin=subprocess.DEVNULL)
    index = Index(f"http://{LOOPBACK}:{port}/", log, process)
    try:
        wait_until_up(index)
        yield index
    finally:
        how = stop(process)
        ctx.console.say(f"pypi-server on port {port}: {how}")


def upload_env(ctx: Context, password: str) -> dict[str, str]:
    env = ctx.env(TWINE_USERNAME=USER, TWINE_PASSWORD=password, TWINE_NON_INTERACTIVE="1", NO_COLOR="1")
    for key in ("TWINE_REPOSITORY", "TWINE_REPOSITORY_URL", "TWINE_CERT"):
        env.pop(key, None)
    return env


def twine_upload(
    ctx: Context, index: Index, files: Sequence[Path], env: Mapping[str, str], *, title: str, check: bool
) -> subprocess.CompletedProcess[str]:
    twine = ctx.tool("twine", hint=TWINE_HINT)
    return ctx.console.run(
        [twine, "upload", "--non-interactive", "--disable-progress-bar", "--repository-url", index.url, *files],
        cwd=ctx.root,
        env=env,
        title=title,
        capture=not check,
        check=check,
    )


def listed_files(index: Index, name: str) -> set[str]:
    """File names the index's simple page for ``name`` links to."""
    url = f"{index.simple}{canonicalize_name(name)}/"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            page = resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        raise CheckFailed(f"the index has no page for {name}: HTTP {e.code} from {url}") from None
    return {m.split("#", 1)[0].rsplit("/", 1)[-1] for m in re.findall(r'href="([^"]+)"', page)}


def install_env(ctx: Context) -> dict[str, str]:
    env = ctx.env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    for key in FOREIGN_SOURCES:
        env.pop(key, None)
    return env


def install_from_index(ctx: Context, python: Path, index: Index, release: Release) -> None:
    """``<name>==<version>`` from the rehearsal index only: no other index, no
    cache, no building from source."""
    requirement = f"{release.name}=={release.version}"
    env = install_env(ctx)
    uv = venvs.find_uv(env)
    if uv:
        cmd = [
            uv,
            "pip",
            "install",
            "--python",
            str(python),
            "--no-cache",
            "--index-url",
            index.simple,
            "--only-binary",
            ":all:",
            "--reinstall",
            requirement,
        ]
    else:
        cmd = [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            index.simple,
            "--only-binary",
            ":all:",
            "--force-reinstall",
            requirement,
        ]
    ctx.console.run(
        cmd,
        cwd=ctx.root,
        env=env,
        title=f"install {requirement} from the rehearsal index",
        hint="the index must serve a wheel for this platform (build it with nox -s linux-wheel)",
    )


def reupload_refusal(proc: subprocess.CompletedProcess[str], log_text: str) -> tuple[str, str]:
    """``(status, reason)`` of a refused upload, from twine's output and the
    server log; raises CheckFailed when the refusal was for another reason."""
    out = (proc.stdout or "") + (proc.stderr or "")
    m = re.search(r"HTTPError:\s*(\d{3})\s*([^\n]*?)\s+from\s", out)
    status = m.group(1) if m else "?"
    phrase = m.group(2).strip() if m else ""
    exists = re.search(r"[^\n]*already exists[^\n]*", log_text + "\n" + out)
    if status == "409" or exists:
        reason = exists.group(0).strip() if exists else phrase
        return f"{status} {phrase}".strip(), reason
    raise CheckFailed(
        f"the re-upload failed, but not because the file exists (HTTP {status} {phrase}):\n" + out.strip()[-1500:]
    )


def rehearse(ctx: Context, index: Index, release: Release, env: Mapping[str, str], tmp: Path) -> tuple[str, str, str]:
    """Upload, list, install, import, re-upload; returns (installed version,
    smoke output, HTTP status of the refused re-upload)."""
    cfg = ctx.config
    twine_upload(
        ctx, index, release.files, env, check=True, title=f"twine upload {len(release.files)} file(s) to {index.url}"
    )
    with ctx.console.step("check the index lists every uploaded file"):
        listed = listed_files(index, release.name)
        missing = sorted(f.name for f in release.files if f.name not in listed)
        if missing:
            raise CheckFailed(f"uploaded but not listed by the index: {', '.join(missing)}")
    python = venvs.ensure_venv(ctx, tmp / "fresh-venv", Path(sys.executable))
    install_from_index(ctx, python, index, release)
    proc = ctx.console.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({release.name!r}))"],
        cwd=tmp,
        env=install_env(ctx),
        title="installed version",
        capture=True,
    )
    installed = proc.stdout.strip()
    if Version(installed) != Version(release.version):
        raise CheckFailed(f"installed {release.name} {installed}, expected {release.version}")
    smoke = ctx.console.run(
        [str(python), "-c", smoke_code(cfg)],
        cwd=tmp,
        env=install_env(ctx),
        title=f"import {cfg.import_name} and run the smoke code",
        capture=True,
    )
    ctx.console.say(smoke.stdout.rstrip())
    again = twine_upload(
        ctx, index, release.files[:1], env, check=False, title=f"upload {release.files[0].name} again (must be refused)"
    )
    if again.returncode == 0:
        raise CheckFailed(
            f"the index accepted a second upload of {release.files[0].name}: "
            f"re-uploading {release.version} must be refused"
        )
    status, reason = reupload_refusal(again, tail(index.log, 200))
    ctx.console.say(f"re-upload of {release.version} refused by the index (HTTP {status}): {reason}")
    return installed, smoke.stdout, status


def run(ctx: Context) -> None:
    cfg = ctx.config
    release = select_release(ctx)
    if not release.wheels:
        raise CheckFailed(
            f"{cfg.dist_dir} has no wheel of {release.name} {release.version} to install",
            hint="build one first: nox -s linux-wheel",
        )
    ctx.console.say(f"rehearsing {release.name} {release.version}: " + ", ".join(f.name for f in release.files))
    work = cfg.work_dir("publish-rehearsal")
    password = secrets.token_urlsafe(24)
    with artifacts.staging_dir(work, "rehearsal") as tmp:
        packages = tmp / "packages"
        packages.mkdir()
        htpasswd = tmp / "htpasswd"
        write_htpasswd(ctx, htpasswd, USER, password)
        env = upload_env(ctx, password)
        with ExitStack() as stack:
            with ctx.console.step(f"start pypi-server on {LOOPBACK} (temporary index in {packages})"):
                index = stack.enter_context(package_index(ctx, packages, htpasswd, tmp / "pypi-server.log"))
            try:
                installed, smoke, status = rehearse(ctx, index, release, env, tmp)
            except BaseException:
                ctx.console.say("pypi-server log (last lines):\n" + tail(index.log))
                raise
    size = sum(f.stat().st_size for f in release.files)
    ctx.console.summary(
        "publish-rehearsal",
        [
            ("index", f"pypiserver on {index.url} (temporary, stopped)"),
            (
                "uploaded",
                f"{len(release.files)} file(s), {size / 1024:.0f} KiB: " + ", ".join(f.name for f in release.files),
            ),
            ("installed", f"{release.name} {installed} from the rehearsal index only"),
            ("smoke", smoke.strip().splitlines()[-1] if smoke.strip() else "ok"),
            ("re-upload", f"re-upload of {release.version} refused by the index (HTTP {status})"),
        ],
    )
