//! The `raftwal._native` extension module: the WAL core seen from Python.
//!
//! Exceptions are raftwal's own (defined in `raftwal/errors.py`) and are
//! mapped from the core's error type in one place, `to_py`. The GIL is
//! released around every write, fsync and wait; no Python code runs while
//! a Rust lock is held.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use pyo3::exceptions::{PyFileExistsError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::{import_exception, intern};

mod entry;

use crate::disklog::DiskLog;
use crate::error::Error;
use crate::fsutil;
use crate::metrics::WalStats;
use crate::record::EntryArena;
use crate::record::{HardState, WalSnap};
use crate::repair as walrepair;
use crate::wal::{EntryRef, EntrySink, Wal, DEFAULT_SEGMENT_SIZE};
use entry::{EntryBase, EntryFactory};

import_exception!(raftwal.errors, CorruptionError);
import_exception!(raftwal.errors, CRCMismatchError);
import_exception!(raftwal.errors, TornTailError);
import_exception!(raftwal.errors, UnknownRecordTypeError);
import_exception!(raftwal.errors, RecordTooLargeError);
import_exception!(raftwal.errors, SliceOutOfRangeError);
import_exception!(raftwal.errors, SnapshotMismatchError);
import_exception!(raftwal.errors, SnapshotNotFoundError);
import_exception!(raftwal.errors, MetadataConflictError);
import_exception!(raftwal.errors, WALNotFoundError);
import_exception!(raftwal.errors, WALLockedError);
import_exception!(raftwal.errors, WALClosedError);
import_exception!(raftwal.errors, WALPoisonedError);

/// The one mapping from the core's errors to Python exceptions.
fn to_py(e: Error) -> PyErr {
    let located = match &e {
        Error::CrcMismatch { file, offset }
        | Error::TornTail { file, offset }
        | Error::Corrupt { file, offset, .. }
        | Error::UnknownRecordType { file, offset, .. }
        | Error::SliceOutOfRange { file, offset, .. }
        | Error::MetadataConflict { file, offset }
        | Error::FrameTooLarge { file, offset, .. }
        | Error::SnapshotMismatch { file, offset, .. } => Some((file.clone(), *offset)),
        _ => None,
    };
    let err = to_py_plain(e);
    if let Some((file, offset)) = located {
        // `path` and `offset` name the damaged segment and the frame's
        // length word, for callers that report or repair it.
        Python::attach(|py| {
            let v = err.value(py);
            let _ = v.setattr("path", file);
            let _ = v.setattr("offset", offset);
        });
    }
    err
}

fn to_py_plain(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Io { source, .. } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, msg)),
            None => PyOSError::new_err(msg),
        },
        Error::CrcMismatch { .. } => CRCMismatchError::new_err(msg),
        Error::TornTail { .. } => TornTailError::new_err(msg),
        Error::Corrupt { .. } => CorruptionError::new_err(msg),
        Error::UnknownRecordType { .. } => UnknownRecordTypeError::new_err(msg),
        Error::RecordTooLarge { .. } | Error::FrameTooLarge { .. } => {
            RecordTooLargeError::new_err(msg)
        }
        Error::SliceOutOfRange { .. } => SliceOutOfRangeError::new_err(msg),
        Error::SnapshotMismatch { .. } => SnapshotMismatchError::new_err(msg),
        Error::SnapshotNotFound { .. } => SnapshotNotFoundError::new_err(msg),
        Error::MetadataConflict { .. } => MetadataConflictError::new_err(msg),
        Error::NotFound(_) => WALNotFoundError::new_err(msg),
        Error::Locked(_) => WALLockedError::new_err(msg),
        Error::Exists(_) => PyFileExistsError::new_err(msg),
        Error::Closed(_) => WALClosedError::new_err(msg),
        Error::Poisoned(_) => WALPoisonedError::new_err(msg),
        Error::Invalid(_) => PyValueError::new_err(msg),
    }
}

fn extract_hard_state(obj: &Bound<'_, PyAny>) -> PyResult<HardState> {
    let py = obj.py();
    Ok(HardState {
        term: obj.getattr(intern!(py, "term"))?.extract()?,
        vote: obj.getattr(intern!(py, "vote"))?.extract()?,
        commit: obj.getattr(intern!(py, "commit"))?.extract()?,
    })
}

/// An entry pulled out of a Python object; the data stays the caller's bytes.
struct OwnedEntry {
    term: u64,
    index: u64,
    etype: i32,
    data: Option<PyBackedBytes>,
}

fn entries_of(seq: &Bound<'_, PyAny>) -> PyResult<Vec<OwnedEntry>> {
    let py = seq.py();
    let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
    for item in seq.try_iter()? {
        let e = item?;
        if let Ok(native) = e.cast::<EntryBase>() {
            let b = native.borrow();
            out.push(OwnedEntry {
                term: b.term,
                index: b.index,
                etype: b.etype,
                data: match &b.data {
                    Some(d) => Some(d.bind(py).clone().into_any().extract()?),
                    None => None,
                },
            });
            continue;
        }
        let data = e.getattr(intern!(py, "data"))?;
        out.push(OwnedEntry {
            term: e.getattr(intern!(py, "term"))?.extract()?,
            index: e.getattr(intern!(py, "index"))?.extract()?,
            etype: e.getattr(intern!(py, "type"))?.extract()?,
            data: if data.is_none() {
                None
            } else {
                Some(data.extract()?)
            },
        });
    }
    Ok(out)
}

/// Pauses Python's cyclic garbage collector while alive (the GIL is held).
struct GcPause(bool);

impl GcPause {
    fn new() -> Self {
        // SAFETY: called with the GIL held (inside a #[pymethods] body).
        GcPause(unsafe { pyo3::ffi::PyGC_Disable() } != 0)
    }
}

impl Drop for GcPause {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: dropped in the same GIL-holding scope that created it.
            unsafe { pyo3::ffi::PyGC_Enable() };
        }
    }
}

/// Turns replayed entries into Python objects a chunk at a time, taking the
/// GIL only for that, so the log is never held twice in full.
struct ListSink {
    list: Py<PyList>,
    factory: EntryFactory,
    error: Option<PyErr>,
}

impl ListSink {
    fn append(&self, py: Python<'_>, arena: &EntryArena) -> PyResult<()> {
        // Many new objects, none in a cycle (and untracked by the factory):
        // keep the cyclic collector from walking them meanwhile.
        let _paused = GcPause::new();
        let list = self.list.bind(py);
        for m in &arena.metas {
            let data = arena.data(m).map(|d| PyBytes::new(py, d));
            list.append(self.factory.make(py, m.term, m.index, m.etype, data)?)?;
        }
        Ok(())
    }

    fn failed(&mut self, e: PyErr) -> Error {
        self.error = Some(e);
        Error::Invalid("building entries failed".into())
    }
}

impl EntrySink for ListSink {
    fn take(&mut self, arena: &EntryArena) -> Result<(), Error> {
        match Python::attach(|py| self.append(py, arena)) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    fn truncate(&mut self, n: usize) -> Result<(), Error> {
        let r = Python::attach(|py| {
            let list = self.list.bind(py);
            list.del_slice(n, list.len())
        });
        r.map_err(|e| self.failed(e))
    }
}

/// A WAL shared between threads: one lock over the core, and a condition
/// variable for group commit (one fsync covers every save pending when it
/// starts; later callers wait for it and find their save covered).
#[pyclass(frozen, name = "Wal", module = "raftwal._native")]
pub struct PyWal {
    inner: Mutex<Wal>,
    cond: Condvar,
    stats: Arc<WalStats>,
}

impl PyWal {
    fn wrap(w: Wal) -> Self {
        PyWal {
            stats: w.stats(),
            inner: Mutex::new(w),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Wal> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Block until saves up to `seq` are on stable storage.
    fn wait_durable(&self, seq: u64) -> Result<(), Error> {
        let mut w = self.lock();
        loop {
            if w.durable_seq >= seq {
                return Ok(());
            }
            if let Some(m) = &w.poisoned {
                return Err(Error::Poisoned(m.clone()));
            }
            if w.is_closed() {
                return Err(Error::Closed("the WAL is closed"));
            }
            if !w.syncing {
                break;
            }
            w = self.cond.wait(w).unwrap_or_else(|p| p.into_inner());
        }
        w.syncing = true;
        let flushed = w.flush_for_sync();
        drop(w);
        let res = flushed.and_then(|(file, s, idx)| {
            let t0 = std::time::Instant::now();
            let synced = fsutil::fdatasync(&file);
            self.stats.fsync.observe(t0.elapsed());
            self.stats.add(&self.stats.fsyncs, 1);
            match synced {
                Ok(()) => Ok((s, idx)),
                Err(e) => Err(Error::io(
                    "fdatasync of the WAL tail failed; the WAL is poisoned",
                    e,
                )),
            }
        });
        let mut w = self.lock();
        w.syncing = false;
        let out = match res {
            Ok((s, idx)) => {
                w.mark_durable(s, idx);
                Ok(())
            }
            Err(e) => {
                if w.poisoned.is_none() {
                    w.poisoned = Some(e.to_string());
                }
                Err(e)
            }
        };
        self.cond.notify_all();
        out
    }
}

fn wal_snap(index: u64, term: u64, conf_state: Option<&[u8]>) -> WalSnap {
    WalSnap {
        index,
        term,
        conf_state: conf_state.map(|c| c.to_vec()),
    }
}

#[pymethods]
impl PyWal {
    #[staticmethod]
    #[pyo3(signature = (dirpath, metadata, segment_size = DEFAULT_SEGMENT_SIZE))]
    fn create(
        py: Python<'_>,
        dirpath: PathBuf,
        metadata: Option<&[u8]>,
        segment_size: u64,
    ) -> PyResult<Self> {
        let md = metadata.map(|m| m.to_vec());
        let w = py
            .detach(|| Wal::create(&dirpath, md.as_deref(), segment_size))
            .map_err(to_py)?;
        Ok(PyWal::wrap(w))
    }

    #[staticmethod]
    #[pyo3(signature = (dirpath, index, term, writable, segment_size = DEFAULT_SEGMENT_SIZE))]
    fn open(
        py: Python<'_>,
        dirpath: PathBuf,
        index: u64,
        term: u64,
        writable: bool,
        segment_size: u64,
    ) -> PyResult<Self> {
        let w = py
            .detach(|| {
                Wal::open(
                    &dirpath,
                    wal_snap(index, term, None),
                    writable,
                    segment_size,
                )
            })
            .map_err(to_py)?;
        Ok(PyWal::wrap(w))
    }

    /// Replay the log: (metadata or None, (term, vote, commit), entries),
    /// each entry built as `entry_cls(term, index, type, data)`.
    fn read_all<'py>(
        &self,
        py: Python<'py>,
        entry_cls: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut sink = ListSink {
            list: PyList::empty(py).unbind(),
            factory: EntryFactory::new(entry_cls)?,
            error: None,
        };
        let res = py.detach(|| {
            let mut w = self.lock();
            let r = w.read_all_overlapped(&mut sink)?;
            let idx = r.last_index.max(w.durable_index);
            let seq = w.seq;
            w.mark_durable(seq, idx);
            Ok::<_, Error>(r)
        });
        if let Some(e) = sink.error.take() {
            return Err(e);
        }
        let r = res.map_err(to_py)?;
        sink.append(py, &r.entries)?;
        let md = r.metadata.map(|m| PyBytes::new(py, &m));
        let hs = (r.state.term, r.state.vote, r.state.commit);
        PyTuple::new(
            py,
            [
                md.into_pyobject(py)?.into_any(),
                hs.into_pyobject(py)?.into_any(),
                sink.list.into_bound(py).into_any(),
            ],
        )
    }

    /// Replay without building entries: (metadata or None, (term, vote,
    /// commit), DiskLog) — the log's entries stay on disk, indexed.
    fn read_all_indexed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let res = py.detach(|| {
            let mut w = self.lock();
            let mut log = DiskLog::new();
            let r = w.read_all_with(Some(&mut log))?;
            log.take(&r.entries)?;
            log.attach(w.dir(), &r.segments)?;
            let idx = r.last_index.max(w.durable_index);
            let seq = w.seq;
            w.mark_durable(seq, idx);
            Ok::<_, Error>((r.metadata, r.state, log))
        });
        let (metadata, state, log) = res.map_err(to_py)?;
        let md = metadata.map(|m| PyBytes::new(py, &m));
        let hs = (state.term, state.vote, state.commit);
        let log = Bound::new(
            py,
            PyDiskLog {
                inner: Mutex::new(log),
            },
        )?;
        PyTuple::new(
            py,
            [
                md.into_pyobject(py)?.into_any(),
                hs.into_pyobject(py)?.into_any(),
                log.into_any(),
            ],
        )
    }

    /// Append entries and a HardState. With `sync`, returns once they are
    /// durable whenever raft's MustSync rule says so. Returns the save's
    /// sequence number, for `sync_to`.
    #[pyo3(signature = (hard_state, entries, sync = true))]
    fn save(
        &self,
        py: Python<'_>,
        hard_state: &Bound<'_, PyAny>,
        entries: &Bound<'_, PyAny>,
        sync: bool,
    ) -> PyResult<u64> {
        let hs = extract_hard_state(hard_state)?;
        let owned = entries_of(entries)?;
        py.detach(|| {
            let refs: Vec<EntryRef<'_>> = owned
                .iter()
                .map(|e| EntryRef {
                    term: e.term,
                    index: e.index,
                    etype: e.etype,
                    data: e.data.as_deref(),
                })
                .collect();
            let (seq, must_sync) = {
                let mut w = self.lock();
                let must = w.save(&hs, &refs, false)?;
                (w.seq, must)
            };
            if must_sync && sync {
                self.wait_durable(seq)?;
            }
            Ok::<_, Error>(seq)
        })
        .map_err(to_py)
    }

    /// Block until every save up to `seq` is durable, sharing fsyncs.
    fn sync_to(&self, py: Python<'_>, seq: u64) -> PyResult<()> {
        py.detach(|| self.wait_durable(seq)).map_err(to_py)
    }

    /// Flush and fdatasync the tail now.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| {
            let mut w = self.lock();
            w.seq += 1;
            let seq = w.seq;
            drop(w);
            self.wait_durable(seq)
        })
        .map_err(to_py)
    }

    #[pyo3(signature = (index, term, conf_state = None))]
    fn save_snapshot(
        &self,
        py: Python<'_>,
        index: u64,
        term: u64,
        conf_state: Option<&[u8]>,
    ) -> PyResult<()> {
        let s = wal_snap(index, term, conf_state);
        py.detach(|| self.lock().save_snapshot(&s)).map_err(to_py)
    }

    fn release_lock_to(&self, py: Python<'_>, index: u64) -> PyResult<()> {
        py.detach(|| self.lock().release_lock_to(index))
            .map_err(to_py)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let r = py.detach(|| {
            let r = self.lock().close();
            self.cond.notify_all();
            r
        });
        r.map_err(to_py)
    }

    fn locked_segments(&self) -> Vec<String> {
        self.lock().locked_segments()
    }

    /// Counters and histograms: {name: value} for counters and
    /// {name: (cumulative bucket counts, count, sum)} for histograms, with
    /// bucket upper bounds in `histogram_buckets`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        let st = &self.stats;
        d.set_item("wal_fsync_duration_seconds", st.fsync.read())?;
        d.set_item("wal_write_duration_seconds", st.write.read())?;
        d.set_item("wal_cut_duration_seconds", st.cut.read())?;
        d.set_item("wal_write_bytes_total", WalStats::get(&st.write_bytes))?;
        d.set_item("wal_saves_total", WalStats::get(&st.saves))?;
        d.set_item("wal_entries_total", WalStats::get(&st.entries))?;
        d.set_item("wal_fsyncs_total", WalStats::get(&st.fsyncs))?;
        d.set_item("wal_cuts_total", WalStats::get(&st.cuts))?;
        Ok(d)
    }

    #[getter]
    fn durable_index(&self) -> u64 {
        self.lock().durable_index
    }

    #[getter]
    fn last_index(&self) -> u64 {
        self.lock().last_index()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.lock().is_closed()
    }

    #[getter]
    fn dirpath(&self) -> PathBuf {
        self.lock().dir().to_path_buf()
    }

    #[getter]
    fn segment_size(&self) -> u64 {
        self.lock().segment_size()
    }
}

/// A replayed log kept on disk: 12 bytes of index per entry, entries read
/// back (and CRC-checked) on demand. Positions count from 0.
#[pyclass(frozen, name = "DiskLog", module = "raftwal._native")]
pub struct PyDiskLog {
    inner: Mutex<DiskLog>,
}

impl PyDiskLog {
    fn lock(&self) -> MutexGuard<'_, DiskLog> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl PyDiskLog {
    fn __len__(&self) -> usize {
        self.lock().len()
    }

    /// The term of the entry at position `k`.
    fn term(&self, k: usize) -> PyResult<u64> {
        let log = self.lock();
        if k >= log.len() {
            return Err(pyo3::exceptions::PyIndexError::new_err(
                "DiskLog position out of range",
            ));
        }
        Ok(log.term(k))
    }

    /// Entries at positions `[lo, hi)`, built as `entry_cls` objects.
    fn read<'py>(
        &self,
        py: Python<'py>,
        lo: usize,
        hi: usize,
        entry_cls: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let factory = EntryFactory::new(entry_cls)?;
        let got = py.detach(|| {
            let mut v = Vec::with_capacity(hi.saturating_sub(lo));
            self.lock().read(lo, hi, |e| v.push(e)).map(|()| v)
        });
        let list = PyList::empty(py);
        for e in got.map_err(to_py)? {
            let data = e.data.as_deref().map(|d| PyBytes::new(py, d));
            list.append(factory.make(py, e.term, e.index, e.etype, data)?)?;
        }
        Ok(list)
    }

    /// Keep the first `n` entries.
    fn truncate(&self, n: usize) {
        self.lock().truncate(n);
    }

    /// Drop the first `n` entries.
    fn drop_front(&self, n: usize) {
        self.lock().drop_front(n);
    }

    /// Bytes of memory the index takes.
    #[getter]
    fn footprint(&self) -> usize {
        self.lock().footprint()
    }
}

/// CRC-32C of `data`, continuing from `crc` (0 starts a new checksum).
#[pyfunction(name = "crc32c")]
#[pyo3(signature = (data, crc = 0))]
fn crc32c_py(py: Python<'_>, data: &[u8], crc: u32) -> u32 {
    if data.len() > 1 << 16 {
        py.detach(|| crate::crc::update(crc, data))
    } else {
        crate::crc::update(crc, data)
    }
}

#[pyfunction]
fn wal_exists(dirpath: PathBuf) -> bool {
    walrepair::exists(&dirpath)
}

#[pyfunction]
fn repair(py: Python<'_>, dirpath: PathBuf) -> PyResult<bool> {
    py.detach(|| walrepair::repair(&dirpath)).map_err(to_py)
}

/// Returns the last HardState as (term, vote, commit).
#[pyfunction]
fn verify(py: Python<'_>, dirpath: PathBuf, index: u64, term: u64) -> PyResult<(u64, u64, u64)> {
    let hs = py
        .detach(|| walrepair::verify(&dirpath, &wal_snap(index, term, None)))
        .map_err(to_py)?;
    Ok((hs.term, hs.vote, hs.commit))
}

/// (index, term, ConfState bytes or None)
type SnapTuple = (u64, u64, Option<Py<PyBytes>>);

/// [(index, term, conf_state bytes or None)] in WAL order.
#[pyfunction]
fn valid_snapshot_entries(py: Python<'_>, dirpath: PathBuf) -> PyResult<Vec<SnapTuple>> {
    let snaps = py
        .detach(|| walrepair::valid_snapshot_entries(&dirpath))
        .map_err(to_py)?;
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
fn salvage<'py>(py: Python<'py>, dirpath: PathBuf) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
    let r = py.detach(|| walrepair::salvage(&dirpath)).map_err(to_py)?;
    let d = pyo3::types::PyDict::new(py);
    d.set_item("damaged_file", r.damaged.as_ref().map(|x| x.0.clone()))?;
    d.set_item("damaged_offset", r.damaged.as_ref().map(|x| x.1))?;
    d.set_item("kind", r.kind)?;
    d.set_item("detail", r.detail)?;
    d.set_item("moved", r.moved)?;
    d.set_item("last_kept_index", r.last_kept_index)?;
    d.set_item("dropped_from_segment_index", r.dropped_from_segment_index)?;
    Ok(d)
}

/// Delete the oldest unlocked segments so that at most `keep` remain.
#[pyfunction]
fn purge_segments(py: Python<'_>, dirpath: PathBuf, keep: usize) -> PyResult<Vec<String>> {
    py.detach(|| walrepair::purge_segments(&dirpath, keep))
        .map_err(to_py)
}

/// Configure failpoints ("name=action[@n];..."); only in `failpoints` builds.
#[pyfunction]
fn set_failpoints(spec: &str) -> PyResult<()> {
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
fn failpoint_hits(name: &str) -> u64 {
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

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWal>()?;
    m.add_class::<EntryBase>()?;
    m.add_class::<PyDiskLog>()?;
    m.add_function(wrap_pyfunction!(crc32c_py, m)?)?;
    m.add_function(wrap_pyfunction!(wal_exists, m)?)?;
    m.add_function(wrap_pyfunction!(repair, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(valid_snapshot_entries, m)?)?;
    m.add_function(wrap_pyfunction!(purge_segments, m)?)?;
    m.add_function(wrap_pyfunction!(salvage, m)?)?;
    m.add_function(wrap_pyfunction!(set_failpoints, m)?)?;
    m.add_function(wrap_pyfunction!(failpoint_hits, m)?)?;
    m.add("FAILPOINTS", crate::failpoint::ENABLED)?;
    m.add("histogram_buckets", crate::metrics::BUCKETS.to_vec())?;
    m.add("DEFAULT_SEGMENT_SIZE", DEFAULT_SEGMENT_SIZE)?;
    Ok(())
}
