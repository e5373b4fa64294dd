"""``ci/requirements.toml`` (what each session needs from the machine) is
read into typed data, agrees with ``[tool.maturin-suite]``, covers every
session a workflow runs, and :func:`ci.blocks.needs.missing` names each gap
with the line that closes it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

from ci.blocks import needs
from ci.blocks import workflows as wf
from ci.core.config import load_config
from ci.core.errors import ConfigError

CONFIG = load_config(REPO)
RAW: dict[str, Any] = tomllib.loads((REPO / needs.REQUIREMENTS_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def req() -> needs.Requirements:
    return needs.load(REPO / needs.REQUIREMENTS_FILE, CONFIG.python_versions)


def variant(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the real table with ``a__b__c=value`` set (None deletes the key)."""
    data = tomllib.loads((REPO / needs.REQUIREMENTS_FILE).read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        table = data
        for part in path:
            table = table[part]
        if value is None:
            table.pop(last)
        else:
            table[last] = value
    return data


# ---------------------------------------------------------------- the real table


def test_real_table_loads_into_typed_data(req: needs.Requirements) -> None:
    assert req.nox == needs.NoxInstall("ci/requirements-nox.txt", "nox", "3.13")
    assert (REPO / req.nox.requirements).is_file()
    coverage = req.needs("coverage", "linux")
    assert coverage is not None
    assert coverage.components == ("llvm-tools",)
    assert dict(coverage.cargo_tools) == {"cargo-tarpaulin": "0.37.5"}
    win = req.needs("windows-gnu-wheel", "windows")
    assert win is not None and win.rust_host == "x86_64-pc-windows-gnu"
    assert {"mingw-w64-x86_64-gcc", "mingw-w64-x86_64-gmp", "mingw-w64-x86_64-pkgconf"} <= set(win.msys2)
    cross = req.needs("windows-gnu-wheel", "linux")
    assert cross is not None and cross.targets == ("x86_64-pc-windows-gnu",)
    rust_tests = req.needs("rust-tests", "linux")
    assert rust_tests is not None and dict(rust_tests.cargo_tools) == {"cargo-nextest": needs.ANY_VERSION}
    # "suite" is tool.maturin-suite.python-versions
    assert req.needs("python-tests", "linux").python == tuple(CONFIG.python_versions)  # type: ignore[union-attr]
    assert req.needs("lint", "linux").components == ("rustfmt", "clippy")  # type: ignore[union-attr]


def test_real_table_agrees_with_the_suite_config(req: needs.Requirements) -> None:
    assert needs.consistency(req, CONFIG) == []
    tarpaulin = dict(req.needs("coverage", "linux").cargo_tools)["cargo-tarpaulin"]  # type: ignore[union-attr]
    assert tarpaulin == CONFIG.coverage.tarpaulin_version


def test_every_workflow_session_is_declared(req: needs.Requirements) -> None:
    lister = wf.nox_lister(REPO)
    tagged = wf.session_names(lister(("-t", "ci", "ci-gate", "release")))
    bases = {e["name"] for e in lister(wf.ALL_SESSIONS) if e["session"] in tagged}
    assert bases and all(req.needs(b, "linux") is not None for b in bases), bases - set(req.sessions)


def test_runners(req: needs.Requirements) -> None:
    linux, windows = req.runner_for("ubuntu-24.04"), req.runner_for("windows-2022")
    assert linux is not None and linux.platform == "linux" and linux.rust_host == "x86_64-unknown-linux-gnu"
    assert windows is not None and windows.rust_host == "x86_64-pc-windows-msvc"  # rustup's default there
    assert req.runner_for("macos-14") is None


# ---------------------------------------------------------------- drift and bad data


def test_consistency_catches_a_stale_tarpaulin_pin() -> None:
    data = variant()
    data["sessions"]["coverage"]["linux"]["cargo-tools"] = {"cargo-tarpaulin": "0.36.0"}
    problems = needs.consistency(needs.parse(data, CONFIG.python_versions), CONFIG)
    assert any("cargo-tarpaulin 0.36.0" in p and "0.37.5" in p for p in problems), problems


def test_consistency_catches_a_missing_native_package() -> None:
    data = variant()
    data["sessions"]["windows-gnu-wheel"]["windows"]["msys2"] = ["mingw-w64-x86_64-gcc"]
    data["sessions"]["sdist"]["linux"]["apt"] = []
    problems = needs.consistency(needs.parse(data, CONFIG.python_versions), CONFIG)
    assert any("windows-gnu-wheel on windows" in p and "mingw-w64-x86_64-gmp" in p for p in problems), problems
    assert any("sdist on linux" in p and "libgmp-dev" in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sessions__lint__linux__compnents": ["clippy"]}, "unknown key(s) compnents"),
        ({"sessions__coverage__linux__cargo-tools": {"cargo-tarpaulin": "^0.37"}}, "exact version"),
        ({"sessions__sdist__macos": {}}, "unknown key(s) macos"),
        ({"sessions__lint__linux__apt": "libgmp-dev"}, "list of non-empty strings"),
        ({"sessions__linux-wheel__linux__linux-wheel-mode": "docker"}, "linux-wheel-mode must be one of"),
        ({"nox__python": None}, "[nox].python must be a string"),
        ({"runners__linux__container-engine": "yes"}, "container-engine must be true or false"),
        ({"extra": 1}, "unknown key(s) extra"),
    ],
)
def test_bad_tables_are_config_errors(change: dict[str, Any], expected: str) -> None:
    data = variant(**change)
    with pytest.raises(ConfigError) as e:
        needs.parse(data, CONFIG.python_versions)
    assert expected in e.value.message


def test_suite_python_needs_the_versions() -> None:
    with pytest.raises(ConfigError, match="suite"):
        needs.parse(RAW, ())


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        needs.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[nox\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        needs.load(bad)


# ---------------------------------------------------------------- missing()


NOX = needs.NoxInstall("ci/requirements-nox.txt", "nox", "3.13")
LINUX_HOST = "x86_64-unknown-linux-gnu"


def full(n: needs.PlatformNeeds) -> needs.Provided:
    """Everything ``n`` asks for."""
    p = needs.Provided(
        rust="stable",
        rust_host=n.rust_host,
        components=set(n.components),
        targets=set(n.targets),
        apt=set(n.apt),
        msys2=set(n.msys2),
        python={NOX.python, *n.python},
        nox={f"lock:{NOX.requirements}"},
    )
    for name, version in n.cargo_tools:
        p.add_tool(name, "" if version == needs.ANY_VERSION else version)
    return p


NEEDS = needs.PlatformNeeds(
    rust_host=LINUX_HOST,
    components=("llvm-tools",),
    targets=("x86_64-pc-windows-gnu",),
    apt=("libgmp-dev",),
    msys2=("mingw-w64-x86_64-gmp",),
    cargo_tools=(("cargo-nextest", "*"), ("cargo-tarpaulin", "0.37.5")),
    python=("3.9",),
)


def test_nothing_missing_when_everything_is_provided() -> None:
    assert needs.missing(NEEDS, NOX, full(NEEDS), runner_host=LINUX_HOST) == []


@pytest.mark.parametrize(
    ("drop", "kind", "value", "how"),
    [
        (lambda p: p.nox.clear(), "nox", "from the lock ci/requirements-nox.txt", "--require-hashes -r"),
        (lambda p: p.python.discard("3.13"), "python", "3.13", "python-version: 3.13"),
        (lambda p: p.python.discard("3.9"), "python", "3.9", "setup-python"),
        (
            lambda p: setattr(p, "rust_host", "x86_64-pc-windows-msvc"),
            "rust toolchain",
            f"with host {LINUX_HOST}",
            "host x86_64-pc-windows-msvc",
        ),
        (lambda p: p.components.clear(), "rustup component", "llvm-tools", "rustup component add llvm-tools"),
        (lambda p: p.targets.clear(), "rustup target", "x86_64-pc-windows-gnu", "rustup target add"),
        (lambda p: p.apt.clear(), "apt package", "libgmp-dev", "apt-get install"),
        (lambda p: p.msys2.clear(), "msys2 package", "mingw-w64-x86_64-gmp", "setup-msys2"),
        (lambda p: p.tools.pop("cargo-nextest"), "cargo tool", "cargo-nextest", "taiki-e/install-action"),
        (
            lambda p: p.tools.update({"cargo-tarpaulin": {"0.35.1"}}),
            "cargo tool",
            "cargo-tarpaulin 0.37.5",
            "installs cargo-tarpaulin 0.35.1; cargo install --locked cargo-tarpaulin@0.37.5",
        ),
    ],
)
def test_each_kind_of_gap_is_named(drop: Any, kind: str, value: str, how: str) -> None:
    provided = full(NEEDS)
    drop(provided)
    (gap,) = needs.missing(NEEDS, NOX, provided, runner_host=LINUX_HOST)
    assert (gap.kind, gap.value) == (kind, value)
    assert how in gap.how
    assert str(gap) == f"{kind} {value}"


def test_a_bare_group_install_is_named() -> None:
    provided = full(NEEDS)
    provided.nox = {"group:nox"}
    (gap,) = needs.missing(NEEDS, NOX, provided, runner_host=LINUX_HOST)
    assert "bare dependency group nox" in gap.how


def test_a_refused_provision_says_why() -> None:
    provided = full(NEEDS)
    provided.tools.pop("cargo-tarpaulin")
    provided.refused["cargo tool cargo-tarpaulin"] = "the action knows it only up to 0.35.1"
    (gap,) = needs.missing(NEEDS, NOX, provided, runner_host=LINUX_HOST)
    assert gap.how.startswith("the action knows it only up to 0.35.1; cargo install --locked")


def test_nox_only_needs_for_a_plan_job() -> None:
    assert [str(g) for g in needs.missing(None, NOX, needs.Provided())] == [
        "nox from the lock ci/requirements-nox.txt",
        "python 3.13",
    ]


def test_a_gnu_host_hint_names_the_toolchain() -> None:
    win = needs.PlatformNeeds(rust_host="x86_64-pc-windows-gnu")
    provided = full(win)
    provided.rust, provided.rust_host = "stable-x86_64-pc-windows-msvc", "x86_64-pc-windows-msvc"
    (gap,) = needs.missing(win, NOX, provided, runner_host="x86_64-pc-windows-msvc")
    assert "rustup default stable-x86_64-pc-windows-gnu" in gap.how


def test_component_aliases() -> None:
    assert needs.normal_component("llvm-tools-preview") == "llvm-tools"
    assert needs.version_key("v2.9.2") > needs.version_key("v2.9.1") > needs.version_key("2.8.10")


# ---------------------------------------------------------------- distributions and cargo install arguments


def test_apt_on_adds_a_distributions_packages(req: needs.Requirements) -> None:
    coverage = req.needs("coverage", "linux")
    assert coverage is not None
    assert "llvm-22" in coverage.apt_for("debian-12") and "llvm-22" not in coverage.apt_for("ubuntu-24.04")
    assert coverage.apt_for("") == coverage.apt
    linux = req.runner_for("ubuntu-24.04")
    assert linux is not None and linux.distro == "ubuntu-24.04"
    assert req.cargo_install == {"cargo-tarpaulin": ("--no-default-features",)}


def test_apt_on_is_asked_of_the_runners_distribution() -> None:
    n = needs.PlatformNeeds(apt=("libgmp-dev",), apt_on=(("debian-12", ("llvm-22",)),))
    provided = full(n)
    assert needs.missing(n, NOX, provided, distro="ubuntu-24.04") == []
    (gap,) = needs.missing(n, NOX, provided, distro="debian-12")
    assert str(gap) == "apt package llvm-22"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"sessions__coverage__linux__apt-on": {"bookworm": ["llvm-22"]}}, "not an /etc/os-release ID-VERSION_ID"),
        ({"sessions__coverage__linux__apt-on": {"debian-12": "llvm-22"}}, "list of non-empty strings"),
        ({"cargo-install__cargo-tarpaulin": "--no-default-features"}, "[cargo-install].cargo-tarpaulin must be a list"),
        ({"runners__linux__distro": 24}, "distro must be a string"),
    ],
)
def test_bad_new_keys_are_config_errors(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        needs.parse(variant(**change), CONFIG.python_versions)
    assert expected in e.value.message


# ---------------------------------------------------------------- this machine


def test_this_platform_and_distribution(tmp_path: Path) -> None:
    assert needs.this_platform("linux") == "linux" and needs.this_platform("win32") == "windows"
    with pytest.raises(ConfigError, match="this machine is darwin"):
        needs.this_platform("darwin")
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n', encoding="utf-8")
    assert needs.this_distro(release) == "ubuntu-24.04"
    assert needs.this_distro(tmp_path / "missing") == ""
    if Path("/etc/os-release").is_file():
        assert needs.DISTRO.match(needs.this_distro())


def test_session_names_and_merging(req: needs.Requirements) -> None:
    assert needs.base_session(req, "python-tests-3.12") == "python-tests"
    with pytest.raises(ConfigError) as e:
        needs.base_session(req, "no-such-session")
    assert "declares no session 'no-such-session'" in e.value.message and "coverage" in (e.value.hint or "")
    merged = needs.combined(req, ["coverage", "lint", "rust-tests"], "linux")
    assert merged.components == ("llvm-tools", "rustfmt", "clippy")
    assert dict(merged.cargo_tools) == {"cargo-nextest": "*", "cargo-tarpaulin": "0.37.5"}
    assert merged.apt.count("libgmp-dev") == 1
    with pytest.raises(ConfigError, match="does not run on windows"):
        needs.combined(req, ["coverage"], "windows")


def test_merging_refuses_conflicts() -> None:
    data = variant()
    data["sessions"]["lint"]["linux"]["rust-host"] = "x86_64-unknown-linux-musl"
    data["sessions"]["lint"]["linux"]["cargo-tools"] = {"cargo-tarpaulin": "0.36.0"}
    req = needs.parse(data, CONFIG.python_versions)
    with pytest.raises(ConfigError, match="different Rust hosts"):
        needs.combined(req, ["lint", "sdist"], "linux")
    data["sessions"]["lint"]["linux"]["rust-host"] = LINUX_HOST
    with pytest.raises(ConfigError, match="pins cargo-tarpaulin at both"):
        needs.combined(needs.parse(data, CONFIG.python_versions), ["lint", "coverage"], "linux")


def test_wants_follow_the_platform_and_distribution(req: needs.Requirements) -> None:
    debian = [str(w) for w in needs.machine_wants(req, ["coverage"], "linux", "debian-12")]
    ubuntu = [str(w) for w in needs.machine_wants(req, ["coverage"], "linux", "ubuntu-24.04")]
    assert "apt package llvm-22" in debian and "apt package llvm-22" not in ubuntu
    assert debian[-1] == "cargo tool cargo-tarpaulin 0.37.5"
    assert "rust toolchain with host x86_64-unknown-linux-gnu" in ubuntu
    windows = [str(w) for w in needs.machine_wants(req, ["windows-gnu-wheel"], "windows", "")]
    assert windows[:3] == [
        "msys2 package mingw-w64-x86_64-gcc",
        "msys2 package mingw-w64-x86_64-gmp",
        "msys2 package mingw-w64-x86_64-pkgconf",
    ]
    assert "rust toolchain with host x86_64-pc-windows-gnu" in windows and not any("apt" in w for w in windows)


def test_install_steps_are_the_exact_commands(req: needs.Requirements) -> None:
    items = needs.machine_wants(req, ["coverage", "lint"], "linux", "debian-12")
    env = {"PATH": os.environ["PATH"]}
    shown = [s.shown for s in needs.install_steps(items, env, req.cargo_install)]
    sudo = "" if needs.admin_prefix(env) == () else "sudo DEBIAN_FRONTEND=noninteractive "
    assert (
        shown[0] == f"{sudo}apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates "
        "libgmp-dev llvm-22"
    )
    assert (
        "rustup toolchain install stable-x86_64-unknown-linux-gnu --profile minimal && "
        "rustup default stable-x86_64-unknown-linux-gnu" in shown
    )
    assert "rustup component add llvm-tools rustfmt clippy" in shown
    assert "cargo install --locked cargo-tarpaulin@0.37.5 --no-default-features" in shown
    py = needs.install_steps([needs.Want("python", "3.9")], env)[0]
    assert not py.runnable and "pyenv install 3.9" in py.shown
    msys2 = needs.install_steps([needs.Want("msys2", "mingw-w64-x86_64-gmp")], env)[0]
    assert msys2.shown == "pacman -S --needed --noconfirm mingw-w64-x86_64-gmp"


def test_admin_prefix(tmp_path: Path) -> None:
    sudo = tmp_path / "sudo"
    sudo.write_text('#!/bin/sh\nexec "$@"\n', encoding="utf-8")
    sudo.chmod(0o755)
    assert needs.admin_prefix({"PATH": str(tmp_path)}, uid=0) == ()
    assert needs.admin_prefix({"PATH": str(tmp_path)}, uid=1000) == ("sudo",)
    assert needs.admin_prefix({"PATH": str(tmp_path / "none")}, uid=1000) is None


needs_here = pytest.mark.skipif(
    not (shutil.which("dpkg-query") and shutil.which("rustup")), reason="probes a Debian/Ubuntu machine with rustup"
)


@needs_here
def test_present_probes_this_machine() -> None:
    env = dict(os.environ)
    host = re.search(
        r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout, re.M
    )
    assert host is not None
    items = [
        needs.Want("apt", "libgmp-dev"),
        needs.Want("apt", "no-such-package-pe"),
        needs.Want("toolchain", host.group(1)),
        needs.Want("toolchain", "riscv64gc-unknown-none-elf"),
        needs.Want("component", "rustfmt"),
        needs.Want("component", "no-such-component"),
        needs.Want("target", host.group(1)),
        needs.Want("target", "wasm32-wasip2-no-such"),
        needs.Want("cargo-tool", "cargo-no-such-tool", "*"),
        needs.Want("python", "2.5"),
        needs.Want("python", "{}.{}".format(*sys.version_info[:2])),
    ]
    have = needs.present(items, env)
    assert {str(w) for w in have} == {
        "apt package libgmp-dev",
        f"rust toolchain with host {host.group(1)}",
        "rustup component rustfmt",
        f"rustup target {host.group(1)}",
        "python {}.{}".format(*sys.version_info[:2]),
    }


@needs_here
def test_a_pinned_cargo_tool_is_present_only_at_its_version(tmp_path: Path) -> None:
    """A real program answering `cargo-pe-tool pe-tool --version` like a cargo subcommand."""
    tool = tmp_path / "bin" / "cargo-pe-tool"
    tool.parent.mkdir()
    tool.write_text(
        f"#!{sys.executable}\nimport sys\nprint('cargo-pe-tool 1.2.3') if sys.argv[1:] == "
        "['pe-tool', '--version'] else sys.exit(2)\n",
        encoding="utf-8",
    )
    tool.chmod(0o755)
    env = {"PATH": str(tool.parent), "HOME": str(tmp_path), "CARGO_HOME": str(tmp_path / "cargo")}
    assert needs.cargo_tool_present("cargo-pe-tool", "1.2.3", env)
    assert needs.cargo_tool_present("cargo-pe-tool", "*", env)
    assert not needs.cargo_tool_present("cargo-pe-tool", "1.2.30", env)
    assert not needs.cargo_tool_present("cargo-pe-tool", "1.2", env)
    # The suite's tool cache, where the sessions install pinned tools.
    cached = tmp_path / "xdg" / "maturin-suite" / "tools" / "cargo-pe-tool-1.2.3" / "bin"
    cached.mkdir(parents=True)
    tool.rename(cached / "cargo-pe-tool")
    assert not needs.cargo_tool_present("cargo-pe-tool", "*", env)
    assert needs.cargo_tool_present("cargo-pe-tool", "1.2.3", {**env, "XDG_CACHE_HOME": str(tmp_path / "xdg")})


@needs_here
def test_missing_here_names_what_a_session_lacks(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    data = (
        (REPO / needs.REQUIREMENTS_FILE)
        .read_text(encoding="utf-8")
        .replace(
            '[sessions.sdist.linux]\nrust-host = "x86_64-unknown-linux-gnu"\napt = [',
            '[sessions.sdist.linux]\nrust-host = "x86_64-unknown-linux-gnu"\napt = ["no-such-package-pe", ',
        )
    )
    (tmp_path / needs.REQUIREMENTS_FILE).write_text(data, encoding="utf-8")
    env = dict(os.environ)
    (gap,) = needs.missing_here(tmp_path, "sdist", env, CONFIG.python_versions)
    assert (gap.kind, gap.value) == ("apt package", "no-such-package-pe")
    assert gap.how.endswith("apt-get install -y -qq --no-install-recommends no-such-package-pe")
    hint = needs.setup_hint(tmp_path, "sdist", env, CONFIG.python_versions)
    assert hint.startswith(
        "nox -s setup -- sdist installs what ci/requirements.toml lists and this machine "
        "lacks: apt package no-such-package-pe ("
    )
    assert needs.setup_hint(REPO, "sdist", env, CONFIG.python_versions) == ""  # this machine has it all
    assert "declares no session 'nope'" in needs.setup_hint(REPO, "nope", env, CONFIG.python_versions)
