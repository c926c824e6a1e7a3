//! A replayed log that stays on disk: per entry only where its frame is and
//! the CRC chain before it (12 bytes), plus the terms as runs. Entries are
//! read back from the segment files on demand and checked against their
//! CRC again, so a log larger than memory can be recovered and served.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::crc;
use crate::error::{Error, Result};
use crate::frame;
use crate::record::{self, Entry, EntryArena};
use crate::wal::EntrySink;

const SEG_SHIFT: u32 = 40;
const OFF_MASK: u64 = (1 << SEG_SHIFT) - 1;
const READ_AHEAD: usize = 64 * 1024;

pub struct DiskLog {
    /// The replayed segments; `None` once no kept entry is in it (a
    /// segment purged after compaction must not stay allocated).
    files: Vec<Option<Arc<File>>>,
    names: Vec<String>,
    /// Per entry: segment << 40 | offset of its length word.
    locs: Vec<u64>,
    prev_crcs: Vec<u32>,
    /// (position, term) where each run of equal terms starts.
    terms: Vec<(usize, u64)>,
    /// Positions before `base` were dropped (compaction) but not yet freed.
    base: usize,
    /// `close` let go of every segment: reads fail from then on.
    closed: bool,
}

impl DiskLog {
    /// An empty index, to be filled as a sink of `Wal::read_all_with`.
    pub fn new() -> DiskLog {
        DiskLog {
            files: Vec::new(),
            names: Vec::new(),
            locs: Vec::new(),
            prev_crcs: Vec::new(),
            terms: Vec::new(),
            base: 0,
            closed: false,
        }
    }

    /// Take the segments the replay read, as its decoder held them open
    /// (`Wal::replay_inputs`), instead of opening each file a second time.
    /// A writer's segments are the very descriptors that hold its locks.
    pub fn attach_files(&mut self, dir: &Path, files: Vec<(String, Arc<File>)>) {
        for (n, f) in files {
            self.files.push(Some(f));
            self.names.push(dir.join(n).display().to_string());
        }
    }

    /// Let go of every segment (the files of purged segments are freed);
    /// entries can no longer be read, terms and lengths still answer.
    pub fn close(&mut self) {
        self.closed = true;
        for f in &mut self.files {
            *f = None;
        }
    }

    /// How many segment files the log holds open.
    pub fn open_files(&self) -> usize {
        self.files.iter().filter(|f| f.is_some()).count()
    }

    pub fn len(&self) -> usize {
        self.locs.len() - self.base
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory the index holds.
    pub fn footprint(&self) -> usize {
        self.locs.capacity() * 8 + self.prev_crcs.capacity() * 4 + self.terms.capacity() * 16
    }

    fn push(&mut self, seg: u32, offset: u64, prev_crc: u32, term: u64) {
        let pos = self.locs.len();
        self.locs
            .push(u64::from(seg) << SEG_SHIFT | (offset & OFF_MASK));
        self.prev_crcs.push(prev_crc);
        if self.terms.last().is_none_or(|&(_, t)| t != term) {
            self.terms.push((pos, term));
        }
    }

    /// The term of entry `k` (0-based among the entries kept).
    pub fn term(&self, k: usize) -> u64 {
        let pos = self.base + k;
        let i = self.terms.partition_point(|&(p, _)| p <= pos);
        self.terms[i.saturating_sub(1)].1
    }

    /// The distinct terms of the entries kept, in increasing order.
    pub fn distinct_terms(&self) -> Vec<u64> {
        if self.is_empty() {
            return Vec::new();
        }
        let end = self.locs.len();
        let mut out = vec![self.term(0)];
        out.extend(
            self.terms
                .iter()
                .filter(|&&(p, _)| p > self.base && p < end)
                .map(|&(_, t)| t),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Keep the first `n` entries.
    pub fn truncate(&mut self, n: usize) {
        let end = self.base + n;
        self.locs.truncate(end);
        self.prev_crcs.truncate(end);
        let keep = self.terms.partition_point(|&(p, _)| p < end);
        self.terms.truncate(keep);
    }

    /// Drop the first `n` entries, and let go of the segments no kept
    /// entry is in.
    pub fn drop_front(&mut self, n: usize) {
        self.base += n.min(self.len());
        let first_kept_seg = match self.locs.get(self.base) {
            Some(&loc) => (loc >> SEG_SHIFT) as usize,
            None => self.files.len(),
        };
        for f in self.files.iter_mut().take(first_kept_seg) {
            *f = None;
        }
        if self.base > 4096 && self.base * 2 > self.locs.len() {
            // Give the memory back once most of the index is dropped.
            let b = self.base;
            let term_b = self.term(0);
            self.locs.drain(..b);
            self.prev_crcs.drain(..b);
            let first_kept = self.terms.partition_point(|&(p, _)| p <= b);
            self.terms.drain(..first_kept);
            for t in &mut self.terms {
                t.0 -= b;
            }
            self.terms.insert(0, (0, term_b));
            self.base = 0;
        }
    }

    /// Read entries `[lo, hi)` back from disk, checking each record's CRC.
    pub fn read(&self, lo: usize, hi: usize, mut out: impl FnMut(Entry)) -> Result<()> {
        if self.closed && lo < hi.min(self.len()) {
            return Err(Error::Closed(
                "the storage is closed: its on-disk log was released",
            ));
        }
        let mut buf: Vec<u8> = Vec::new();
        let mut buf_seg = u32::MAX;
        let mut buf_off = 0u64;
        for k in lo..hi.min(self.len()) {
            let pos = self.base + k;
            let loc = self.locs[pos];
            let seg = (loc >> SEG_SHIFT) as u32;
            let off = loc & OFF_MASK;
            let name = &self.names[seg as usize];
            let Some(file) = self.files.get(seg as usize).and_then(Option::as_ref) else {
                return Err(Error::Corrupt {
                    file: name.clone(),
                    offset: off,
                    what: "segment released after compaction".into(),
                });
            };
            let corrupt = |what: &str| Error::Corrupt {
                file: name.clone(),
                offset: off,
                what: what.to_string(),
            };
            let have = |buf: &Vec<u8>, buf_seg: u32, buf_off: u64, len: u64| {
                seg == buf_seg && off >= buf_off && off + len <= buf_off + buf.len() as u64
            };
            if !have(&buf, buf_seg, buf_off, frame::LEN_WORD as u64) {
                read_at(file, &mut buf, off, READ_AHEAD)
                    .map_err(|e| Error::io(format!("cannot read {name}"), e))?;
                buf_seg = seg;
                buf_off = off;
            }
            let at = (off - buf_off) as usize;
            let word = u64::from_le_bytes(
                buf.get(at..at + 8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| corrupt("length word cut short"))?,
            );
            let (n, _pad) = frame::decode(word);
            let total = frame::LEN_WORD as u64 + n;
            if !have(&buf, buf_seg, buf_off, total) {
                read_at(file, &mut buf, off, READ_AHEAD.max(total as usize))
                    .map_err(|e| Error::io(format!("cannot read {name}"), e))?;
                buf_seg = seg;
                buf_off = off;
            }
            let at = (off - buf_off) as usize;
            let body = buf
                .get(at + 8..at + total as usize)
                .ok_or_else(|| corrupt("record cut short"))?;
            let rec = record::decode_record(body).map_err(|e| corrupt(&e.to_string()))?;
            let data = rec.data.unwrap_or(&[]);
            if rec.rtype != record::ENTRY || crc::update(self.prev_crcs[pos], data) != rec.crc {
                return Err(Error::CrcMismatch {
                    file: name.clone(),
                    offset: off,
                });
            }
            let e = record::decode_entry(data).map_err(|e| corrupt(&format!("entry data: {e}")))?;
            out(e);
        }
        Ok(())
    }
}

fn read_at(f: &File, buf: &mut Vec<u8>, off: u64, len: usize) -> std::io::Result<()> {
    buf.resize(len, 0);
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(())
}

impl Default for DiskLog {
    fn default() -> Self {
        DiskLog::new()
    }
}

impl EntrySink for DiskLog {
    fn take(&mut self, arena: &mut EntryArena) -> Result<()> {
        for m in &arena.metas {
            self.push(m.seg, m.frame_offset, m.prev_crc, m.term);
        }
        Ok(())
    }

    fn truncate(&mut self, n: usize) -> Result<()> {
        DiskLog::truncate(self, n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::WalSnap;
    use crate::wal::{save_range, Wal};

    #[test]
    fn serves_what_a_full_replay_returns() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 8192).unwrap();
        let size = |i: u64| (i % 5) as usize * 300;
        save_range(&mut w, 1, 1, 60, size);
        save_range(&mut w, 2, 30, 90, size);
        save_range(&mut w, 3, 85, 120, size);
        w.close().unwrap();
        let want = Wal::open(&d, WalSnap::default(), false, 8192)
            .unwrap()
            .read_all()
            .unwrap();
        let mut r = Wal::open(&d, WalSnap::default(), false, 8192).unwrap();
        let mut log = DiskLog::new();
        let files = r.replay_inputs();
        let mut res = r.read_all_with(Some(&mut log)).unwrap();
        log.take(&mut res.entries).unwrap();
        log.attach_files(&d, files);
        assert!(res.segments.len() >= 2);
        assert_eq!(log.len(), 120);
        let mut got = Vec::new();
        log.read(0, 120, |e| got.push(e)).unwrap();
        for (e, m) in got.iter().zip(&want.entries.metas) {
            assert_eq!((e.term, e.index, e.etype), (m.term, m.index, m.etype));
            assert_eq!(e.data.as_deref(), want.entries.data(m));
        }
        assert_eq!(
            (
                log.term(0),
                log.term(28),
                log.term(29),
                log.term(84),
                log.term(119)
            ),
            (1, 1, 2, 3, 3)
        );
        log.drop_front(10);
        let mut first = Vec::new();
        log.read(0, 1, |e| first.push(e)).unwrap();
        assert_eq!(first[0].index, 11);
        log.truncate(5);
        assert_eq!(log.len(), 5);
    }

    #[test]
    fn shares_the_replays_files_and_lets_them_go_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 8192).unwrap();
        for lo in (1..80).step_by(10) {
            save_range(&mut w, 1, lo, lo + 9, |_| 300);
        }
        w.close().unwrap();
        let mut r = Wal::open(&d, WalSnap::default(), false, 8192).unwrap();
        let files = r.replay_inputs();
        let mut log = DiskLog::new();
        let mut res = r.read_all_with(Some(&mut log)).unwrap();
        log.take(&mut res.entries).unwrap();
        assert_eq!(
            files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            res.segments
        );
        let first = Arc::clone(&files[0].1);
        log.attach_files(&d, files);
        drop(r);
        assert!(log.open_files() >= 2);
        // the log holds the decoder's descriptor, not a second one
        assert_eq!(Arc::strong_count(&first), 2);
        let mut got = Vec::new();
        log.read(0, 80, |e| got.push(e.index)).unwrap();
        assert_eq!(got, (1..=80).collect::<Vec<_>>());
        log.close();
        assert_eq!(log.open_files(), 0);
        assert_eq!(Arc::strong_count(&first), 1);
        assert!(matches!(log.read(0, 1, |_| {}), Err(Error::Closed(_))));
        assert_eq!(log.term(79), 1);
    }
}
