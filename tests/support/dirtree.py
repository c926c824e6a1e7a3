"""A directory's names, modes, sizes and bytes, to show that a call
changed nothing (read-only paths) or what it changed."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def tree(d: Path) -> dict[str, tuple[int, int, str]]:
    """Every name under ``d`` with its mode, size and the SHA-256 of its bytes."""
    out: dict[str, tuple[int, int, str]] = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            st = p.lstat()
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(p)
            else:
                digest = ""
            out[str(p.relative_to(d))] = (st.st_mode, st.st_size, digest)
    return out
