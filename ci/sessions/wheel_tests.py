"""The ``wheel-tests`` session: the Python tests against a wheel built
elsewhere (a CI artifact), on one CPython, building nothing.

``nox -s wheel-tests -p 3.12 -- dist/q_kangaroo-1.0-cp39-abi3-win_amd64.whl``
installs that file and the Python crate's test dependency group into the
session venv of that Python and runs pytest on ``tool.maturin-suite.
python-tests`` (JUnit per version in ``reports/wheel-tests/``). The argument
may be a folder (default ``dist/``): the one wheel of the distribution in it
that installs on this interpreter (its tags against the interpreter's) is
taken, so a job that downloaded every artifact tests the one for its
platform. Arguments after it go to pytest.

nox parametrises the session over ``python-versions`` like ``python-tests``.
Before pytest runs, the session proves that the extension module Python
imports is the very file in the wheel (same SHA-256), not a build or a
source tree found first on ``sys.path``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from ci.blocks import toolchain, venvs
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError

SESSION = "wheel-tests"
USAGE = "nox -s wheel-tests [-p 3.X] -- [WHEEL or FOLDER] [pytest arguments]"
# Run by the interpreter under test with the engine's `packaging` on its path
# (pure Python; the test venv need not have it).
TAGS_SCRIPT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from packaging import tags; "
    "print('\\n'.join(str(t) for t in tags.sys_tags()))"
)
MODULE_SCRIPT = "import importlib, sys; print(importlib.import_module(sys.argv[1]).__file__)"


def split_args(ctx: Context) -> tuple[Path, list[str]]:
    """(the wheel or folder, pytest's arguments)."""
    args = list(ctx.posargs)
    if args and not args[0].startswith("-"):
        given = Path(args.pop(0))
        where = given if given.is_absolute() else ctx.root / given
        if not where.exists():
            raise ConfigError(f"wheel-tests: {given} does not exist", hint=USAGE)
        if where.is_file() and where.suffix != ".whl":
            raise ConfigError(f"wheel-tests: {given} is not a wheel (.whl)", hint=USAGE)
        return where, args
    return ctx.config.dist_dir, args


def interpreter_tags(ctx: Context, python: Path) -> list[str]:
    """The wheel tags ``python`` accepts, best first."""
    import packaging

    home = str(Path(packaging.__file__).resolve().parent.parent)
    proc = ctx.console.run(
        [python, "-c", TAGS_SCRIPT, home],
        cwd=ctx.root,
        env=ctx.env(),
        capture=True,
        title="the wheel tags this interpreter accepts",
    )
    return proc.stdout.split()


def wheel_tags(wheel: Path) -> tuple[str, set[str]]:
    """(normalized distribution, tags) of a wheel file name."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, _version, _build, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise CheckFailed(f"wheel-tests: {wheel.name}: {e}") from None
    return str(name), {str(t) for t in tags}


def pick_wheel(where: Path, accepted: Sequence[str], distribution: str) -> Path:
    """The one wheel of ``distribution`` at ``where`` (a file or a folder) that installs on an
    interpreter accepting ``accepted``."""
    from packaging.utils import canonicalize_name

    wheels = [where] if where.is_file() else sorted(where.glob("*.whl")) if where.is_dir() else []
    ours = [(w, tags) for w in wheels for name, tags in [wheel_tags(w)] if name == canonicalize_name(distribution)]
    fits = [w for w, tags in ours if tags & set(accepted)]
    if len(fits) == 1:
        return fits[0]
    found = ", ".join(w.name for w, _ in ours) or "none"
    if not fits:
        raise CheckFailed(
            f"wheel-tests: no wheel of {distribution} in {where} installs on this interpreter "
            f"(it accepts {', '.join(accepted[:3])}, ...; wheels found: {found})",
            hint="build or download the wheel for this platform (nox -s linux-wheel)",
        )
    raise CheckFailed(
        f"wheel-tests: {len(fits)} wheels of {distribution} in {where} fit this interpreter "
        f"({', '.join(w.name for w in fits)}): name one",
        hint=USAGE,
    )


def prove_module(ctx: Context, python: Path, wheel: Path, work: Path) -> str:
    """The imported extension module is byte for byte the wheel's; its path."""
    module = ctx.config.module
    proc = ctx.console.run(
        [python, "-c", MODULE_SCRIPT, module], cwd=work, env=ctx.env(), capture=True, title=f"import {module}"
    )
    lines = proc.stdout.strip().splitlines()
    imported = Path(lines[-1]) if lines else Path()
    digest = hashlib.sha256(imported.read_bytes()).hexdigest() if imported.is_file() else ""
    package = PurePosixPath(*module.split(".")[:-1])
    with zipfile.ZipFile(wheel) as zf:
        members = {
            n: hashlib.sha256(zf.read(n)).hexdigest()
            for n in zf.namelist()
            if PurePosixPath(n).parent == package and PurePosixPath(n).name == imported.name
        }
    if digest and digest in members.values():
        return str(imported)
    raise CheckFailed(
        f"wheel-tests: Python imports {module} from {imported}, which is not the file in {wheel.name}",
        hint="a build or the source tree shadows the installed wheel",
    )


def run(ctx: Context) -> None:
    cfg = ctx.config
    where, pytest_args = split_args(ctx)
    python = Path(ctx.tool("python", hint="run through nox: the session venv holds the Python under test"))
    version = toolchain.python_version(python)
    wheel = pick_wheel(where, interpreter_tags(ctx, python), cfg.distribution)
    work = cfg.work_dir(SESSION)
    work.mkdir(parents=True, exist_ok=True)
    cfg.report_dir(SESSION).mkdir(parents=True, exist_ok=True)
    venvs.install(
        ctx,
        python,
        venvs.test_requirements(ctx),
        wheel=wheel,
        distribution=cfg.distribution,
        title=f"install {wheel.name} into Python {version}",
    )
    module_file = prove_module(ctx, python, wheel, work)
    junit = cfg.report_dir(SESSION) / f"junit-py{version}.xml"
    ctx.console.run(
        [
            python,
            "-m",
            "pytest",
            str(cfg.python_tests),
            "-o",
            f"cache_dir={work / 'pytest-cache'}",
            f"--junitxml={junit}",
            *pytest_args,
        ],
        cwd=work,
        env=ctx.env(),
        title=f"pytest on Python {version} against {wheel.name}",
    )
    ctx.console.summary(
        f"{SESSION} (Python {version})",
        [
            ("Python", f"{version} ({python})"),
            ("wheel", f"{wheel} ({os.path.getsize(wheel) / 1024:.0f} KiB, not rebuilt)"),
            ("imported", f"{module_file} (= the wheel's file, SHA-256)"),
            ("junit", str(junit)),
        ],
    )
