//! Segment file names and the choice of segments to read.
//!
//! A segment is `%016x-%016x.wal`: its sequence number and the raft index of
//! the first entry it is meant to hold. Like etcd, the parser accepts any
//! hex digits (`0-0.wal` too), and names are sorted as strings.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegName {
    pub name: String,
    pub seq: u64,
    pub index: u64,
}

pub fn wal_name(seq: u64, index: u64) -> String {
    format!("{seq:016x}-{index:016x}.wal")
}

fn parse_hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// `(seq, index)` of a segment name, or None.
pub fn parse_wal_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".wal")?;
    let (a, b) = stem.split_once('-')?;
    Some((parse_hex(a)?, parse_hex(b)?))
}

/// The segments in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<SegName>> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let Ok(name) = ent.file_name().into_string() else {
            continue;
        };
        if let Some((seq, index)) = parse_wal_name(&name) {
            out.push(SegName { name, seq, index });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// True if `dir` holds any file named `*.wal` (etcd's `wal.Exist`).
pub fn exists(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        Path::new(&e.file_name())
            .extension()
            .is_some_and(|x| x == "wal")
    })
}

/// Open the segment at `path` for reading (and writing if `write`),
/// refusing anything but a regular file with a `Corrupt` error naming it.
/// The open never blocks: a FIFO or a device named like a segment would
/// otherwise hang a reader (`O_NONBLOCK` until the type is known).
pub fn open_file(path: &Path, write: bool) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let ft = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
        .file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a fifo"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        return Err(Error::Corrupt {
            file: path.display().to_string(),
            offset: 0,
            what: format!("not a regular file ({kind})"),
        });
    }
    let fd = file.as_raw_fd();
    // SAFETY: plain fcntl calls on a valid descriptor.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags != -1 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) != -1
    };
    if !cleared {
        return Err(Error::io(
            format!("cannot open {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

/// `open_file` for writing, with the writer's exclusive lock taken without
/// waiting: another holder gives `Error::Locked`.
pub fn open_locked(path: &Path) -> Result<File> {
    let file = open_file(path, true)?;
    match fsutil::lock(&file, false) {
        Ok(true) => Ok(file),
        Ok(false) => Err(Error::Locked(path.display().to_string())),
        Err(e) => Err(Error::io(format!("cannot lock {}", path.display()), e)),
    }
}

/// Position of the last segment whose first index is <= `index`.
pub fn search_index(names: &[SegName], index: u64) -> Option<usize> {
    names.iter().rposition(|n| n.index <= index)
}

/// Sequence numbers must increase by one. Like etcd, a step right after
/// sequence 0 is not checked (etcd treats 0 as "unset").
pub fn is_valid_seq(names: &[SegName]) -> bool {
    let mut last = 0u64;
    for n in names {
        if last != 0 && last.checked_add(1) != Some(n.seq) {
            return false;
        }
        last = n.seq;
    }
    true
}

/// The segments a reader opened at snapshot `index` must read.
pub fn select(dir: &Path, index: u64) -> Result<Vec<SegName>> {
    let names = list(dir)?;
    if names.is_empty() {
        return Err(Error::NotFound(format!(
            "no WAL segment in {}",
            dir.display()
        )));
    }
    let Some(i) = search_index(&names, index) else {
        return Err(Error::NotFound(format!(
            "no segment in {} starts at or before index {index} (the oldest is {})",
            dir.display(),
            names[0].name
        )));
    };
    if !is_valid_seq(&names[i..]) {
        return Err(Error::NotFound(format!(
            "segment sequence numbers in {} have a gap",
            dir.display()
        )));
    }
    Ok(names[i..].to_vec())
}

/// `f`, again (a few times) when a segment it listed was gone before it
/// could be opened: the oldest segments of a live directory are purged by
/// its writer at any moment; a reader lists them again.
pub(crate) fn relisting<T>(f: impl Fn() -> Result<T>) -> Result<T> {
    let mut attempts = 0;
    loop {
        match f() {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 3 =>
            {
                attempts += 1;
            }
            res => return res,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[(u64, u64)]) -> Vec<SegName> {
        v.iter()
            .map(|&(s, i)| SegName {
                name: wal_name(s, i),
                seq: s,
                index: i,
            })
            .collect()
    }

    #[test]
    fn naming() {
        assert_eq!(wal_name(1, 0x21), "0000000000000001-0000000000000021.wal");
        assert_eq!(
            parse_wal_name("0000000000000000-0000000000000000.wal"),
            Some((0, 0))
        );
        assert_eq!(parse_wal_name("0-0.wal"), Some((0, 0)));
        assert_eq!(parse_wal_name("0000000000000000.wal"), None);
        assert_eq!(
            parse_wal_name("0000000000000000-0000000000000000.snap"),
            None
        );
        assert_eq!(parse_wal_name("0.tmp"), None);
        assert_eq!(parse_wal_name("x-1.wal"), None);
    }

    #[test]
    fn searching() {
        assert_eq!(
            search_index(&names(&[(0, 0), (1, 0x1000), (2, 0x2000)]), 0x1000),
            Some(1)
        );
        assert_eq!(
            search_index(&names(&[(1, 0x4000), (2, 0x3000), (3, 0x5000)]), 0x4000),
            Some(1)
        );
        assert_eq!(
            search_index(&names(&[(1, 0x2000), (2, 0x3000), (3, 0x5000)]), 0x1000),
            None
        );
    }

    #[test]
    fn only_regular_files_open_and_nothing_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let regular = dir.path().join(wal_name(0, 0));
        std::fs::write(&regular, b"x").unwrap();
        assert!(open_file(&regular, false).is_ok());
        assert!(open_locked(&regular).is_ok());
        let fifo = dir.path().join(wal_name(1, 5));
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let sub = dir.path().join(wal_name(2, 9));
        std::fs::create_dir(&sub).unwrap();
        for (path, kind) in [(&fifo, "a fifo"), (&sub, "a directory")] {
            for write in [false, true] {
                match open_file(path, write) {
                    Err(Error::Corrupt {
                        what, offset: 0, ..
                    }) => assert!(what.contains(kind)),
                    Err(Error::Io { .. }) if write && path == &sub => {} // EISDIR
                    other => panic!("{kind} opened: {other:?}"),
                }
            }
        }
        assert!(open_locked(&fifo).is_err());
    }

    #[test]
    fn sequences() {
        assert!(is_valid_seq(&names(&[(0, 0), (2, 10)])));
        assert!(is_valid_seq(&names(&[(3, 0), (4, 10), (5, 11)])));
        assert!(!is_valid_seq(&names(&[(3, 0), (5, 10)])));
    }
}
