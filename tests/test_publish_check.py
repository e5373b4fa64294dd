"""publish-check: the good set passes; a catalogue of real broken artifacts
is rejected, each by the right rule.

The good wheel is built once per test session by the linux-wheel session's
own code (zig, libgmp bundled) into a temporary dist folder; the good sdist by
``maturin sdist``. Broken artifacts are derived from them (tests/artifact_factory.py).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import artifact_factory as af
import pytest

from ci.blocks import maturin
from ci.blocks import pe as dll
from ci.core import findings as checks
from ci.core.config import SuiteConfig, load_config
from ci.core.console import Console
from ci.core.context import Context
from ci.core.errors import CheckFailed, SuiteError
from ci.core.findings import Finding
from ci.sessions import linux_wheel, publish_check

REPO = Path(__file__).resolve().parent.parent
NEEDED_TOOLS = ("maturin", "twine", "abi3audit", "auditwheel", "check-wheel-contents", "gcc")


def need_tools() -> None:
    missing = [t for t in NEEDED_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (pip install -r the 'check' group)")


def make_ctx(cfg: SuiteConfig, posargs: tuple[str, ...] = (), env: dict[str, str] | None = None) -> Context:
    import os

    base = dict(os.environ)
    for k in ("GITHUB_REF_TYPE", "GITHUB_REF_NAME", "GITHUB_ACTIONS"):
        base.pop(k, None)
    base.update(env or {})
    return Context(config=cfg, console=Console(stream=sys.stderr), posargs=posargs, base_env=base)


def config_for(dist: Path, reports: Path, **publish: object) -> SuiteConfig:
    cfg = load_config(REPO)
    publish = {"platforms": ("manylinux_2_17_x86_64",), **publish}
    pub = dataclasses.replace(cfg.publish, **publish)
    return dataclasses.replace(cfg, dist_dir=dist, reports_dir=reports, publish=pub)


@dataclasses.dataclass(frozen=True)
class GoodSet:
    wheel: Path
    sdist: Path
    root: Path  # scratch folder for derived sets


@pytest.fixture(scope="session")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoodSet]:
    need_tools()
    root = tmp_path_factory.mktemp("publish-check")
    dist = root / "good-dist"
    cfg = config_for(dist, root / "reports")
    ctx = make_ctx(cfg)
    try:
        linux_wheel.run(ctx)
        with_sdist = maturin.build_sdist(ctx, root / "sdist-out")
    except SuiteError as e:
        pytest.fail(f"could not build the good artifacts: {e}")
    sdist = dist / with_sdist.name
    shutil.copy2(with_sdist, sdist)
    (wheel,) = dist.glob("*.whl")
    yield GoodSet(wheel, sdist, root)


def check(
    files: list[Path],
    where: Path,
    *,
    release: bool = False,
    smoke: bool = False,
    build_sdist: bool = False,
    env: dict[str, str] | None = None,
    **publish: object,
) -> list[Finding]:
    dist = af.copy_set(files, where / "dist")
    cfg = config_for(dist, where / "reports", **publish)
    return publish_check.check_dist(make_ctx(cfg, env=env), release=release, build_sdist=build_sdist, smoke=smoke)


def failed_rules(found: list[Finding], artifact: str) -> set[str]:
    return {f.rule for f in checks.failures(found) if f.artifact == artifact}


# ------------------------------------------------------------ good set


@pytest.mark.slow
def test_good_set_passes_every_rule_with_smoke_and_sdist_build(good: GoodSet, tmp_path: Path) -> None:
    found = check([good.wheel, good.sdist], tmp_path, release=True, smoke=True, build_sdist=True)
    assert checks.failures(found) == [], "\n".join(f.line() for f in checks.failures(found))
    rules = {(f.artifact, f.rule): f for f in found}
    smoke = rules[(good.wheel.name, "smoke")]
    assert smoke.status == "pass" and "libgmp-" in smoke.detail  # loaded the wheel's own copy
    for rule in (
        "zip",
        "twine",
        "version",
        "tags",
        "abi3audit",
        "auditwheel",
        "bundled-libs",
        "contents",
        "stray-files",
        "licenses",
    ):
        assert rules[(good.wheel.name, rule)].status == "pass", rule
    assert rules[(good.sdist.name, "sdist")].status == "pass"
    assert "W010" in rules[(good.wheel.name, "contents")].detail  # accepted for .libs only


@pytest.mark.slow
def test_session_writes_table_and_report(good: GoodSet, tmp_path: Path) -> None:
    dist = af.copy_set([good.wheel, good.sdist], tmp_path / "dist")
    cfg = config_for(dist, tmp_path / "reports")
    publish_check.run(make_ctx(cfg, posargs=("--no-sdist-build", "--no-smoke")))
    report = (tmp_path / "reports" / "publish-check" / "report.md").read_text()
    assert "| artifact | zip | twine |" in report
    assert good.wheel.name in report and "FAIL" not in report


@pytest.mark.slow
def test_session_fails_naming_file_and_rule(good: GoodSet, tmp_path: Path) -> None:
    broken = af.rewrite(good.wheel, tmp_path / "src", lambda m: af.set_metadata(m, "Version", "9.9.9"))
    dist = af.copy_set([broken], tmp_path / "dist")
    cfg = config_for(dist, tmp_path / "reports")
    with pytest.raises(CheckFailed) as exc:
        publish_check.run(make_ctx(cfg, posargs=("--no-sdist-build", "--no-smoke")))
    assert f"{good.wheel.name}: [version] FAIL" in exc.value.message
    assert "FAIL" in (tmp_path / "reports" / "publish-check" / "report.md").read_text()


def test_unknown_argument_is_refused() -> None:
    with pytest.raises(SuiteError, match="--relase"):
        publish_check.parse_args(("--relase",))
    assert publish_check.parse_args(("--release",))["release"] is True


def test_empty_dist_is_an_error(tmp_path: Path) -> None:
    cfg = config_for(tmp_path / "dist", tmp_path / "reports")
    with pytest.raises(CheckFailed, match="nothing to check"):
        publish_check.check_dist(make_ctx(cfg), release=False)


# ------------------------------------------------- the broken catalogue


def _drop(pred):
    def change(m: dict[str, bytes]) -> dict[str, bytes]:
        return {k: v for k, v in m.items() if not pred(k)}

    return change


def _add(name: str, data: bytes):
    def change(m: dict[str, bytes]) -> dict[str, bytes]:
        return {**m, name: data}

    return change


def _retag(tags: list[str]):
    return lambda m: af.set_wheel_tags(m, tags)


WHEEL_CASES = {
    # case id: (change to the members, new file name or None, fix RECORD, rule that must fail)
    "library-missing-from-libs": (_drop(lambda k: k.startswith("q_kangaroo.libs/")), None, True, "bundled-libs"),
    "unconfigured-library-bundled": (
        _add("q_kangaroo.libs/libmpfr-0123abcd.so.6", b"\x7fELF" + b"\0" * 60),
        None,
        True,
        "bundled-libs",
    ),
    "non-abi3-tag": (
        _retag(["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"]),
        "q_kangaroo-0.3.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        True,
        "tags",
    ),
    "abi3-tag-above-lowest-python": (
        _retag(["cp312-abi3-manylinux_2_17_x86_64", "cp312-abi3-manylinux2014_x86_64"]),
        "q_kangaroo-0.3.0-cp312-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        True,
        "tags",
    ),
    "wrong-platform-tag": (
        _retag(["cp39-abi3-linux_x86_64"]),
        "q_kangaroo-0.3.0-cp39-abi3-linux_x86_64.whl",
        True,
        "tags",
    ),
    "file-name-tag-differs-from-WHEEL": (
        lambda m: m,
        "q_kangaroo-0.3.0-cp39-abi3-manylinux_2_28_x86_64.whl",
        True,
        "tags",
    ),
    "metadata-version-mismatch": (lambda m: af.set_metadata(m, "Version", "0.3.1"), None, True, "version"),
    "missing-licence": (_drop(lambda k: k.endswith("licenses/GMP-LGPL-3.0.txt")), None, True, "licenses"),
    "altered-licence": (
        lambda m: {k: (v + b"\nedited" if k.endswith("GMP-NOTICE.txt") else v) for k, v in m.items()},
        None,
        True,
        "licenses",
    ),
    "stray-files": (_add("q_kangaroo/__pycache__/__init__.cpython-311.pyc", b"\0" * 16), None, True, "stray-files"),
    "stray-toplevel-folder": (_add("tests/test_secret.py", b"assert True\n"), None, True, "stray-files"),
    "record-mismatch": (
        lambda m: {k: (v + b"\n# tampered\n" if k == "q_kangaroo/__init__.py" else v) for k, v in m.items()},
        None,
        False,
        "zip",
    ),
    "unimportable-module-name": (_add("q_kangaroo/bad-name.py", b"x = 1\n"), None, True, "contents"),
    "broken-metadata": (lambda m: af.set_metadata(m, "Metadata-Version", "9.9"), None, True, "twine"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(WHEEL_CASES))
def test_broken_wheel_is_rejected_by_its_rule(good: GoodSet, tmp_path: Path, case: str) -> None:
    change, name, fix_record, rule = WHEEL_CASES[case]
    broken = af.rewrite(good.wheel, tmp_path / "src", change, name=name, fix_record=fix_record)
    found = check([broken, good.sdist], tmp_path)
    assert rule in failed_rules(found, broken.name), "\n".join(f.line() for f in found)
    assert failed_rules(found, good.sdist.name) == set()


@pytest.mark.slow
def test_symbol_outside_the_limited_api(good: GoodSet, tmp_path: Path) -> None:
    so = af.compile_shared(af.NON_ABI3_C, tmp_path / "nonabi3.so")
    broken = af.rewrite(good.wheel, tmp_path / "src", _add("q_kangaroo/_legacy.abi3.so", so))
    found = check([broken], tmp_path)
    assert "abi3audit" in failed_rules(found, broken.name)
    detail = next(f.detail for f in found if f.rule == "abi3audit")
    assert "PyCode_New" in detail


@pytest.mark.slow
def test_too_new_glibc_symbol(good: GoodSet, tmp_path: Path) -> None:
    so = af.compile_shared(af.NEW_GLIBC_C, tmp_path / "newglibc.so")
    broken = af.rewrite(good.wheel, tmp_path / "src", _add("q_kangaroo/_entropy.abi3.so", so))
    found = check([broken], tmp_path)
    assert "auditwheel" in failed_rules(found, broken.name)
    assert "libc.so.6 GLIBC_2.25" in next(f.detail for f in found if f.rule == "auditwheel")


@pytest.mark.slow
def test_unrepaired_extension_needing_the_system_libgmp(good: GoodSet, tmp_path: Path) -> None:
    so = af.compile_shared(af.SYSTEM_GMP_C, tmp_path / "sysgmp.so", libs=("gmp",))
    broken = af.rewrite(good.wheel, tmp_path / "src", _add("q_kangaroo/_sysgmp.abi3.so", so))
    found = check([broken], tmp_path)
    assert {"auditwheel", "bundled-libs"} <= failed_rules(found, broken.name)
    assert "libgmp.so.10" in next(f.detail for f in found if f.rule == "auditwheel")


@pytest.mark.slow
def test_corrupt_zip(good: GoodSet, tmp_path: Path) -> None:
    broken = af.corrupt(good.wheel, tmp_path / good.wheel.name)
    found = check([broken], tmp_path)
    assert "zip" in failed_rules(found, broken.name)


@pytest.mark.slow
def test_stale_older_version_wheel(good: GoodSet, tmp_path: Path) -> None:
    old_name = good.wheel.name.replace("-0.3.0-", "-0.2.9-")
    stale = af.rewrite(good.wheel, tmp_path / "src", lambda m: af.rename_version(m, "0.3.0", "0.2.9"), name=old_name)
    found = check([good.wheel, stale, good.sdist], tmp_path, release=True)
    assert "release-set" in failed_rules(found, stale.name)
    assert "version" in failed_rules(found, stale.name)
    assert failed_rules(found, good.wheel.name) == set()
    assert any(f.artifact == "(release)" and "manylinux_2_17_x86_64" in f.detail for f in checks.failures(found))


@pytest.mark.slow
def test_release_needs_every_platform_and_the_sdist(good: GoodSet, tmp_path: Path) -> None:
    found = check([good.wheel], tmp_path / "a", release=True)
    assert any("sdist" in f.detail for f in checks.failures(found) if f.rule == "release-set")
    found = check(
        [good.wheel, good.sdist], tmp_path / "b", release=True, platforms=("manylinux_2_17_x86_64", "win_amd64")
    )
    assert any("win_amd64" in f.detail for f in checks.failures(found) if f.rule == "release-set")
    assert checks.failures(check([good.wheel, good.sdist], tmp_path / "c", release=True)) == []


@pytest.mark.slow
def test_sdist_without_cargo_lock(good: GoodSet, tmp_path: Path) -> None:
    broken = af.repack_sdist(good.sdist, tmp_path / good.sdist.name, lambda rel: rel == "Cargo.lock")
    found = check([broken], tmp_path / "set")
    assert "sdist" in failed_rules(found, broken.name)
    assert "Cargo.lock" in next(f.detail for f in found if f.rule == "sdist")


@pytest.mark.slow
def test_tag_disagrees_with_the_version(good: GoodSet, tmp_path: Path) -> None:
    found = check([good.wheel], tmp_path, env={"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v0.4.0"})
    assert "version" in failed_rules(found, good.wheel.name)
    found = check([good.wheel], tmp_path / "ok", env={"GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v0.3.0"})
    assert failed_rules(found, good.wheel.name) == set()


@pytest.mark.slow
def test_smoke_catches_a_wheel_that_does_not_import(good: GoodSet, tmp_path: Path) -> None:
    broken = af.rewrite(
        good.wheel, tmp_path / "src", _add("q_kangaroo/__init__.py", b"raise ImportError('broken on purpose')\n")
    )
    found = check([broken], tmp_path, smoke=True)
    smoke = [f for f in found if f.rule == "smoke" and f.status == "fail"]
    assert smoke and "broken on purpose" in smoke[0].detail


@pytest.mark.slow
def test_smoke_proves_libgmp_comes_from_the_wheel(good: GoodSet, tmp_path: Path) -> None:
    """With the bundled copy gone and RPATH still set, the module must not
    quietly load the system's libgmp (it fails to import instead)."""
    broken = af.rewrite(good.wheel, tmp_path / "src", _drop(lambda k: k.startswith("q_kangaroo.libs/")))
    found = check([broken], tmp_path, smoke=True)
    assert "smoke" in failed_rules(found, broken.name)


@pytest.mark.slow
def test_windows_wheels_get_the_dll_checks(good: GoodSet, tmp_path: Path) -> None:
    win_name = good.wheel.name.split("-cp39-")[0] + "-cp39-abi3-win_amd64.whl"
    win = af.rewrite(good.wheel, tmp_path / "src", _retag(["cp39-abi3-win_amd64"]), name=win_name)
    found = check([win], tmp_path / "set", smoke=True, platforms=("manylinux_2_17_x86_64", "win_amd64"))
    cfg = config_for(tmp_path / "set" / "dist", tmp_path / "reports", platforms=("manylinux_2_17_x86_64", "win_amd64"))
    expected = dll.windows_wheel_findings(tmp_path / "set" / "dist" / win.name, cfg)
    for f in expected:
        assert f in found
    rows = {f.rule: f.status for f in found if f.artifact == win.name}
    assert rows["auditwheel"] == "n/a" and rows["smoke"] == "n/a"
    assert rows["twine"] == "pass"
