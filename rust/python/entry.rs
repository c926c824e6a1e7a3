//! `EntryBase`: the native storage of `raftwal.Entry` (which subclasses it in
//! Python and adds the protobuf API). Reading a log creates millions of
//! these, so they are built here without running Python code.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::record;

#[pyclass(subclass, name = "EntryBase", module = "raftwal._native")]
pub struct EntryBase {
    #[pyo3(get, set)]
    pub term: u64,
    #[pyo3(get, set)]
    pub index: u64,
    #[pyo3(get, name = "type")]
    pub etype: i32,
    pub data: Option<Py<PyBytes>>,
}

/// raft's entry types are 0 (normal), 1 (conf change) and 2 (conf change v2).
fn check_type(etype: i32) -> PyResult<i32> {
    if (0..=2).contains(&etype) {
        Ok(etype)
    } else {
        Err(pyo3::exceptions::PyValueError::new_err(format!(
            "{etype} is not a valid EntryType (0 normal, 1 conf change, 2 conf change v2)"
        )))
    }
}

/// Accept bytes as they are; turn other bytes-like objects into bytes.
fn to_bytes(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyBytes>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match o.cast::<PyBytes>() {
            Ok(b) => Ok(Some(b.clone().unbind())),
            Err(_) => {
                let v: Vec<u8> = o.extract()?;
                Ok(Some(PyBytes::new(o.py(), &v).unbind()))
            }
        },
    }
}

#[pymethods]
impl EntryBase {
    #[new]
    #[pyo3(signature = (term = 0, index = 0, r#type = 0, data = None))]
    fn new(term: u64, index: u64, r#type: i32, data: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Ok(EntryBase {
            term,
            index,
            etype: check_type(r#type)?,
            data: to_bytes(data)?,
        })
    }

    #[setter(r#type)]
    fn set_type(&mut self, value: i32) -> PyResult<()> {
        self.etype = check_type(value)?;
        Ok(())
    }

    /// The payload: bytes, or None when absent (etcd's nil).
    #[getter]
    fn get_data(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.data.as_ref().map(|d| d.clone_ref(py))
    }

    #[setter]
    fn set_data(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.data = to_bytes(value)?;
        Ok(())
    }

    /// Length of the entry's serialized form.
    #[pyo3(name = "ByteSize")]
    fn byte_size(&self, py: Python<'_>) -> PyResult<usize> {
        let len = self.data.as_ref().map(|d| d.bind(py).as_bytes().len());
        Ok(record::entry_len(self.term, self.index, self.etype, len))
    }
}

/// Take an entry out of the cyclic collector's sight: it refers only to a
/// bytes object, so it can never be part of a cycle, and a log of millions
/// of entries would otherwise be walked by every full collection.
fn untrack(obj: &Bound<'_, PyAny>) {
    // SAFETY: `obj` is a live object whose type supports GC (checked by
    // PyObject_GC_IsTracked); untracking only changes what the collector visits.
    unsafe {
        let raw = obj.as_ptr();
        if pyo3::ffi::PyObject_GC_IsTracked(raw) != 0 {
            pyo3::ffi::PyObject_GC_UnTrack(raw.cast());
        }
    }
}

/// Builds entries of a Python subclass of `EntryBase` (raftwal.Entry)
/// without a Python-level call per entry.
///
/// A subclass that adds no instance storage (`__slots__ = ()`, no `__dict__`
/// or weak references) has the base's memory layout, so an object allocated
/// as the base can be given the subclass as its type, as CPython's own
/// `__class__` assignment does after the same layout check. Any other
/// class is called normally.
pub struct EntryFactory {
    cls: Py<PyAny>,
    /// The subclass's type object, when its layout allows retyping.
    retype: Option<usize>,
}

impl EntryFactory {
    pub fn new(cls: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = cls.py();
        let base = py.get_type::<EntryBase>();
        let same_layout = |name: &str| -> PyResult<bool> {
            Ok(cls.getattr(name)?.extract::<isize>()? == base.getattr(name)?.extract::<isize>()?)
        };
        let mut retype = None;
        if let Ok(ty) = cls.cast::<pyo3::types::PyType>() {
            if ty.is_subclass(&base)?
                && same_layout("__basicsize__")?
                && same_layout("__itemsize__")?
                && same_layout("__dictoffset__")?
                && same_layout("__weakrefoffset__")?
                && same_layout("__flags__").unwrap_or(false)
            {
                retype = Some(ty.as_type_ptr() as usize);
            }
        }
        Ok(EntryFactory {
            cls: cls.clone().unbind(),
            retype,
        })
    }

    /// Build one entry.
    pub fn make<'py>(
        &self,
        py: Python<'py>,
        term: u64,
        index: u64,
        etype: i32,
        data: Option<Bound<'py, PyBytes>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.retype {
            Some(ty) => {
                let ty = ty as *mut pyo3::ffi::PyTypeObject;
                let obj = Bound::new(
                    py,
                    EntryBase {
                        term,
                        index,
                        etype,
                        data: data.map(Bound::unbind),
                    },
                )?
                .into_any();
                // SAFETY: `ty` is a subclass of EntryBase with the same size,
                // item size, dict/weakref offsets and flags (checked in `new`),
                // so the object's memory is valid for it. The new type gets a
                // reference for the instance and the old type loses one, as in
                // CPython's `object.__class__` setter. `self.cls` keeps the
                // type alive.
                unsafe {
                    let raw = obj.as_ptr();
                    let old = (*raw).ob_type;
                    pyo3::ffi::Py_INCREF(ty.cast());
                    (*raw).ob_type = ty;
                    pyo3::ffi::Py_DECREF(old.cast());
                }
                untrack(&obj);
                Ok(obj)
            }
            None => {
                let d = match data {
                    Some(b) => b.into_any(),
                    None => py.None().into_bound(py),
                };
                self.cls.bind(py).call1((term, index, etype, d))
            }
        }
    }
}
