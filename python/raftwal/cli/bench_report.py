"""Results of ``raftwal bench`` and their report: per-round samples, the
table of ratios, the sweep, the chart, the machine and BENCHMARKS.md."""

from __future__ import annotations

import contextlib
import datetime
import importlib
import importlib.util
import os
import platform
import sqlite3
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bench_systems import ASYNC_BATCH, ASYNC_BATCH_IN_FLIGHT, IN_FLIGHT, System
from .diskcheck import filesystem_of

__all__ = [
    "Memory",
    "Row",
    "Series",
    "Settings",
    "build_rows",
    "draw_chart",
    "machine_info",
    "memory_note",
    "report_markdown",
    "sweep_markdown",
    "table_markdown",
]

# ----------------------------------------------------------------------------- results


@dataclass
class Series:
    """One system's samples at one setting: work done and seconds, one pair
    per round. Its figure is the median over rounds, which a stall of the
    disk during one slice does not move."""

    work: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, work: float, seconds: float) -> None:
        self.work.append(work)
        self.seconds.append(max(seconds, 1e-9))

    def round_rates(self) -> list[float]:
        return [w / s for w, s in zip(self.work, self.seconds, strict=True)]

    @property
    def rate(self) -> float:
        """Median work per second over rounds."""
        return statistics.median(self.round_rates()) if self.seconds else float("nan")

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")


@dataclass
class Memory:
    """Peak RSS of raftwal.open in a child process, one sample per round, and
    what it is compared with: the WAL's bytes up to its last record."""

    wal_bytes: int
    peak: Series = field(default_factory=Series)  # work: bytes; seconds: 1
    imported: list[float] = field(default_factory=list)  # the child's RSS after the import

    def add(self, peak: float, imported: float) -> None:
        self.peak.add(peak, 1.0)
        self.imported.append(imported)

    def baseline(self) -> Series:
        """The WAL's bytes, once per round, so the per-round ratios line up."""
        out = Series()
        for _ in self.peak.work:
            out.add(self.wal_bytes, 1.0)
        return out


@dataclass
class Row:
    """One line of the result table."""

    scenario: str
    measure: str
    unit: str  # "/s", "GB/s", "s" or "B" (bytes)
    value: float  # raftwal
    baseline: float | None
    ratio: float | None = None
    spread: tuple[float, float] | None = None
    target: str = ""
    met: bool | None = None


def _ratio_row(
    scenario: str,
    measure: str,
    unit: str,
    ours: Series,
    theirs: Series | None,
    target: float | None = None,
    lower_is_better: bool = False,
) -> Row:
    """A row comparing ``ours`` with ``theirs``: median rates, or median
    seconds when ``unit == "s"``. The ratio is the median of the per-round
    ratios (each round measures both systems within a second or so of each
    other); ``target`` is the least (``lower_is_better``: the most)
    acceptable ratio."""
    seconds = unit == "s"
    row = Row(scenario, measure, unit, ours.median_seconds if seconds else ours.rate, None)
    if target is not None:
        row.target = f"{'<=' if lower_is_better else '>='} {target:g}x"
    if theirs is None or not theirs.seconds:
        return row
    row.baseline = theirs.median_seconds if seconds else theirs.rate
    if seconds:
        per_round = [a / b for a, b in zip(ours.seconds, theirs.seconds, strict=False)]
    else:
        per_round = [a / b for a, b in zip(ours.round_rates(), theirs.round_rates(), strict=False)]
    row.ratio = statistics.median(per_round)
    if len(per_round) > 1:
        row.spread = (min(per_round), max(per_round))
    if target is not None:
        row.met = row.ratio <= target if lower_is_better else row.ratio >= target
    return row


@dataclass
class Settings:
    rounds: int
    seconds: float  # per sweep slice
    read_rounds: int  # recovery and decoding, whose slices are whole reads
    raw_file_mib: int  # of the zeroed file (rewritten from its start each slice)
    async_seconds: float
    batches: list[int]
    recovery_entries: int
    decode_mib: int
    crc_seconds: float


# ------------------------------------------------------------------ the machine


def _cmd_output(*cmd: str) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    out = proc.stdout.strip() or proc.stderr.strip()
    return out.splitlines()[0] if proc.returncode == 0 and out else None


def machine_info(bench_dir: Path, lmdb: Any | None) -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    fstype, source, options = filesystem_of(bench_dir)
    repo = Path(__file__).resolve().parents[3]  # a source checkout: python/raftwal/cli/
    commit = None
    if (repo / ".git").exists():
        commit = _cmd_output("git", "-C", str(repo), "describe", "--always", "--dirty")
    return [
        ("CPU", cpu),
        ("cores", str(os.cpu_count())),
        ("load average at the end (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("bench directory filesystem", f"{fstype} on {source} ({options})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Rust", _cmd_output("rustc", "--version") or "unknown (rustc not on PATH)"),
        ("Go", _cmd_output("go", "version") or "not found"),
        ("SQLite", sqlite3.sqlite_version),
        ("LMDB", ".".join(map(str, lmdb.version())) if lmdb is not None else "not installed"),
        ("raftwal", commit or "installed package"),
    ]


# ------------------------------------------------------------------- reporting


def build_rows(
    settings: Settings,
    swept: dict[str, dict[int, Series]],
    purepy_label: str,
    async_s: Series,
    sync_s: Series,
    async_batches: tuple[tuple[Series, Series, list[float]], tuple[Series, Series, list[float]]],
    recovery: tuple[Series, Series | None, Memory | None],
    crc: tuple[Series, Series],
    decode: tuple[Series, Series | None, Series],
) -> list[Row]:
    """The result table: the issue's scenarios, each against its baselines."""

    def base(key: str, batch: int) -> Series | None:
        return swept.get(key, {}).get(batch)

    rows: list[Row] = []
    if 1 in settings.batches:
        ours = swept["raftwal"][1]
        sc = "durable save, 1 x 100 B per save"
        rows += [
            _ratio_row(
                sc,
                "saves/s vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                ours,
                base("raw", 1),
                0.9,
            ),
            _ratio_row(sc, "saves/s vs etcd Go Save loop", "/s", ours, base("etcd", 1), 1.0),
            _ratio_row(
                sc, "saves/s vs write+fdatasync, fallocated file", "/s", ours, base("rawfalloc", 1)
            ),
            _ratio_row(sc, f"saves/s vs {purepy_label}", "/s", ours, base("purepy", 1)),
        ]
    if 100 in settings.batches:
        ours = swept["raftwal"][100]
        sc = "durable save, 100 x 100 B per save"
        rows += [
            _ratio_row(
                sc,
                "entries/s vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                ours,
                base("raw", 100),
                0.9,
            ),
            _ratio_row(sc, "entries/s vs etcd Go Save loop", "/s", ours, base("etcd", 100)),
            _ratio_row(
                sc,
                "entries/s vs sqlite3 WAL mode, synchronous=FULL",
                "/s",
                ours,
                base("sqlite", 100),
            ),
            _ratio_row(sc, "entries/s vs py-lmdb, default sync", "/s", ours, base("lmdb", 100)),
            _ratio_row(
                sc,
                "entries/s vs write+fdatasync, fallocated file",
                "/s",
                ours,
                base("rawfalloc", 100),
            ),
            _ratio_row(sc, f"entries/s vs {purepy_label}", "/s", ours, base("purepy", 100)),
        ]
    if 1000 in settings.batches:
        ours = swept["raftwal"][1000]
        sc = "durable save, 1000 x 100 B per save"
        rows += [
            _ratio_row(sc, "entries/s vs etcd Go Save loop", "/s", ours, base("etcd", 1000), 1.0),
            _ratio_row(
                sc,
                "entries/s vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                ours,
                base("raw", 1000),
            ),
        ]
    # The same targets for save_entries, which takes the entries' data alone.
    datas = swept.get("raftwal_datas", {})
    for batch, targets in ((1, (0.9, 1.0)), (100, (0.9, None)), (1000, (None, 1.0))):
        if batch not in settings.batches or batch not in datas:
            continue
        sc = f"durable save, {batch} x 100 B per save, WAL.save_entries (data only)"
        unit = "saves/s" if batch == 1 else "entries/s"
        disk_t, etcd_t = targets
        rows += [
            _ratio_row(
                sc,
                f"{unit} vs write+fdatasync, zeroed file (disk limit)",
                "/s",
                datas[batch],
                base("raw", batch),
                disk_t,
            ),
            _ratio_row(
                sc, f"{unit} vs etcd Go Save loop", "/s", datas[batch], base("etcd", batch), etcd_t
            ),
        ]
    rows.append(
        _ratio_row(
            f"save_async, 1 entry per call, {IN_FLIGHT} in flight",
            "durable entries/s vs synchronous 1-entry saves",
            "/s",
            async_s,
            sync_s,
            10,
        )
    )
    for (batch_ours, batch_disk, per_fsync), how in zip(
        async_batches, ("save_async", "save_entries_async (data only)"), strict=True
    ):
        per_fsync_text = (
            f"median {statistics.median(per_fsync) / 1024:,.1f} KiB"
            if per_fsync
            else "the same bytes"
        )
        rows.append(
            _ratio_row(
                f"{how}, {ASYNC_BATCH} x 100 B per call, {ASYNC_BATCH_IN_FLIGHT} in flight",
                "durable entries/s vs write+fdatasync, zeroed file (disk limit), of the bytes "
                f"the WAL wrote per fsync ({per_fsync_text}, from its stats()) at its bytes "
                "per entry",
                "/s",
                batch_ours,
                batch_disk,
                0.9,
            )
        )
    open_s, etcd_s, memory = recovery
    sc = f"recovery: raftwal.open of {settings.recovery_entries:,} x 100 B until entries() serves"
    rows.append(
        _ratio_row(
            sc,
            "seconds vs etcd Go OpenForRead+ReadAll of the same directory",
            "s",
            open_s,
            etcd_s,
            0.2,
            lower_is_better=True,
        )
    )
    mem_measure = (
        "peak RSS (VmHWM) of a child process that imports raftwal, opens the directory "
        "and reads entries(last, last + 1), vs the bytes of the WAL's segment files up to "
        "their last record (the last segment is preallocated past it)"
    )
    if memory is not None:
        rows.append(
            _ratio_row(
                f"peak RSS of that open ({settings.recovery_entries:,} x 100 B)",
                mem_measure,
                "B",
                memory.peak,
                memory.baseline(),
                1.5,
                lower_is_better=True,
            )
        )
    crc_row = _ratio_row(
        "CRC32C over 1 MiB buffers",
        "GB/s of raftwal.crc32c vs zlib.crc32 (CRC-32, for scale)",
        "GB/s",
        *crc,
    )
    crc_row.target, crc_row.met = ">= 10 GB/s", crc_row.value >= 10
    py_objects, etcd_read, in_rust = decode
    dec_row = _ratio_row(
        f"decode + verify in Rust, {settings.decode_mib} MiB of 4 KiB entries",
        "entry GB/s of raftwal.verify (records decoded, entries parsed, CRC chain "
        "checked; no Python objects) vs etcd Go OpenForRead+ReadAll",
        "GB/s",
        in_rust,
        etcd_read,
    )
    dec_row.target, dec_row.met = ">= 2 GB/s", dec_row.value >= 2
    py_row = _ratio_row(
        f"decode into Python entries, {settings.decode_mib} MiB of 4 KiB entries",
        "entry GB/s of WAL.open_for_read + read_all (a bytes object per entry) "
        "vs etcd Go OpenForRead+ReadAll",
        "GB/s",
        py_objects,
        etcd_read,
    )
    return [*rows, crc_row, dec_row, py_row]


def _fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "skipped"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "GB/s":
        return f"{v:.2f} GB/s"
    if unit == "B":
        return f"{v / 1e6:,.1f} MB"
    return f"{_fmt_rate(v)}/s"


def table_markdown(rows: list[Row]) -> str:
    head = "| scenario | measure | raftwal | baseline | ratio | target | met? |"
    lines = [head, "|---|---|---:|---:|---:|---|:-:|"]
    for r in rows:
        base = _fmt_value(r.baseline, r.unit)
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.spread is not None:
            ratio += f" ({r.spread[0]:.2f} to {r.spread[1]:.2f})"
        met = {True: "yes", False: "**no**", None: "—"}[r.met]
        lines.append(
            f"| {r.scenario} | {r.measure} | {_fmt_value(r.value, r.unit)} | {base} | {ratio} "
            f"| {r.target or '—'} | {met} |"
        )
    return "\n".join(lines)


def sweep_markdown(results: dict[str, dict[int, Series]], systems: list[System]) -> str:
    batches = sorted({b for per in results.values() for b in per})
    lines = [
        "| entries/s at batch size | " + " | ".join(str(b) for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for s in systems:
        cells = [_fmt_rate(results[s.key][b].rate) if b in results[s.key] else "—" for b in batches]
        lines.append(f"| {s.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw_chart(
    results: dict[str, dict[int, Series]], systems: list[System], png: Path, title: str
) -> None:
    figure_mod = importlib.import_module("matplotlib.figure")
    fig = figure_mod.Figure(figsize=(9, 5.5), dpi=120, layout="constrained")
    ax = fig.subplots()
    styles = {
        "raftwal": ("#d62728", "o", 3.0),
        "raftwal_datas": ("#e377c2", "X", 2.2),
        "etcd": ("#1f77b4", "s", 1.8),
        "sqlite": ("#2ca02c", "^", 1.8),
        "lmdb": ("#9467bd", "v", 1.8),
        "raw": ("#555555", "D", 1.5),
        "rawfalloc": ("#999999", "d", 1.5),
        "purepy": ("#ff7f0e", "P", 1.8),
    }
    for s in systems:
        per = results[s.key]
        xs = sorted(per)
        color, marker, width = styles.get(s.key, ("#000000", "x", 1.5))
        ax.plot(
            xs,
            [per[b].rate for b in xs],
            label=s.label,
            color=color,
            marker=marker,
            linewidth=width,
            linestyle={"raw": "--", "rawfalloc": ":"}.get(s.key, "-"),
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    batches = sorted({b for per in results.values() for b in per})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.tick_params(axis="x", which="minor", bottom=False)
    ax.set_xlabel("entries of 100 B per durable save (batch size)")
    ax.set_ylabel("durable entries per second (log scale)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.4)
    ax.grid(True, which="minor", axis="y", alpha=0.15)
    ax.legend(loc="upper left", fontsize=9)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)


def report_markdown(
    table: str,
    swept: dict[str, dict[int, Series]],
    systems: list[System],
    machine: list[tuple[str, str]],
    settings: Settings,
    command: str,
    chart: str | None,
    skipped: list[str],
    elapsed: float,
    pure_crc: str,
    memory: Memory | None = None,
) -> str:
    today = datetime.date.today().isoformat()
    parts = [
        "# raftwal benchmarks",
        "",
        table,
        "",
        f"Generated by `{command}` on {today} ({elapsed:.0f} s). Every ratio compares two "
        "systems measured side by side in this one run: each measurement is split into "
        f"{settings.rounds} rounds, each round runs every system for a bounded slice "
        f"({settings.seconds:g} s in the sweep) in a shuffled order, and a system's figure is "
        "the median over rounds. A ratio is the median of the per-round ratios; in brackets, "
        "the lowest and highest per-round ratio, a measure of the machine's noise.",
        "",
        "## Throughput vs batch size",
        "",
    ]
    if chart is not None:
        parts += [f"![durable entries/s vs batch size]({chart})", ""]
    parts += [
        sweep_markdown(swept, systems),
        "",
        "Every save is durable before the next starts: raftwal `WAL.save` with "
        "`HardState(1, 1, last)` (so it syncs, as etcd must), and `WAL.save_entries` of the "
        "same records given as the entries' data alone (a list of bytes, as an engine that "
        "holds its commands as bytes has them; no `Entry` objects); etcd 3.4's Go `wal.Save` with the "
        "same HardState (tools/etcdref `bench-save`, only its Save loop timed); sqlite3 in WAL "
        "mode with `synchronous=FULL`, one transaction per batch (entries table plus a "
        "HardState row); py-lmdb with its default sync, one write transaction per batch; "
        "`os.pwrite` + `os.fdatasync` of as many bytes as the WAL appends per save, on a "
        "preallocated file already filled with zeros (the disk's limit: no block allocation "
        "or extent conversion) and on a fresh file preallocated with `fallocate`, as etcd "
        "preallocates segments (its extents start unwritten, so a sync after writing a new "
        "block also commits their conversion; raftwal writes zeros ahead of its writer "
        "instead); and a pure-Python encoder of the same WAL format (frames, "
        "padding, `walpb.Record`, CRC32C chaining, one `os.write` + `os.fdatasync` per batch) "
        + (
            "whose CRC is `raftwal.crc32c` (native), so it measures Python's framing and "
            "encoding cost, not a Python CRC."
            if pure_crc == "native"
            else "whose CRC is a byte-at-a-time table in pure Python."
        )
        + " Every system starts each slice on a fresh store; the Python systems build their "
        "`raftwal.Entry` objects (`save_entries`: its list of data) inside the timed loop, as "
        "a caller would.",
        "",
        "Recovery times `raftwal.open(data_dir)` (the full restart: snapshot lookup, WAL "
        "replay, MemoryStorage) until `entries()` serves the last entry, against etcd's "
        "`wal.OpenForRead` + `ReadAll` of the same directory, which raftwal wrote. Decoding "
        "times `raftwal.verify` (the Rust decoder alone) and `WAL.open_for_read` + `read_all` "
        "(the same plus a Python entry each; CRC chain verified in both) and counts entry "
        "payload bytes; all reads are served from the page cache. GB means 10⁹ bytes.",
        "",
        "Peak RSS runs the same `raftwal.open` in a child process (a fresh interpreter that "
        "imports raftwal, opens the directory and reads `entries(last, last + 1)`) and takes "
        "its peak RSS, interpreter included (`VmHWM` of /proc/self/status; `ru_maxrss` where "
        "there is no /proc: on Linux it survives exec, so a child of the large benchmark "
        "process would report the parent's), against the bytes of the WAL's segment files "
        "up to their last record (segments are preallocated past it, so their file sizes "
        "would overstate it). MB means 10⁶ bytes."
        + (f" {memory_note(memory)}" if memory is not None else ""),
        "",
        f"The batched save_async row issues `WAL.save_async` of {ASYNC_BATCH} entries per call "
        f"with at most {ASYNC_BATCH_IN_FLIGHT} calls in flight and reads the bytes written and "
        "fsyncs done from the WAL's `stats()`; its baseline is `os.pwrite` + `os.fdatasync` on "
        "the zeroed file of as many bytes per sync as the WAL wrote per fsync (taken from the "
        "latest save_async slice), counted as entries at the WAL's bytes per entry.",
        "",
    ]
    if skipped:
        parts += ["Skipped: " + "; ".join(skipped) + ".", ""]
    parts += ["## Machine", "", "| | |", "|---|---|"]
    parts += [f"| {k} | {v} |" for k, v in machine]
    parts += [
        "",
        "## Command",
        "",
        "```",
        command,
        "```",
        "",
        f"Settings: {settings.rounds} rounds; {settings.seconds:g} s per system per round in the "
        f"sweep (batch sizes {', '.join(map(str, settings.batches))}); "
        f"{settings.async_seconds:g} s per save_async/save slice; recovery of "
        f"{settings.recovery_entries:,} entries and decoding of {settings.decode_mib} MiB in "
        f"{settings.read_rounds} rounds.",
        "",
    ]
    return "\n".join(parts)


def memory_note(memory: Memory) -> str:
    """The peak-RSS row's scale: the child's RSS with only raftwal imported."""
    imported = statistics.median(memory.imported) if memory.imported else float("nan")
    return (
        f"For scale: the child interpreter with raftwal imported, before the open, takes "
        f"{imported / 1e6:,.1f} MB (median); the WAL holds {memory.wal_bytes / 1e6:,.1f} MB."
    )


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
