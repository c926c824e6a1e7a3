//! The `raftwal._native` extension module: the WAL core seen from Python.
//!
//! Exceptions are raftwal's own (defined in `raftwal/errors.py`) and are
//! mapped from the core's error type in one place, `to_py`. The GIL is
//! released around every write, fsync and wait; no Python code runs while
//! a Rust lock is held.
//!
//! Lock order. The GIL comes first and is never taken while a Rust lock is
//! held; a Rust lock is waited for only with the GIL released:
//!
//! 1. the GIL;
//! 2. `PyWal::slot` (the WAL core, held across its writes and fsyncs), or
//!    `PyDiskLog::inner` (held across its reads), never both;
//! 3. the core's own: the zero-ahead state, the segment allocator's channel.
//!
//! A thread holding the GIL takes a lock only with `try_lock` (and releases
//! the GIL to wait when it is taken). A replay does not hold `slot` at all:
//! it checks the core out of it, so that the entry sink, which takes the
//! GIL for each chunk, runs with no Rust lock held; other callers wait,
//! GIL released, for the core to come back. Properties read atomics
//! published when a locked call ends (`Shown`) and `stats()` reads the
//! core's atomic counters: neither waits on a save, a replay or a cut.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};

use pyo3::exceptions::{PyFileExistsError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::{import_exception, intern};

mod entry;
mod logruns;

use crate::disklog::DiskLog;
use crate::error::Error;
use crate::fsutil;
use crate::metrics::WalStats;
use crate::record::EntryArena;
use crate::record::{HardState, WalSnap};
use crate::repair as walrepair;
use crate::wal::{EntryRef, EntrySink, Wal, DEFAULT_SEGMENT_SIZE, FORKED};
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
import_exception!(raftwal.errors, WALReadOnlyError);
import_exception!(raftwal.errors, EntryTooLargeError);

/// The one mapping from the core's errors to Python exceptions.
fn to_py(e: Error) -> PyErr {
    to_py_at(None, e)
}

/// `to_py` for an error from a WAL directory `dir`: the `path` of a damaged
/// file is then the path itself, whatever its bytes.
fn to_py_in(dir: &Path) -> impl Fn(Error) -> PyErr + '_ {
    move |e| to_py_at(Some(dir), e)
}

/// A file the core names (as `display()` shows it: a path need not be
/// UTF-8) as the path it is, when it is an entry of `dir`.
fn real_path(dir: Option<&Path>, shown: &str) -> PathBuf {
    let prefix = dir.map(|d| format!("{}/", d.display()));
    match prefix.as_deref().and_then(|p| shown.strip_prefix(p)) {
        Some(name) if !name.is_empty() && !name.contains('/') => {
            dir.map_or_else(|| PathBuf::from(shown), |d| d.join(name))
        }
        _ => PathBuf::from(shown),
    }
}

fn to_py_at(dir: Option<&Path>, e: Error) -> PyErr {
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
            let _ = v.setattr("path", real_path(dir, &file).into_os_string());
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
        Error::EntryTooLarge { .. } => EntryTooLargeError::new_err(msg),
        Error::SliceOutOfRange { .. } => SliceOutOfRangeError::new_err(msg),
        Error::SnapshotMismatch { .. } => SnapshotMismatchError::new_err(msg),
        Error::SnapshotNotFound { .. } => SnapshotNotFoundError::new_err(msg),
        Error::MetadataConflict { .. } => MetadataConflictError::new_err(msg),
        Error::NotFound(_) => WALNotFoundError::new_err(msg),
        Error::Locked(_) => WALLockedError::new_err(msg),
        Error::Exists(_) => PyFileExistsError::new_err(msg),
        Error::Closed(_) => WALClosedError::new_err(msg),
        Error::ReadOnly => WALReadOnlyError::new_err(msg),
        Error::Poisoned(_) => WALPoisonedError::new_err(msg),
        Error::Invalid(_) => PyValueError::new_err(msg),
    }
}

/// A TypeError naming what was wanted and what came, for a save's arguments.
fn wrong_type(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let got = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    pyo3::exceptions::PyTypeError::new_err(format!("{what}, not {got}"))
}

fn extract_hard_state(obj: &Bound<'_, PyAny>) -> PyResult<HardState> {
    let py = obj.py();
    if obj.is_none() || !obj.hasattr(intern!(py, "commit"))? {
        return Err(wrong_type(
            "hard_state must be a raftwal.HardState (HardState() saves none)",
            obj,
        ));
    }
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
    let items = seq
        .try_iter()
        .map_err(|_| wrong_type("entries must be a sequence of raftwal.Entry", seq))?;
    for item in items {
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
        if !(e.hasattr(intern!(py, "index"))? && e.hasattr(intern!(py, "data"))?) {
            return Err(wrong_type("entries must be raftwal.Entry objects", &e));
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

/// What the properties show, published whenever a locked call ends: read
/// without any lock, so a getter never waits on a save, a replay or a cut.
#[derive(Default)]
struct Shown {
    durable_index: AtomicU64,
    last_index: AtomicU64,
    closed: AtomicBool,
}

impl Shown {
    fn publish(&self, w: &Wal) {
        self.durable_index.store(w.durable_index, Ordering::Release);
        self.last_index.store(w.last_index(), Ordering::Release);
        self.closed.store(w.is_closed(), Ordering::Release);
    }
}

/// A WAL shared between threads: one lock over the core, and a condition
/// variable for group commit (one fsync covers every save pending when it
/// starts; later callers wait for it and find their save covered). A
/// replay checks the core out of the lock (the slot is empty meanwhile),
/// so that building Python objects never happens with the lock held.
#[pyclass(frozen, name = "Wal", module = "raftwal._native")]
pub struct PyWal {
    /// The core; `None` while a replay has it checked out.
    slot: Mutex<Option<Wal>>,
    /// Signalled when a sync ends and when a replay hands the core back.
    cond: Condvar,
    stats: Arc<WalStats>,
    shown: Shown,
    dir: PathBuf,
    segment_size: u64,
    /// The process that opened the WAL (see `Wal::is_owner`).
    owner: u32,
}

/// The core, locked; publishes what the properties show when released.
struct WalGuard<'a> {
    g: Option<MutexGuard<'a, Option<Wal>>>,
    shown: &'a Shown,
}

impl WalGuard<'_> {
    /// Release the lock until `cond` is signalled and the core is back.
    fn wait(mut self, cond: &Condvar) -> Self {
        if let Some(g) = self.g.take() {
            if let Some(w) = g.as_ref() {
                self.shown.publish(w);
            }
            let mut g = cond.wait(g).unwrap_or_else(|p| p.into_inner());
            while g.is_none() {
                g = cond.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            self.g = Some(g);
        }
        self
    }
}

impl std::ops::Deref for WalGuard<'_> {
    type Target = Wal;
    fn deref(&self) -> &Wal {
        self.g
            .as_ref()
            .and_then(|g| g.as_ref())
            .expect("a locked WAL slot holds the core")
    }
}

impl std::ops::DerefMut for WalGuard<'_> {
    fn deref_mut(&mut self) -> &mut Wal {
        self.g
            .as_mut()
            .and_then(|g| g.as_mut())
            .expect("a locked WAL slot holds the core")
    }
}

impl Drop for WalGuard<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.g.as_ref().and_then(|g| g.as_ref()) {
            self.shown.publish(w);
        }
    }
}

/// The core taken out of its slot for a replay; handed back when dropped.
struct CheckedOut<'a> {
    wal: Option<Wal>,
    from: &'a PyWal,
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.wal.take() {
            self.from.shown.publish(&w);
            let mut g = self.from.slot.lock().unwrap_or_else(|p| p.into_inner());
            *g = Some(w);
            drop(g);
            self.from.cond.notify_all();
        }
    }
}

impl PyWal {
    fn wrap(w: Wal) -> Self {
        let shown = Shown::default();
        shown.publish(&w);
        PyWal {
            stats: w.stats(),
            dir: w.dir().to_path_buf(),
            segment_size: w.segment_size(),
            owner: std::process::id(),
            shown,
            slot: Mutex::new(Some(w)),
            cond: Condvar::new(),
        }
    }

    /// The locked slot, once it holds the core. Only with the GIL released.
    fn lock_slot(&self) -> MutexGuard<'_, Option<Wal>> {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        while g.is_none() {
            g = self.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g
    }

    /// The core, locked. Only with the GIL released.
    fn lock(&self) -> WalGuard<'_> {
        WalGuard {
            g: Some(self.lock_slot()),
            shown: &self.shown,
        }
    }

    /// The core, out of its slot until the result is dropped (other
    /// callers wait for it). Only with the GIL released.
    fn check_out(&self) -> CheckedOut<'_> {
        let wal = self.lock_slot().take();
        CheckedOut { wal, from: self }
    }

    /// A process forked from the owner must not write, and must not wait
    /// for the lock either: a thread of the parent may have held it at the
    /// fork, and that thread does not exist here.
    fn check_owner(&self) -> Result<(), Error> {
        if std::process::id() != self.owner {
            return Err(Error::Closed(FORKED));
        }
        Ok(())
    }

    /// Block until saves up to `seq` are on stable storage.
    fn wait_durable(&self, seq: u64) -> Result<(), Error> {
        self.check_owner()?;
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
            w = w.wait(&self.cond);
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
        drop(w);
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
            // The sink takes the GIL for each chunk: the core is checked
            // out, not locked, meanwhile.
            let mut out = self.check_out();
            let Some(w) = out.wal.as_mut() else {
                return Err(Error::Closed("the WAL is closed"));
            };
            let r = w.read_all_overlapped(&mut sink)?;
            let idx = r.last_index.max(w.durable_index);
            let seq = w.seq;
            w.mark_durable(seq, idx);
            Ok::<_, Error>(r)
        });
        if let Some(e) = sink.error.take() {
            return Err(e);
        }
        let r = res.map_err(to_py_in(&self.dir))?;
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
            // the log keeps the replay's descriptors: each segment opened once
            let files = w.replay_inputs();
            let r = w.read_all_with(Some(&mut log))?;
            log.take(&r.entries)?;
            log.attach_files(w.dir(), files);
            let idx = r.last_index.max(w.durable_index);
            let seq = w.seq;
            w.mark_durable(seq, idx);
            Ok::<_, Error>((r.metadata, r.state, log))
        });
        let (metadata, state, log) = res.map_err(to_py_in(&self.dir))?;
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
        // First, before anything that may wait: in a forked child even a
        // lazily interned attribute name may be "being initialized" forever
        // by a thread of the parent that does not exist here.
        self.check_owner().map_err(to_py)?;
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
            self.check_owner()?;
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
        py.detach(|| {
            self.check_owner()?;
            self.lock().save_snapshot(&s)
        })
        .map_err(to_py)
    }

    fn release_lock_to(&self, py: Python<'_>, index: u64) -> PyResult<()> {
        py.detach(|| {
            self.check_owner()?;
            self.lock().release_lock_to(index)
        })
        .map_err(to_py)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let r = py.detach(|| {
            if self.check_owner().is_err() {
                // Let go of this process's handles if the lock is free
                // (the core does no I/O in a forked child), never wait.
                if let Ok(mut g) = self.slot.try_lock() {
                    if let Some(w) = g.as_mut() {
                        let _ = w.close();
                        self.shown.publish(w);
                    }
                }
                return Err(Error::Closed(FORKED));
            }
            let r = self.lock().close();
            self.cond.notify_all();
            r
        });
        r.map_err(to_py)
    }

    fn locked_segments(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.lock().locked_segments())
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
        self.shown.durable_index.load(Ordering::Acquire)
    }

    #[getter]
    fn last_index(&self) -> u64 {
        self.shown.last_index.load(Ordering::Acquire)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.shown.closed.load(Ordering::Acquire)
    }

    #[getter]
    fn dirpath(&self) -> PathBuf {
        self.dir.clone()
    }

    #[getter]
    fn segment_size(&self) -> u64 {
        self.segment_size
    }
}

/// A replayed log kept on disk: 12 bytes of index per entry, entries read
/// back (and CRC-checked) on demand. Positions count from 0.
#[pyclass(frozen, name = "DiskLog", module = "raftwal._native")]
pub struct PyDiskLog {
    inner: Mutex<DiskLog>,
}

impl PyDiskLog {
    /// Only with the GIL released.
    fn lock(&self) -> MutexGuard<'_, DiskLog> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the log: at once if the lock is free, else waiting for
    /// it with the GIL released.
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut DiskLog) -> R + Send) -> R {
        match self.inner.try_lock() {
            Ok(mut g) => f(&mut g),
            Err(TryLockError::Poisoned(p)) => f(&mut p.into_inner()),
            Err(TryLockError::WouldBlock) => py.detach(|| f(&mut self.lock())),
        }
    }
}

#[pymethods]
impl PyDiskLog {
    fn __len__(&self, py: Python<'_>) -> usize {
        self.with(py, |log| log.len())
    }

    /// The term of the entry at position `k`.
    fn term(&self, py: Python<'_>, k: usize) -> PyResult<u64> {
        let term = self.with(py, |log| (k < log.len()).then(|| log.term(k)));
        term.ok_or_else(|| pyo3::exceptions::PyIndexError::new_err("DiskLog position out of range"))
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

    /// The distinct terms of the entries, in increasing order.
    fn terms(&self, py: Python<'_>) -> Vec<u64> {
        self.with(py, |log| log.distinct_terms())
    }

    /// Keep the first `n` entries.
    fn truncate(&self, py: Python<'_>, n: usize) {
        self.with(py, |log| log.truncate(n));
    }

    /// Drop the first `n` entries.
    fn drop_front(&self, py: Python<'_>, n: usize) {
        self.with(py, |log| log.drop_front(n));
    }

    /// Bytes of memory the index takes.
    #[getter]
    fn footprint(&self, py: Python<'_>) -> usize {
        self.with(py, |log| log.footprint())
    }

    /// Let go of every segment file; reading entries raises
    /// `WALClosedError` afterwards (terms and the length still answer).
    fn close(&self, py: Python<'_>) {
        self.with(py, |log| log.close());
    }

    /// How many segment files the log holds open.
    #[getter]
    fn open_files(&self, py: Python<'_>) -> usize {
        self.with(py, |log| log.open_files())
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

/// True if an entry that serializes to `byte_size` bytes fits in a record
/// etcd 3.4 reads.
#[pyfunction]
fn entry_fits(byte_size: usize) -> bool {
    crate::wal::entry_fits(byte_size)
}

/// True if metadata of `size` bytes fits in a record etcd 3.4 reads.
#[pyfunction]
fn metadata_fits(size: usize) -> bool {
    crate::wal::metadata_fits(size)
}

#[pyfunction]
fn wal_exists(dirpath: PathBuf) -> bool {
    walrepair::exists(&dirpath)
}

#[pyfunction]
fn repair(py: Python<'_>, dirpath: PathBuf) -> PyResult<bool> {
    py.detach(|| walrepair::repair(&dirpath))
        .map_err(to_py_in(&dirpath))
}

/// Returns the last HardState as (term, vote, commit).
#[pyfunction]
fn verify(py: Python<'_>, dirpath: PathBuf, index: u64, term: u64) -> PyResult<(u64, u64, u64)> {
    let hs = py
        .detach(|| walrepair::verify(&dirpath, &wal_snap(index, term, None)))
        .map_err(to_py_in(&dirpath))?;
    Ok((hs.term, hs.vote, hs.commit))
}

/// (index, term, ConfState bytes or None)
type SnapTuple = (u64, u64, Option<Py<PyBytes>>);

/// [(index, term, conf_state bytes or None)] in WAL order.
#[pyfunction]
fn valid_snapshot_entries(py: Python<'_>, dirpath: PathBuf) -> PyResult<Vec<SnapTuple>> {
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
fn salvage<'py>(py: Python<'py>, dirpath: PathBuf) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
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
    m.add_class::<logruns::PyLogRuns>()?;
    m.add_class::<logruns::PyLogScan>()?;
    m.add_function(wrap_pyfunction!(logruns::replay_runs, m)?)?;
    m.add_function(wrap_pyfunction!(crc32c_py, m)?)?;
    m.add_function(wrap_pyfunction!(wal_exists, m)?)?;
    m.add_function(wrap_pyfunction!(entry_fits, m)?)?;
    m.add_function(wrap_pyfunction!(metadata_fits, m)?)?;
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
