//! The write-ahead log: etcd 3.4's `wal` package, a concept a file.
//!
//! A writer appends frames to the tail segment through the encoder
//! (`encoder.rs`), which flushes exactly when etcd's does, and cuts to a
//! new segment exactly when etcd would, taking a spare segment from the
//! pipeline (`pipeline.rs`); so the same calls give the same files. A
//! reader selects segments from a snapshot position and replays them
//! (`replay/`); in write mode whatever follows the last good frame is wiped
//! before appending behind it. Saves from several threads share fsyncs
//! through one shared writer (`commit.rs`).
//!
//! This file: the `Wal` itself (create, open, save, snapshot records, cut,
//! segment locks, close).

mod commit;
mod create;
mod encoder;
mod pipeline;
pub mod replay;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::failpoint;
use crate::fsutil;
use crate::metrics::WalStats;
use crate::record::{self, HardState, WalSnap};
use crate::segment;
use encoder::Encoder;
use pipeline::{Pipeline, ZeroAhead};
use replay::decoder::Input;
use replay::{Cut, Mode, Reader, Recovery};

pub use commit::{Guard, SharedWal};
pub use encoder::frame_body_len;
pub use replay::{EntrySink, ReadResult, SINK_CHUNK};

/// etcd's default segment size ("64MB": 64,000,000 bytes).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64_000_000;

/// What a process forked from the WAL's owner gets for a write.
pub const FORKED: &str =
    "the WAL belongs to the process that opened it; a forked child cannot write to it";

/// Largest frame (record plus padding) etcd 3.4's reader accepts is below this.
pub const MAX_FRAME_BODY: usize = 10 * 1024 * 1024;

/// A segment a writer holds locked.
struct Held {
    name: String,
    index: u64,
    seq: u64,
    file: Arc<File>,
}

pub struct Wal {
    dir: PathBuf,
    writable: bool,
    segment_size: u64,
    start: WalSnap,
    reader: Option<Reader>,
    /// Write mode: segments held locked, oldest first; the last is the tail.
    held: Vec<Held>,
    enc: Option<Encoder>,
    pipeline: Option<Pipeline>,
    /// The WAL directory, open while writing: a cut fsyncs it without
    /// needing a new descriptor (which could fail with EMFILE).
    dir_file: Option<File>,
    /// Writes zeros ahead of the writer in a tail that was only fallocated.
    zero: Option<Arc<ZeroAhead>>,
    metadata: Option<Vec<u8>>,
    /// The last non-empty HardState saved by this process (etcd's `w.state`).
    state: HardState,
    /// Index of the last entry saved (or a larger snapshot index).
    enti: u64,
    /// The log's last index as a save must continue it: `enti`, or after
    /// a replay the last index replayed when a snapshot lies beyond `enti`.
    limit: u64,
    /// Why the WAL refuses every write: an earlier write or fsync failed.
    poisoned: Option<String>,
    read_failed: bool,
    closed: bool,
    /// Count of saves that wrote records; `durable_seq` of them are synced.
    seq: u64,
    durable_seq: u64,
    /// The last index `durable_seq` covers.
    durable_index: u64,
    stats: Arc<WalStats>,
    scratch: Vec<u8>,
    /// What a replay may cut away, and what it cut (`replay/recovery.rs`).
    recovery: Mode,
    cut: Option<Cut>,
    report: Recovery,
    /// Bytes of segment files the replay read.
    bytes_read: u64,
    /// Tests: every fdatasync of the tail fails.
    #[cfg(test)]
    failing_syncs: bool,
    /// The process that opened the WAL: a child forked from it inherits
    /// the open files and their locks, but must not write through them.
    owner: u32,
}

fn name_of(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

impl Wal {
    fn blank(dir: &Path, writable: bool, segment_size: u64) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            writable,
            segment_size,
            start: WalSnap::default(),
            reader: None,
            held: Vec::new(),
            enc: None,
            pipeline: None,
            dir_file: None,
            zero: None,
            metadata: None,
            state: HardState::default(),
            enti: 0,
            limit: 0,
            poisoned: None,
            read_failed: false,
            closed: false,
            seq: 0,
            durable_seq: 0,
            durable_index: 0,
            stats: Arc::new(WalStats::default()),
            scratch: Vec::new(),
            recovery: Mode::Strict,
            cut: None,
            report: Recovery::default(),
            bytes_read: 0,
            #[cfg(test)]
            failing_syncs: false,
            owner: crate::fsutil::current_pid(),
        }
    }

    /// An encoder appending to the tail `file` at `off`, with zeros written
    /// ahead of it from `zeroed` on (the file's length when it is
    /// zero-filled already).
    fn tail_encoder(&mut self, file: Arc<File>, off: u64, crc: u32, zeroed: u64) -> Encoder {
        if !pipeline::enabled_by_env() {
            return Encoder::new(file, off, crc, None);
        }
        let zero = self
            .zero
            .get_or_insert_with(|| Arc::new(ZeroAhead::start()))
            .clone();
        zero.retarget(&file, off, zeroed);
        Encoder::new(file, off, crc, Some(zero))
    }

    /// Ready to append: the directory held open for cuts and the spare
    /// segment allocator running.
    fn start_writing(&mut self) -> Result<()> {
        let d = fsutil::open_dir(&self.dir)
            .map_err(|e| Error::io(format!("cannot open {}", self.dir.display()), e))?;
        self.dir_file = Some(d);
        self.pipeline = Some(Pipeline::start(&self.dir, self.segment_size));
        Ok(())
    }

    /// Stop writing zeros into the tail (before it is truncated or closed).
    fn detach_zeros(&self) {
        if let Some(z) = &self.zero {
            z.detach();
        }
    }

    /// etcd's `wal.Open` (writable) and `wal.OpenForRead`.
    pub fn open(dir: &Path, snap: WalSnap, writable: bool, segment_size: u64) -> Result<Wal> {
        if writable {
            return Wal::open_once(dir, snap, true, segment_size);
        }
        // A reader beside a live writer: a segment listed a moment ago may
        // be purged before it is opened.
        segment::relisting(|| Wal::open_once(dir, snap.clone(), false, segment_size))
    }

    fn open_once(dir: &Path, snap: WalSnap, writable: bool, segment_size: u64) -> Result<Wal> {
        let dir = normalize(dir);
        let names = segment::select(&dir, snap.index)?;
        let mut inputs = Vec::with_capacity(names.len());
        let mut w = Wal::blank(&dir, writable, segment_size);
        for n in &names {
            let path = dir.join(&n.name);
            let file = if writable {
                segment::open_locked(&path)?
            } else {
                segment::open_file(&path, false)?
            };
            let size = file
                .metadata()
                .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
                .len();
            let file = Arc::new(file);
            if writable {
                w.held.push(Held {
                    name: n.name.clone(),
                    index: n.index,
                    seq: n.seq,
                    file: file.clone(),
                });
            }
            inputs.push(Input {
                name: n.name.clone(),
                file,
                size,
            });
        }
        w.start = snap;
        w.reader = Some(Reader::new(&dir, inputs, !writable));
        Ok(w)
    }

    /// The (index, term) of the snapshot a replay starts after.
    pub fn start_at(&self) -> (u64, u64) {
        (self.start.index, self.start.term)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether records of at most `bytes` in all would stay in the write
    /// buffer: no system call, and so no cut either (one needs the bytes
    /// handed to the OS past the segment's size). False without a tail.
    pub(super) fn buffers(&self, bytes: u64) -> bool {
        self.enc
            .as_ref()
            .is_some_and(|e| bytes <= e.room() as u64 && e.os_offset() < self.segment_size)
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed("the WAL is closed"));
        }
        Ok(())
    }

    /// Whether this process opened the WAL (not a child forked from it).
    pub fn is_owner(&self) -> bool {
        crate::fsutil::current_pid() == self.owner
    }

    /// Refuse a write from a process forked from the one that opened the
    /// WAL: it shares the parent's files and locks, and interleaved writes
    /// would break the CRC chain.
    fn check_owner(&self) -> Result<()> {
        if !self.is_owner() {
            return Err(Error::Closed(FORKED));
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.check_owner()?;
        if let Some(m) = &self.poisoned {
            return Err(Error::Poisoned(m.clone()));
        }
        if self.read_failed {
            return Err(Error::Closed("read_all failed; the WAL can only be closed"));
        }
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        if self.enc.is_none() {
            return Err(Error::Closed(
                "read_all must consume the log before appending",
            ));
        }
        Ok(())
    }

    /// Run `f` on the encoder; an I/O failure poisons the WAL.
    fn write<F: FnOnce(&mut Encoder) -> io::Result<()>>(&mut self, f: F) -> Result<()> {
        let Some(enc) = self.enc.as_mut() else {
            return Err(Error::Closed("no tail segment"));
        };
        let before = enc.os_offset();
        let t0 = Instant::now();
        let res = f(enc);
        let written = enc.os_offset() - before;
        if written > 0 {
            self.stats.write.observe(t0.elapsed());
            self.stats.add(&self.stats.write_bytes, written);
        }
        res.map_err(|e| {
            let tail = self.tail_name();
            self.poison(format!("write to {tail}"), e)
        })
    }

    fn tail_name(&self) -> String {
        self.held
            .last()
            .map(|h| name_of(&self.dir, &h.name))
            .unwrap_or_default()
    }

    /// The WAL's counters and histograms (shared; they stay readable after close).
    pub fn stats(&self) -> Arc<WalStats> {
        self.stats.clone()
    }

    fn poison(&mut self, what: String, e: io::Error) -> Error {
        let msg = format!("{what}: {e}");
        self.poisoned = Some(msg.clone());
        Error::Io {
            context: format!("{what} failed; the WAL is poisoned"),
            source: e,
        }
    }

    /// etcd's `Save`. Returns true if the caller must still sync the save
    /// (raft's MustSync rule held and no cut already synced it).
    pub fn save(&mut self, hs: &HardState, entries: &[EntryRef<'_>], sync: bool) -> Result<bool> {
        self.check_writable()?;
        if hs.is_empty() && entries.is_empty() {
            return Ok(false);
        }
        self.check_save(hs, entries)?;
        let must_sync =
            !entries.is_empty() || hs.vote != self.state.vote || hs.term != self.state.term;
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = self.write(|enc| {
            for e in entries {
                scratch.clear();
                record::encode_entry(&mut scratch, e.term, e.index, e.etype, e.data);
                enc.encode(record::ENTRY, Some(&scratch))?;
            }
            if !hs.is_empty() {
                scratch.clear();
                record::encode_hard_state(&mut scratch, hs);
                enc.encode(record::STATE, Some(&scratch))?;
            }
            Ok(())
        });
        self.scratch = scratch;
        res?;
        if let Some(last) = entries.last() {
            self.enti = last.index;
            self.limit = last.index;
        }
        if !hs.is_empty() {
            self.state = *hs;
        }
        self.seq += 1;
        self.stats.add(&self.stats.saves, 1);
        self.stats.add(&self.stats.entries, entries.len() as u64);
        let off = self.enc.as_ref().map_or(0, |e| e.os_offset());
        if let Some(p) = &self.pipeline {
            p.progress(off, self.segment_size);
        }
        if off < self.segment_size {
            if must_sync && sync {
                self.sync()?;
                return Ok(false);
            }
            return Ok(must_sync);
        }
        let t0 = Instant::now();
        self.cut()?;
        self.stats.cut.observe(t0.elapsed());
        self.stats.add(&self.stats.cuts, 1);
        Ok(false)
    }

    /// Refuse, before a byte is written, a save no replay could read back
    /// as it was meant: an entry type raft does not define, a batch whose
    /// indexes are not consecutive or that leaves a gap after the log's last
    /// index, a HardState committing past the last index, or a record
    /// larger than etcd reads. etcd's own saves never trip these.
    fn check_save(&self, hs: &HardState, entries: &[EntryRef<'_>]) -> Result<()> {
        for (k, e) in entries.iter().enumerate() {
            if !(0..=2).contains(&e.etype) {
                return Err(Error::Invalid(format!(
                    "entry {} has type {}; raft defines types 0 to 2",
                    e.index, e.etype
                )));
            }
            if k == 0 {
                if e.index > self.limit.saturating_add(1) {
                    return Err(Error::Invalid(format!(
                        "missing log entry [last: {}, append at: {}]",
                        self.limit, e.index
                    )));
                }
            } else if e.index != entries[k - 1].index.wrapping_add(1) {
                return Err(Error::Invalid(format!(
                    "entries are not consecutive: {} follows {}",
                    e.index,
                    entries[k - 1].index
                )));
            }
            let len = record::entry_len(e.term, e.index, e.etype, e.data.map(<[u8]>::len));
            if !entry_fits(len) {
                return Err(Error::EntryTooLarge {
                    what: format!(
                        "entry {} encodes to {len} bytes; etcd 3.4 reads records below {} bytes",
                        e.index, MAX_FRAME_BODY
                    ),
                });
            }
        }
        let last = entries.last().map_or(self.limit, |e| e.index);
        if !hs.is_empty() && hs.commit > last {
            return Err(Error::Invalid(format!(
                "hard state commits {} past the last index {}",
                hs.commit, last
            )));
        }
        Ok(())
    }

    /// etcd's `SaveSnapshot`: write the record and sync.
    pub fn save_snapshot(&mut self, snap: &WalSnap) -> Result<()> {
        self.check_owner()?;
        if self.enc.is_none() || self.read_failed || !self.writable {
            self.check_writable()?;
        }
        if let Some(m) = &self.poisoned {
            return Err(Error::Poisoned(m.clone()));
        }
        failpoint::hit("snapshot_before_record")
            .map_err(|e| self.poison("write a snapshot record".into(), e))?;
        let mut buf = Vec::new();
        record::encode_wal_snap(&mut buf, snap);
        self.write(|enc| enc.encode(record::SNAPSHOT, Some(&buf)))?;
        if self.enti < snap.index {
            self.enti = snap.index;
        }
        self.limit = self.limit.max(snap.index);
        self.seq += 1;
        self.sync()
    }

    /// etcd's `cut`: close the tail at its true end and continue in a new
    /// segment named after the next index.
    fn cut(&mut self) -> Result<()> {
        self.check_owner()?;
        let tail = self
            .held
            .last()
            .map(|h| (h.file.clone(), name_of(&self.dir, &h.name), h.seq));
        let Some((tail_file, tail_name, tail_seq)) = tail else {
            return Err(Error::Closed("no tail segment"));
        };
        let off = self.enc.as_ref().map_or(0, |e| e.os_offset());
        self.detach_zeros();
        failpoint::hit("cut_before_truncate")
            .and_then(|()| tail_file.set_len(off))
            .map_err(|e| self.poison(format!("truncate {tail_name}"), e))?;
        self.sync()?;

        let next_seq = tail_seq + 1;
        let next_index = self.enti + 1;
        let name = segment::wal_name(next_seq, next_index);
        let fpath = self.dir.join(&name);
        let taken = match self.pipeline.as_mut() {
            Some(p) => p.take(),
            None => Err(io::Error::other("segment allocator not running")),
        };
        let (file, tmp_path, zeroed) = taken
            .and_then(|t| failpoint::hit("cut_before_header").map(|()| t))
            .map_err(|e| self.poison(format!("allocate segment {}", fpath.display()), e))?;
        let file = Arc::new(file);
        let prev_crc = self.enc.as_ref().map_or(0, |e| e.crc);
        self.held.push(Held {
            name: name.clone(),
            index: next_index,
            seq: next_seq,
            file: file.clone(),
        });
        let zeroed_to = if zeroed { self.segment_size } else { 0 };
        self.enc = Some(self.tail_encoder(file, 0, prev_crc, zeroed_to));
        let metadata = self.metadata.clone();
        let state = self.state;
        self.write(|enc| {
            enc.encode(record::CRC, None)?;
            enc.encode(record::METADATA, metadata.as_deref())?;
            if !state.is_empty() {
                let mut b = Vec::new();
                record::encode_hard_state(&mut b, &state);
                enc.encode(record::STATE, Some(&b))?;
            }
            Ok(())
        })?;
        self.sync()?;
        let renamed =
            failpoint::hit("cut_before_rename").and_then(|()| std::fs::rename(&tmp_path, &fpath));
        renamed.map_err(|e| {
            self.poison(
                format!("rename {} to {}", tmp_path.display(), fpath.display()),
                e,
            )
        })?;
        failpoint::hit("cut_after_rename")
            .and_then(|()| match &self.dir_file {
                Some(d) => fsutil::sync_dir_handle(d),
                None => fsutil::sync_dir(&self.dir),
            })
            .map_err(|e| self.poison(format!("fsync {}", self.dir.display()), e))?;
        Ok(())
    }

    /// etcd's `ReleaseLockTo`: unlock the segments older than the one that
    /// holds `index` (keeping that one's predecessor).
    pub fn release_lock_to(&mut self, index: u64) -> Result<()> {
        self.check_open()?;
        self.check_owner()?;
        if self.held.is_empty() {
            return Ok(());
        }
        let smaller = match self.held.iter().position(|h| h.index >= index) {
            Some(i) => i as isize - 1,
            None => self.held.len() as isize - 1,
        };
        if smaller <= 0 {
            return Ok(());
        }
        self.held.drain(..smaller as usize);
        Ok(())
    }

    /// Names of the segments this writer holds locked, oldest first.
    pub fn locked_segments(&self) -> Vec<String> {
        self.held.iter().map(|h| h.name.clone()).collect()
    }

    pub fn last_index(&self) -> u64 {
        self.enti
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn close_quietly(&mut self) {
        if let Some(mut p) = self.pipeline.take() {
            p.stop();
        }
        self.detach_zeros();
    }

    /// etcd's `Close`: stop the allocator, sync the tail, unlock everything.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        if self.writable && !self.is_owner() {
            // A forked child: the helper threads are the parent's (they do
            // not exist here) and the files and locks are shared with it.
            // Let go of this process's handles without a byte of I/O and
            // without joining a thread.
            if let Some(p) = self.pipeline.take() {
                std::mem::forget(p);
            }
            if let Some(z) = self.zero.take() {
                std::mem::forget(z);
            }
            self.closed = true;
            self.enc = None;
            self.held.clear();
            self.reader = None;
            return Err(Error::Closed(FORKED));
        }
        self.close_quietly();
        let res = if self.enc.is_some() && self.poisoned.is_none() && !self.read_failed {
            self.sync()
        } else {
            Ok(())
        };
        self.closed = true;
        self.enc = None;
        self.zero = None;
        self.dir_file = None;
        self.held.clear();
        self.reader = None;
        res
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// An entry to save, borrowing its data from the caller.
pub struct EntryRef<'a> {
    pub term: u64,
    pub index: u64,
    pub etype: i32,
    pub data: Option<&'a [u8]>,
}

/// True if an entry record whose entry encodes to `entry_len` bytes is
/// below the frame size etcd 3.4 reads.
pub fn entry_fits(entry_len: usize) -> bool {
    let body = record::record_len(0, 0, Some(entry_len));
    frame_body_len(record::ENTRY, Some(body)) < MAX_FRAME_BODY
}

/// True if a metadata record of `len` bytes is below the frame size etcd 3.4 reads.
pub fn metadata_fits(len: usize) -> bool {
    frame_body_len(record::METADATA, Some(len)) < MAX_FRAME_BODY
}

/// `dir` without trailing slashes, byte for byte (a path need not be UTF-8).
fn normalize(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let b = dir.as_os_str().as_bytes();
    let end = b.iter().rposition(|&c| c != b'/').map_or(0, |k| k + 1);
    if end == 0 {
        PathBuf::from("/")
    } else {
        PathBuf::from(std::ffi::OsStr::from_bytes(&b[..end]))
    }
}

/// Save entries `from..=to` of `term` in one batch, entry `i` holding
/// `size(i)` bytes of `i as u8` and type `i % 3` (tests only).
#[cfg(test)]
pub(crate) fn save_range(w: &mut Wal, term: u64, from: u64, to: u64, size: impl Fn(u64) -> usize) {
    let datas: Vec<Vec<u8>> = (from..=to).map(|i| vec![i as u8; size(i)]).collect();
    let ents: Vec<EntryRef<'_>> = (from..=to)
        .zip(&datas)
        .map(|(i, d)| EntryRef {
            term,
            index: i,
            etype: (i % 3) as i32,
            data: Some(d),
        })
        .collect();
    let hs = HardState {
        term,
        vote: 1,
        commit: 0,
    };
    w.save(&hs, &ents, true).unwrap();
}

// --- the replay's files, for readers that keep the log on disk ------------

impl Wal {
    /// The segments the replay will read, as its decoder holds them open,
    /// in the order `EntryMeta::seg` counts (empty once replayed). A log
    /// kept on disk takes these instead of opening every file again; in
    /// write mode they are the descriptors that hold the locks.
    pub fn replay_inputs(&self) -> Vec<(String, Arc<File>)> {
        self.reader.as_ref().map_or_else(Vec::new, |r| {
            r.inputs()
                .iter()
                .map(|i| (i.name.clone(), Arc::clone(&i.file)))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replay::tests::{replayed, snap};

    fn ent(index: u64, etype: i32) -> EntryRef<'static> {
        EntryRef {
            term: 1,
            index,
            etype,
            data: Some(b"x"),
        }
    }

    #[test]
    fn a_save_no_replay_could_read_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 3, |_| 10);
        w.sync().unwrap();
        let seg = d.join(segment::wal_name(0, 0));
        let before = std::fs::read(&seg).unwrap();
        let hs = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        let bad: Vec<(HardState, Vec<EntryRef<'_>>)> = vec![
            (hs(0), vec![ent(5, 0)]),            // a gap after the last index
            (hs(0), vec![ent(4, 0), ent(6, 0)]), // a gap inside the batch
            (hs(0), vec![ent(3, 0), ent(2, 0)]), // backwards
            (hs(0), vec![ent(4, 3)]),            // no such entry type
            (hs(5), vec![ent(4, 0)]),            // commits past the end
            (hs(4), vec![]),
        ];
        for (h, ents) in &bad {
            assert!(matches!(w.save(h, ents, true), Err(Error::Invalid(_))));
        }
        let huge = vec![0u8; MAX_FRAME_BODY];
        let big = EntryRef {
            term: 1,
            index: 4,
            etype: 0,
            data: Some(&huge),
        };
        assert!(matches!(
            w.save(&hs(0), &[big], true),
            Err(Error::EntryTooLarge { .. })
        ));
        w.sync().unwrap();
        assert_eq!(std::fs::read(&seg).unwrap(), before);
        // what etcd's raft does is still taken: an overwrite, then more
        w.save(&hs(2), &[ent(2, 0)], true).unwrap();
        w.save(&hs(3), &[ent(3, 0), ent(4, 1)], true).unwrap();
        // a snapshot record past the last entry lets the log continue after it
        w.save_snapshot(&snap(9, 1)).unwrap();
        w.close().unwrap();
        let mut w = Wal::open(&d, snap(9, 1), true, 1 << 20).unwrap();
        w.read_all().unwrap();
        assert!(matches!(
            w.save(&hs(0), &[ent(11, 0)], true),
            Err(Error::Invalid(_))
        ));
        w.save(&hs(10), &[ent(10, 0)], true).unwrap();
        w.close().unwrap();
        assert_eq!(replayed(&d, snap(9, 1)), vec![(1, 10)]);
    }
}
