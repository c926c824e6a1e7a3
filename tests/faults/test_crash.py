"""Crash campaign: a writer process (tests/support/crash_writer.py) appends to a
``raftwal.open`` data directory with blocking and group-committed saves,
snapshots, segment cuts and purges, and is killed with SIGKILL at random
moments (during create or recovery, right after a snapshot or a cut, at any
time) or exactly at a phase boundary. After every kill the directory is
recovered with ``raftwal.open``, which must never raise, and checked: every
acknowledged entry is there, byte for byte, or covered by the recovered
snapshot; nothing differs from what the writer wrote; nothing was invented.
The next writer continues in the same directory, so recovery runs over many
segments, snapshots, purges, torn tails and earlier repairs.

SIGKILL leaves the page cache alone: a kill tears a record only when it lands
between two ``write`` calls of one frame (the page writer splits frames at
its 128 KiB watermark), so torn tails are rare here. Lost and torn writes
are test_power_loss.py's subject.

``RAFTWAL_CRASH_SECONDS`` (default 35) bounds the random campaign; the
``slow`` test runs a long one (``RAFTWAL_CRASH_LONG_SECONDS``, default 600)
when ``-m slow`` is given or that variable is set. Run with ``-s`` to see
the summaries.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from crash_writer import OPTIONS, TERM, payload, snapshot_data

import raftwal
from raftwal import Entry, HardState, WalSnapshot

WRITER = Path(__file__).resolve().parents[1] / "support" / "crash_writer.py"
CRASH_SECONDS = float(os.environ.get("RAFTWAL_CRASH_SECONDS", "35"))
LONG_SECONDS = float(os.environ.get("RAFTWAL_CRASH_LONG_SECONDS", "600"))
EVENT_TIMEOUT = 30.0  # a writer must reach any event we wait for within this


Line = list[str]


class Child:
    """A running crash_writer, its stdout lines read by a thread."""

    def __init__(self, data_dir: Path, seed: int, stop_at: str | None, stderr: Path) -> None:
        cmd = [sys.executable, str(WRITER), str(data_dir), str(seed)]
        if stop_at:
            cmd += ["--stop-at", stop_at]
        self.stderr_path = stderr
        self._err = stderr.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._err)
        self._q: queue.SimpleQueue[Line | None] = queue.SimpleQueue()
        self.lines: list[Line] = []
        self.counts: Counter[str] = Counter()
        self.exited = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):  # a line cut by the kill is ignored
                self._q.put(raw.decode().split())
        self._q.put(None)

    def _take(self, line: Line | None) -> Line | None:
        if line is None:
            self.exited = True
            return None
        self.lines.append(line)
        self.counts[line[0]] += 1
        return line

    def wait_for(self, event: str, nth: int = 1, timeout: float = EVENT_TIMEOUT) -> Line:
        """Consume lines until the ``nth`` ``event`` line; fail if the writer
        dies or takes too long."""
        deadline = time.monotonic() + timeout
        while True:
            if self.counts[event] >= nth:
                return [ln for ln in self.lines if ln[0] == event][nth - 1]
            if self.exited:
                self.fail(f"the writer exited before its {nth}th {event!r} event")
            try:
                self._take(self._q.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                self.fail(f"no {nth}th {event!r} event within {timeout} s")

    def run_for(self, seconds: float) -> None:
        """Consume lines for ``seconds`` (the writer keeps running)."""
        deadline = time.monotonic() + seconds
        while not self.exited:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                self._take(self._q.get(timeout=left))
            except queue.Empty:
                return
        self.fail("the writer exited on its own")

    def kill(self) -> None:
        """SIGKILL, then collect every whole line it wrote before dying."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        while not self.exited:
            self._take(self._q.get(timeout=30))
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._err.close()
        if self.proc.returncode != -signal.SIGKILL:
            self.fail(f"the writer exited with status {self.proc.returncode}, not by SIGKILL")

    def fail(self, why: str) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)  # EOF once the writer is gone
        self._err.close()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        err = self.stderr_path.read_text(errors="replace")[-4000:]
        pytest.fail(f"{why}; last lines {self.lines[-5:]}; stderr:\n{err}")


class Campaign:
    """One data directory crashed over and over, and what it must hold."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.data = root / "data"
        self.pre = root / "pre-recovery"  # the directory as the last kill left it
        self.rng = random.Random(seed)
        self.stats: Counter[str] = Counter()
        self.acked = 0  # highest index ever acknowledged
        self.sent = 0  # highest index ever handed to raftwal
        self.last = 0  # last index of the latest recovery (durable: open syncs it)
        self.snap = 0  # snapshot index of the latest recovery
        self.max_segments = 0
        self.last_checked = 0
        self.started = time.monotonic()

    # --- one round ----------------------------------------------------------------

    def round(
        self, run: Callable[[Child], None], *, stop_at: str | None = None, kind: str
    ) -> Child:
        """Start a writer, let ``run`` decide when to kill it, then recover and check."""
        self.stats["crashes"] += 1
        self.stats[f"kill {kind}"] += 1
        child = Child(self.data, self.rng.randrange(1 << 30), stop_at, self.root / "stderr.txt")
        run(child)
        child.kill()
        self.absorb(child)
        self.recover_and_check()
        return child

    def absorb(self, child: Child) -> None:
        for line in child.lines:
            match line:
                case ["ack", index]:
                    self.acked = max(self.acked, int(index))
                case ["sent", index]:
                    self.sent = max(self.sent, int(index))
                case ["snap", _]:
                    self.stats["snapshots"] += 1
                case ["cut", _]:
                    self.stats["cuts"] += 1
                case ["ready", last, snap, repaired]:
                    # The writer recovered what the previous check recovered.
                    assert (int(last), int(snap)) == (self.last, self.snap), (
                        f"writer recovered last={last} snapshot={snap}, the check before it "
                        f"last={self.last} snapshot={self.snap}"
                    )
                    self.stats["writer recoveries that repaired"] += int(repaired)

    def recover_and_check(self) -> None:
        shutil.rmtree(self.pre, ignore_errors=True)
        exists = self.data.exists()  # not if killed before open made it
        if exists:
            shutil.copytree(self.data, self.pre, symlinks=True)
            self.max_segments = max(self.max_segments, len(list(self.data.glob("wal/*.wal"))))
        # Usually recover in place; sometimes recover a copy, leaving the
        # writer to recover (and repair) the original itself.
        target = self.data
        if exists and self.rng.random() < 0.3:
            target = self.root / "copy"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(self.data, target, symlinks=True)
        where = f"(the directory before recovery is kept in {self.pre})"
        try:
            s = raftwal.open(target, **OPTIONS)
        except Exception as exc:
            pytest.fail(f"recovery raised {exc!r} {where}")
        with s:
            problems = self.check(s)
            last, snap = s.last_index(), s.snapshot().metadata.index
            self.stats["checks that repaired a torn tail"] += int(s.recovery.repaired)
        if not problems:
            try:
                raftwal.verify(target / "wal", WalSnapshot(index=snap, term=TERM if snap else 0))
            except raftwal.Error as exc:
                problems.append(f"verify after recovery: {exc!r}")
        if not problems:
            try:
                problems = self.check_retained_segments(target / "wal")
            except raftwal.Error as exc:
                problems.append(f"reading the retained segments: {exc!r}")
        assert not problems, f"{where}: " + "; ".join(problems[:10])
        self.last, self.snap = last, snap

    def check(self, s: raftwal.DurableStorage) -> list[str]:
        problems = []
        hs, _ = s.initial_state()
        snapshot = s.snapshot()
        si = snapshot.metadata.index
        first, last = s.first_index(), s.last_index()
        if si:
            if snapshot.data != snapshot_data(si):
                problems.append(f"snapshot {si} holds {snapshot.data[:40]!r}")
            # taken at an applied index: acknowledged, or recovered by an earlier check
            if snapshot.metadata.term != TERM or si > max(self.acked, self.last):
                problems.append(f"snapshot ({si}, {snapshot.metadata.term}) was never taken")
        if si < self.snap:
            problems.append(f"snapshot went back from {self.snap} to {si}")
        if first != si + 1:
            problems.append(f"first index {first} after a snapshot at {si}")
        self.last_checked = last
        ents = s.entries(first, last + 1) if last >= first else []
        for i, e in enumerate(ents, start=first):
            if (e.term, e.index, e.type, e.data) != (TERM, i, 0, payload(i)):
                problems.append(f"entry {i} differs: {e!r:.200}")
                self.stats["corrupt entries"] += 1
        self.stats["entries checked"] += len(ents)
        lost = max(0, self.acked - last)
        self.stats["acknowledged entries lost"] += lost
        if lost:
            problems.append(f"acknowledged through {self.acked}, recovered through {last}")
        if last < self.last:
            problems.append(f"the recovered log shrank from {self.last} to {last}")
        if last > self.sent:
            problems.append(f"entries through {last} recovered, only {self.sent} ever sent")
        if hs != HardState():
            if (hs.term, hs.vote) != (TERM, 1) or hs.commit > last or hs.commit < si:
                problems.append(f"HardState {hs} with snapshot {si} and last index {last}")
        return problems

    def check_retained_segments(self, wal_dir: Path) -> list[str]:
        """Read the WAL from the oldest snapshot record its segments still
        hold (older than the one recovery used): every entry there, purged
        from memory or not, must be intact too."""
        oldest_segment = min(int(p.stem.split("-")[1], 16) for p in wal_dir.glob("*.wal"))
        snaps = [w for w in raftwal.valid_snapshot_entries(wal_dir) if w.index >= oldest_segment]
        if not snaps:
            return []
        with raftwal.WAL.open_for_read(wal_dir, snaps[0]) as w:
            _, _, ents = w.read_all()
        problems = []
        for i, e in enumerate(ents, start=snaps[0].index + 1):
            if (e.term, e.index, e.type, e.data) != (TERM, i, 0, payload(i)):
                problems.append(
                    f"entry {i} read from snapshot {snaps[0].index} differs: {e!r:.200}"
                )
                self.stats["corrupt entries"] += 1
        if ents and ents[-1].index != self.last_checked:
            problems.append(
                f"a reader sees entries through {ents[-1].index}, recovery through {self.last_checked}"
            )
        self.stats["entries re-read from older segments"] += len(ents)
        return problems

    def summary(self, title: str) -> str:
        st = self.stats
        kills = ", ".join(f"{k[5:]}: {v}" for k, v in sorted(st.items()) if k.startswith("kill "))
        return (
            f"{title}: {st['crashes']} crashes in {time.monotonic() - self.started:.1f} s "
            f"({kills}); {st['entries checked']} entries checked byte for byte after the "
            f"recovered snapshot and {st['entries re-read from older segments']} re-read from "
            f"the oldest snapshot the segments hold; highest "
            f"acknowledged index {self.acked}; acknowledged entries lost: "
            f"{st['acknowledged entries lost']}; corrupt entries: {st['corrupt entries']}; "
            f"torn tails repaired by the check: {st['checks that repaired a torn tail']}, by the "
            f"writer: {st['writer recoveries that repaired']}; {st['snapshots']} snapshots and "
            f"{st['cuts']} cuts acknowledged; up to {self.max_segments} segments; final "
            f"snapshot {self.snap}, last index {self.last}"
        )


# --- the random campaign ----------------------------------------------------------------


def random_round(c: Campaign) -> None:
    rng = c.rng
    r = rng.random()
    if r < 0.15:
        # right after the imports: during raftwal.open (create, recovery, repair)
        kind, event, nth, delay = "during open", "start", 1, rng.uniform(0, 0.02)
    elif r < 0.25:
        kind, event, nth, delay = "just after open", "ready", 1, rng.uniform(0, 0.005)
    elif r < 0.40:
        kind, event, nth, delay = (
            "after a snapshot",
            "snap",
            rng.randint(1, 4),
            rng.uniform(0, 0.002),
        )
    elif r < 0.50:
        kind, event, nth, delay = "after a cut", "cut", rng.randint(1, 6), rng.uniform(0, 0.002)
    elif r < 0.55:
        kind, event, nth, delay = "in create_snapshot", "snapfile", rng.randint(1, 3), 0.0
    else:
        kind, event, nth, delay = "at a random time", "ready", 1, rng.uniform(0, 0.8)

    def run(child: Child) -> None:
        child.wait_for(event, nth)
        if delay:
            child.run_for(delay)

    c.round(run, kind=kind)


def run_random_campaign(tmp_path: Path, seconds: float, title: str) -> Campaign:
    seed = int(os.environ.get("RAFTWAL_CRASH_SEED", str(random.randrange(1 << 30))))
    c = Campaign(tmp_path, seed)
    while time.monotonic() - c.started < seconds:
        random_round(c)
    print(f"\n{c.summary(title)} (RAFTWAL_CRASH_SEED={seed})")
    assert c.stats["acknowledged entries lost"] == 0
    assert c.stats["corrupt entries"] == 0
    assert c.stats["crashes"] >= 3
    return c


@pytest.mark.timeout(CRASH_SECONDS + 120)
def test_random_kills(tmp_path: Path) -> None:
    run_random_campaign(tmp_path, CRASH_SECONDS, "random kills")


@pytest.mark.slow
@pytest.mark.timeout(LONG_SECONDS + 300)
def test_random_kills_long(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    wanted = "slow" in (request.config.getoption("markexpr") or "")
    if not wanted and "RAFTWAL_CRASH_LONG_SECONDS" not in os.environ:
        pytest.skip("long campaign: run with -m slow or set RAFTWAL_CRASH_LONG_SECONDS")
    run_random_campaign(tmp_path, LONG_SECONDS, "long random kills")


def test_kills_during_create(tmp_path: Path) -> None:
    """A writer killed while ``raftwal.open`` creates the directory (the WAL
    is built in ``wal.tmp`` and renamed into place): the next open creates
    or recovers it, and the writer after that appends as usual."""
    crashes = 0
    left: Counter[str] = Counter()
    for i in range(12):
        c = Campaign(tmp_path / f"fresh{i}", i)
        c.root.mkdir()
        delay = i * 0.0002  # creating takes a millisecond or two

        def early(child: Child, delay: float = delay) -> None:
            child.wait_for("start")
            child.run_for(delay)

        def later(child: Child) -> None:
            child.wait_for("ready")
            child.run_for(0.1)

        c.round(early, kind="during create")
        if not c.pre.exists():
            left["no data directory"] += 1
        elif (c.pre / "wal.tmp").exists():
            left["a half-built wal.tmp"] += 1
        elif not (c.pre / "wal").exists():
            left["no WAL"] += 1
        else:
            left["a WAL"] += 1
        c.round(later, kind="after a restart")
        assert c.stats["acknowledged entries lost"] == c.stats["corrupt entries"] == 0
        assert c.last > 0, "the writer after the restart acknowledged nothing"
        crashes += c.stats["crashes"]
    print(
        f"\nkills during create: {crashes} crashes, nothing lost; the first kill left {dict(left)}"
    )


# --- kills at phase boundaries -------------------------------------------------------------

# (phase, n): the writer pauses right after its n-th such event and is killed there.
PHASE_STOPS = [
    ("ready", 1),  # recovery finished, nothing appended
    ("async", 1),  # first save_async returned, its future unresolved
    ("ack", 1),
    ("cut", 1),  # the WAL just continued in a new segment
    ("snapfile", 1),  # snapshot file durable, its WAL record not yet written
    ("snaprecord", 1),  # WAL record durable, before compaction and purges
    ("snappurged", 1),  # old .snap files purged, WAL segments not yet
    ("snap", 1),  # create_snapshot returned (segments purged)
    ("cut", 4),
    ("snapfile", 3),
    ("snaprecord", 4),
    ("snappurged", 3),
    ("snap", 5),
    ("cut", 2),
    ("snapfile", 6),
    ("async", 300),
    ("ack", 700),
    ("snaprecord", 9),
]


def test_kills_at_phase_boundaries(tmp_path: Path) -> None:
    c = Campaign(tmp_path, 20240601)
    for pass_ in range(3):
        for phase, nth in PHASE_STOPS:
            seen: dict[str, Line] = {}

            def run(
                child: Child, phase: str = phase, nth: int = nth, seen: dict[str, Line] = seen
            ) -> None:
                seen["stopped"] = child.wait_for("stopped")
                assert seen["stopped"][1:] == [phase, str(nth)]
                # the snapshot the stop is in (or right after)
                marks = [ln for ln in child.lines if ln[0] in ("snapfile", "snaprecord")]
                if phase.startswith("snap") and marks:
                    seen["snap"] = marks[-1]

            c.round(run, stop_at=f"{phase}:{nth}", kind=f"at {phase}")
            if "snap" in seen:
                x = int(seen["snap"][1])
                if phase == "snapfile":
                    # the file alone does not count: recovery uses an older snapshot
                    assert c.snap < x, f"pass {pass_}: snapshot {x} used without its WAL record"
                    names = os.listdir(c.data / "snap")
                    assert f"{TERM:016x}-{x:016x}.snap" in names
                else:
                    assert c.snap == x, f"pass {pass_}: {phase} {x}, recovered {c.snap}"
    print(f"\n{c.summary('kills at phase boundaries')}")
    assert c.stats["acknowledged entries lost"] == 0
    assert c.stats["corrupt entries"] == 0


# --- a bug the campaign steps around ------------------------------------------------------------


def test_sync_save_behind_async_saves_in_flight(tmp_path: Path) -> None:
    with raftwal.open(tmp_path / "d") as s:
        index = 0
        for _ in range(20):
            futs = []
            for _ in range(20):
                index += 1
                e = Entry(term=TERM, index=index, data=payload(index))
                futs.append(s.save_async(HardState(TERM, 1, index), [e]))
            index += 1
            s.save(HardState(TERM, 1, index), [Entry(term=TERM, index=index, data=payload(index))])
            for f in futs:
                f.result(timeout=30)
            assert s.last_index() == index
