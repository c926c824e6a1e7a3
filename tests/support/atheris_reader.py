"""atheris (libFuzzer for Python) over the Python reading path.

Run for a time budget with ``tools/fuzz.sh`` or by hand::

    python tests/support/atheris_reader.py -max_total_time=60 [-only_ascii=0] [CORPUS_DIR...]

Each input is split into a WAL segment and a ``.snap`` file (or, by its
first byte, edits to one of the real logs of ``test_fuzz_python.bases``)
and goes through ``test_fuzz_python.exercise``: only raftwal.Error may
escape; anything else (a pyo3 PanicException above all) is raised as a
crash and atheris writes the input to ``crash-*``.

Coverage feedback comes from raftwal's Python modules (instrumented on
import); the Rust core is exercised but not instrumented (the cargo-fuzz
targets in ``fuzz/`` cover it).
"""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import atheris

_TESTS = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_TESTS / "support"), str(_TESTS / "unit")]  # helpers, test_fuzz_python

with atheris.instrument_imports(include=["raftwal"]):
    import test_fuzz_python as fz

    import raftwal
    from raftwal.messages import snap_file_bytes


def _edit(base: bytes, fdp: atheris.FuzzedDataProvider) -> bytes:
    """A few edits to ``base`` chosen by the input: set, insert, delete,
    truncate, or overwrite an 8-byte word."""
    raw = bytearray(base)
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        op = fdp.ConsumeIntInRange(0, 4)
        pos = fdp.ConsumeIntInRange(0, max(len(raw) - 1, 0))
        if op == 0 and raw:
            raw[pos] = fdp.ConsumeInt(1) & 0xFF
        elif op == 1:
            raw[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
        elif op == 2:
            del raw[pos : pos + fdp.ConsumeIntInRange(1, 16)]
        elif op == 3:
            del raw[pos:]
        else:
            at = pos - pos % 8
            raw[at : at + 8] = struct.pack("<Q", fdp.ConsumeIntInRange(0, 2**64 - 1))
    return bytes(raw)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    bases = fz.bases()
    choice = fdp.ConsumeIntInRange(0, 2 * len(bases))
    i = choice % len(bases)
    seg_base, snap_base, snap_name = bases[i]
    if choice < len(bases):
        # Edits of a real log and of its .snap file.
        segment = _edit(seg_base, fdp)
        snap: bytes | None = _edit(snap_base, fdp) if fdp.ConsumeBool() else snap_base
    elif choice < 2 * len(bases):
        # Raw bytes: the segment, then maybe a .snap file.
        segment = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 2048))
        snap = fdp.ConsumeBytes(fdp.remaining_bytes()) if fdp.ConsumeBool() else None
    else:
        # Raw snapshot bytes under a correct CRC, with an intact log.
        payload = fdp.ConsumeBytes(fdp.remaining_bytes())
        segment = seg_base
        snap = snap_file_bytes(raftwal.crc32c(payload), payload)
    fz.run_case(segment, snap, snap_name)


def main() -> None:
    logging.disable(logging.CRITICAL)  # repairs log warnings on every input
    fz.bases()  # build the real logs once, before fuzzing starts
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
