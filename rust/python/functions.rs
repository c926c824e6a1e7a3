//! The module's functions: whole-directory passes, checksums, failpoints.

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use super::convert::{replay_tuple, wal_snap, ListSink};
use super::errors::{real_path, to_py, to_py_in};
use super::memlog::PyMemLog;
use super::wal::{replay_indexed, PyWal};
use crate::memlog::MemLog;
use crate::repair as walrepair;
use crate::wal::replay::Mode;
use crate::wal::{Wal, DEFAULT_SEGMENT_SIZE};

/// CRC-32C of `data`, continuing from `crc` (0 starts a new checksum).
#[pyfunction(name = "crc32c")]
#[pyo3(signature = (data, crc = 0))]
pub(super) fn crc32c_py(py: Python<'_>, data: &[u8], crc: u32) -> u32 {
    if data.len() > 1 << 16 {
        py.detach(|| crate::crc::update(crc, data))
    } else {
        crate::crc::update(crc, data)
    }
}

/// True if an entry that serializes to `byte_size` bytes fits in a record
/// etcd 3.4 reads.
#[pyfunction]
pub(super) fn entry_fits(byte_size: usize) -> bool {
    crate::wal::entry_fits(byte_size)
}

/// True if metadata of `size` bytes fits in a record etcd 3.4 reads.
#[pyfunction]
pub(super) fn metadata_fits(size: usize) -> bool {
    crate::wal::metadata_fits(size)
}

/// This process's id, without a system call: cached, and asked again in a
/// child of `fork()` (a `pthread_atfork` handler forgets it there).
#[pyfunction]
pub(super) fn current_pid() -> u32 {
    crate::fsutil::current_pid()
}

/// Whether `dirpath` holds at least one WAL segment.
#[pyfunction]
pub(super) fn wal_exists(dirpath: PathBuf) -> bool {
    walrepair::exists(&dirpath)
}

/// Truncate a torn tail of the last segment, keeping a `.broken` copy of
/// what is cut; False when there is nothing to repair from.
#[pyfunction]
pub(super) fn repair(py: Python<'_>, dirpath: PathBuf) -> PyResult<bool> {
    py.detach(|| walrepair::repair(&dirpath))
        .map_err(to_py_in(&dirpath))
}

/// Returns the last HardState as (term, vote, commit).
#[pyfunction]
pub(super) fn verify(
    py: Python<'_>,
    dirpath: PathBuf,
    index: u64,
    term: u64,
) -> PyResult<(u64, u64, u64)> {
    let hs = py
        .detach(|| walrepair::verify(&dirpath, &wal_snap(index, term, None)))
        .map_err(to_py_in(&dirpath))?;
    Ok((hs.term, hs.vote, hs.commit))
}

/// (index, term, ConfState bytes or None)
type SnapTuple = (u64, u64, Option<Py<PyBytes>>);

/// [(index, term, conf_state bytes or None)] in WAL order.
#[pyfunction]
pub(super) fn valid_snapshot_entries(py: Python<'_>, dirpath: PathBuf) -> PyResult<Vec<SnapTuple>> {
    let snaps = py
        .detach(|| walrepair::valid_snapshot_entries(&dirpath))
        .map_err(to_py_in(&dirpath))?;
    Ok(snaps
        .into_iter()
        .map(|s| {
            (
                s.index,
                s.term,
                s.conf_state.map(|c| PyBytes::new(py, &c).unbind()),
            )
        })
        .collect())
}

/// Keep the longest verified prefix; returns a dict describing what was done.
#[pyfunction]
pub(super) fn salvage<'py>(
    py: Python<'py>,
    dirpath: PathBuf,
) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let r = py
        .detach(|| walrepair::salvage(&dirpath))
        .map_err(to_py_in(&dirpath))?;
    let d = pyo3::types::PyDict::new(py);
    let damaged = r.damaged.as_ref();
    d.set_item(
        "damaged_file",
        damaged.map(|x| real_path(Some(&dirpath), &x.0).into_os_string()),
    )?;
    d.set_item("damaged_offset", r.damaged.as_ref().map(|x| x.1))?;
    d.set_item("kind", r.kind)?;
    d.set_item("detail", r.detail)?;
    d.set_item("moved", r.moved)?;
    d.set_item("last_kept_index", r.last_kept_index)?;
    d.set_item("dropped_from_segment_index", r.dropped_from_segment_index)?;
    Ok(d)
}

/// Open a WAL for writing and replay it once, cutting away the damage
/// `mode` ("strict", "tolerate-tail" or "salvage") allows, with a copy kept
/// of every byte cut: (Wal, (metadata or None, (term, vote, commit),
/// entries), report). With `indexed`, the entries stay on disk: a
/// `DiskLog` in place of the list.
#[pyfunction]
#[pyo3(signature = (dirpath, index, term, mode, entry_cls, segment_size = DEFAULT_SEGMENT_SIZE, indexed = false, native = false))]
#[allow(clippy::too_many_arguments)]
pub(super) fn recover<'py>(
    py: Python<'py>,
    dirpath: PathBuf,
    index: u64,
    term: u64,
    mode: &str,
    entry_cls: &Bound<'py, PyAny>,
    segment_size: u64,
    indexed: bool,
    native: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    let mode = Mode::parse(mode).ok_or_else(|| {
        PyValueError::new_err(format!(
            "mode must be strict, tolerate-tail or salvage, not {mode:?}"
        ))
    })?;
    let snap = wal_snap(index, term, None);
    let (w, replayed, last_index, report) = if indexed {
        let res = py.detach(|| {
            let mut w = Wal::open_recovering(&dirpath, snap, mode, segment_size)?;
            let r = replay_indexed(&mut w)?;
            let report = w.take_recovery();
            Ok::<_, crate::error::Error>((w, r, report))
        });
        let (w, r, report) = res.map_err(to_py_in(&dirpath))?;
        let last = r.last_index;
        (w, r.into_tuple(py)?, last, report)
    } else if native {
        let mut log = MemLog::new();
        let res = py.detach(|| {
            let (w, r, report) = Wal::recover(&dirpath, snap, mode, segment_size, &mut log)?;
            log.finish(&r.entries)?;
            Ok::<_, crate::error::Error>((w, r, report))
        });
        let (w, r, report) = res.map_err(to_py_in(&dirpath))?;
        let last = r.last_index;
        let log = PyMemLog::from_log(entry_cls, log, index, term)?;
        (
            w,
            replay_tuple(py, &r, Bound::new(py, log)?.into_any())?,
            last,
            report,
        )
    } else {
        let mut sink = ListSink::new(py, entry_cls)?;
        let res = py.detach(|| Wal::recover(&dirpath, snap, mode, segment_size, &mut sink));
        sink.check()?;
        let (w, r, report) = res.map_err(to_py_in(&dirpath))?;
        let last = r.last_index;
        (w, sink.into_tuple(py, r)?, last, report)
    };
    let d = PyDict::new(py);
    let damage = report.damage.as_ref();
    d.set_item(
        "damaged_file",
        damage.map(|x| real_path(Some(&dirpath), &x.0).into_os_string()),
    )?;
    d.set_item("damaged_offset", damage.map(|x| x.1))?;
    d.set_item("damage", damage.map(|x| x.2.clone()))?;
    d.set_item("torn", report.torn)?;
    d.set_item(
        "broken",
        report
            .broken
            .as_ref()
            .map(|b| real_path(Some(&dirpath), b).into_os_string()),
    )?;
    d.set_item("moved", report.moved)?;
    d.set_item("bytes_read", report.bytes_read)?;
    d.set_item("last_index", last_index)?;
    let wal = Bound::new(py, PyWal::wrap(w))?;
    PyTuple::new(py, [wal.into_any(), replayed.into_any(), d.into_any()])
}

/// Delete the oldest unlocked segments so that at most `keep` remain.
#[pyfunction]
pub(super) fn purge_segments(
    py: Python<'_>,
    dirpath: PathBuf,
    keep: usize,
) -> PyResult<Vec<String>> {
    py.detach(|| walrepair::purge_segments(&dirpath, keep))
        .map_err(to_py)
}

/// Configure failpoints ("name=action[@n];..."); only in `failpoints` builds.
#[pyfunction]
pub(super) fn set_failpoints(spec: &str) -> PyResult<()> {
    #[cfg(feature = "failpoints")]
    {
        crate::failpoint::configure(spec).map_err(PyValueError::new_err)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = spec;
        Err(PyValueError::new_err(
            "this build of raftwal has no failpoints (cargo feature `failpoints`)",
        ))
    }
}

/// How many times failpoint `name` was reached (0 without failpoints).
#[pyfunction]
pub(super) fn failpoint_hits(name: &str) -> u64 {
    #[cfg(feature = "failpoints")]
    {
        crate::failpoint::hits(name)
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        0
    }
}
