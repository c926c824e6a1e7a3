//! Conversions between Python objects and the core's types, for a save's
//! arguments and a replay's entries.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::entry::{EntryBase, EntryFactory};
use crate::error::Error;
use crate::record::{EntryArena, HardState, WalSnap};
use crate::wal::{EntryRef, EntrySink, ReadResult};

/// A TypeError naming what was wanted and what came, for a save's arguments.
pub(super) fn wrong_type(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let got = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    pyo3::exceptions::PyTypeError::new_err(format!("{what}, not {got}"))
}

pub(super) fn extract_hard_state(obj: &Bound<'_, PyAny>) -> PyResult<HardState> {
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
pub(super) struct OwnedEntry {
    term: u64,
    index: u64,
    etype: i32,
    data: Option<PyBackedBytes>,
}

impl OwnedEntry {
    /// The entry as the core saves it, borrowing the data.
    pub(super) fn as_entry(&self) -> EntryRef<'_> {
        EntryRef {
            term: self.term,
            index: self.index,
            etype: self.etype,
            data: self.data.as_deref(),
        }
    }
}

/// Call `f(k, data)` for each item of `datas`, a sequence of entry data
/// (`None` for an entry with no data field), until it returns false; what
/// both `save_entries` refuse is refused here: bytes or str in place of
/// the sequence, something that is not iterable, a str item.
pub(super) fn for_each_data<'py>(
    datas: &Bound<'py, PyAny>,
    mut f: impl FnMut(usize, Option<Bound<'py, PyAny>>) -> PyResult<bool>,
) -> PyResult<()> {
    const WANTED: &str = "datas must be a sequence of bytes (one per entry)";
    if datas.is_instance_of::<PyBytes>() || datas.is_instance_of::<pyo3::types::PyString>() {
        return Err(wrong_type(WANTED, datas));
    }
    let items = datas.try_iter().map_err(|_| wrong_type(WANTED, datas))?;
    for (k, item) in items.enumerate() {
        let d = item?;
        if d.is_instance_of::<pyo3::types::PyString>() {
            return Err(wrong_type(&format!("datas[{k}] must be bytes"), &d));
        }
        if !f(k, (!d.is_none()).then_some(d))? {
            break;
        }
    }
    Ok(())
}

/// Entry data given as a sequence of bytes or bytearrays (None: no data
/// field), held without a copy where they are bytes.
pub(super) fn datas_of(seq: &Bound<'_, PyAny>) -> PyResult<Vec<Option<PyBackedBytes>>> {
    let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
    for_each_data(seq, |k, d| {
        out.push(match d {
            None => None,
            Some(d) => Some(
                d.extract::<PyBackedBytes>()
                    .map_err(|_| wrong_type(&format!("datas[{k}] must be bytes"), &d))?,
            ),
        });
        Ok(true)
    })?;
    Ok(out)
}

pub(super) fn entries_of(seq: &Bound<'_, PyAny>) -> PyResult<Vec<OwnedEntry>> {
    let py = seq.py();
    let mut out = Vec::with_capacity(seq.len().unwrap_or(0));
    let items = seq
        .try_iter()
        .map_err(|_| wrong_type("entries must be a sequence of raftwal.Entry", seq))?;
    for (k, item) in items.enumerate() {
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
            return Err(wrong_type(
                &format!("entries[{k}] must be a raftwal.Entry"),
                &e,
            ));
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
pub(super) struct ListSink {
    list: Py<PyList>,
    factory: EntryFactory,
    error: Option<PyErr>,
}

impl ListSink {
    /// A sink building `entry_cls(term, index, type, data)` objects.
    pub(super) fn new(py: Python<'_>, entry_cls: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(ListSink {
            list: PyList::empty(py).unbind(),
            factory: EntryFactory::new(entry_cls)?,
            error: None,
        })
    }

    /// The sink's own failure, if building an entry failed.
    pub(super) fn check(&mut self) -> PyResult<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The replay's result as (metadata or None, (term, vote, commit),
    /// entries), the entries not handed over yet built too.
    pub(super) fn into_tuple<'py>(
        self,
        py: Python<'py>,
        r: ReadResult,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.append(py, &r.entries)?;
        replay_tuple(py, &r, self.list.into_bound(py).into_any())
    }

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
    fn take(&mut self, arena: &mut EntryArena) -> Result<(), Error> {
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

/// A replay's result as (metadata or None, (term, vote, commit), entries).
pub(super) fn replay_tuple<'py>(
    py: Python<'py>,
    r: &ReadResult,
    entries: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    let md = r.metadata.as_ref().map(|m| PyBytes::new(py, m));
    let hs = (r.state.term, r.state.vote, r.state.commit);
    PyTuple::new(
        py,
        [
            md.into_pyobject(py)?.into_any(),
            hs.into_pyobject(py)?.into_any(),
            entries,
        ],
    )
}

pub(super) fn wal_snap(index: u64, term: u64, conf_state: Option<&[u8]>) -> WalSnap {
    WalSnap {
        index,
        term,
        conf_state: conf_state.map(|c| c.to_vec()),
    }
}
