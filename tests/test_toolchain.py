"""Tool detection with the real compiler and real interpreters."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from ci.blocks import toolchain
from ci.core.config import NativeLibrary
from ci.core.errors import ToolMissing

GMP = NativeLibrary("GMP", "gmp.h", "gmp", debian="libgmp-dev", yum="gmp-devel", msys2="mingw-w64-x86_64-gmp")


def test_gmp_is_found_here() -> None:
    toolchain.require_native([GMP], os.environ)


def test_missing_header_names_the_packages() -> None:
    lib = NativeLibrary(
        "Foo", "surely_missing_foo.h", "foo", debian="libfoo-dev", yum="foo-devel", msys2="mingw-w64-x86_64-foo"
    )
    with pytest.raises(ToolMissing) as info:
        toolchain.require_native([lib], os.environ)
    text = str(info.value)
    assert "header <surely_missing_foo.h>" in text
    assert "apt-get install libfoo-dev" in text
    assert "yum install -y foo-devel" in text
    assert "pacman -S mingw-w64-x86_64-foo" in text


def test_missing_library_is_told_apart_from_missing_header() -> None:
    lib = NativeLibrary("Foo", "stdio.h", "surely_missing_foo", debian="libfoo-dev")
    with pytest.raises(ToolMissing, match=r"library -lsurely_missing_foo"):
        toolchain.require_native([lib], os.environ)


def test_gmp_invisible_to_the_compiler(tmp_path: Path) -> None:
    # A compiler that sees an empty sysroot: the real situation of a machine
    # without libgmp-dev.
    env = dict(os.environ, CC=f"gcc --sysroot={tmp_path} -nostdinc")
    with pytest.raises(ToolMissing, match=r"GMP: the header <gmp.h> was not found") as info:
        toolchain.require_native([GMP], env)
    assert "apt-get install libgmp-dev" in str(info.value)


def test_no_compiler(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path)}
    with pytest.raises(ToolMissing, match="no C compiler"):
        toolchain.require_native([GMP], env)


def test_missing_cargo(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="cargo .* not found") as info:
        toolchain.require_cargo({"PATH": str(tmp_path)})
    assert "rustup" in str(info.value)


def test_cargo_found_here() -> None:
    assert Path(toolchain.require_cargo(os.environ)).name.startswith("cargo")


def test_running_interpreter_is_found() -> None:
    version = "{}.{}".format(*sys.version_info[:2])
    found, missing = toolchain.find_interpreters([version, "3.99"], os.environ)
    assert [i.version for i in found] == [version]
    assert missing == ["3.99"]


def test_venv_python_resolves_to_its_base(tmp_path: Path) -> None:
    import venv

    venv.create(tmp_path / "v", with_pip=False)
    bindir = tmp_path / "v" / "bin"
    version = "{}.{}".format(*sys.version_info[:2])
    found, _ = toolchain.find_interpreters([version], {"PATH": str(bindir), "PYENV_ROOT": str(tmp_path)})
    assert found and not str(found[0].path).startswith(str(tmp_path))


@pytest.mark.skipif(shutil.which("cargo") is None, reason="needs cargo")
def test_nextest_detection_is_boolean() -> None:
    cargo = toolchain.require_cargo(os.environ)
    assert toolchain.has_nextest(cargo, os.environ) is (shutil.which("cargo-nextest") is not None)
