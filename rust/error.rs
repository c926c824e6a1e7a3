//! The core's error type. Each variant maps to one Python exception class
//! (see `python/errors.rs`); messages name the file and the byte offset of
//! the record's length word, as etcd's do.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// An operating-system failure, with what was being done.
    Io {
        context: String,
        source: io::Error,
    },
    /// A record's data does not match its CRC (or a segment's chain seed).
    CrcMismatch {
        file: String,
        offset: u64,
    },
    /// The log ends in a partially written record.
    TornTail {
        file: String,
        offset: u64,
    },
    /// A frame or record that does not decode.
    Corrupt {
        file: String,
        offset: u64,
        what: String,
    },
    UnknownRecordType {
        file: String,
        offset: u64,
        rtype: i64,
    },
    /// A record read from disk is larger than the format allows.
    RecordTooLarge {
        what: String,
    },
    /// A record to write is larger than etcd reads: refused before writing.
    EntryTooLarge {
        what: String,
    },
    /// A length word at or above etcd 3.4's record limit.
    FrameTooLarge {
        file: String,
        offset: u64,
        len: u64,
    },
    SliceOutOfRange {
        file: String,
        offset: u64,
        index: u64,
        expected: u64,
    },
    SnapshotMismatch {
        file: String,
        offset: u64,
        index: u64,
        term: u64,
        found: u64,
    },
    SnapshotNotFound {
        index: u64,
        term: u64,
    },
    MetadataConflict {
        file: String,
        offset: u64,
    },
    /// No usable segment (none, a gap in the sequence, none old enough).
    NotFound(String),
    Locked(String),
    Exists(String),
    Closed(&'static str),
    /// A save on a WAL opened for reading.
    ReadOnly,
    Poisoned(String),
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::CrcMismatch { file, offset } => {
                write!(f, "wal: crc mismatch in {file} at offset {offset}")
            }
            Error::TornTail { file, offset } => write!(
                f,
                "wal: torn or truncated record in {file} at offset {offset} (raftwal.repair truncates it)"
            ),
            Error::Corrupt { file, offset, what } => {
                write!(f, "wal: corrupt record in {file} at offset {offset}: {what}")
            }
            Error::UnknownRecordType { file, offset, rtype } => {
                write!(f, "wal: unexpected block type {rtype} in {file} at offset {offset}")
            }
            Error::RecordTooLarge { what } => write!(f, "wal: record too large: {what}"),
            Error::EntryTooLarge { what } => write!(f, "wal: record too large to write: {what}"),
            Error::FrameTooLarge { file, offset, len } => write!(
                f,
                "wal: max entry size limit exceeded: a record of {len} bytes in {file} at offset {offset}"
            ),
            Error::SliceOutOfRange { file, offset, index, expected } => write!(
                f,
                "wal: slice bounds out of range: entry {index} in {file} at offset {offset}, expected at most {expected}"
            ),
            Error::SnapshotMismatch { file, offset, index, term, found } => write!(
                f,
                "wal: snapshot mismatch: snapshot record at index {index} has term {found}, expected {term} (in {file} at offset {offset})"
            ),
            Error::SnapshotNotFound { index, term } => write!(
                f,
                "wal: snapshot not found: no snapshot record with index {index} and term {term}"
            ),
            Error::MetadataConflict { file, offset } => {
                write!(f, "wal: conflicting metadata found in {file} at offset {offset}")
            }
            Error::NotFound(m) => write!(f, "wal: file not found: {m}"),
            Error::Locked(m) => write!(f, "wal: {m} is locked by another process"),
            Error::Exists(m) => write!(f, "wal: {m} is not empty"),
            Error::Closed(m) => write!(f, "wal: {m}"),
            Error::ReadOnly => write!(
                f,
                "wal: the WAL was opened read-only (WAL.open_for_read); open it with WAL.open to write"
            ),
            Error::Poisoned(m) => write!(f, "wal: an earlier write or fsync failed ({m}); reopen the WAL"),
            Error::Invalid(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}
