//! The log a replay recovers, in memory independent of its length: where
//! its stretches of entries were written, and its terms as runs. A second
//! pass over the same files streams the entries that survived.
//!
//! Why that is enough. Where the recovered log's entry `i` was written,
//! `L(i)`, grows with `i` (an entry written later truncates every entry
//! after it, which must then be written again after it). Cut the log into
//! runs wherever the replay truncated (an overwrite, or a snapshot record's
//! reset) and wherever a segment starts. Between the start of run `r`, at
//! `L(a_r)`, and the start of the next, at `L(a_{r+1})`, the entries
//! `a_r .. a_{r+1}` appear once each and in order: a second write of one of
//! them would be an overwrite, hence a truncation, hence a later run start
//! at or below it. So reading from `L(a_r)` and taking the next entry whose
//! index is the one expected, until the next run starts, yields exactly the
//! recovered entries; every other entry frame is skipped without being
//! turned into an object.
//!
//! Memory: one run per overwrite and per segment, one term run per term.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::record::{self, Entry, EntryArena};
use crate::wal::replay::decoder::Input;
use crate::wal::replay::Reader;
use crate::wal::EntrySink;

/// Where a run of the recovered log starts: its position, and the frame of
/// its first entry with the CRC chain before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub pos: usize,
    pub seg: u32,
    pub offset: u64,
    pub prev_crc: u32,
}

/// A replay's sink that keeps the recovered log as runs.
pub struct LogRuns {
    dir: PathBuf,
    files: Vec<(String, Arc<File>)>,
    runs: Vec<Run>,
    /// (position, term) where each run of equal terms starts.
    terms: Vec<(usize, u64)>,
    len: usize,
    /// The replay truncated: the next entry starts a run.
    cut: bool,
    /// Index of the entry before position 0 (the replay's snapshot).
    start_index: u64,
}

impl LogRuns {
    /// A sink for a replay of `files` (`Wal::replay_inputs`) in `dir`;
    /// `finish` once the replay is done.
    pub fn new(dir: &Path, files: Vec<(String, Arc<File>)>) -> LogRuns {
        LogRuns {
            dir: dir.to_path_buf(),
            files,
            runs: Vec::new(),
            terms: Vec::new(),
            len: 0,
            cut: false,
            start_index: 0,
        }
    }

    /// Take the entries the replay did not hand over, and its last index.
    pub fn finish(&mut self, rest: &mut EntryArena, last_index: u64) -> Result<()> {
        self.take(rest)?;
        self.start_index = last_index.saturating_sub(self.len as u64);
        Ok(())
    }

    /// Index of the first entry (when there is one).
    pub fn first_index(&self) -> u64 {
        self.start_index + 1
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// The distinct terms of the recovered log, in increasing order.
    pub fn distinct_terms(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.terms.iter().map(|&(_, t)| t).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Let go of the segment files.
    pub fn close(&mut self) {
        self.files.clear();
    }

    /// A reader of the recovered entries at positions `[lo, hi)` whose
    /// type is `etype` (any with None).
    pub fn scan(&self, lo: usize, hi: usize, etype: Option<i32>) -> Result<Scan> {
        let hi = hi.min(self.len);
        let mut inputs = Vec::with_capacity(self.files.len());
        if lo < hi {
            for (name, f) in &self.files {
                let size = f.metadata().map_err(|e| {
                    Error::io(format!("cannot stat {}", self.dir.join(name).display()), e)
                })?;
                inputs.push(Input {
                    name: name.clone(),
                    file: Arc::clone(f),
                    size: size.len(),
                });
            }
        }
        // the run holding `lo`, and those after it up to `hi`
        let first = self.runs.partition_point(|r| r.pos <= lo).saturating_sub(1);
        let mut dec = Reader::new(&self.dir, inputs, false);
        let mut runs: Vec<Run> = Vec::new();
        if lo < hi {
            runs = self.runs[first..]
                .iter()
                .take_while(|r| r.pos < hi)
                .copied()
                .collect();
            let r0 = runs[0];
            dec.seek(r0.seg as usize, r0.offset, r0.prev_crc);
        }
        Ok(Scan {
            dir: self.dir.clone(),
            dec,
            expected: runs.first().map_or(hi, |r| r.pos),
            runs,
            next: 1,
            lo,
            hi,
            etype,
            start_index: self.start_index,
        })
    }
}

impl EntrySink for LogRuns {
    fn take(&mut self, arena: &mut EntryArena) -> Result<()> {
        for m in &arena.metas {
            let pos = self.len;
            let new_seg = self.runs.last().is_none_or(|r| r.seg != m.seg);
            if self.cut || new_seg || pos == 0 {
                self.runs.push(Run {
                    pos,
                    seg: m.seg,
                    offset: m.frame_offset,
                    prev_crc: m.prev_crc,
                });
            }
            if self.terms.last().is_none_or(|&(_, t)| t != m.term) {
                self.terms.push((pos, m.term));
            }
            self.cut = false;
            self.len += 1;
        }
        Ok(())
    }

    fn truncate(&mut self, n: usize) -> Result<()> {
        if n < self.len {
            self.len = n;
            let keep = self.runs.partition_point(|r| r.pos < n);
            self.runs.truncate(keep);
            let keep = self.terms.partition_point(|&(p, _)| p < n);
            self.terms.truncate(keep);
        }
        self.cut = true;
        Ok(())
    }

    /// Every entry is handed over as it is replayed, so that every
    /// overwrite reaches `truncate`.
    fn chunk_bytes(&self) -> usize {
        0
    }
}

/// The second pass: the recovered entries of a range, in order.
pub struct Scan {
    dir: PathBuf,
    dec: Reader,
    /// The runs from the one holding `lo`; `next` is the one after the
    /// current.
    runs: Vec<Run>,
    next: usize,
    /// Position of the next entry of the recovered log.
    expected: usize,
    lo: usize,
    hi: usize,
    etype: Option<i32>,
    start_index: u64,
}

impl Scan {
    pub fn is_done(&self) -> bool {
        self.expected >= self.hi
    }

    /// Hand up to `max` entries to `out`; returns how many (0: done).
    pub fn next_chunk(&mut self, max: usize, mut out: impl FnMut(Entry)) -> Result<usize> {
        let mut n = 0;
        while n < max && !self.is_done() {
            let frame = match self.dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => {
                    return Err(Error::Invalid(format!(
                        "the WAL in {} ended before entry {} it held a moment ago",
                        self.dir.display(),
                        self.start_index + 1 + self.expected as u64
                    )))
                }
                Err(stop) => return Err(self.dec.error(stop)),
            };
            let (seg, offset, rtype) = (frame.seg, frame.offset, frame.rec.rtype);
            if let Some(r) = self.runs.get(self.next) {
                if (r.seg as usize, r.offset) == (seg, offset) {
                    self.expected = r.pos;
                    self.next += 1;
                }
            }
            let region_end = self.runs.get(self.next).map_or(self.hi, |r| r.pos);
            match rtype {
                record::ENTRY if self.expected < region_end => {
                    let data = frame.rec.data.unwrap_or(&[]);
                    let e = record::decode_entry(data).map_err(|e| Error::Corrupt {
                        file: self.dec.path(seg),
                        offset,
                        what: format!("entry data: {e}"),
                    })?;
                    if e.index == self.start_index + 1 + self.expected as u64 {
                        let keep =
                            self.expected >= self.lo && self.etype.is_none_or(|t| t == e.etype);
                        self.expected += 1;
                        if keep {
                            out(e);
                            n += 1;
                        }
                    }
                }
                // crc records: the reader checks the chain itself
                _ => {}
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{HardState, WalSnap};
    use crate::wal::{save_range, EntryRef, Wal};

    /// (index, term, data) of each entry.
    type Got = Vec<(u64, u64, Option<Vec<u8>>)>;

    fn replay(d: &Path, at: WalSnap) -> (Got, LogRuns) {
        let want = Wal::open(d, at.clone(), false, 8192)
            .unwrap()
            .read_all()
            .unwrap();
        let got: Vec<_> = want
            .entries
            .metas
            .iter()
            .map(|m| (m.index, m.term, want.entries.data(m).map(<[u8]>::to_vec)))
            .collect();
        let mut r = Wal::open(d, at.clone(), false, 8192).unwrap();
        let mut runs = LogRuns::new(d, r.replay_inputs());
        let mut res = r.read_all_with(Some(&mut runs)).unwrap();
        runs.finish(&mut res.entries, res.last_index).unwrap();
        assert_eq!(runs.first_index(), at.index + 1);
        (got, runs)
    }

    fn scan(runs: &LogRuns, lo: usize, hi: usize) -> Got {
        let mut s = runs.scan(lo, hi, None).unwrap();
        let mut out = Vec::new();
        while s
            .next_chunk(7, |e| out.push((e.index, e.term, e.data)))
            .unwrap()
            > 0
        {}
        out
    }

    #[test]
    fn streams_what_a_full_replay_returns_across_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 8192).unwrap();
        let size = |i: u64| (i % 5) as usize * 300;
        save_range(&mut w, 1, 1, 60, size);
        save_range(&mut w, 2, 30, 90, size);
        // the same entries again (same term): what follows them goes
        save_range(&mut w, 2, 40, 50, |_| 7);
        save_range(&mut w, 2, 51, 95, size);
        save_range(&mut w, 3, 85, 120, size);
        for i in 121..140 {
            save_range(&mut w, 3, i, i, size);
        }
        // an overwrite inside one chunk of a replay
        save_range(&mut w, 4, 139, 139, size);
        w.close().unwrap();
        let (want, runs) = replay(&d, WalSnap::default());
        assert_eq!(runs.len(), want.len());
        assert_eq!(want.len(), 139);
        assert!(runs.runs().len() > 4);
        assert_eq!(runs.distinct_terms(), vec![1, 2, 3, 4]);
        assert_eq!(scan(&runs, 0, usize::MAX), want);
        for (lo, hi) in [(0, 1), (28, 31), (38, 52), (84, 86), (100, 139), (138, 200)] {
            assert_eq!(
                scan(&runs, lo, hi),
                want[lo..hi.min(want.len())],
                "{lo}..{hi}"
            );
        }
        assert!(scan(&runs, 139, 150).is_empty());
        // only one type
        let mut s = runs.scan(0, 200, Some(1)).unwrap();
        let mut got = Vec::new();
        while s.next_chunk(100, |e| got.push(e.index)).unwrap() > 0 {}
        let ones: Vec<u64> = want.iter().map(|e| e.0).filter(|i| i % 3 == 1).collect();
        assert_eq!(got, ones);
    }

    #[test]
    fn starts_at_the_snapshot_and_survives_a_reset_below_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 8192).unwrap();
        save_range(&mut w, 1, 1, 40, |_| 500);
        let snap = WalSnap {
            index: 20,
            term: 1,
            conf_state: None,
        };
        w.save_snapshot(&snap).unwrap();
        save_range(&mut w, 1, 41, 70, |_| 500);
        w.close().unwrap();
        let (want, runs) = replay(&d, snap.clone());
        assert_eq!(want.first().map(|e| e.0), Some(21));
        assert_eq!(scan(&runs, 0, usize::MAX), want);
        assert_eq!(scan(&runs, 25, 27), want[25..27]);
    }

    #[test]
    fn a_damaged_frame_read_again_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        let data = vec![9u8; 100];
        let ents: Vec<EntryRef<'_>> = (1..=50)
            .map(|i| EntryRef {
                term: 1,
                index: i,
                etype: 0,
                data: Some(&data),
            })
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: 1,
        };
        w.save(&hs, &ents, true).unwrap();
        w.close().unwrap();
        let (_, runs) = replay(&d, WalSnap::default());
        // damage after the first pass: the second pass checks the CRCs again
        let seg = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "wal"))
            .unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        let at = bytes.len() / 4;
        let pos = bytes[..at].iter().rposition(|&b| b == 9).unwrap();
        bytes[pos] ^= 1;
        std::fs::write(&seg, &bytes).unwrap();
        let mut s = runs.scan(0, 50, None).unwrap();
        let err = loop {
            match s.next_chunk(10, |_| {}) {
                Ok(0) => panic!("damage not reported"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::CrcMismatch { .. }), "{err}");
    }
}
