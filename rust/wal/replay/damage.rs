//! Telling a torn final write from damage, for the decoder.
//!
//! Damage is told apart from a torn final write by what a torn write can
//! leave. Sectors (512 bytes) are written whole or not at all, possibly out
//! of order, and only in the last segment (a segment is truncated and
//! synced before the next one is created). So:
//! * a zero length word followed by non-zero bytes in its own sector is
//!   damage (a sector cannot hold part of a write);
//! * a zero length word with non-zero bytes later in the segment is a torn
//!   write only in the last segment (a sector of the final write was lost);
//! * a frame that is cut short or fails to parse or to match its CRC is a
//!   torn write only in the last segment, and only if a lost sector
//!   explains it: its body holds a zeroed sector, or it ends in zeros up to
//!   the end of the file. When valid records follow it (two frames whose
//!   CRCs link), the lost sector must be a whole zero sector inside the
//!   frame, and the records must start after the frame's declared end: a
//!   length word that runs over valid records was changed, not torn;
//! * a length at or above etcd 3.4's limit (10 MiB minus the padding) is
//!   `TooLarge` wherever it is, as etcd 3.4 reports it.

use std::fs::File;
use std::io;

use super::decoder::{Decoder, Stop, MAX_RECORD, MIN_RECORD, READ_CHUNK, SECTOR};
use crate::crc;
use crate::frame;
use crate::record;

impl Decoder {
    /// Whether a frame of the last segment that failed its checks looks like
    /// a write that never finished rather than changed bytes: its record
    /// ends in zeros and nothing but zeros follows it to the end of the
    /// file. A record whose last sector was only partly written before a
    /// crash looks like this; etcd's test (a whole zero sector, below)
    /// misses it when the frame is shorter than a sector.
    pub(super) fn unfinished_tail(&mut self, body_start: u64, n: u64) -> bool {
        if !self.is_last() || n == 0 {
            return false;
        }
        let last = body_start + n - 1;
        if self.fill(last, 1).ok() != Some(1) || self.slice(last, 1)[0] != 0 {
            return false;
        }
        self.trailing_zeros_ok(body_start + n).unwrap_or_default()
    }

    /// True if the body at [start, start+len) of the current file has a
    /// 512-byte-aligned chunk that is entirely zero.
    pub(super) fn torn_body(&self, start: u64, len: usize) -> bool {
        let mut pos = start;
        let end = start + len as u64;
        while pos < end {
            let chunk_end = ((pos / SECTOR) + 1) * SECTOR;
            let stop = chunk_end.min(end);
            let bytes = self.slice(pos, (stop - pos) as usize);
            if bytes.iter().all(|&b| b == 0) {
                return true;
            }
            pos = stop;
        }
        false
    }

    fn trailing_zeros_ok(&mut self, from: u64) -> io::Result<bool> {
        let size = self.inputs[self.cur].size;
        Ok(self.first_nonzero(from, size)?.is_none())
    }

    /// Offset of the first non-zero byte of the current file in [from, to).
    /// Holes (a preallocated, never-written tail) are skipped unread.
    fn first_nonzero(&mut self, from: u64, to: u64) -> io::Result<Option<u64>> {
        let to = to.min(self.inputs[self.cur].size);
        let mut off = from;
        while off < to {
            let (data, hole) = data_extent(&self.inputs[self.cur].file, off, to)?;
            off = data;
            let end = hole.min(to);
            while off < end {
                let n = ((end - off) as usize).min(READ_CHUNK);
                let got = self.fill(off, n)?;
                if got == 0 {
                    return Ok(None);
                }
                if let Some(k) = first_nonzero_in(self.slice(off, got)) {
                    return Ok(Some(off + k as u64));
                }
                off += got as u64;
            }
        }
        Ok(None)
    }

    /// A well-formed frame at `p` of the current file, as (its record's CRC,
    /// the offset after it, whether its CRC continues `seed`): a plausible
    /// length word and a record of a known type.
    fn probe(&mut self, p: u64, seed: Option<u32>) -> io::Result<Option<(u32, u64, bool)>> {
        let size = self.inputs[self.cur].size;
        if p.saturating_add(frame::LEN_WORD as u64) > size
            || self.fill(p, frame::LEN_WORD)? < frame::LEN_WORD
        {
            return Ok(None);
        }
        let word = u64::from_le_bytes(self.slice(p, 8).try_into().unwrap_or([0; 8]));
        let (n, pad) = frame::decode(word);
        let room = size - p - frame::LEN_WORD as u64;
        if n < MIN_RECORD || n.saturating_add(pad) >= MAX_RECORD || n + pad > room {
            return Ok(None);
        }
        let body = p + frame::LEN_WORD as u64;
        if self.fill(body, n as usize)? < n as usize {
            return Ok(None);
        }
        let Ok(r) = record::decode_record(self.slice(body, n as usize)) else {
            return Ok(None);
        };
        if !(record::METADATA..=record::SNAPSHOT).contains(&r.rtype) {
            return Ok(None);
        }
        let links = match seed {
            Some(s) => r.rtype != record::CRC && crc::update(s, r.data.unwrap_or(&[])) == r.crc,
            None => false,
        };
        Ok(Some((r.crc, body + n + pad, links)))
    }

    /// Offset of the first valid records at or after `from` in the current
    /// file: two consecutive well-formed frames, at an 8-byte aligned
    /// offset, the second's CRC continuing the first's; or, given `seed`
    /// (the CRC a damaged record holds), one frame continuing it.
    pub fn records_after(&mut self, from: u64, seed: Option<u32>) -> io::Result<Option<u64>> {
        let size = self.inputs[self.cur].size;
        let mut p = from.div_ceil(8) * 8;
        while p.saturating_add(frame::LEN_WORD as u64) <= size {
            if let Some((c, end, links)) = self.probe(p, seed)? {
                if links {
                    return Ok(Some(p));
                }
                if let Some((_, _, true)) = self.probe(end, Some(c))? {
                    return Ok(Some(p));
                }
            } else if self.fill(p, frame::LEN_WORD)? == frame::LEN_WORD
                && self.slice(p, frame::LEN_WORD).iter().all(|&b| b == 0)
            {
                // Skip a run of zeros at once.
                match self.first_nonzero(p, size)? {
                    Some(z) => {
                        p = (z / 8 * 8).max(p + 8);
                        continue;
                    }
                    None => break,
                }
            }
            p += 8;
        }
        Ok(None)
    }

    /// The CRC field of the record of the frame at `off`, read from the
    /// head of its body whatever its length word says.
    fn header_crc(&mut self, off: u64) -> io::Result<Option<u32>> {
        let body = off + frame::LEN_WORD as u64;
        let got = self.fill(body, 16)?;
        let b = self.slice(body, got);
        let varint = |mut i: usize| -> Option<(u64, usize)> {
            let mut v = 0u64;
            for shift in (0..64).step_by(7) {
                let x = *b.get(i)?;
                i += 1;
                v |= u64::from(x & 0x7f) << shift;
                if x < 0x80 {
                    return Some((v, i));
                }
            }
            None
        };
        if b.first() != Some(&0x08) {
            return Ok(None);
        }
        let Some((_, i)) = varint(1) else {
            return Ok(None);
        };
        if b.get(i) != Some(&0x10) {
            return Ok(None);
        }
        Ok(varint(i + 1).and_then(|(c, _)| u32::try_from(c).ok()))
    }

    /// True if a whole sector (up to the end of the file) inside the frame
    /// [off, end) of the current file reads as zeros, other than the one
    /// holding its length word.
    fn zero_sector_within(&mut self, off: u64, end: u64) -> io::Result<bool> {
        let size = self.inputs[self.cur].size;
        let mut s = (off / SECTOR + 1) * SECTOR;
        while s < end.min(size) {
            if self.first_nonzero(s, s + SECTOR)?.is_none() {
                return Ok(true);
            }
            s += SECTOR;
        }
        Ok(false)
    }

    /// The verdict on a frame at `off` of the current segment that failed
    /// (`found`): a torn write if the last segment ends there the way a
    /// torn final write can leave it (`torn_looking`: a lost sector or an
    /// unfinished end explains the failure), else `found`. `end` is where
    /// the frame's length word says it ends, if inside the file; `stored`
    /// the CRC its record holds, if it parsed (a valid frame at `end` that
    /// continues it counts as valid records after it).
    pub(super) fn verdict(
        &mut self,
        off: u64,
        end: Option<u64>,
        stored: Option<u32>,
        torn_looking: bool,
        found: Stop,
    ) -> Stop {
        if !self.is_last() || !torn_looking {
            return found;
        }
        let seg = self.cur;
        let after = (|| -> io::Result<Option<u64>> {
            let stored = match stored {
                Some(c) => Some(c),
                None => self.header_crc(off)?,
            };
            if let (Some(e), Some(c)) = (end, stored) {
                if let Some((_, _, true)) = self.probe(e, Some(c))? {
                    return Ok(Some(e));
                }
            }
            // A record of the final write may be the last one: a single
            // frame continuing the damaged record's CRC counts too.
            self.records_after(off + frame::LEN_WORD as u64, stored)
        })();
        let after = match after {
            Ok(a) => a,
            Err(e) => return self.io_err(e),
        };
        let Some(q) = after else {
            return Stop::Torn { seg, offset: off };
        };
        // Valid records follow: only a whole lost sector inside the frame,
        // with the records after the frame, is a torn write.
        let lost_sector = match end {
            Some(e) if q >= e => match self.zero_sector_within(off, e) {
                Ok(z) => z,
                Err(e) => return self.io_err(e),
            },
            _ => false,
        };
        if lost_sector {
            Stop::Torn { seg, offset: off }
        } else {
            found
        }
    }

    /// At a zero length word at `off`: the segment's end of log if nothing
    /// but zeros follows, otherwise the damage it stands for.
    pub(super) fn check_end(&mut self, off: u64) -> Result<(), Stop> {
        let seg = self.cur;
        let size = self.inputs[seg].size;
        let sector_end = ((off / SECTOR + 1) * SECTOR).min(size);
        let in_sector = self
            .first_nonzero(off + frame::LEN_WORD as u64, sector_end)
            .map_err(|e| self.io_err(e))?;
        if let Some(z) = in_sector {
            return Err(Stop::Corrupt {
                seg,
                offset: off,
                what: format!(
                    "a zero length word followed by non-zero bytes in its sector (offset {z})"
                ),
            });
        }
        let later = self
            .first_nonzero(sector_end, size)
            .map_err(|e| self.io_err(e))?;
        match later {
            None => Ok(()),
            // A sector of the final write that never reached the disk.
            Some(_) if self.is_last() => Err(Stop::Torn { seg, offset: off }),
            Some(z) => Err(Stop::Corrupt {
                seg,
                offset: off,
                what: format!("non-zero bytes after the end of the log (offset {z})"),
            }),
        }
    }
}

/// Index of the first non-zero byte of `b` (word-wide: this scans the
/// whole preallocated tail of a segment).
fn first_nonzero_in(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 256;
    let mut start = 0;
    for block in b.chunks(BLOCK) {
        if block.iter().fold(0u8, |a, &x| a | x) != 0 {
            return block.iter().position(|&x| x != 0).map(|k| start + k);
        }
        start += block.len();
    }
    None
}

/// The next stretch of `file` that may hold data at or after `off`, as
/// (start, end): holes before `start` read as zeros. Where the system
/// cannot tell, the whole rest up to `to`.
fn data_extent(file: &File, off: u64, to: u64) -> io::Result<(u64, u64)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        let Ok(at) = libc::off_t::try_from(off) else {
            return Ok((off, to));
        };
        // The file offset moves; nothing relies on it while reading (a
        // writer positions its tail after the replay).
        // SAFETY: plain syscall on a valid fd.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENXIO) => Ok((to, to)),
                _ => Ok((off, to)),
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let data = data as u64;
        let hole = if hole < 0 || hole as u64 <= data {
            to
        } else {
            hole as u64
        };
        Ok((data.max(off), hole))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Ok((off, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::replay::decoder::Input;
    use std::io::Write;
    use std::sync::Arc;

    /// Frames of records of the given types and data, CRC-chained from 0
    /// (a crc record first, as a segment starts), and where each starts.
    fn chained(recs: &[(i64, &[u8])]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut offs = Vec::new();
        let mut c = 0;
        let mut all = vec![(record::CRC, &[][..])];
        all.extend_from_slice(recs);
        for &(t, d) in &all {
            let data = (t != record::CRC).then_some(d);
            if let Some(d) = data {
                c = crc::update(c, d);
            }
            let mut body = Vec::new();
            record::encode_record(&mut body, t, c, data);
            let (word, pad) = frame::encode(body.len());
            offs.push(out.len() as u64);
            out.extend_from_slice(&word.to_le_bytes());
            out.extend_from_slice(&body);
            out.extend(std::iter::repeat_n(0, pad));
        }
        (out, offs)
    }

    fn many(files: &[Vec<u8>]) -> (tempfile::TempDir, Decoder) {
        let dir = tempfile::tempdir().unwrap();
        let inputs = files
            .iter()
            .enumerate()
            .map(|(k, bytes)| {
                let path = dir.path().join(format!("{k}.wal"));
                std::fs::File::create(&path)
                    .unwrap()
                    .write_all(bytes)
                    .unwrap();
                Input {
                    name: format!("{k}.wal"),
                    file: Arc::new(File::open(&path).unwrap()),
                    size: bytes.len() as u64,
                }
            })
            .collect();
        (dir, Decoder::new(inputs))
    }

    /// Decode to the end: the number of frames, or the stop.
    fn run(dec: &mut Decoder) -> Result<usize, Stop> {
        let mut n = 0;
        while dec.next_frame()?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    fn ten_records() -> (Vec<u8>, Vec<u64>) {
        let datas: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 40]).collect();
        let recs: Vec<(i64, &[u8])> = datas.iter().map(|d| (record::ENTRY, &d[..])).collect();
        chained(&recs)
    }

    /// `bytes` with zeros after it up to `size`.
    fn padded(mut bytes: Vec<u8>, size: usize) -> Vec<u8> {
        bytes.resize(size, 0);
        bytes
    }

    #[test]
    fn a_log_followed_by_zeros_ends_cleanly() {
        let (log, _) = ten_records();
        let (_d, mut dec) = many(&[padded(log, 4096)]);
        assert_eq!(run(&mut dec).unwrap(), 11);
    }

    #[test]
    fn a_zero_length_word_with_bytes_in_its_sector_is_corrupt() {
        let (mut log, offs) = ten_records();
        let at = offs[3] as usize;
        log[at..at + 8].fill(0);
        for files in [
            vec![padded(log.clone(), 4096)],
            vec![log.clone(), log.clone()],
        ] {
            let (_d, mut dec) = many(&files);
            let stop = run(&mut dec).unwrap_err();
            assert!(
                matches!(stop, Stop::Corrupt { seg: 0, offset, .. } if offset == offs[3]),
                "{stop:?}"
            );
        }
    }

    #[test]
    fn bytes_after_a_clean_sector_are_torn_in_the_last_segment_only() {
        // a lost sector: zeros from frame 3 to its sector's end, records after
        let (log, offs) = ten_records();
        let mut lost = padded(log, 2048);
        let at = offs[3] as usize;
        let end = (at / 512 + 1) * 512;
        lost[at..end].fill(0);
        assert!(offs.iter().any(|&o| o as usize > end));
        let (_d, mut dec) = many(&[lost.clone()]);
        assert!(matches!(run(&mut dec), Err(Stop::Torn { offset, .. }) if offset == offs[3]));
        let (_d, mut dec) = many(&[lost, padded(Vec::new(), 64)]);
        assert!(matches!(run(&mut dec), Err(Stop::Corrupt { seg: 0, .. })));
        // a stray byte far after the end of the log
        let (log, _) = ten_records();
        let mut stray = padded(log.clone(), 4096);
        stray[3000] = 1;
        let (_d, mut dec) = many(&[stray.clone()]);
        assert!(
            matches!(run(&mut dec), Err(Stop::Torn { offset, .. }) if offset == log.len() as u64)
        );
        let (_d, mut dec) = many(&[stray, padded(Vec::new(), 64)]);
        assert!(matches!(run(&mut dec), Err(Stop::Corrupt { seg: 0, .. })));
    }

    #[test]
    fn a_length_past_the_end_of_an_earlier_segment_is_corrupt() {
        let (mut log, offs) = ten_records();
        let at = offs[10] as usize;
        let n = u64::from_le_bytes(log[at..at + 8].try_into().unwrap()) & 0xffff;
        log[at..at + 8].copy_from_slice(&(n + 64).to_le_bytes());
        let (_d, mut dec) = many(&[log.clone(), log.clone()]);
        assert!(matches!(run(&mut dec), Err(Stop::Corrupt { seg: 0, .. })));
        // the last segment: nothing valid after it, a torn write
        let (_d, mut dec) = many(&[log]);
        assert!(matches!(run(&mut dec), Err(Stop::Torn { .. })));
    }

    #[test]
    fn a_length_running_over_valid_records_is_not_torn() {
        let (mut log, offs) = ten_records();
        let at = offs[2] as usize;
        log[at + 1] ^= 0x10; // 4 KiB longer: into the zeros after the log
        let (_d, mut dec) = many(&[padded(log, 8192)]);
        let stop = run(&mut dec).unwrap_err();
        assert!(
            matches!(stop, Stop::Corrupt { offset, .. } | Stop::Crc { offset, .. } if offset == offs[2]),
            "{stop:?}"
        );
    }

    #[test]
    fn a_changed_length_before_the_last_record_is_not_torn() {
        // one record after the damaged one: it continues the damaged
        // record's CRC, so the length word was changed, not torn
        let (mut log, offs) = ten_records();
        let at = offs[9] as usize;
        log[at + 1] ^= 0x01;
        let (_d, mut dec) = many(&[padded(log.clone(), 8192)]);
        let stop = run(&mut dec).unwrap_err();
        assert!(!matches!(stop, Stop::Torn { .. }), "{stop:?}");
        // the last record's own length: nothing after it tells, a torn tail
        let (mut log, offs) = ten_records();
        let at = offs[10] as usize;
        log[at + 1] ^= 0x01;
        let (_d, mut dec) = many(&[padded(log, 8192)]);
        assert!(matches!(run(&mut dec), Err(Stop::Torn { .. })));
    }

    #[test]
    fn a_crc_failure_with_a_whole_lost_sector_and_records_after_is_torn() {
        // frame 2 holds 1200 bytes; a sector inside it is lost (zeros)
        let big = vec![b'x'; 1200];
        let small = vec![b'y'; 40];
        let mut recs: Vec<(i64, &[u8])> = vec![(record::ENTRY, &small), (record::ENTRY, &big)];
        recs.extend(std::iter::repeat_n((record::ENTRY, &small[..]), 4));
        let (log, offs) = chained(&recs);
        let mut lost = padded(log.clone(), 4096);
        let s = (offs[2] as usize / 512 + 1) * 512;
        assert!(s + 512 < offs[3] as usize);
        lost[s..s + 512].fill(0);
        let (_d, mut dec) = many(&[lost]);
        assert!(matches!(run(&mut dec), Err(Stop::Torn { offset, .. }) if offset == offs[2]));
        // a changed byte instead: a CRC mismatch, valid records after it
        let mut changed = padded(log, 4096);
        changed[s + 7] ^= 1;
        let (_d, mut dec) = many(&[changed]);
        assert!(matches!(run(&mut dec), Err(Stop::Crc { offset, .. }) if offset == offs[2]));
    }

    #[test]
    fn a_byte_beyond_a_hole_is_found() {
        use std::os::unix::fs::FileExt;
        let (log, _) = ten_records();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.wal");
        let f = crate::fsutil::fresh_file(&path);
        f.write_all_at(&log, 0).unwrap();
        f.set_len(4 << 20).unwrap(); // a hole up to the end
        let input = |f: &File| Input {
            name: "0.wal".into(),
            file: Arc::new(f.try_clone().unwrap()),
            size: 4 << 20,
        };
        let mut dec = Decoder::new(vec![input(&f)]);
        assert_eq!(run(&mut dec).unwrap(), 11);
        f.write_all_at(&[1], (3 << 20) + 5).unwrap();
        let mut dec = Decoder::new(vec![input(&f)]);
        assert!(matches!(run(&mut dec), Err(Stop::Torn { .. })));
        assert_eq!(first_nonzero_in(&[0, 0, 0, 2]), Some(3));
        let mut v = vec![0u8; 1000];
        v[777] = 9;
        assert_eq!(first_nonzero_in(&v), Some(777));
        assert_eq!(first_nonzero_in(&v[..777]), None);
    }

    #[test]
    fn records_after_finds_two_linked_frames() {
        let (log, offs) = ten_records();
        let mut v = padded(Vec::new(), 24);
        v[3] = 7;
        v.extend_from_slice(&log[offs[4] as usize..]);
        let (_d, mut dec) = many(&[v]);
        assert_eq!(dec.records_after(0, None).unwrap(), Some(24));
        // a single frame is not enough
        let (_d, mut dec) = many(&[log[offs[10] as usize..].to_vec()]);
        assert_eq!(dec.records_after(0, None).unwrap(), None);
    }
}
