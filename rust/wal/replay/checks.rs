//! The checks a walk over a log's records makes besides the CRCs: etcd's
//! own (`ReadAll`: metadata, snapshot records) and raft's invariants,
//! which catch what the format alone cannot (a record type is outside the
//! CRC).

use crate::error::{Error, Result};
use crate::record::{self, HardState, WalSnap};

/// What a walk over a log's records learns besides its entries, with the
/// checks etcd's `ReadAll` makes on the way (shared by replay and verify).
#[derive(Default)]
pub(crate) struct Seen {
    /// The metadata of the first metadata record (None: none seen yet).
    pub metadata: Option<Option<Vec<u8>>>,
    /// The last HardState.
    pub state: HardState,
    /// The record of the snapshot the walk starts at was found.
    pub matched: bool,
    /// Index of the newest snapshot record so far.
    pub floor: u64,
    /// The log the entries so far make, as runs of one term: (first
    /// index, term), for raft's checks.
    runs: Vec<(u64, u64)>,
    /// Index of the last entry of that log (0: none yet).
    last: u64,
    /// A HardState was seen.
    has_state: bool,
}

impl Seen {
    /// The term of entry `index` of the log so far, if it holds it.
    fn term_at(&self, index: u64) -> Option<u64> {
        if index == 0 || index > self.last {
            return None;
        }
        let k = self.runs.partition_point(|&(i, _)| i <= index);
        k.checked_sub(1).map(|k| self.runs[k].1)
    }

    /// Check an entry record against raft's rules for what a log can
    /// hold (a known entry type; terms never decrease along the log), then
    /// add it to the log. The record's type is outside its CRC, so a
    /// changed type byte turns a HardState into an entry (or back): these
    /// checks, and those on HardStates, are what catches it. Entries at or
    /// below the newest snapshot record were compacted when written and
    /// change nothing.
    ///
    /// Not checked, on purpose: an overwrite by an entry of the same term,
    /// of a committed entry, or a vote that changes within a term. Raft
    /// never writes them, but etcd's WAL takes any sequence of saves and
    /// reads it back, and raftwal's must read back what etcd's writes
    /// (byte identity). An overwrite by an entry of a lower term is raft:
    /// a new leader may replace an uncommitted entry of a later term with
    /// its own older one.
    pub fn entry(
        &mut self,
        index: u64,
        term: u64,
        etype: i32,
        file: &dyn Fn() -> String,
        offset: u64,
    ) -> Result<()> {
        let corrupt = |what: String| Error::Corrupt {
            file: file(),
            offset,
            what,
        };
        if !(0..=2).contains(&etype) {
            return Err(corrupt(format!("entry {index} has type {etype}")));
        }
        if index <= self.floor {
            return Ok(());
        }
        if index <= self.last + 1 {
            if let Some(prev) = self.term_at(index - 1) {
                if term < prev {
                    return Err(corrupt(format!(
                        "entry {index} has term {term}, below entry {}'s term {prev}",
                        index - 1
                    )));
                }
            }
        } else {
            // A gap (reported by the caller) or the first entry: a new log.
            self.runs.clear();
        }
        let keep = self.runs.partition_point(|&(i, _)| i < index);
        self.runs.truncate(keep);
        if self.runs.last().map(|&(_, t)| t) != Some(term) {
            self.runs.push((index, term));
        }
        self.last = index;
        Ok(())
    }

    /// Take a HardState, metadata or snapshot record; any other type but
    /// entries and crc records (which the caller handles) is unknown.
    pub fn record(
        &mut self,
        rtype: i64,
        data: Option<&[u8]>,
        start: &WalSnap,
        file: &dyn Fn() -> String,
        offset: u64,
    ) -> Result<()> {
        let corrupt = |what: &str, err: record::DecodeError| Error::Corrupt {
            file: file(),
            offset,
            what: format!("{what}: {err}"),
        };
        let payload = data.unwrap_or(&[]);
        match rtype {
            record::STATE => {
                let hs = record::decode_hard_state_strict(payload)
                    .map_err(|e| corrupt("hard state", e))?;
                self.check_state(&hs, file, offset)?;
                self.state = hs;
                self.has_state = true;
            }
            record::METADATA => match &self.metadata {
                Some(prev) if prev.as_deref() != data => {
                    return Err(Error::MetadataConflict {
                        file: file(),
                        offset,
                    })
                }
                Some(_) => {}
                None => self.metadata = Some(data.map(<[u8]>::to_vec)),
            },
            record::SNAPSHOT => {
                let s = record::decode_wal_snap(payload).map_err(|e| corrupt("snapshot", e))?;
                self.floor = self.floor.max(s.index);
                if s.index == start.index {
                    if s.term != start.term {
                        return Err(Error::SnapshotMismatch {
                            file: file(),
                            offset,
                            index: s.index,
                            term: start.term,
                            found: s.term,
                        });
                    }
                    self.matched = true;
                }
            }
            t => {
                return Err(Error::UnknownRecordType {
                    file: file(),
                    offset,
                    rtype: t,
                })
            }
        }
        Ok(())
    }

    /// Raft's rules for a HardState after the records so far: the term
    /// never goes back. (Not checked against the terms of the entries
    /// written before it: etcd's own tests write a HardState of a term
    /// below the entries just saved, and etcd reads it back.)
    fn check_state(&self, hs: &HardState, file: &dyn Fn() -> String, offset: u64) -> Result<()> {
        let corrupt = |what: String| Error::Corrupt {
            file: file(),
            offset,
            what,
        };
        if self.has_state && hs.term < self.state.term {
            return Err(corrupt(format!(
                "HardState term goes back from {} to {}",
                self.state.term, hs.term
            )));
        }
        Ok(())
    }

    /// The end of the walk: the start snapshot's record must have been seen.
    pub fn finish(&self, start: &WalSnap) -> Result<()> {
        if !self.matched {
            return Err(Error::SnapshotNotFound {
                index: start.index,
                term: start.term,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::replay::tests::snap;

    fn hs_bytes(term: u64, vote: u64, commit: u64) -> Vec<u8> {
        let mut b = Vec::new();
        record::encode_hard_state(&mut b, &HardState { term, vote, commit });
        b
    }

    #[test]
    fn seen_holds_raft_invariants() {
        let f = || "seg".to_string();
        let start = WalSnap::default();
        let what = |r: Result<()>| match r {
            Err(Error::Corrupt { what, offset, .. }) => {
                assert_eq!(offset, 9);
                what
            }
            other => panic!("{other:?}"),
        };
        let mut s = Seen::default();
        s.entry(1, 2, 0, &f, 0).unwrap();
        s.entry(2, 2, 1, &f, 0).unwrap();
        assert!(what(s.entry(3, 2, 3, &f, 9)).contains("type 3"));
        assert!(what(s.entry(3, 1, 0, &f, 9)).contains("below entry 2"));
        // overwrites: a later term, the same one (etcd reads it), a lower one
        s.entry(3, 3, 0, &f, 0).unwrap();
        s.entry(3, 3, 0, &f, 0).unwrap();
        s.entry(3, 2, 0, &f, 0).unwrap();
        s.entry(4, 3, 0, &f, 0).unwrap();
        s.record(record::STATE, Some(&hs_bytes(4, 1, 1)), &start, &f, 0)
            .unwrap();
        assert!(
            what(s.record(record::STATE, Some(&hs_bytes(3, 2, 1)), &start, &f, 9))
                .contains("goes back")
        );
        // an entry read as a HardState: field 4 (its data)
        let mut e = Vec::new();
        record::encode_entry(&mut e, 4, 3, 0, Some(b"x"));
        assert!(what(s.record(record::STATE, Some(&e), &start, &f, 9)).contains("does not have"));
        // entries at or below the newest snapshot record changed nothing
        let mut snap_rec = Vec::new();
        record::encode_wal_snap(&mut snap_rec, &snap(2, 3));
        s.record(record::SNAPSHOT, Some(&snap_rec), &start, &f, 0)
            .unwrap();
        s.entry(1, 7, 0, &f, 0).unwrap();
        s.entry(2, 3, 0, &f, 0).unwrap();
    }
}
