//! Creating a WAL: etcd's `wal.Create`, built in `<dir>.tmp` and renamed
//! into place, so that the files appear at once; the temporary directory is
//! locked so that a second creator, in any process, is refused.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{metadata_fits, normalize, Held, Wal, MAX_FRAME_BODY};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::fsutil;
use crate::record::{self, WalSnap};
use crate::segment;

impl Wal {
    /// etcd's `wal.Create`: a new WAL in `dir`, which must be missing or empty.
    pub fn create(dir: &Path, metadata: Option<&[u8]>, segment_size: u64) -> Result<Wal> {
        if let Some(m) = metadata.filter(|m| !metadata_fits(m.len())) {
            return Err(Error::EntryTooLarge {
                what: format!(
                    "metadata of {} bytes; etcd 3.4 reads records below {} bytes",
                    m.len(),
                    MAX_FRAME_BODY
                ),
            });
        }
        let dir = normalize(dir);
        if !dir_is_missing_or_empty(&dir)? {
            return Err(Error::Exists(dir.display().to_string()));
        }
        let tmp = tmp_beside(&dir);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        // Held until the rename below: a second creator gets `Locked`.
        let tmp_lock = take_tmp(&tmp)?;
        // Another creator may have finished while we waited for the lock.
        if !dir_is_missing_or_empty(&dir)? {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Exists(dir.display().to_string()));
        }
        let first = segment::wal_name(0, 0);
        let fpath = tmp.join(&first);
        let made = (|| -> Result<Wal> {
            let f = fsutil::create_locked(&fpath, false)
                .map_err(|e| Error::io(format!("cannot create {}", fpath.display()), e))?
                .ok_or_else(|| Error::Locked(fpath.display().to_string()))?;
            fsutil::preallocate(&f, segment_size).map_err(|e| {
                Error::io(
                    format!(
                        "cannot preallocate {} bytes for {}",
                        segment_size,
                        fpath.display()
                    ),
                    e,
                )
            })?;
            let file = Arc::new(f);
            let mut w = Wal::blank(&dir, true, segment_size);
            w.held.push(Held {
                name: first.clone(),
                index: 0,
                seq: 0,
                file: file.clone(),
            });
            w.enc = Some(w.tail_encoder(file, 0, 0, 0));
            w.metadata = metadata.map(|m| m.to_vec());
            w.write(|enc| {
                enc.encode(record::CRC, None)?;
                enc.encode(record::METADATA, metadata)
            })?;
            w.save_snapshot(&WalSnap::default())?;
            Ok(w)
        })();
        let mut w = match made {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        // An empty `dir` is replaced by the renamed one.
        if let Err(e) =
            failpoint::hit("create_before_rename").and_then(|()| std::fs::rename(&tmp, &dir))
        {
            w.held.clear();
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io(
                format!("cannot rename {} to {}", tmp.display(), dir.display()),
                e,
            ));
        }
        drop(tmp_lock);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsutil::sync_dir(parent)
                .map_err(|e| Error::io(format!("cannot fsync {}", parent.display()), e))?;
        }
        w.start_writing()?;
        Ok(w)
    }
}

/// `<dir>.tmp`, the directory a creation builds in before renaming it.
fn tmp_beside(dir: &Path) -> PathBuf {
    let mut t = dir.as_os_str().to_owned();
    t.push(".tmp");
    PathBuf::from(t)
}

/// Take the directory a creation builds in (made if missing), locked, so
/// that a second creator of the same directory, in any process, sees it is
/// in use instead of removing it under the first. The lock is held until
/// the directory is renamed into place or removed; one left by a creator
/// that died (its lock went with it) is emptied and reused.
fn take_tmp(tmp: &Path) -> Result<File> {
    let ctx = |what: &str| format!("cannot {what} {}", tmp.display());
    // Each retry means another creator renamed or removed the directory
    // between two of our steps: it made progress, so this ends.
    for _ in 0..1000 {
        match fsutil::mkdir(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(ctx("create"), e)),
        }
        let d = match File::open(tmp) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(ctx("open"), e)),
        };
        if !fsutil::lock_dir(&d).map_err(|e| Error::io(ctx("lock"), e))? {
            return Err(Error::Locked(format!(
                "{} (another process is creating the WAL)",
                tmp.display()
            )));
        }
        // The holder before us may have renamed it into place or removed
        // it: the lock counts only if the path still names what we locked.
        use std::os::unix::fs::MetadataExt;
        let held = d.metadata().map_err(|e| Error::io(ctx("stat"), e))?;
        match std::fs::symlink_metadata(tmp) {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() && m.is_dir() => {}
            Ok(m) if !m.is_dir() => {
                return Err(Error::Exists(format!(
                    "{} is not a directory",
                    tmp.display()
                )))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(ctx("stat"), e)),
        }
        // Ours now: whatever is inside was left by a creator that died.
        let entries = std::fs::read_dir(tmp).map_err(|e| Error::io(ctx("read"), e))?;
        for ent in entries {
            let p = ent.map_err(|e| Error::io(ctx("read"), e))?.path();
            let removed = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(|e| Error::io(format!("cannot remove {}", p.display()), e))?;
        }
        return Ok(d);
    }
    Err(Error::Locked(format!(
        "{} (other processes keep creating the WAL)",
        tmp.display()
    )))
}

fn dir_is_missing_or_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
}

fn create_dir_all(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(fsutil::DIR_MODE)
        .create(p)
        .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_etcd_cannot_read_is_refused_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let huge = vec![0u8; MAX_FRAME_BODY];
        assert!(matches!(
            Wal::create(&d, Some(&huge), 1 << 20),
            Err(Error::EntryTooLarge { .. })
        ));
        assert!(!d.exists());
    }
}
