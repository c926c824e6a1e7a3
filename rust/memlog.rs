//! `MemLog`: a raft log held in memory without an object per entry.
//!
//! The entries' data are packed in one buffer and each entry has a 32-byte
//! slot (term, index, where its data is, its type). This is what a
//! recovered log is kept in: a replay appends its decoded chunks here with
//! two `memcpy`s, and the binding (`python/memlog.rs`) builds Python
//! entries only for the ranges asked for.
//!
//! Positions count from the first entry kept. Dropping entries at the front
//! (a compaction) only moves a cursor; the dead space is given back once it
//! is as large as what is kept, so each byte is moved at most once per
//! halving of the log.

use crate::error::{Error, Result as WalResult};
use crate::record::{self, EntryArena, EntryView};
use crate::wal::EntrySink;

/// Where one entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    term: u64,
    index: u64,
    /// Offset of the data in `MemLog::bytes`, plus `MemLog::base`.
    start: u64,
    /// Data length; `ABSENT` when the entry has no data field.
    len: u32,
    etype: i32,
}

const ABSENT: u32 = u32::MAX;

/// Front space (dead slots) below which dropping never moves memory.
const COMPACT_MIN: usize = 4096;

/// Entries, in log order, with their data in one buffer.
#[derive(Debug, Default, Clone)]
pub struct MemLog {
    slots: Vec<Slot>,
    /// Dropped slots still at the front of `slots`.
    head: usize,
    bytes: Vec<u8>,
    /// The `start` value of `bytes[0]`.
    base: u64,
}

/// An entry that does not fit a slot: data of 4 GiB or more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge(pub u64);

/// A data length as a slot holds it (`ABSENT` for no data field).
fn slot_len(len: Option<usize>) -> Result<u32, TooLarge> {
    match len {
        None => Ok(ABSENT),
        Some(n) => match u32::try_from(n) {
            Ok(n) if n != ABSENT => Ok(n),
            _ => Err(TooLarge(n as u64)),
        },
    }
}

impl MemLog {
    pub fn new() -> Self {
        MemLog::default()
    }

    /// Entries kept.
    pub fn len(&self) -> usize {
        self.slots.len() - self.head
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, k: usize) -> &Slot {
        &self.slots[self.head + k]
    }

    /// Entry `k` (0 is the first kept), borrowing its data.
    pub fn get(&self, k: usize) -> EntryView<'_> {
        let s = self.slot(k);
        let data = if s.len == ABSENT {
            None
        } else {
            let at = (s.start - self.base) as usize;
            Some(&self.bytes[at..at + s.len as usize])
        };
        EntryView {
            term: s.term,
            index: s.index,
            etype: s.etype,
            data,
        }
    }

    /// The term of entry `k`.
    pub fn term(&self, k: usize) -> u64 {
        self.slot(k).term
    }

    /// The index of entry `k`.
    pub fn index(&self, k: usize) -> u64 {
        self.slot(k).index
    }

    /// Append one entry, copying its data.
    pub fn push(&mut self, e: EntryView<'_>) -> Result<(), TooLarge> {
        let len = slot_len(e.data.map(<[u8]>::len))?;
        let start = self.base + self.bytes.len() as u64;
        if let Some(d) = e.data {
            self.bytes.extend_from_slice(d);
        }
        self.slots.push(Slot {
            term: e.term,
            index: e.index,
            start,
            len,
            etype: e.etype,
        });
        Ok(())
    }

    /// Append every entry of a replay's arena (its data in one copy).
    pub fn extend_arena(&mut self, arena: &EntryArena) -> Result<(), TooLarge> {
        let Some(first) = arena.metas.first() else {
            return Ok(());
        };
        // an arena's data is laid out in entry order from its first entry's
        let shift = self.base + self.bytes.len() as u64 - first.start as u64;
        let from = first.start;
        self.slots.reserve(arena.metas.len());
        for m in &arena.metas {
            let len = slot_len(m.len)?;
            self.slots.push(Slot {
                term: m.term,
                index: m.index,
                start: m.start as u64 + shift,
                len,
                etype: m.etype,
            });
        }
        self.bytes.extend_from_slice(&arena.bytes[from..]);
        Ok(())
    }

    /// Keep the first `n` entries.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let cut = self.slot(n).start - self.base;
        self.slots.truncate(self.head + n);
        self.bytes.truncate(cut as usize);
    }

    /// Drop the first `n` entries.
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        self.head += n;
        if self.is_empty() {
            self.clear();
            return;
        }
        if self.head >= COMPACT_MIN && self.head >= self.len() {
            let cut = (self.slot(0).start - self.base) as usize;
            self.slots.drain(..self.head);
            self.head = 0;
            self.bytes.drain(..cut);
            self.base += cut as u64;
            self.slots.shrink_to(self.slots.len() * 2);
            self.bytes.shrink_to(self.bytes.len() * 2);
        }
    }

    /// Drop every entry and give the memory back.
    pub fn clear(&mut self) {
        self.base += self.bytes.len() as u64;
        *self = MemLog {
            base: self.base,
            ..MemLog::default()
        };
    }

    /// Entries `[lo, hi)` whose summed encoded size stays within
    /// `max_size`, at least one: the end of that prefix (raft's `limitSize`).
    pub fn size_limit(&self, lo: usize, hi: usize, max_size: u64) -> usize {
        if lo >= hi {
            return hi;
        }
        let mut size = 0u64;
        for k in lo..hi {
            let s = self.slot(k);
            let len = (s.len != ABSENT).then_some(s.len as usize);
            size += record::entry_len(s.term, s.index, s.etype, len) as u64;
            if k > lo && size > max_size {
                return k;
            }
        }
        hi
    }

    /// Bytes of memory held: slots and data, capacity included.
    pub fn footprint(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.bytes.capacity()
    }

    /// After a replay: take the entries it did not hand over, and give
    /// back the capacity beyond what is held.
    pub fn finish(&mut self, rest: &EntryArena) -> WalResult<()> {
        self.extend_arena(rest)?;
        self.slots.shrink_to_fit();
        self.bytes.shrink_to_fit();
        Ok(())
    }
}

impl From<TooLarge> for Error {
    fn from(e: TooLarge) -> Error {
        Error::Invalid(format!("an entry's data of {} bytes is too large", e.0))
    }
}

/// A replay's entries go straight into the log.
impl EntrySink for MemLog {
    fn take(&mut self, arena: &mut EntryArena) -> WalResult<()> {
        Ok(self.extend_arena(arena)?)
    }

    fn truncate(&mut self, n: usize) -> WalResult<()> {
        MemLog::truncate(self, n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(index: u64, data: Option<&[u8]>) -> EntryView<'_> {
        EntryView {
            term: index / 10 + 1,
            index,
            etype: (index % 3) as i32,
            data,
        }
    }

    fn filled(n: u64) -> (MemLog, Vec<Vec<u8>>) {
        let mut log = MemLog::new();
        let datas: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; (i % 7) as usize]).collect();
        for (i, d) in datas.iter().enumerate() {
            let d = (i % 5 != 0).then_some(d.as_slice());
            log.push(view(i as u64 + 1, d)).unwrap();
        }
        (log, datas)
    }

    fn check(log: &MemLog, first: u64, datas: &[Vec<u8>]) {
        for k in 0..log.len() {
            let i = first + k as u64;
            let d = &datas[(i - 1) as usize];
            let want = ((i - 1) % 5 != 0).then_some(d.as_slice());
            assert_eq!(log.get(k), view(i, want), "entry {i}");
            assert_eq!(log.term(k), i / 10 + 1);
        }
    }

    #[test]
    fn push_get_truncate() {
        let (mut log, datas) = filled(100);
        assert_eq!(log.len(), 100);
        check(&log, 1, &datas);
        log.truncate(40);
        assert_eq!(log.len(), 40);
        check(&log, 1, &datas);
        log.push(view(41, Some(b"new"))).unwrap();
        assert_eq!(log.get(40).data, Some(&b"new"[..]));
        let mut head = log.clone();
        head.truncate(40);
        check(&head, 1, &datas);
    }

    #[test]
    fn drop_front_compacts_and_keeps_entries() {
        let (mut log, datas) = filled(20_000);
        log.drop_front(3);
        check(&log, 4, &datas);
        assert_eq!(log.head, 3, "small drops only move the cursor");
        log.drop_front(12_000);
        assert_eq!(log.head, 0, "a large drop gives the space back");
        assert_eq!(log.len(), 20_000 - 12_003);
        check(&log, 12_004, &datas);
        log.truncate(10);
        check(&log, 12_004, &datas);
        log.push(view(12_014, None)).unwrap();
        assert_eq!(log.get(10).data, None);
        log.drop_front(100);
        assert!(log.is_empty());
        log.push(view(5, Some(b"x"))).unwrap();
        assert_eq!(log.get(0).data, Some(&b"x"[..]));
    }

    #[test]
    fn extend_arena_matches_pushes() {
        let (log, datas) = filled(50);
        let mut arena = EntryArena::default();
        for k in 10..50 {
            arena.push(log.get(k));
        }
        let mut other = MemLog::new();
        for k in 0..10 {
            other.push(log.get(k)).unwrap();
        }
        other.extend_arena(&arena).unwrap();
        check(&other, 1, &datas);
        assert_eq!(other.len(), 50);
    }

    #[test]
    fn size_limit_keeps_one_and_stops_at_the_cap() {
        let mut log = MemLog::new();
        for i in 1..=10u64 {
            log.push(EntryView {
                term: 1,
                index: i,
                etype: 0,
                data: Some(&[0u8; 90]),
            })
            .unwrap();
        }
        let one = record::entry_len(1, 1, 0, Some(90)) as u64;
        assert_eq!(log.size_limit(0, 10, 0), 1);
        assert_eq!(log.size_limit(0, 10, one * 3), 3);
        assert_eq!(log.size_limit(2, 10, one * 3 + 1), 5);
        assert_eq!(log.size_limit(0, 10, u64::MAX), 10);
        assert_eq!(log.size_limit(4, 4, 0), 4);
    }
}
