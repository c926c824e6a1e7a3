//! The `Wal` class: the core's shared writer (`SharedWal`) seen from
//! Python. Every call that may wait (a lock, a write, an fsync, a replay)
//! releases the GIL first.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::convert::{
    datas_of, entries_of, extract_hard_state, replay_tuple, wal_snap, ListSink, OwnedEntry,
};
use super::disklog::PyDiskLog;
use super::errors::{to_py, to_py_in};
use super::memlog::PyMemLog;
use crate::disklog::DiskLog;
use crate::error::Error;
use crate::memlog::MemLog;
use crate::metrics::WalStats;
use crate::record::HardState;
use crate::wal::{EntryRef, EntrySink, SharedWal, Wal, DEFAULT_SEGMENT_SIZE};

/// A WAL shared between threads; see `SharedWal` for the lock and group
/// commit. A replay checks the core out of the lock, so that building
/// Python objects never happens with a Rust lock held.
#[pyclass(frozen, name = "Wal", module = "raftwal._native")]
pub struct PyWal {
    pub(super) wal: SharedWal,
}

impl PyWal {
    pub(super) fn wrap(w: Wal) -> Self {
        PyWal {
            wal: SharedWal::new(w),
        }
    }

    /// Run a save. An unsynced one (save_async) that finds the WAL's lock
    /// free and needs no cut runs with the GIL held: it only encodes into
    /// the write buffer, and handing the GIL over and back would cost more
    /// than that (the thread resolving futures takes it meanwhile). Any
    /// other save releases the GIL first.
    fn saved(
        &self,
        py: Python<'_>,
        hs: &HardState,
        refs: &[EntryRef<'_>],
        sync: bool,
    ) -> PyResult<u64> {
        if !sync {
            if let Some(r) = self.wal.try_save_unsynced(hs, refs) {
                return r.map_err(to_py);
            }
        }
        py.detach(|| self.wal.save(hs, refs, sync)).map_err(to_py)
    }
}

#[pymethods]
impl PyWal {
    /// Create a WAL in `dirpath` (empty or absent) with `metadata` (None: no
    /// field) and its first segment, through a temporary directory.
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

    /// Open the WAL in `dirpath` to replay from the snapshot at (`index`,
    /// `term`); `writable` takes the segments' locks.
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
    /// each entry built as `entry_cls(term, index, type, data)`; with
    /// `native`, the entries are a `MemLog` (dummy at the snapshot opened at).
    #[pyo3(signature = (entry_cls, native = false))]
    fn read_all<'py>(
        &self,
        py: Python<'py>,
        entry_cls: &Bound<'py, PyAny>,
        native: bool,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if native {
            let mut log = MemLog::new();
            let res = py.detach(|| {
                self.wal.with_checked_out(|w| {
                    let at = w.start_at();
                    let r = w.read_all_overlapped(&mut log)?;
                    log.finish(&r.entries)?;
                    Ok((r, at))
                })
            });
            let (r, (index, term)) = res.map_err(to_py_in(self.wal.dir()))?;
            let log = PyMemLog::from_log(entry_cls, log, index, term)?;
            return replay_tuple(py, &r, Bound::new(py, log)?.into_any());
        }
        let mut sink = ListSink::new(py, entry_cls)?;
        // The sink takes the GIL for each chunk: the core is checked out,
        // not locked, meanwhile.
        let res = py.detach(|| {
            self.wal
                .with_checked_out(|w| w.read_all_overlapped(&mut sink))
        });
        sink.check()?;
        let r = res.map_err(to_py_in(self.wal.dir()))?;
        sink.into_tuple(py, r)
    }

    /// Replay without building entries: (metadata or None, (term, vote,
    /// commit), DiskLog) — the log's entries stay on disk, indexed.
    fn read_all_indexed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let res = py.detach(|| replay_indexed(&mut self.wal.lock()));
        let indexed = res.map_err(to_py_in(self.wal.dir()))?;
        indexed.into_tuple(py)
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
        self.wal.check_owner().map_err(to_py)?;
        let hs = extract_hard_state(hard_state)?;
        let owned = entries_of(entries)?;
        let refs: Vec<EntryRef<'_>> = owned.iter().map(OwnedEntry::as_entry).collect();
        self.saved(py, &hs, &refs, sync)
    }

    /// `save` of the entries `first_index`, `first_index + 1`, ... of term
    /// `term` (normal entries) whose data are `datas` (bytes-like, or None
    /// for no data field), without an Entry object per entry.
    #[pyo3(signature = (hard_state, term, first_index, datas, sync = true))]
    fn save_datas(
        &self,
        py: Python<'_>,
        hard_state: &Bound<'_, PyAny>,
        term: u64,
        first_index: u64,
        datas: &Bound<'_, PyAny>,
        sync: bool,
    ) -> PyResult<u64> {
        self.wal.check_owner().map_err(to_py)?;
        let hs = extract_hard_state(hard_state)?;
        let owned = datas_of(datas)?;
        if !owned.is_empty() && first_index.checked_add(owned.len() as u64 - 1).is_none() {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "first_index + len(datas) - 1 must be below 2**64",
            ));
        }
        let refs: Vec<EntryRef<'_>> = owned
            .iter()
            .enumerate()
            .map(|(k, d)| EntryRef {
                term,
                index: first_index + k as u64,
                etype: 0,
                data: d.as_deref(),
            })
            .collect();
        self.saved(py, &hs, &refs, sync)
    }

    /// Block until every save up to `seq` is durable, sharing fsyncs.
    fn sync_to(&self, py: Python<'_>, seq: u64) -> PyResult<()> {
        py.detach(|| self.wal.sync_to(seq)).map_err(to_py)
    }

    /// The background syncer, run by a thread of its own: fsyncs back to
    /// back while an unsynced save waits, without the GIL, until
    /// `stop_sync_loop` or close. Raises what poisoned the WAL.
    fn sync_loop(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.wal.sync_loop()).map_err(to_py)
    }

    /// Make `sync_loop` return.
    fn stop_sync_loop(&self) {
        self.wal.stop_sync_loop();
    }

    /// Flush and fdatasync the tail now.
    fn sync(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.wal.sync()).map_err(to_py)
    }

    /// Append a snapshot record (`conf_state`: a serialized ConfState, or
    /// None for etcd 3.4's form) and sync.
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
            self.wal.check_owner()?;
            self.wal.lock().save_snapshot(&s)
        })
        .map_err(to_py)
    }

    /// Unlock the segments a snapshot at `index` no longer needs (etcd's
    /// rule: everything before the predecessor of the segment holding it).
    fn release_lock_to(&self, py: Python<'_>, index: u64) -> PyResult<()> {
        py.detach(|| {
            self.wal.check_owner()?;
            self.wal.lock().release_lock_to(index)
        })
        .map_err(to_py)
    }

    /// Sync what is buffered and release every lock; closing twice is
    /// harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.wal.close()).map_err(to_py)
    }

    /// The names of the segments this writer holds locked, oldest first.
    fn locked_segments(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.wal.lock().locked_segments())
    }

    /// Counters and histograms: {name: value} for counters and
    /// {name: (cumulative bucket counts, count, sum)} for histograms, with
    /// bucket upper bounds in `histogram_buckets`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        let st = self.wal.stats();
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

    /// The last index known to be on stable storage.
    #[getter]
    fn durable_index(&self) -> u64 {
        self.wal.durable_index()
    }

    /// The last index appended (durable or not).
    #[getter]
    fn last_index(&self) -> u64 {
        self.wal.last_index()
    }

    /// True once `close` ran.
    #[getter]
    fn closed(&self) -> bool {
        self.wal.is_closed()
    }

    /// The WAL directory.
    #[getter]
    fn dirpath(&self) -> PathBuf {
        self.wal.dir().to_path_buf()
    }

    /// Preallocation size and cut threshold of the segments, in bytes.
    #[getter]
    fn segment_size(&self) -> u64 {
        self.wal.segment_size()
    }
}

/// A replay whose entries stay on disk: metadata, HardState, the indexed
/// log and the last index replayed.
pub(super) struct Indexed {
    metadata: Option<Vec<u8>>,
    state: HardState,
    log: DiskLog,
    pub(super) last_index: u64,
}

/// Replay `w` into a `DiskLog` that keeps the replay's descriptors (each
/// segment is opened once).
pub(super) fn replay_indexed(w: &mut Wal) -> Result<Indexed, Error> {
    let mut log = DiskLog::new();
    let files = w.replay_inputs();
    let mut r = w.read_all_with(Some(&mut log))?;
    log.take(&mut r.entries)?;
    log.attach_files(w.dir(), files);
    Ok(Indexed {
        metadata: r.metadata,
        state: r.state,
        log,
        last_index: r.last_index,
    })
}

impl Indexed {
    /// (metadata or None, (term, vote, commit), DiskLog).
    pub(super) fn into_tuple(self, py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
        let md = self.metadata.map(|m| PyBytes::new(py, &m));
        let hs = (self.state.term, self.state.vote, self.state.commit);
        let log = Bound::new(py, PyDiskLog::wrap(self.log))?;
        PyTuple::new(
            py,
            [
                md.into_pyobject(py)?.into_any(),
                hs.into_pyobject(py)?.into_any(),
                log.into_any(),
            ],
        )
    }
}
