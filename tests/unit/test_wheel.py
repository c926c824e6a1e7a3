"""When the suite runs against the built wheel (``make wheel-test``), it
really does: the package comes from the wheel's venv, and no Rust toolchain
is on the PATH."""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

import pytest

import raftwal

pytestmark = pytest.mark.skipif(
    os.environ.get("RAFTWAL_WHEEL_TEST") != "1",
    reason="only under make wheel-test (it runs in CI after the main suite)",
)


def test_the_package_is_the_installed_wheel() -> None:
    installed = Path(raftwal.__file__).resolve()
    assert Path(sys.prefix).resolve() in installed.parents, installed
    repo = Path(__file__).resolve().parents[2]
    assert repo / "python" not in installed.parents


def test_no_rust_toolchain_is_on_the_path() -> None:
    assert shutil.which("cargo") is None
    assert shutil.which("rustc") is None


def elf_section_names(data: bytes) -> list[str]:
    """Section names of a little-endian ELF64 file."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int]:
        name, _, _, _, offset, _size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset

    strtab = header(shstrndx)[1]
    names = []
    for i in range(shnum):
        start = strtab + header(i)[0]
        names.append(data[start : data.index(b"\0", start)].decode())
    return names


def test_the_native_module_is_stripped_and_manylinux2014() -> None:
    names = elf_section_names(Path(raftwal._native.__file__).read_bytes())
    assert ".dynsym" in names and ".text" in names
    assert ".symtab" not in names and not any(n.startswith(".debug") for n in names), names
    dist = next(Path(sys.prefix).glob("lib/python*/site-packages/raftwal-*.dist-info"))
    wheel = (dist / "WHEEL").read_text()
    assert "manylinux_2_17_x86_64" in wheel or "manylinux2014_x86_64" in wheel, wheel
