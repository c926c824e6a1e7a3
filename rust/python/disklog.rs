//! The `DiskLog` class: a replayed log whose entries stay on disk.

use std::sync::{Mutex, MutexGuard, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::entry::EntryFactory;
use super::errors::to_py;
use crate::disklog::DiskLog;

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

impl PyDiskLog {
    /// The class over a replayed `log`.
    pub(super) fn wrap(log: DiskLog) -> Self {
        PyDiskLog {
            inner: Mutex::new(log),
        }
    }
}
