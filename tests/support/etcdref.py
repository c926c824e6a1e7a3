"""Harness for ``tools/etcdref``: a small Go program that runs etcd v3.4's real
WAL and snapshot code so tests can compare raftwal against it.

The binary is built in GOPATH mode against Debian's ``golang-etcd-server-dev``
(``/usr/share/gocode``); ``.ci/install-interop.sh`` installs the toolchain.

Usage in a test::

    from etcdref import require_etcdref

    @pytest.mark.interop
    def test_something(tmp_path):
        ref = require_etcdref()          # skips (or fails, see below)
        ref.script(tmp_path / "wal", [{"op": "create", "metadata": b"md"}])

``require_etcdref()`` skips the test when ``go`` or etcd's Go sources are
missing, unless ``RAFTWAL_REQUIRE_INTEROP=1`` is set, in which case it fails.
A build failure with the tools present always fails.

Value formats (Python side)
---------------------------
* bytes: ``bytes`` (``None`` = Go nil slice, ``b""`` = empty non-nil slice).
  These two differ on the wire (an entry with ``data=b""`` encodes ``22 00``).
* entry: anything accepted by :func:`entry_to_json` -- a ``(term, index, type,
  data)`` tuple (``type`` and ``data`` may be omitted: 0 and ``None``), a dict
  with those keys, or an object with those attributes.  Entries coming back
  are :class:`RefEntry` named tuples, so they compare equal to plain tuples.
* hard state: ``(term, vote, commit)``.
* conf state: dict with ``voters``, ``learners``, ``voters_outgoing``,
  ``learners_next`` (lists of int) and ``auto_leave`` (bool); missing keys
  mean empty/False.
* errors: etcd's ``err.Error()`` string, or ``None``.  Panics inside etcd's
  code (e.g. an entry record with a valid CRC but malformed protobuf) are
  reported as ``"panic: ..."``.

All integers are exact (uint64 end to end).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "tools" / "etcdref"
SOURCE = SOURCE_DIR / "main.go"
CACHE_DIR = REPO / "target" / "etcdref"
BINARY = CACHE_DIR / "etcdref"

#: GOPATH holding etcd 3.4's sources (Debian golang-etcd-server-dev).
GOPATH = Path(os.environ.get("RAFTWAL_ETCD_GOPATH", "/usr/share/gocode"))
ETCD_WAL_SRC = GOPATH / "src" / "go.etcd.io" / "etcd" / "wal"

DEFAULT_TIMEOUT = 60.0
SEGMENT_SIZE = 64 * 1000 * 1000


class EtcdRefError(RuntimeError):
    """The tool could not be built or was called incorrectly (exit status != 0)."""


class RefEntry(NamedTuple):
    term: int
    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose
    type: int = 0
    data: bytes | None = None


# --------------------------------------------------------------------------- build


def missing_tools() -> str | None:
    """Describe what is missing to build the tool, or None if all is there."""
    if shutil.which("go") is None:
        return "the Go toolchain ('go' not on PATH; apt-get install golang-go)"
    if not ETCD_WAL_SRC.is_dir():
        return (
            f"etcd 3.4 Go sources ({ETCD_WAL_SRC} not found; "
            "apt-get install golang-etcd-server-dev)"
        )
    return None


_build_result: Path | None = None
_build_done = False


def build_etcdref() -> Path | None:
    """Build ``tools/etcdref`` into ``target/etcdref/etcdref`` (once per process,
    and only when main.go is newer than the binary). Returns None when ``go``
    or etcd's sources are missing; raises :class:`EtcdRefError` if the build
    itself fails."""
    global _build_result, _build_done
    if _build_done:
        return _build_result
    if missing_tools() is not None:
        _build_done = True
        return None
    if not (BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(GO111MODULE="off", GOPATH=str(GOPATH), GOFLAGS="", CGO_ENABLED="0")
        if "GOCACHE" not in env and not (env.get("HOME") or env.get("XDG_CACHE_HOME")):
            env["GOCACHE"] = str(CACHE_DIR / "gocache")
        # Build to a temporary name and rename, so concurrent builders never
        # see a half-written binary.
        fd, tmp = tempfile.mkstemp(prefix="etcdref.", dir=CACHE_DIR)
        os.close(fd)
        try:
            proc = subprocess.run(
                ["go", "build", "-o", tmp, "."],
                cwd=SOURCE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                raise EtcdRefError(
                    f"building tools/etcdref failed (exit {proc.returncode}):\n"
                    f"{proc.stdout}{proc.stderr}"
                )
            os.replace(tmp, BINARY)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    _build_result = BINARY
    _build_done = True
    return BINARY


_ref: EtcdRef | None = None


def require_etcdref() -> EtcdRef:
    """Return an :class:`EtcdRef`, or skip the calling test if the tools are
    missing (fail instead when ``RAFTWAL_REQUIRE_INTEROP=1``). A failing build
    always fails the test."""
    global _ref
    if _ref is not None:
        return _ref
    missing = missing_tools()
    if missing is not None:
        msg = f"etcd interop tool cannot be built: missing {missing}"
        if os.environ.get("RAFTWAL_REQUIRE_INTEROP") == "1":
            pytest.fail(msg + " (RAFTWAL_REQUIRE_INTEROP=1)", pytrace=False)
        pytest.skip(msg)
    try:
        binary = build_etcdref()
    except EtcdRefError as e:
        pytest.fail(str(e), pytrace=False)
    assert binary is not None
    _ref = EtcdRef(binary)
    return _ref


# ------------------------------------------------------------------ conversions


def _hex(b: bytes | bytearray | memoryview | None) -> str | None:
    return None if b is None else bytes(b).hex()


def _unhex(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


def entry_to_json(e: Any) -> dict[str, Any]:
    """Convert an entry-like value to the tool's JSON entry."""
    if isinstance(e, Mapping):
        term, index = e["term"], e["index"]
        etype, data = e.get("type", 0), e.get("data")
    elif isinstance(e, tuple | list):
        if not 2 <= len(e) <= 4:
            raise ValueError(f"entry tuple must be (term, index[, type[, data]]): {e!r}")
        term, index = e[0], e[1]
        etype = e[2] if len(e) > 2 else 0
        data = e[3] if len(e) > 3 else None
    else:
        term, index, etype, data = e.term, e.index, e.type, e.data
    if isinstance(data, str):
        raise TypeError("entry data must be bytes or None, not str")
    return {"term": int(term), "index": int(index), "type": int(etype), "data": _hex(data)}


def entry_from_json(d: Mapping[str, Any]) -> RefEntry:
    return RefEntry(d["term"], d["index"], d["type"], _unhex(d["data"]))


def _jsonable(v: Any) -> Any:
    """bytes -> hex, tuples -> lists, recursively; 'entries' lists are converted
    with :func:`entry_to_json`."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if k == "entries" and x is not None:
                out[k] = [entry_to_json(e) for e in x]
            else:
                out[k] = _jsonable(x)
        return out
    if isinstance(v, Iterable):
        return [_jsonable(x) for x in v]
    raise TypeError(f"cannot convert {type(v).__name__} to JSON for etcdref")


def _read_result(d: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Convert a readall-shaped JSON object."""
    if d is None:
        return None
    out = dict(d)
    out["metadata"] = _unhex(d["metadata"])
    out["hard_state"] = tuple(d["hard_state"])
    out["entries"] = [entry_from_json(e) for e in d["entries"]]
    return out


def fixture_entry_data(index: int, size: int) -> bytes:
    """Data of entry ``index`` written by bench_save/write_fixture:
    byte j is ``(index + j) % 256``."""
    return bytes((index + j) & 0xFF for j in range(size))


def fixture_entries(count: int, size: int) -> list[RefEntry]:
    """The entries write_fixture writes: term 1, indexes 1..count, type 0."""
    return [RefEntry(1, i, 0, fixture_entry_data(i, size)) for i in range(1, count + 1)]


# ---------------------------------------------------------------------- the tool


class EtcdRef:
    """Runs the etcdref binary. Each method runs one command (timeout
    ``timeout`` seconds, default 60) and returns its parsed JSON output,
    converted as described in the module docstring. A non-zero exit (usage
    error) or unparsable output raises :class:`EtcdRefError`; errors from
    etcd itself are returned in the ``"error"`` field."""

    def __init__(self, binary: Path | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.binary = Path(binary)
        self.timeout = timeout

    def run(
        self, *args: str | os.PathLike[str], stdin: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Run a raw command; ``stdin`` (if not None) is converted with
        :func:`_jsonable` and sent as JSON. Returns the raw JSON object."""
        inp = None if stdin is None else json.dumps(_jsonable(stdin))
        proc = subprocess.run(
            [str(self.binary), *map(str, args)],
            input=inp,
            capture_output=True,
            text=True,
            timeout=self.timeout if timeout is None else timeout,
        )
        if proc.returncode != 0:
            raise EtcdRefError(
                f"etcdref {' '.join(map(str, args))} exited {proc.returncode}: "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise EtcdRefError(f"etcdref printed invalid JSON: {proc.stdout!r}") from e
        if not isinstance(out, dict):
            raise EtcdRefError(f"etcdref printed a non-object: {proc.stdout!r}")
        return out

    # -- WAL ------------------------------------------------------------------

    def readall(
        self, dir: os.PathLike[str] | str, index: int = 0, term: int = 0, write: bool = False
    ) -> dict[str, Any]:
        """``wal.OpenForRead`` (``wal.Open`` if ``write``) at snapshot
        ``{index, term}``, ``ReadAll``, ``Close``.

        Returns ``{"metadata": bytes|None, "hard_state": (term, vote, commit),
        "entries": [RefEntry], "error": str|None, "close_error": str|None}``.
        If Open itself fails, metadata is None, hard_state (0,0,0), entries []
        and error is Open's error. ``close_error`` is only reported in write
        mode (a read-only WAL's Close always fails with "invalid argument")."""
        args = ["readall", "--dir", dir, "--index", str(index), "--term", str(term)]
        if write:
            args.append("--write")
        return _read_result(self.run(*args))  # type: ignore[return-value]

    def script(
        self, dir: os.PathLike[str] | str, ops: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Run ops in order against one ``*wal.WAL`` in one process.

        Ops (dicts; bytes values and entry tuples are converted automatically):

        * ``{"op": "create", "metadata": bytes|None, "segment_size": N}`` --
          sets ``wal.SegmentSizeBytes`` (default 64,000,000 if omitted) and
          ``wal.Create``.
        * ``{"op": "open", "index": I, "term": T, "segment_size": N}`` --
          ``wal.Open`` (write mode) then ``ReadAll``; its result (readall
          shape, without close_error) goes to ``results[k]``.
        * ``{"op": "read", "index": I, "term": T}`` -- extra: ``OpenForRead`` +
          ``ReadAll`` on a separate, never-closed handle (the current WAL is
          untouched); result in ``results[k]``.
        * ``{"op": "set_segment_size", "segment_size": N}`` -- extra.
        * ``{"op": "save", "hard_state": (t, v, c), "entries": [...]}``
          (hard_state omitted = empty).
        * ``{"op": "save_snapshot", "index": I, "term": T}``
        * ``{"op": "sync"}``, ``{"op": "release_lock_to", "index": I}``,
          ``{"op": "close"}``.

        Returns ``{"ok": True, "error": None, "results": [...]}`` or
        ``{"ok": False, "error": str, "op_index": k, "results": [...]}``
        (execution stops at the first error; ``results`` has one item per
        executed op, None except for open/read).

        Notes: without a final ``close`` the file pipeline's ``0.tmp``/``1.tmp``
        may or may not exist when the process exits (it is allocated by a
        goroutine). Locks are OFD locks, so a second ``open`` in the same
        script while the first WAL is still open fails with
        "fileutil: file already locked"."""
        out = self.run("script", "--dir", dir, stdin=list(ops))
        out["results"] = [
            _read_result(r) if isinstance(r, dict) else r for r in out.get("results", [])
        ]
        return out

    def verify(self, dir: os.PathLike[str] | str, index: int = 0, term: int = 0) -> dict[str, Any]:
        """``wal.Verify`` -> ``{"error": str|None}``."""
        return self.run("verify", "--dir", dir, "--index", str(index), "--term", str(term))

    def valid_snapshots(self, dir: os.PathLike[str] | str) -> dict[str, Any]:
        """``wal.ValidSnapshotEntries`` -> ``{"snapshots": [(index, term)],
        "error": str|None}``."""
        out = self.run("valid-snapshots", "--dir", dir)
        out["snapshots"] = [tuple(s) for s in out["snapshots"]]
        return out

    def repair(self, dir: os.PathLike[str] | str) -> dict[str, Any]:
        """``wal.Repair`` -> ``{"ok": bool, "error": None}`` (error is only set
        if etcd's code panicked)."""
        return self.run("repair", "--dir", dir)

    # -- snapshots --------------------------------------------------------------

    def snap_save(
        self,
        dir: os.PathLike[str] | str,
        data: bytes | None,
        index: int,
        term: int,
        conf_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``snap.New(dir).SaveSnap(raftpb.Snapshot{...})`` -> ``{"error": ...}``.
        (etcd silently does nothing for index 0.)"""
        req = {"data": data, "index": index, "term": term, "conf_state": dict(conf_state or {})}
        return self.run("snap-save", "--dir", dir, stdin=req)

    def snap_load(
        self,
        dir: os.PathLike[str] | str,
        wal_snaps: Iterable[tuple[int, int]] | None = None,
    ) -> dict[str, Any]:
        """``Load()``, or ``LoadNewestAvailable(wal_snaps)`` when ``wal_snaps``
        (a list of ``(index, term)``) is given. Returns ``{"snapshot": None |
        {"data": bytes|None, "index", "term", "conf_state": {...}}, "error"}``.
        Note that etcd renames unreadable ``.snap`` files to ``.broken``."""
        args: list[str | os.PathLike[str]] = ["snap-load", "--dir", dir]
        if wal_snaps is not None:
            args += ["--wal-snaps", json.dumps([[int(i), int(t)] for i, t in wal_snaps])]
        out = self.run(*args)
        if out["snapshot"] is not None:
            out["snapshot"]["data"] = _unhex(out["snapshot"]["data"])
        return out

    def snap_save_db(
        self, dir: os.PathLike[str] | str, source: os.PathLike[str] | str, index: int
    ) -> dict[str, Any]:
        """``snap.New(dir).SaveDBFrom(<the file source>, index)`` ->
        ``{"bytes": n, "error": ...}``."""
        return self.run("snap-save-db", "--dir", dir, "--from", source, "--index", str(index))

    def snap_db_path(self, dir: os.PathLike[str] | str, index: int) -> dict[str, Any]:
        """``snap.New(dir).DBFilePath(index)`` -> ``{"path": str, "error": ...}``."""
        return self.run("snap-db-path", "--dir", dir, "--index", str(index))

    # -- encodings --------------------------------------------------------------

    def marshal(self, items: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """Bytes of etcd's own ``Marshal()`` for each item. Items are dicts
        with ``kind`` and fields (bytes values may be bytes or None):

        * ``entry``: term, index, type, data
        * ``hard_state``: term, vote, commit
        * ``conf_state``: voters, learners, voters_outgoing, learners_next, auto_leave
        * ``snapshot_metadata``: conf_state (dict), index, term
        * ``snapshot``: data, metadata (dict like snapshot_metadata)
        * ``wal_snapshot``: index, term
        * ``record``: type, crc, data (walpb.Record)
        * ``snap_file``: crc, data (snappb.Snapshot, the .snap file wrapper; extra)
        * ``conf_change``: id, type, node_id, context
        * ``conf_change_v2``: transition, changes ([{type, node_id}]), context
        """
        out = self.run("marshal", stdin=list(items))
        if out.get("error") is not None:
            raise EtcdRefError(f"marshal failed at item {out.get('item_index')}: {out['error']}")
        return [bytes.fromhex(h) for h in out["hex"]]

    # -- bulk writing / benchmarks ----------------------------------------------

    @staticmethod
    def _write_args(
        dir: os.PathLike[str] | str,
        entries: int,
        size: int,
        batch: int,
        segment_size: int | None,
        metadata: bytes | None,
    ) -> list[str | os.PathLike[str]]:
        args: list[str | os.PathLike[str]] = [
            "--dir",
            dir,
            "--entries",
            str(entries),
            "--size",
            str(size),
            "--batch",
            str(batch),
        ]
        if segment_size is not None:
            args += ["--segment-size", str(segment_size)]
        if metadata:
            args += ["--metadata", metadata.hex()]
        return args

    def bench_save(
        self,
        dir: os.PathLike[str] | str,
        entries: int,
        size: int,
        batch: int,
        segment_size: int | None = None,
        metadata: bytes | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``wal.Create`` then Saves of ``batch`` entries (the last one may be
        shorter) of ``size`` bytes, each with ``HardState{1, 1, last index}``
        (so each Save fsyncs). Only the Save loop is timed. Returns
        ``{"seconds": float, "entries": N, "saves": ceil(N/B), "error"}``."""
        args = self._write_args(dir, entries, size, batch, segment_size, metadata)
        return self.run("bench-save", *args, timeout=timeout)

    def bench_read(
        self, dir: os.PathLike[str] | str, timeout: float | None = None
    ) -> dict[str, Any]:
        """Times ``OpenForRead(zero snapshot)`` + ``ReadAll``. Returns
        ``{"seconds": float, "entries": count, "last_index": int, "error"}``."""
        return self.run("bench-read", "--dir", dir, timeout=timeout)

    def write_fixture(
        self,
        dir: os.PathLike[str] | str,
        entries: int,
        size: int,
        batch: int,
        segment_size: int | None = None,
        metadata: bytes | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Like :meth:`bench_save` without timing; the WAL is closed at the end.
        Entry data is :func:`fixture_entry_data`; metadata defaults to nil.
        Returns ``{"entries", "saves", "last_index", "files": [sorted names in
        dir], "error"}``."""
        args = self._write_args(dir, entries, size, batch, segment_size, metadata)
        return self.run("write-fixture", *args, timeout=timeout)
