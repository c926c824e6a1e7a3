//! Recovery modes, applied inside the one replay of an open: what damage a
//! writer cuts away (keeping a `.broken` copy of every byte it removes)
//! instead of reporting it, and the typed report of what was done.
//!
//! * `Strict`: any damage is an error; nothing changes.
//! * `TolerateTail`: a torn final write (a `TornTail` in the last segment)
//!   is cut off, as `repair` does.
//! * `Salvage`: the first frame that fails (torn, CRC, malformed, a broken
//!   chain, an unknown record type, an index gap) ends the log, as
//!   `salvage` does: its segment is cut before it and the later segments
//!   are moved aside. Raft's invariants and etcd's metadata and snapshot
//!   checks still fail the open.
//!
//! Unlike `repair` + reopen, the segments are read once: `Recovery::bytes_read`
//! counts what the replay read.

use std::fs::File;
use std::path::Path;

use super::{EntrySink, ReadResult};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::record::WalSnap;
use crate::wal::Wal;

/// What an open may repair on the way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    #[default]
    Strict,
    TolerateTail,
    Salvage,
}

impl Mode {
    /// The mode a name (`strict`, `tolerate-tail`, `salvage`) stands for.
    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "strict" => Some(Mode::Strict),
            "tolerate-tail" => Some(Mode::TolerateTail),
            "salvage" => Some(Mode::Salvage),
            _ => None,
        }
    }

    /// Whether a frame the decoder refused (`e`) is cut away in this mode.
    pub(super) fn cuts_frame(self, e: &Error) -> bool {
        match self {
            Mode::Strict => false,
            Mode::TolerateTail => matches!(e, Error::TornTail { .. }),
            Mode::Salvage => !matches!(e, Error::Io { .. }),
        }
    }
}

/// Damage the replay stopped at, to be cut away: segment (position among
/// the replayed ones), the offset of its frame, the CRC chain before it,
/// and the error it would have been.
pub(crate) struct Cut {
    pub seg: usize,
    pub offset: u64,
    pub crc: u32,
    pub error: Error,
}

/// What an open in a recovery mode found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub mode: Mode,
    /// The damage cut away: its file, the offset of its frame, and the
    /// error it would have been in `Strict` mode.
    pub damage: Option<(String, u64, String)>,
    /// The copy kept of the segment that was cut (`<segment>.broken`).
    pub broken: Option<String>,
    /// Whether the damage was a torn record (else corruption).
    pub torn: bool,
    /// Later segments moved aside whole (renamed `<name>.broken`).
    pub moved: Vec<String>,
    /// Bytes of segment files the replay read.
    pub bytes_read: u64,
}

impl Recovery {
    /// Whether something was cut.
    pub fn repaired(&self) -> bool {
        self.damage.is_some()
    }
}

/// Copy the segment at `path` to `<path>.broken`, then truncate it (open
/// and locked as `file`) to `len` bytes and fsync it.
pub fn cut_keeping_copy(path: &Path, file: &File, len: u64) -> Result<()> {
    let mut broken = path.as_os_str().to_owned();
    broken.push(".broken");
    std::fs::copy(path, &broken).map_err(|e| {
        Error::io(
            format!(
                "cannot copy {} to {}.broken",
                path.display(),
                path.display()
            ),
            e,
        )
    })?;
    file.set_len(len)
        .map_err(|e| Error::io(format!("cannot truncate {}", path.display()), e))?;
    fsutil::fdatasync(file).map_err(|e| Error::io(format!("cannot fsync {}", path.display()), e))
}

impl Wal {
    /// etcd's `Open` + `ReadAll` for a writer, in one replay: damage that
    /// `mode` allows is cut away (see the module). Entries go to `sink` as
    /// in `read_all_overlapped`.
    pub fn recover(
        dir: &Path,
        snap: WalSnap,
        mode: Mode,
        segment_size: u64,
        sink: &mut dyn EntrySink,
    ) -> Result<(Wal, ReadResult, Recovery)> {
        let mut w = Wal::open_recovering(dir, snap, mode, segment_size)?;
        let r = w.read_all_overlapped(sink)?;
        let report = w.take_recovery();
        Ok((w, r, report))
    }

    /// etcd's `Open` for a writer whose replay (`read_all*`, next) applies
    /// `mode`; `take_recovery` then says what it did.
    pub fn open_recovering(
        dir: &Path,
        snap: WalSnap,
        mode: Mode,
        segment_size: u64,
    ) -> Result<Wal> {
        let mut w = Wal::open(dir, snap, true, segment_size)?;
        w.recovery = mode;
        Ok(w)
    }

    /// What the replay of a `open_recovering` found and did.
    pub fn take_recovery(&mut self) -> Recovery {
        let mut report = std::mem::take(&mut self.report);
        report.mode = self.recovery;
        report.bytes_read = self.bytes_read;
        report
    }

    /// Cut the log at `cut`: keep a copy of its segment and truncate it
    /// there, move the later segments aside, and say where the log goes on
    /// (offset, CRC chain).
    pub(super) fn apply_cut(&mut self, cut: Cut) -> Result<(u64, u32)> {
        let Some(at) = self.held.get(cut.seg) else {
            return Err(cut.error);
        };
        let path = self.dir.join(&at.name);
        cut_keeping_copy(&path, &at.file, cut.offset)?;
        self.report.broken = Some(format!("{}.broken", path.display()));
        for h in self.held.drain(cut.seg + 1..) {
            let from = self.dir.join(&h.name);
            let to = self.dir.join(format!("{}.broken", h.name));
            std::fs::rename(&from, &to).map_err(|e| {
                Error::io(
                    format!("cannot rename {} to {}", from.display(), to.display()),
                    e,
                )
            })?;
            self.report.moved.push(h.name);
        }
        fsutil::sync_dir(&self.dir)
            .map_err(|e| Error::io(format!("cannot fsync {}", self.dir.display()), e))?;
        let (file, offset) = match &cut.error {
            Error::TornTail { file, offset }
            | Error::CrcMismatch { file, offset }
            | Error::Corrupt { file, offset, .. }
            | Error::UnknownRecordType { file, offset, .. }
            | Error::SliceOutOfRange { file, offset, .. }
            | Error::FrameTooLarge { file, offset, .. } => (file.clone(), *offset),
            _ => (path.display().to_string(), cut.offset),
        };
        self.report.torn = matches!(cut.error, Error::TornTail { .. });
        self.report.damage = Some((file, offset, cut.error.to_string()));
        Ok((cut.offset, cut.crc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EntryArena;
    use crate::repair;
    use crate::segment;
    use crate::wal::save_range;

    /// The indexes a replay hands over.
    #[derive(Default)]
    struct Indexes(Vec<u64>);

    impl EntrySink for Indexes {
        fn take(&mut self, arena: &mut EntryArena) -> Result<()> {
            self.0.extend(arena.metas.iter().map(|m| m.index));
            Ok(())
        }
        fn truncate(&mut self, n: usize) -> Result<()> {
            self.0.truncate(n);
            Ok(())
        }
    }

    const SIZE: u64 = 4096;

    /// A WAL of several segments holding entries 1..=120.
    fn several_segments(d: &Path) {
        let mut w = Wal::create(d, Some(b"md"), SIZE).unwrap();
        for k in 0..12 {
            save_range(&mut w, 1, k * 10 + 1, k * 10 + 10, |_| 150);
        }
        w.close().unwrap();
        assert!(segment::list(d).unwrap().len() >= 4);
    }

    /// Every file of `d`, by name, with its bytes.
    fn files(d: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with(".tmp"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    fn segment_bytes(d: &Path) -> u64 {
        segment::list(d)
            .unwrap()
            .iter()
            .map(|n| std::fs::metadata(d.join(&n.name)).unwrap().len())
            .sum()
    }

    /// Open `d` in `mode`: the indexes replayed and the report.
    fn recover(d: &Path, mode: Mode) -> Result<(Vec<u64>, Recovery)> {
        let mut sink = Indexes::default();
        let (mut w, mut r, report) = Wal::recover(d, WalSnap::default(), mode, SIZE, &mut sink)?;
        sink.take(&mut r.entries).unwrap();
        w.close().unwrap();
        Ok((sink.0, report))
    }

    /// (file, offset) of the frame holding entry `index`.
    fn frame_of(d: &Path, index: u64) -> (String, u64) {
        let mut w = Wal::open(d, WalSnap::default(), false, SIZE).unwrap();
        let r = w.read_all().unwrap();
        let m = r.entries.metas.iter().find(|m| m.index == index).unwrap();
        (r.segments[m.seg as usize].clone(), m.frame_offset)
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for (name, bytes) in files(from) {
            std::fs::write(to.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn a_clean_log_is_read_once_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        several_segments(&d);
        for mode in [Mode::Strict, Mode::TolerateTail, Mode::Salvage] {
            let size = segment_bytes(&d);
            let (got, report) = recover(&d, mode).unwrap();
            assert_eq!(got, (1..=120).collect::<Vec<_>>());
            assert!(!report.repaired());
            assert_eq!(report.mode, mode);
            assert!(report.bytes_read > 0);
            assert!(report.bytes_read <= size, "{mode:?}: {report:?} of {size}");
        }
    }

    #[test]
    fn segments_longer_than_a_read_are_still_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 3 << 20).unwrap();
        for k in 0..20 {
            save_range(&mut w, 1, k * 100 + 1, k * 100 + 100, |i| {
                2000 + i as usize % 999
            });
        }
        w.close().unwrap();
        let size = segment_bytes(&d);
        let mut sink = Indexes::default();
        let (_, mut r, report) =
            Wal::recover(&d, WalSnap::default(), Mode::Strict, 3 << 20, &mut sink).unwrap();
        sink.take(&mut r.entries).unwrap();
        assert_eq!(sink.0.len(), 2000);
        assert!(report.bytes_read > 4 << 20);
        assert!(report.bytes_read <= size, "{report:?} of {size}");
    }

    #[test]
    fn tolerate_tail_cuts_a_torn_tail_in_the_same_replay_as_repair_would() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        several_segments(&d);
        // The last frame of the last segment ends in zeros.
        let last = segment::list(&d).unwrap().pop().unwrap();
        let seg = d.join(&last.name);
        let mut bytes = std::fs::read(&seg).unwrap();
        let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
        bytes[end - 4..end].fill(0);
        std::fs::write(&seg, &bytes).unwrap();
        let damaged = files(&d);

        assert!(matches!(
            recover(&d, Mode::Strict),
            Err(Error::TornTail { .. })
        ));
        assert_eq!(files(&d), damaged, "strict changes nothing");

        // What repair and a reopen leave, for comparison.
        let other = dir.path().join("other");
        copy_dir(&d, &other);
        assert!(repair::repair(&other).unwrap());

        let size = segment_bytes(&d);
        let (got, report) = recover(&d, Mode::TolerateTail).unwrap();
        assert_eq!(got, (1..=120).collect::<Vec<_>>());
        assert!(report.repaired());
        let (file, _, what) = report.damage.clone().unwrap();
        assert_eq!(file, seg.display().to_string());
        assert!(what.contains("torn"), "{what}");
        assert_eq!(
            report.broken,
            Some(format!("{}.broken", seg.display())),
            "a copy of every byte cut"
        );
        assert!(report.moved.is_empty());
        assert!(report.bytes_read <= size, "{report:?} of {size}");
        assert_eq!(files(&d), files(&other));
        // Strict now, and the writer goes on.
        let (got, _) = recover(&d, Mode::Strict).unwrap();
        assert_eq!(got.len(), 120);
    }

    #[test]
    fn salvage_cuts_damage_anywhere_as_salvage_would() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        several_segments(&d);
        // A changed byte in entry 45's data: a CRC mismatch, records after it.
        let (name, off) = frame_of(&d, 45);
        let segs = segment::list(&d).unwrap();
        let k = segs.iter().position(|n| n.name == name).unwrap();
        assert!(k + 1 < segs.len());
        let path = d.join(&name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[off as usize + 40] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let damaged = files(&d);
        for mode in [Mode::Strict, Mode::TolerateTail] {
            assert!(matches!(
                recover(&d, mode),
                Err(Error::CrcMismatch { offset, .. }) if offset == off
            ));
            assert_eq!(files(&d), damaged, "{mode:?} changes nothing");
        }

        let other = dir.path().join("other");
        copy_dir(&d, &other);
        let s = repair::salvage(&other).unwrap();

        let (got, report) = recover(&d, Mode::Salvage).unwrap();
        assert_eq!(got, (1..=44).collect::<Vec<_>>());
        assert_eq!(
            report.damage.as_ref().map(|x| (x.0.clone(), x.1)),
            Some((path.display().to_string(), off))
        );
        assert_eq!(report.moved, s.moved);
        assert_eq!(report.moved.len(), segs.len() - k - 1);
        assert_eq!(files(&d), files(&other));
        let (got, _) = recover(&d, Mode::Strict).unwrap();
        assert_eq!(got.len(), 44);
    }
}
