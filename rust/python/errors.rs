//! The one mapping from the core's errors to Python exceptions.
//!
//! The exceptions are raftwal's own, defined in `raftwal/errors.py`.
//! A damaged file's exception carries `path` (the file, whatever its
//! bytes) and `offset` (its frame's length word).

use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyFileExistsError, PyOSError, PyValueError};
use pyo3::import_exception;
use pyo3::prelude::*;

use crate::error::Error;

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
pub(super) fn to_py(e: Error) -> PyErr {
    to_py_at(None, e)
}

/// `to_py` for an error from a WAL directory `dir`: the `path` of a damaged
/// file is then the path itself, whatever its bytes.
pub(super) fn to_py_in(dir: &Path) -> impl Fn(Error) -> PyErr + '_ {
    move |e| to_py_at(Some(dir), e)
}

/// A file the core names (as `display()` shows it: a path need not be
/// UTF-8) as the path it is, when it is an entry of `dir`.
pub(super) fn real_path(dir: Option<&Path>, shown: &str) -> PathBuf {
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
