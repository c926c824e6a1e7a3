//! `EntryBase`: the native storage of `raftwal.Entry` (which subclasses it in
//! Python and adds the protobuf API). Reading a log creates millions of
//! these, so they are built here without running Python code.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::sync::Mutex;

use pyo3::types::{PyBytes, PyTuple, PyType};

use super::convert::{for_each_data, wrong_type};
use crate::record;

/// The fields of a raft log entry (raftpb.Entry), stored natively;
/// `raftwal.Entry` subclasses it and adds the protobuf API.
///
/// `data` always reads as bytes (`b""` when absent, as in the protobuf
/// runtime); `HasField("data")` tells an absent field (etcd's nil, no field
/// written) from an empty one (`[]byte{}`, an empty field written).
#[pyclass(subclass, name = "EntryBase", module = "raftwal._native")]
pub struct EntryBase {
    /// The term of the leader that created the entry.
    #[pyo3(get, set)]
    pub term: u64,
    /// The entry's position in the log.
    #[pyo3(get, set)]
    pub index: u64,
    pub etype: i32,
    pub data: Option<Py<PyBytes>>,
}

/// `raftwal.messages.EntryType`'s members, by value (looked up once).
static ENTRY_TYPES: PyOnceLock<Py<PyTuple>> = PyOnceLock::new();

fn entry_type(py: Python<'_>, etype: i32) -> PyResult<Bound<'_, PyAny>> {
    let members = ENTRY_TYPES.get_or_try_init(py, || -> PyResult<Py<PyTuple>> {
        let cls = py.import("raftwal.messages")?.getattr("EntryType")?;
        let members = (0..=2)
            .map(|v| cls.call1((v,)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyTuple::new(py, members)?.unbind())
    })?;
    match usize::try_from(etype) {
        Ok(k) if k < 3 => members.bind(py).get_item(k),
        // only a damaged record read leniently can carry another value
        _ => Ok(etype.into_pyobject(py)?.into_any()),
    }
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

/// Accept bytes as they are; turn other bytes-like objects into bytes;
/// None is an absent field.
fn to_bytes(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Py<PyBytes>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match o.cast::<PyBytes>() {
            Ok(b) => Ok(Some(b.clone().unbind())),
            Err(_) => match o.extract::<Vec<u8>>() {
                Ok(v) if !o.is_instance_of::<pyo3::types::PyString>() => {
                    Ok(Some(PyBytes::new(o.py(), &v).unbind()))
                }
                _ => Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "Entry.data must be bytes (or bytearray, memoryview, None), not {}",
                    o.get_type().name()?
                ))),
            },
        },
    }
}

/// The entry's field names, for `HasField` and `ClearField`.
fn check_field(name: &str) -> PyResult<()> {
    match name {
        "term" | "index" | "type" | "data" => Ok(()),
        _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "Entry has no field {name:?} (fields: term, index, type, data)"
        ))),
    }
}

/// An entry type given as an int (an `EntryType` is one).
fn extract_type(value: &Bound<'_, PyAny>) -> PyResult<i32> {
    if value.is_instance_of::<pyo3::types::PyBool>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "Entry.type must be an EntryType or an int, not bool",
        ));
    }
    if value.is_instance_of::<pyo3::types::PyInt>() {
        return match value.extract::<i32>() {
            Ok(v) => check_type(v),
            Err(_) => Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{value} is not a valid EntryType (0 normal, 1 conf change, 2 conf change v2)"
            ))),
        };
    }
    match value.extract::<i32>() {
        // an int-like object (numpy integers, objects with __index__)
        Ok(v) => check_type(v),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "Entry.type must be an EntryType or an int, not {}",
            value.get_type().name()?
        ))),
    }
}

#[pymethods]
impl EntryBase {
    /// `EntryBase(term=0, index=0, type=0, data=None)`: `data=None` leaves
    /// the field absent; a `type` outside 0-2 raises `ValueError`.
    ///
    /// The object is kept out of the cyclic collector's sight (it refers
    /// only to a bytes object), so building many entries does not make
    /// every collection walk them; a subclass must therefore add no
    /// instance storage (`__slots__ = ()`), or `TypeError` is raised.
    #[new]
    #[classmethod]
    #[allow(clippy::new_ret_no_self)]
    #[pyo3(signature = (term = 0, index = 0, r#type = None, data = None),
        text_signature = "(term=0, index=0, type=0, data=None)")]
    fn new<'py>(
        cls: &Bound<'py, PyType>,
        term: u64,
        index: u64,
        r#type: Option<&Bound<'py, PyAny>>,
        data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let v = EntryBase {
            term,
            index,
            etype: match r#type {
                Some(t) => extract_type(t)?,
                None => 0,
            },
            data: to_bytes(data)?,
        };
        let py = cls.py();
        if cls.is(py.get_type::<EntryBase>()) {
            let obj = Bound::new(py, v)?.into_any();
            untrack(&obj);
            return Ok(obj);
        }
        if !same_layout_known(cls)? {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "{} adds instance storage to raftwal.Entry: a subclass keeps __slots__ = ()",
                cls.name()?
            )));
        }
        retyped(py, v, cls.as_type_ptr())
    }

    /// The entry type, an `EntryType` (normal, conf change, conf change v2).
    #[getter(r#type)]
    fn get_type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        entry_type(py, self.etype)
    }

    #[setter(r#type)]
    fn set_type(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.etype = extract_type(value)?;
        Ok(())
    }

    /// The payload, always bytes: `b""` when the field is absent (see
    /// `HasField`). Assigning None makes the field absent.
    #[getter]
    fn get_data<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        match &self.data {
            Some(d) => d.bind(py).clone(),
            None => PyBytes::new(py, b""),
        }
    }

    #[setter]
    fn set_data(&mut self, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.data = to_bytes(value)?;
        Ok(())
    }

    /// Whether field `name` is present: False for `data` when it was not
    /// set (etcd's nil; no field is written), True for the other fields,
    /// which are always written.
    #[pyo3(name = "HasField")]
    fn has_field(&self, name: &str) -> PyResult<bool> {
        check_field(name)?;
        Ok(name != "data" || self.data.is_some())
    }

    /// Reset field `name`: zero for `term`, `index` and `type`; absent for
    /// `data`.
    #[pyo3(name = "ClearField")]
    fn clear_field(&mut self, name: &str) -> PyResult<()> {
        check_field(name)?;
        match name {
            "term" => self.term = 0,
            "index" => self.index = 0,
            "type" => self.etype = 0,
            _ => self.data = None,
        }
        Ok(())
    }

    /// Length of the entry's serialized form.
    #[pyo3(name = "ByteSize")]
    fn byte_size(&self, py: Python<'_>) -> PyResult<usize> {
        let len = self.data.as_ref().map(|d| d.bind(py).as_bytes().len());
        Ok(record::entry_len(self.term, self.index, self.etype, len))
    }

    /// A copy of the entry, of the same class, with the same presence of
    /// `data` (the bytes are shared: they are immutable).
    fn __copy__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let b = slf.borrow();
        let data = match &b.data {
            Some(d) => d.bind(py).clone().into_any(),
            None => py.None().into_bound(py),
        };
        slf.get_type().call1((b.term, b.index, b.etype, data))
    }

    /// The same as `__copy__`: an entry holds nothing mutable.
    fn __deepcopy__<'py>(
        slf: &Bound<'py, Self>,
        _memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::__copy__(slf)
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

/// Whether `ty` is a subclass of `EntryBase` with its memory layout.
fn same_layout(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let base = ty.py().get_type::<EntryBase>();
    let same = |name: &str| -> PyResult<bool> {
        Ok(ty.getattr(name)?.extract::<isize>()? == base.getattr(name)?.extract::<isize>()?)
    };
    // The flags that change an object's layout: managed weakref and dict
    // (before the object), GC header, items at the end. Others (the type
    // cache's version tag) may differ between equal layouts.
    const LAYOUT_FLAGS: u64 = (1 << 3) | (1 << 4) | (1 << 14) | (1 << 23);
    let flags = |t: &Bound<'_, PyType>| -> PyResult<u64> {
        Ok(t.getattr("__flags__")?.extract::<u64>()? & LAYOUT_FLAGS)
    };
    Ok(ty.is_subclass(&base)?
        && same("__basicsize__")?
        && same("__itemsize__")?
        && same("__dictoffset__")?
        && same("__weakrefoffset__")?
        && flags(ty)? == flags(&base)?)
}

/// The classes `same_layout` accepted, kept alive so that their addresses
/// stay theirs (in practice `raftwal.Entry` alone).
static SAME_LAYOUT: Mutex<Vec<Py<PyType>>> = Mutex::new(Vec::new());

/// `same_layout`, remembered for the classes that pass.
fn same_layout_known(ty: &Bound<'_, PyType>) -> PyResult<bool> {
    let known = |t: &Py<PyType>| t.as_ptr() == ty.as_ptr();
    if SAME_LAYOUT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(known)
    {
        return Ok(true);
    }
    let ok = same_layout(ty)?;
    if ok {
        let mut list = SAME_LAYOUT.lock().unwrap_or_else(|p| p.into_inner());
        if !list.iter().any(known) {
            list.push(ty.clone().unbind());
        }
    }
    Ok(ok)
}

/// `v` as an object of type `ty`, which `same_layout` accepted, out of the
/// cyclic collector's sight.
fn retyped<'py>(
    py: Python<'py>,
    v: EntryBase,
    ty: *mut pyo3::ffi::PyTypeObject,
) -> PyResult<Bound<'py, PyAny>> {
    let obj = Bound::new(py, v)?.into_any();
    // SAFETY: `ty` is a subclass of EntryBase with the same size, item
    // size, dict/weakref offsets and flags (`same_layout`), so the object's
    // memory is valid for it. The new type gets a reference for the
    // instance and the old type loses one, as in CPython's
    // `object.__class__` setter. The caller keeps the type alive.
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

impl EntryFactory {
    pub fn new(cls: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut retype = None;
        if let Ok(ty) = cls.cast::<PyType>() {
            if same_layout(ty)? {
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
                let v = EntryBase {
                    term,
                    index,
                    etype,
                    data: data.map(Bound::unbind),
                };
                // `self.cls` keeps the type alive.
                retyped(py, v, ty as *mut pyo3::ffi::PyTypeObject)
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

/// Item `k` of a sequence of entries as a `raftwal.Entry` (its native
/// base), or the `TypeError` naming what came instead.
pub(super) fn entry_at<'a, 'py>(
    item: &'a Bound<'py, PyAny>,
    k: usize,
) -> PyResult<&'a Bound<'py, EntryBase>> {
    item.cast::<EntryBase>()
        .map_err(|_| wrong_type(&format!("entries[{k}] must be a raftwal.Entry"), item))
}

/// Entries at least this large are measured exactly against etcd's
/// record limit (the rest of an entry is a few varints).
const SIZE_CHECK_FROM: usize = 10 * 1024 * 1024 - 4096;

/// (index, encoded size) of an entry too large for a record etcd reads.
fn too_large(
    term: u64,
    index: u64,
    etype: i32,
    data: Option<&Bound<'_, PyBytes>>,
) -> Option<(u64, usize)> {
    let n = data?.as_bytes().len();
    if n <= SIZE_CHECK_FROM {
        return None;
    }
    let size = record::entry_len(term, index, etype, Some(n));
    (!crate::wal::entry_fits(size)).then_some((index, size))
}

/// Copies made so far and, at an entry too large for etcd, its index and size.
type Copied<'py> = (Bound<'py, pyo3::types::PyList>, Option<(u64, usize)>);

/// A save's entries checked and copied, for a storage that keeps them:
/// a sequence (else `TypeError`, for bytes and str too) of `raftwal.Entry`
/// (else `TypeError`) with consecutive indexes (else `ValueError`), copied
/// as `entry_cls` objects sharing the (immutable) data. Returns (copies,
/// None), or (copies so far, (index, encoded size)) at the first entry too
/// large for a record etcd reads.
#[pyfunction]
pub(super) fn copy_entries<'py>(
    py: Python<'py>,
    entries: &Bound<'py, PyAny>,
    entry_cls: &Bound<'py, PyAny>,
) -> PyResult<Copied<'py>> {
    const WANTED: &str = "entries must be a sequence of raftwal.Entry";
    if entries.is_instance_of::<PyBytes>()
        || entries.is_instance_of::<pyo3::types::PyString>()
        || entries.is_instance_of::<pyo3::types::PyByteArray>()
        || entries.is_instance_of::<pyo3::types::PyMemoryView>()
    {
        return Err(wrong_type(WANTED, entries));
    }
    let items = entries
        .try_iter()
        .map_err(|_| wrong_type(WANTED, entries))?;
    let factory = EntryFactory::new(entry_cls)?;
    let out = pyo3::types::PyList::empty(py);
    let mut prev: Option<u64> = None;
    for (k, item) in items.enumerate() {
        let item = item?;
        let b = entry_at(&item, k)?.borrow();
        if let Some(p) = prev {
            if p.checked_add(1) != Some(b.index) {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "entries are not consecutive: {} follows {p}",
                    b.index
                )));
            }
        }
        prev = Some(b.index);
        let data = b.data.as_ref().map(|d| d.bind(py).clone());
        if let Some(big) = too_large(b.term, b.index, b.etype, data.as_ref()) {
            return Ok((out, Some(big)));
        }
        out.append(factory.make(py, b.term, b.index, b.etype, data)?)?;
    }
    Ok((out, None))
}

/// Normal entries of `term` at `first_index`, `first_index + 1`, ... with
/// data `datas` (bytes, bytearray, memoryview or None), built as
/// `entry_cls` objects: `copy_entries`' result for them, without the
/// caller building objects.
#[pyfunction]
pub(super) fn make_entries<'py>(
    py: Python<'py>,
    entry_cls: &Bound<'py, PyAny>,
    term: u64,
    first_index: u64,
    datas: &Bound<'py, PyAny>,
) -> PyResult<Copied<'py>> {
    let factory = EntryFactory::new(entry_cls)?;
    let out = pyo3::types::PyList::empty(py);
    let mut big = None;
    for_each_data(datas, |k, d| {
        let index = first_index.checked_add(k as u64).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(
                "first_index + len(datas) - 1 must be below 2**64",
            )
        })?;
        let data = match d {
            None => None,
            Some(d) => to_bytes(Some(&d))
                .map_err(|_| wrong_type(&format!("datas[{k}] must be bytes"), &d))?
                .map(|b| b.into_bound(py)),
        };
        big = too_large(term, index, 0, data.as_ref());
        if big.is_none() {
            out.append(factory.make(py, term, index, 0, data)?)?;
        }
        Ok(big.is_none())
    })?;
    Ok((out, big))
}
