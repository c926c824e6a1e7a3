"""What the ``raftwal`` command prints: the ``--json`` documents (one
shape per concept, ``schema_version`` in every one, 64-bit IDs as hex
strings), error documents, and the progress bar on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..messages import HardState

__all__ = [
    "SCHEMA_VERSION",
    "CommandError",
    "Progress",
    "document",
    "emit",
    "emit_error",
    "error_doc",
    "hard_state",
    "hex_id",
    "problem",
]

SCHEMA_VERSION = 1
"""The version of every ``--json`` document; raised when a key changes
meaning or goes away (new keys may appear without it)."""


class CommandError(Exception):
    """A failure that is not damage: a usage error, a missing path, a path
    that is not a WAL directory. The command exits with ``status`` (2)."""

    def __init__(self, message: str, kind: str = "UsageError", status: int = 2) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


def hex_id(v: int) -> str:
    """A 64-bit ID (member, cluster, vote) as etcd prints it: lower-case hex."""
    return f"{v:x}"


def hard_state(hs: HardState | None) -> dict[str, Any] | None:
    """A HardState, always ``{"term", "vote", "commit"}`` (the vote a
    member ID, hence hex), or None where none could be read."""
    if hs is None:
        return None
    return {"term": hs.term, "vote": hex_id(hs.vote), "commit": hs.commit}


def problem(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def document(data: dict[str, Any], *, one_line: bool = False) -> str:
    """``data`` with its ``schema_version``, as JSON (``one_line``: a JSON
    Lines record, as ``dump`` writes)."""
    doc = {"schema_version": SCHEMA_VERSION} | data
    return json.dumps(doc) if one_line else json.dumps(doc, indent=2, sort_keys=True)


def emit(args: argparse.Namespace, human: str, data: dict[str, Any]) -> None:
    """``data`` as the JSON document with ``--json``, else ``human``."""
    print(document(data) if getattr(args, "json", False) else human)


def error_doc(exc: BaseException, status: int) -> dict[str, Any]:
    """The document a failed command prints with ``--json``."""
    kind = exc.kind if isinstance(exc, CommandError) else type(exc).__name__
    err: dict[str, Any] = {"type": kind, "message": str(exc), "exit_status": status}
    for attr in ("path", "offset", "filename"):
        value = getattr(exc, attr, None)
        if value is not None:
            err["path" if attr == "filename" else attr] = (
                value if isinstance(value, int) else str(value)
            )
    return {"error": err}


def emit_error(json_out: bool, command: str, exc: BaseException, status: int) -> None:
    """The message on stderr, and with ``--json`` the error document on stdout."""
    if json_out:
        print(document(error_doc(exc, status), one_line=command == "dump"))
    what = str(exc) if isinstance(exc, CommandError) else problem(exc)
    print(f"raftwal {command}: {what}", file=sys.stderr)


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a
    terminal (so pipes, files and --json output stay clean)."""

    def __init__(self, label: str, total: float) -> None:
        self.label = label
        self.total = total
        self.on = sys.stderr.isatty()
        self._last = 0.0

    def update(self, done: float, detail: str = "") -> None:
        now = time.monotonic()
        if not self.on or now - self._last < 0.1:
            return
        self._last = now
        frac = max(0.0, min(1.0, done / self.total)) if self.total else 0.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {detail}\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
