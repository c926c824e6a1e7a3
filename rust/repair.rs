//! Whole-directory passes that need no writer: `repair` (truncate a torn
//! tail, keeping a `.broken` copy), `verify` (a strict read-only check) and
//! `valid_snapshot_entries` (the snapshot records a restart may use).

use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::record::{self, HardState, WalSnap};
use crate::segment;
use crate::wal::replay::checks::Seen;
use crate::wal::replay::decoder::Stop;
use crate::wal::replay::{cut_keeping_copy, Reader};

/// A decoder stop as an error; a torn record before the last segment
/// cannot be a writer's unfinished tail, so it is corruption there.
fn reader_error(stop: Stop, reader: &Reader) -> Error {
    match stop {
        Stop::Torn { seg, offset } if seg + 1 < reader.segments() => Error::Corrupt {
            file: reader.path(seg),
            offset,
            what: "torn or truncated record before the last segment".into(),
        },
        stop => reader.error(stop),
    }
}

/// Where a restart of the WAL directory alone starts reading: its newest
/// snapshot record (of those `valid_snapshot_entries` returns) that a
/// remaining segment covers, or index 0. Not index 0 whenever it could: a
/// follower that installed a snapshot from its leader goes on at the
/// snapshot's index + 1, a gap for a reader starting before it. The
/// segments before it still have their frames and CRC chain checked by
/// `valid_snapshot_entries`.
pub fn restart_point(dir: &Path) -> Result<WalSnap> {
    let names = segment::list(dir)?;
    let Some(first) = names.first() else {
        return Err(Error::NotFound(format!(
            "no WAL segment in {}",
            dir.display()
        )));
    };
    let snaps = valid_snapshot_entries(dir)?;
    Ok(snaps
        .into_iter()
        .filter(|s| s.index >= first.index)
        .max_by_key(|s| s.index)
        .unwrap_or_default())
}

/// etcd's `Repair`, checked: if the log ends in a torn or truncated record
/// of the last segment, copy that segment to `<name>.broken`, truncate it
/// before the record and fsync. Ok(true) when the WAL now verifies from
/// where a restart starts (`restart_point`), whether or not something was
/// cut; Ok(false) when there is nothing to repair with (no directory, no
/// segment). Any other damage, anywhere, is returned as the error that
/// names it, and nothing is changed.
pub fn repair(dir: &Path) -> Result<bool> {
    let names = match segment::list(dir) {
        Ok(n) => n,
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(false)
        }
        Err(e) => return Err(e),
    };
    let Some(last) = names.last() else {
        return Ok(false);
    };
    let path = dir.join(&last.name);
    let file = segment::open_locked(&path)?;
    let start = restart_point(dir)?;
    // verify reports a torn record only once every record before it passed
    // its checks, so a torn tail here is the only damage there is.
    let off = match verify_as(dir, &start, Who::Owner) {
        Ok(_) => return Ok(true),
        Err(Error::TornTail { file, offset }) if file == path.display().to_string() => offset,
        Err(e) => return Err(e),
    };
    cut_keeping_copy(&path, &file, off)?;
    verify_as(dir, &start, Who::Owner)?;
    Ok(true)
}

/// etcd's `Verify`, stricter: a torn tail, a gap between entry indexes and
/// non-zero bytes after a segment's end of log are reported too. Returns
/// the last HardState.
pub fn verify(dir: &Path, snap: &WalSnap) -> Result<HardState> {
    verify_as(dir, snap, Who::Live)
}

/// Who reads: a tool beside a writer that may be live, or the owner of the
/// WAL lock, for whom nothing is being written meanwhile.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Who {
    Live,
    Owner,
}

fn verify_as(dir: &Path, snap: &WalSnap, who: Who) -> Result<HardState> {
    segment::relisting(|| verify_once(dir, snap, who))
}

fn verify_once(dir: &Path, snap: &WalSnap, who: Who) -> Result<HardState> {
    let names = segment::select(dir, snap.index)?;
    // `verify` reads live directories too: a live reader reads a
    // damaged-looking tail again before reporting it.
    let mut reader = Reader::open(dir, &names, who == Who::Live)?;
    let paths: Vec<String> = (0..reader.segments()).map(|k| reader.path(k)).collect();
    let mut seen = Seen::default();
    let mut next_index: Option<u64> = None;
    loop {
        let f = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(stop) => return Err(reader_error(stop, &reader)),
        };
        let (seg, offset, rtype) = (f.seg, f.offset, f.rec.rtype);
        let data = f.rec.data;
        let file = || paths[seg].clone();
        match rtype {
            record::ENTRY => {
                let e = record::decode_entry_ref(data.unwrap_or(&[])).map_err(|err| {
                    Error::Corrupt {
                        file: file(),
                        offset,
                        what: format!("entry data: {err}"),
                    }
                })?;
                seen.entry(e.index, e.term, e.etype, &file, offset)?;
                if e.index > snap.index {
                    let expected = next_index.unwrap_or(snap.index + 1);
                    if e.index > expected {
                        return Err(Error::SliceOutOfRange {
                            file: file(),
                            offset,
                            index: e.index,
                            expected,
                        });
                    }
                    next_index = Some(e.index + 1);
                }
            }
            // The reader checked the chain.
            record::CRC => {}
            rtype => seen.record(rtype, data, snap, &file, offset)?,
        }
    }
    seen.finish(snap)?;
    Ok(seen.state)
}

/// etcd's `ValidSnapshotEntries`: every snapshot record in every segment
/// whose index is at most the last HardState's commit, in WAL order.
pub fn valid_snapshot_entries(dir: &Path) -> Result<Vec<WalSnap>> {
    segment::relisting(|| valid_snapshot_entries_once(dir))
}

fn valid_snapshot_entries_once(dir: &Path) -> Result<Vec<WalSnap>> {
    let names = segment::list(dir)?;
    if names.is_empty() {
        return Err(Error::NotFound(format!(
            "no WAL segment in {}",
            dir.display()
        )));
    }
    // The last segment's newest page may be caught mid-write by this
    // reader: it reads it again before calling it damage.
    let mut reader = Reader::open(dir, &names, true)?;
    let paths: Vec<String> = (0..reader.segments()).map(|k| reader.path(k)).collect();
    let count = reader.segments();
    let mut snaps = Vec::new();
    let mut state = HardState::default();
    loop {
        let f = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            // A reader stops at a torn tail (a live writer's unfinished
            // record); a torn record before the last segment is damage.
            Err(Stop::Torn { seg, .. }) if seg + 1 == count => break,
            Err(stop) => return Err(reader_error(stop, &reader)),
        };
        let (seg, offset, rtype) = (f.seg, f.offset, f.rec.rtype);
        match rtype {
            record::SNAPSHOT => {
                let s = record::decode_wal_snap(f.rec.data.unwrap_or(&[])).map_err(|err| {
                    Error::Corrupt {
                        file: paths[seg].clone(),
                        offset,
                        what: format!("snapshot: {err}"),
                    }
                })?;
                snaps.push(s);
            }
            record::STATE => {
                state = record::decode_hard_state(f.rec.data.unwrap_or(&[])).map_err(|err| {
                    Error::Corrupt {
                        file: paths[seg].clone(),
                        offset,
                        what: format!("hard state: {err}"),
                    }
                })?;
            }
            // The reader checked the chain of crc records.
            _ => {}
        }
    }
    snaps.retain(|s| s.index <= state.commit);
    Ok(snaps)
}

/// etcd's `Exist`.
pub fn exists(dir: &Path) -> bool {
    segment::exists(dir)
}

/// etcd's purge of old segments: while more than `keep` segments remain,
/// delete the oldest one, unless a writer still holds its lock (then stop:
/// the writer needs it). `keep == 0` keeps everything. Returns the names
/// deleted, oldest first.
pub fn purge_segments(dir: &Path, keep: usize) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if keep == 0 {
        return Ok(removed);
    }
    let names = segment::list(dir)?;
    let excess = names.len().saturating_sub(keep);
    for n in names.into_iter().take(excess) {
        let path = dir.join(&n.name);
        let held = match fsutil::open_locked(&path, false) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
        };
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        drop(held);
        removed.push(n.name);
    }
    if !removed.is_empty() {
        fsutil::sync_dir(dir)
            .map_err(|e| Error::io(format!("cannot fsync {}", dir.display()), e))?;
    }
    Ok(removed)
}

/// What `salvage` did.
#[derive(Debug, Default)]
pub struct Salvage {
    /// The damaged segment and the offset of the first bad frame, if any.
    pub damaged: Option<(String, u64)>,
    /// "torn" or "corrupt" (what was found there), empty when clean.
    pub kind: &'static str,
    /// Why the frame was refused.
    pub detail: String,
    /// Segments moved aside whole (renamed `*.broken`).
    pub moved: Vec<String>,
    /// Index of the last entry kept (0 if none).
    pub last_kept_index: u64,
    /// The first index of the segments moved aside, when any were.
    pub dropped_from_segment_index: Option<u64>,
}

/// Keep the longest verified prefix of the whole WAL: decode every segment
/// from the first, and at the first frame that fails (torn, CRC, malformed,
/// a broken chain or an unknown record type) copy its segment to
/// `<name>.broken`, truncate it before that frame and rename every later
/// segment to `<name>.broken`. A clean WAL is left untouched.
pub fn salvage(dir: &Path) -> Result<Salvage> {
    let names = segment::list(dir)?;
    let mut out = Salvage::default();
    if names.is_empty() {
        return Ok(out);
    }
    // A gap in the sequence ends the usable prefix too.
    let mut usable = names.len();
    for i in 1..names.len() {
        if names[i].seq != names[i - 1].seq + 1 {
            usable = i;
            break;
        }
    }
    let mut reader = Reader::open(dir, &names[..usable], false)?;
    let mut bad: Option<(usize, u64, &'static str, String)> = None;
    // The highest index the next entry may have (None: no entry yet). A
    // snapshot record at S lets the log go on at S + 1.
    let mut next_max: Option<u64> = None;
    loop {
        let f = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(stop @ Stop::Io(..)) => return Err(reader.error(stop)),
            Err(Stop::Torn { seg, offset }) => {
                bad = Some((seg, offset, "torn", "torn or truncated record".into()));
                break;
            }
            Err(Stop::Crc { seg, offset }) => {
                bad = Some((seg, offset, "corrupt", "crc mismatch".into()));
                break;
            }
            Err(Stop::Chain { seg, offset }) => {
                bad = Some((seg, offset, "corrupt", "crc chain broken".into()));
                break;
            }
            Err(Stop::Corrupt { seg, offset, what }) => {
                bad = Some((seg, offset, "corrupt", what));
                break;
            }
            Err(Stop::TooLarge { seg, offset, len }) => {
                let what = format!("max entry size limit exceeded ({len} bytes)");
                bad = Some((seg, offset, "corrupt", what));
                break;
            }
        };
        let (seg, offset, rtype) = (f.seg, f.offset, f.rec.rtype);
        let problem = match rtype {
            record::ENTRY => match record::decode_entry_ref(f.rec.data.unwrap_or(&[])) {
                Ok(e) if next_max.is_some_and(|m| e.index > m) => Some(format!(
                    "index gap: entry {}, expected at most {}",
                    e.index,
                    next_max.unwrap_or_default()
                )),
                Ok(e) => {
                    out.last_kept_index = e.index;
                    next_max = Some(e.index.saturating_add(1));
                    None
                }
                Err(err) => Some(format!("entry data: {err}")),
            },
            record::SNAPSHOT => match record::decode_wal_snap(f.rec.data.unwrap_or(&[])) {
                Ok(s) => {
                    let after = s.index.saturating_add(1);
                    next_max = Some(next_max.map_or(after, |m| m.max(after)));
                    None
                }
                Err(err) => Some(format!("snapshot: {err}")),
            },
            // The reader checked the chain.
            record::CRC | record::METADATA | record::STATE => None,
            t => Some(format!("unexpected block type {t}")),
        };
        if let Some(p) = problem {
            bad = Some((seg, offset, "corrupt", p));
            break;
        }
    }
    let (cut_seg, cut_off) = match bad {
        Some((seg, offset, kind, detail)) => {
            out.kind = kind;
            out.detail = detail;
            (seg, Some(offset))
        }
        None if usable < names.len() => {
            out.kind = "corrupt";
            out.detail = format!("segment sequence gap before {}", names[usable].name);
            (usable, None)
        }
        None => return Ok(out),
    };
    // Every segment about to change must be free of writers first.
    let mut held = Vec::new();
    for n in &names[cut_seg..] {
        held.push(segment::open_locked(&dir.join(&n.name))?);
    }
    if let Some(offset) = cut_off {
        let path = dir.join(&names[cut_seg].name);
        cut_keeping_copy(&path, &held[0], offset)?;
        out.damaged = Some((path.display().to_string(), offset));
    }
    let first_moved = if cut_off.is_some() {
        cut_seg + 1
    } else {
        cut_seg
    };
    for n in &names[first_moved..] {
        let from = dir.join(&n.name);
        let to = dir.join(format!("{}.broken", n.name));
        std::fs::rename(&from, &to).map_err(|e| {
            Error::io(
                format!("cannot rename {} to {}", from.display(), to.display()),
                e,
            )
        })?;
        out.dropped_from_segment_index.get_or_insert(n.index);
        out.moved.push(n.name.clone());
    }
    fsutil::sync_dir(dir).map_err(|e| Error::io(format!("cannot fsync {}", dir.display()), e))?;
    drop(held);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{save_range, Wal};

    /// Offset just past the last good frame of the last segment of `dir`.
    fn end_of_log(dir: &Path) -> u64 {
        let mut r = Reader::open(dir, &segment::list(dir).unwrap(), false).unwrap();
        while r.next_frame().unwrap().is_some() {}
        r.end_offset()
    }

    #[test]
    fn repair_cuts_a_torn_tail_keeping_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 20, |_| 100);
        w.close().unwrap();
        let seg = d.join(segment::wal_name(0, 0));
        let end = end_of_log(&d);
        // The last frame (the batch's HardState) ends in zeros: a write
        // that never finished.
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[end as usize - 8..end as usize].fill(0);
        std::fs::write(&seg, &bytes).unwrap();
        assert!(matches!(
            verify(&d, &WalSnap::default()),
            Err(Error::TornTail { .. })
        ));
        assert!(repair(&d).unwrap());
        let broken = std::fs::read(d.join(format!("{}.broken", segment::wal_name(0, 0))));
        assert_eq!(broken.unwrap(), bytes);
        verify(&d, &WalSnap::default()).unwrap();
        let mut r = Wal::open(&d, WalSnap::default(), false, 1 << 20).unwrap();
        assert_eq!(r.read_all().unwrap().last_index, 20);
        // Nothing left to repair.
        assert!(repair(&d).unwrap());
        assert!(!repair(&dir.path().join("missing")).unwrap());
    }

    #[test]
    fn salvage_stops_at_a_broken_crc_chain() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 4096).unwrap();
        for k in 0..12 {
            save_range(&mut w, 1, k * 10 + 1, k * 10 + 10, |_| 100);
        }
        w.close().unwrap();
        let names = segment::list(&d).unwrap();
        assert!(names.len() >= 3);
        // The second segment's crc record carries the chain so far: change
        // it (the first byte of its varint, continuation bit kept).
        let second = d.join(&names[1].name);
        let mut bytes = std::fs::read(&second).unwrap();
        assert_eq!(&bytes[8..11], &[0x08, record::CRC as u8, 0x10]);
        bytes[11] ^= 1;
        std::fs::write(&second, &bytes).unwrap();
        match verify(&d, &WalSnap::default()) {
            Err(Error::CrcMismatch { file, offset: 0 }) => {
                assert_eq!(file, second.display().to_string())
            }
            other => panic!("{other:?}"),
        }
        let out = salvage(&d).unwrap();
        assert_eq!(out.kind, "corrupt");
        assert_eq!(out.detail, "crc chain broken");
        assert_eq!(out.damaged, Some((second.display().to_string(), 0)));
        assert_eq!(out.moved.len(), names.len() - 2);
        assert_eq!(std::fs::metadata(&second).unwrap().len(), 0);
        assert_eq!(salvage(&d).unwrap().kind, "");
    }
}
