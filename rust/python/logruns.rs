//! `replay_runs`, `LogRuns` and `LogScan`: the CLI's streaming reads. A
//! replay keeps the recovered log as runs (memory independent of its
//! length); a scan reads the surviving entries of a range back from the
//! same files, building Python objects for those only.
//!
//! Locks: `PyWal::slot` during the replay (GIL released), then each
//! object's own mutex, never two at once and never while taking the GIL.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::entry::EntryFactory;
use super::errors::{to_py, to_py_in};
use super::wal::PyWal;
use crate::error::Error;
use crate::logruns::{LogRuns, Scan};

/// Replay `wal` keeping the recovered log as runs: (metadata or None,
/// (term, vote, commit), LogRuns).
#[pyfunction]
pub fn replay_runs<'py>(py: Python<'py>, wal: &Bound<'py, PyWal>) -> PyResult<Bound<'py, PyTuple>> {
    let wal = wal.get();
    let res = py.detach(|| {
        let mut w = wal.wal.lock();
        let files = w.replay_inputs();
        let mut runs = LogRuns::new(w.dir(), files);
        let mut r = w.read_all_with(Some(&mut runs))?;
        runs.finish(&mut r.entries, r.last_index)?;
        Ok::<_, Error>((r.metadata, r.state, runs))
    });
    let (metadata, state, runs) = res.map_err(to_py_in(wal.wal.dir()))?;
    let md = metadata.map(|m| PyBytes::new(py, &m));
    let hs = (state.term, state.vote, state.commit);
    let runs = Bound::new(
        py,
        PyLogRuns {
            inner: Mutex::new(runs),
        },
    )?;
    PyTuple::new(
        py,
        [
            md.into_pyobject(py)?.into_any(),
            hs.into_pyobject(py)?.into_any(),
            runs.into_any(),
        ],
    )
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The log a replay recovered, as runs: its length, terms and a scan.
#[pyclass(frozen, name = "LogRuns", module = "raftwal._native")]
pub struct PyLogRuns {
    inner: Mutex<LogRuns>,
}

#[pymethods]
impl PyLogRuns {
    fn __len__(&self, py: Python<'_>) -> usize {
        py.detach(|| locked(&self.inner).len())
    }

    /// Index of the first entry (the replay's snapshot index + 1).
    #[getter]
    fn first_index(&self, py: Python<'_>) -> u64 {
        py.detach(|| locked(&self.inner).first_index())
    }

    /// The distinct terms of the entries, in increasing order.
    fn terms(&self, py: Python<'_>) -> Vec<u64> {
        py.detach(|| locked(&self.inner).distinct_terms())
    }

    /// How many runs the log is kept as.
    #[getter]
    fn runs(&self, py: Python<'_>) -> usize {
        py.detach(|| locked(&self.inner).runs().len())
    }

    /// The entries at positions `[lo, hi)` (of type `etype` only, when
    /// given), as `entry_cls` objects, in lists of at most `chunk`.
    #[pyo3(signature = (lo, hi, entry_cls, etype = None, chunk = 4096))]
    fn scan(
        &self,
        py: Python<'_>,
        lo: usize,
        hi: usize,
        entry_cls: &Bound<'_, PyAny>,
        etype: Option<i32>,
        chunk: usize,
    ) -> PyResult<PyLogScan> {
        let factory = EntryFactory::new(entry_cls)?;
        let scan = py
            .detach(|| locked(&self.inner).scan(lo, hi, etype))
            .map_err(to_py)?;
        Ok(PyLogScan {
            scan: Mutex::new(scan),
            factory,
            chunk: chunk.max(1),
        })
    }

    /// Let go of the segment files.
    fn close(&self, py: Python<'_>) {
        py.detach(|| locked(&self.inner).close());
    }
}

/// An iterator of lists of entries (see `LogRuns.scan`).
#[pyclass(frozen, name = "LogScan", module = "raftwal._native")]
pub struct PyLogScan {
    scan: Mutex<Scan>,
    factory: EntryFactory,
    chunk: usize,
}

#[pymethods]
impl PyLogScan {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let got = py.detach(|| {
            let mut v = Vec::new();
            locked(&self.scan)
                .next_chunk(self.chunk, |e| v.push(e))
                .map(|_| v)
        });
        let got = got.map_err(to_py)?;
        if got.is_empty() {
            return Ok(None);
        }
        let list = PyList::empty(py);
        for e in got {
            let data = e.data.as_deref().map(|d| PyBytes::new(py, d));
            list.append(self.factory.make(py, e.term, e.index, e.etype, data)?)?;
        }
        Ok(Some(list))
    }
}
