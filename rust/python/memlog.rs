//! The `MemLog` class: a `MemoryStorage` entry list whose entries live in
//! one native buffer (`crate::memlog`), Python entries made only for the
//! ranges read.

use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice};

use super::entry::{entry_at, EntryBase, EntryFactory};
use crate::memlog::{MemLog, TooLarge};
use crate::record::EntryView;

/// The list a `MemoryStorage` keeps its log in (position 0 is the dummy
/// entry: the index and term of the last compacted entry), with every
/// entry's data packed in one buffer and 32 bytes of slot per entry.
/// Reading builds new `Entry` objects; appending copies the data in.
#[pyclass(name = "MemLog", module = "raftwal._native")]
pub struct PyMemLog {
    log: MemLog,
    dummy_index: u64,
    dummy_term: u64,
    factory: EntryFactory,
}

impl PyMemLog {
    pub(super) fn from_log(
        entry_cls: &Bound<'_, PyAny>,
        log: MemLog,
        index: u64,
        term: u64,
    ) -> PyResult<Self> {
        Ok(PyMemLog {
            log,
            dummy_index: index,
            dummy_term: term,
            factory: EntryFactory::new(entry_cls)?,
        })
    }

    fn size(&self) -> usize {
        1 + self.log.len()
    }

    /// The entry at position `k` (< len), as a new object.
    fn make<'py>(&self, py: Python<'py>, k: usize) -> PyResult<Bound<'py, PyAny>> {
        if k == 0 {
            return self
                .factory
                .make(py, self.dummy_term, self.dummy_index, 0, None);
        }
        let e = self.log.get(k - 1);
        let data = e.data.map(|d| PyBytes::new(py, d));
        self.factory.make(py, e.term, e.index, e.etype, data)
    }

    fn position(&self, k: isize) -> PyResult<usize> {
        let n = self.size() as isize;
        let k = if k < 0 { k + n } else { k };
        if (0..n).contains(&k) {
            Ok(k as usize)
        } else {
            Err(PyIndexError::new_err("MemLog index out of range"))
        }
    }

    fn too_large(e: TooLarge) -> PyErr {
        PyValueError::new_err(format!("entry data of {} bytes is too large", e.0))
    }

    /// Drop positions `[0, n)`: the entry at `n` becomes the dummy.
    fn drop_front(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let real = self.log.len();
        let at = n.min(real);
        if at > 0 {
            self.dummy_index = self.log.index(at - 1);
            self.dummy_term = self.log.term(at - 1);
        }
        self.log.drop_front(at);
    }
}

#[pymethods]
impl PyMemLog {
    /// `MemLog(entry_cls, index=0, term=0)`: only the dummy entry at
    /// (`index`, `term`); entries are built as `entry_cls` objects.
    #[new]
    #[pyo3(signature = (entry_cls, index = 0, term = 0))]
    fn new(entry_cls: &Bound<'_, PyAny>, index: u64, term: u64) -> PyResult<Self> {
        PyMemLog::from_log(entry_cls, MemLog::new(), index, term)
    }

    fn __len__(&self) -> usize {
        self.size()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        k: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(s) = k.cast::<PySlice>() {
            let ix = s.indices(self.size() as isize)?;
            if ix.step != 1 {
                return Err(PyValueError::new_err("MemLog slices take no step"));
            }
            let (start, stop) = (ix.start as usize, ix.stop.max(ix.start) as usize);
            let list = PyList::empty(py);
            for p in start..stop {
                list.append(self.make(py, p)?)?;
            }
            return Ok(list.into_any());
        }
        let p = self.position(k.extract()?)?;
        self.make(py, p)
    }

    /// Only the dummy entry (position 0) can be replaced: it keeps the
    /// given entry's index and term.
    fn __setitem__(&mut self, k: isize, value: &Bound<'_, EntryBase>) -> PyResult<()> {
        if self.position(k)? != 0 {
            return Err(PyIndexError::new_err(
                "only the dummy entry (position 0) can be replaced",
            ));
        }
        let v = value.borrow();
        self.dummy_index = v.index;
        self.dummy_term = v.term;
        Ok(())
    }

    /// `del l[k:]` keeps positions below `k`; `del l[:k]` drops those
    /// below `k`, the entry at `k` becoming the dummy.
    fn __delitem__(&mut self, k: &Bound<'_, PySlice>) -> PyResult<()> {
        let py = k.py();
        let start = k.getattr(pyo3::intern!(py, "start"))?;
        let stop = k.getattr(pyo3::intern!(py, "stop"))?;
        let step = k.getattr(pyo3::intern!(py, "step"))?;
        if !(step.is_none() || step.extract::<isize>().ok() == Some(1)) {
            return Err(PyTypeError::new_err(
                "MemLog supports del l[k:] and del l[:k]",
            ));
        }
        let ix = k.indices(self.size() as isize)?;
        match (start.is_none(), stop.is_none()) {
            (false, true) => {
                self.log.truncate((ix.start.max(1) - 1) as usize);
                Ok(())
            }
            (true, false) => {
                self.drop_front(ix.stop.max(0) as usize);
                Ok(())
            }
            _ => Err(PyTypeError::new_err(
                "MemLog supports del l[k:] and del l[:k]",
            )),
        }
    }

    /// Append entries (`raftwal.Entry` objects), copying their data in;
    /// nothing is appended if one of them is not an entry.
    fn extend(&mut self, items: &Bound<'_, PyAny>) -> PyResult<()> {
        let before = self.log.len();
        let res = (|| -> PyResult<()> {
            for (k, item) in items.try_iter()?.enumerate() {
                let item = item?;
                let b = entry_at(&item, k)?.borrow();
                let data = b.data.as_ref().map(|d| d.bind(item.py()).as_bytes());
                self.log
                    .push(EntryView {
                        term: b.term,
                        index: b.index,
                        etype: b.etype,
                        data,
                    })
                    .map_err(PyMemLog::too_large)?;
            }
            Ok(())
        })();
        if res.is_err() {
            self.log.truncate(before);
        }
        res
    }

    /// The term at position `k`, without building the entry.
    fn term_at(&self, k: isize) -> PyResult<u64> {
        let p = self.position(k)?;
        Ok(if p == 0 {
            self.dummy_term
        } else {
            self.log.term(p - 1)
        })
    }

    /// The end of the longest run of positions from `lo` (at least one,
    /// below `hi`) whose entries' encoded sizes sum to at most `max_size`.
    fn size_limit(&self, lo: usize, hi: usize, max_size: u64) -> PyResult<usize> {
        if lo == 0 || hi > self.size() || lo > hi {
            return Err(PyIndexError::new_err("MemLog range out of bounds"));
        }
        Ok(self.log.size_limit(lo - 1, hi - 1, max_size) + 1)
    }

    /// Drop every entry; the dummy becomes (`index`, `term`).
    fn reset(&mut self, index: u64, term: u64) {
        self.log.clear();
        self.dummy_index = index;
        self.dummy_term = term;
    }

    /// Bytes of memory the entries take (slots and data, capacity included).
    #[getter]
    fn footprint(&self) -> usize {
        self.log.footprint()
    }
}
