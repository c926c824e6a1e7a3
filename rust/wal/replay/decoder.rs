//! Reading frames back: one decoder runs over the selected segments in
//! order, checking every record's CRC against the running chain.
//!
//! End of a segment: a clean end of file, or a zero length word with
//! nothing but zeros after it (the preallocated, never-written space).
//! Whether a frame that fails is a torn final write or damage is decided
//! in `damage.rs`.
//!
//! Lengths are checked against what the file holds before anything is
//! allocated.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::crc;
use crate::frame;
use crate::record::{self, Record};

pub(super) const SECTOR: u64 = 512;
pub(super) const READ_CHUNK: usize = 1 << 20;
/// How often a reader reads a damaged-looking tail again (`reread_tail`).
const REREADS: u32 = 7;

/// etcd 3.4 refuses a record of `n` bytes and `pad` padding when
/// `n >= MAX_RECORD - pad` ("max entry size limit exceeded").
pub const MAX_RECORD: u64 = 10 * 1024 * 1024;

/// Smallest record: a type and a CRC field.
pub(super) const MIN_RECORD: u64 = 4;

/// One segment to read.
pub struct Input {
    pub name: String,
    pub file: Arc<File>,
    pub size: u64,
}

/// Why decoding stopped early.
#[derive(Debug)]
pub enum Stop {
    /// A short frame or torn write; `offset` is its length word's offset.
    Torn {
        seg: usize,
        offset: u64,
    },
    Crc {
        seg: usize,
        offset: u64,
    },
    Corrupt {
        seg: usize,
        offset: u64,
        what: String,
    },
    /// A length word at or above etcd 3.4's limit.
    TooLarge {
        seg: usize,
        offset: u64,
        len: u64,
    },
    Io(io::Error, String),
    /// A crc record whose value does not continue the chain (the reader's
    /// check, not the decoder's).
    Chain {
        seg: usize,
        offset: u64,
    },
}

impl Stop {
    /// The segment (position in the decoder's inputs) where decoding stopped.
    pub fn seg(&self) -> Option<usize> {
        self.at().map(|(seg, _)| seg)
    }

    /// Where decoding stopped: the segment and the offset of the frame.
    pub fn at(&self) -> Option<(usize, u64)> {
        match self {
            Stop::Torn { seg, offset }
            | Stop::Crc { seg, offset }
            | Stop::Corrupt { seg, offset, .. }
            | Stop::TooLarge { seg, offset, .. }
            | Stop::Chain { seg, offset } => Some((*seg, *offset)),
            Stop::Io(..) => None,
        }
    }
}

/// Where a decoded frame is (its data: a range of the decoder's buffer).
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub seg: usize,
    pub offset: u64,
    pub rtype: i64,
    pub crc: u32,
    data: Option<(usize, usize)>,
}

/// A decoded frame: where it is and its record; `data` borrows the decoder.
pub struct Frame<'a> {
    pub seg: usize,
    pub offset: u64,
    pub rec: Record<'a>,
}

pub struct Decoder {
    pub inputs: Vec<Input>,
    /// Index of the segment being read.
    pub(super) cur: usize,
    /// Offset just past the last good frame of the current segment.
    pub last_valid_off: u64,
    /// The running CRC chain.
    pub crc: u32,
    /// Bytes of the current segment from `buf_off` on.
    pub(super) buf: Vec<u8>,
    pub(super) buf_off: u64,
    /// Bytes read from the segments so far.
    pub(super) read: u64,
}

impl Decoder {
    /// Go on from the frame at `offset` of input `seg`, the CRC chain
    /// standing at `crc` there (the `prev_crc` a replay recorded for it):
    /// a reader that knows where a frame is need not decode what precedes it.
    pub fn seek(&mut self, seg: usize, offset: u64, crc: u32) {
        self.cur = seg;
        self.last_valid_off = offset;
        self.crc = crc;
        self.buf.clear();
        self.buf_off = 0;
    }

    pub fn new(inputs: Vec<Input>) -> Self {
        Decoder {
            inputs,
            cur: 0,
            last_valid_off: 0,
            crc: 0,
            buf: Vec::new(),
            buf_off: 0,
            read: 0,
        }
    }

    /// Forget what was read of the current segment and take its size
    /// again, so that the next frame is decoded from fresh bytes (a reader
    /// beside a live writer may have caught a page in the middle of a write).
    pub fn refresh(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.buf_off = 0;
        if let Some(inp) = self.inputs.get_mut(self.cur) {
            inp.size = inp.file.metadata()?.len();
        }
        Ok(())
    }

    /// Whether damage at `stop` should be read again before it is
    /// reported: it is in the last segment, a writer holds that segment's
    /// lock (a reader beside a live writer can catch the newest page half
    /// written: zeros, then later bytes), and fewer than `REREADS`
    /// re-reads were made. If so, waits
    /// (2, 4, 8, ... ms: about a quarter of a second in all, so a writer
    /// descheduled in the middle of a write on a loaded machine finishes
    /// it) and forgets what it read of that segment.
    pub fn reread_tail(&mut self, stop: &Stop, rereads: &mut u32) -> bool {
        let Some(last) = self.inputs.len().checked_sub(1) else {
            return false;
        };
        if stop.seg() != Some(last) || *rereads >= REREADS {
            return false;
        }
        // No writer holds the segment: nothing is being written into it,
        // what was read is what there is.
        if *rereads == 0 && !crate::fsutil::held_by_another(&self.inputs[last].file) {
            return false;
        }
        *rereads += 1;
        std::thread::sleep(std::time::Duration::from_millis(1 << *rereads));
        self.refresh().is_ok()
    }

    /// Make `buf` cover [off, off+n) of the current file if the file has
    /// those bytes; return how many of them are available.
    pub(super) fn fill(&mut self, off: u64, n: usize) -> io::Result<usize> {
        let inp = &self.inputs[self.cur];
        let have_start = off >= self.buf_off;
        let have_end = off + n as u64 <= self.buf_off + self.buf.len() as u64;
        if have_start && have_end {
            return Ok(n);
        }
        let want = n.max(READ_CHUNK);
        let avail = inp.size.saturating_sub(off);
        // Bytes already read at the start of the range are kept, not read
        // again: a log read front to back is read once.
        let end = self.buf_off + self.buf.len() as u64;
        let keep = if have_start && off < end {
            self.buf.drain(..(off - self.buf_off) as usize);
            (end - off) as usize
        } else {
            self.buf.clear();
            0
        };
        let len = ((want as u64).min(avail) as usize).max(keep);
        self.buf.resize(len, 0);
        let mut got = keep;
        while got < len {
            match inp.file.read_at(&mut self.buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.read += (got - keep) as u64;
        self.buf.truncate(got);
        self.buf_off = off;
        Ok(got.min(n))
    }

    pub(super) fn slice(&self, off: u64, n: usize) -> &[u8] {
        let s = (off - self.buf_off) as usize;
        &self.buf[s..s + n]
    }

    pub(super) fn is_last(&self) -> bool {
        self.cur + 1 == self.inputs.len()
    }
    pub(super) fn io_err(&self, e: io::Error) -> Stop {
        let name = self
            .inputs
            .get(self.cur)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        Stop::Io(e, name)
    }

    /// The next frame, `Ok(None)` at the end of the last segment.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Stop> {
        let found = self.advance()?;
        Ok(found.map(|f| self.frame(f)))
    }

    /// `next_frame`, saying where the frame is instead of borrowing it.
    pub fn advance(&mut self) -> Result<Option<Found>, Stop> {
        loop {
            if self.cur >= self.inputs.len() {
                return Ok(None);
            }
            let off = self.last_valid_off;
            let seg = self.cur;
            let got = self
                .fill(off, frame::LEN_WORD)
                .map_err(|e| self.io_err(e))?;
            let word = if got == frame::LEN_WORD {
                u64::from_le_bytes(self.slice(off, 8).try_into().unwrap_or([0; 8]))
            } else if got == 0 {
                0
            } else {
                let found = Stop::Corrupt {
                    seg,
                    offset: off,
                    what: "length word cut short by the end of the segment".into(),
                };
                return Err(self.verdict(off, None, None, true, found));
            };
            if word == 0 {
                if got == frame::LEN_WORD {
                    self.check_end(off)?;
                }
                if self.is_last() {
                    self.cur += 1;
                    return Ok(None);
                }
                self.cur += 1;
                self.last_valid_off = 0;
                self.buf.clear();
                self.buf_off = 0;
                continue;
            }
            let (n, pad) = frame::decode(word);
            if n.saturating_add(pad) >= MAX_RECORD {
                return Err(Stop::TooLarge {
                    seg,
                    offset: off,
                    len: n,
                });
            }
            let size = self.inputs[self.cur].size;
            let body_start = off + frame::LEN_WORD as u64;
            let remaining = size.saturating_sub(body_start);
            if n + pad > remaining {
                let found = Stop::Corrupt {
                    seg,
                    offset: off,
                    what: format!("a record of {n} bytes runs past the end of the segment"),
                };
                return Err(self.verdict(off, None, None, true, found));
            }
            let body_len = (n + pad) as usize;
            let end = body_start + n + pad;
            let got = self
                .fill(body_start, body_len)
                .map_err(|e| self.io_err(e))?;
            if got < body_len {
                // The file shrank under us.
                return Err(Stop::Torn { seg, offset: off });
            }
            // Padding is zeros whatever happened: only the record's bytes count.
            let torn = self.is_last() && self.torn_body(body_start, n as usize);
            let parsed = {
                let body = self.slice(body_start, n as usize);
                record::decode_record(body).map(|r| {
                    let range = r
                        .data
                        .map(|d| (d.as_ptr() as usize - body.as_ptr() as usize, d.len()));
                    (r.rtype, r.crc, range)
                })
            };
            let (rtype, rcrc, range) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    let torn = torn || self.unfinished_tail(body_start, n);
                    let found = Stop::Corrupt {
                        seg,
                        offset: off,
                        what: e.to_string(),
                    };
                    return Err(self.verdict(off, Some(end), None, torn, found));
                }
            };
            let body_idx = (body_start - self.buf_off) as usize;
            if rtype != record::CRC {
                let data = match range {
                    Some((st, len)) => &self.buf[body_idx + st..body_idx + st + len],
                    None => &[][..],
                };
                let c = crc::update(self.crc, data);
                if c != rcrc {
                    let torn = torn || self.unfinished_tail(body_start, n);
                    let found = Stop::Crc { seg, offset: off };
                    return Err(self.verdict(off, Some(end), Some(rcrc), torn, found));
                }
                self.crc = c;
            }
            self.last_valid_off = end;
            // `verdict` and `unfinished_tail` may have moved the buffer.
            let body_idx = (body_start - self.buf_off) as usize;
            return Ok(Some(Found {
                seg,
                offset: off,
                rtype,
                crc: rcrc,
                data: range.map(|(st, len)| (body_idx + st, len)),
            }));
        }
    }

    /// The record of the frame `advance` found (its data is in the buffer
    /// until the next call).
    pub fn frame(&self, f: Found) -> Frame<'_> {
        Frame {
            seg: f.seg,
            offset: f.offset,
            rec: Record {
                rtype: f.rtype,
                crc: f.crc,
                data: f.data.map(|(st, len)| &self.buf[st..st + len]),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// etcd's record_test.go vector: an unpadded 14-byte record, type 1.
    const INFO_DATA: [u8; 4] = [0x08, 0xef, 0xfd, 0x02];

    fn info_record() -> Vec<u8> {
        let mut v = vec![
            0x0e, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01, 0x10, 0x99, 0xb5, 0xe4, 0xd0, 0x03, 0x1a, 0x04,
        ];
        v.extend_from_slice(&INFO_DATA);
        v
    }

    fn decoder_over(bytes: &[u8]) -> (tempfile::TempDir, Decoder) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0000000000000000-0000000000000000.wal");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        let file = File::open(&path).unwrap();
        let size = bytes.len() as u64;
        let dec = Decoder::new(vec![Input {
            name: "seg".into(),
            file: Arc::new(file),
            size,
        }]);
        (dir, dec)
    }

    #[test]
    fn reads_the_etcd_record_vector() {
        let (_d, mut dec) = decoder_over(&info_record());
        let f = dec.next_frame().unwrap().unwrap();
        assert_eq!(f.rec.rtype, 1);
        assert_eq!(f.rec.crc, crc::checksum(&INFO_DATA));
        assert_eq!(f.rec.data, Some(&INFO_DATA[..]));
        assert!(dec.next_frame().unwrap().is_none());
    }

    #[test]
    fn short_inputs_are_torn() {
        let rec = info_record();
        let (_d, mut dec) = decoder_over(&[]);
        assert!(dec.next_frame().unwrap().is_none());
        for cut in [8, 10, rec.len() - 4, rec.len() - 8, 3] {
            let (_d, mut dec) = decoder_over(&rec[..cut]);
            assert!(
                matches!(dec.next_frame(), Err(Stop::Torn { offset: 0, .. })),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn changed_data_is_a_crc_mismatch() {
        let mut rec = info_record();
        *rec.last_mut().unwrap() = b'a';
        let (_d, mut dec) = decoder_over(&rec);
        assert!(matches!(dec.next_frame(), Err(Stop::Crc { offset: 0, .. })));
    }

    #[test]
    fn huge_length_is_too_large_not_allocated() {
        let mut v = (u64::MAX >> 8).to_le_bytes().to_vec();
        v.extend_from_slice(&[0x08, 0x01]);
        let (_d, mut dec) = decoder_over(&v);
        assert!(matches!(dec.next_frame(), Err(Stop::TooLarge { .. })));
    }

    #[test]
    fn lengths_at_etcds_limit_are_too_large() {
        for pad in [0u64, 5] {
            for (n, too_large) in [(MAX_RECORD - pad, true), (MAX_RECORD - pad - 1, false)] {
                let word = if pad == 0 { n } else { n | (0x80 | pad) << 56 };
                let mut v = word.to_le_bytes().to_vec();
                v.extend_from_slice(&[0x08, 0x02, 0x10, 0x00]);
                let (_d, mut dec) = decoder_over(&v);
                let stop = dec.next_frame().err();
                if too_large {
                    assert!(matches!(stop, Some(Stop::TooLarge { len, .. }) if len == n));
                } else {
                    assert!(matches!(stop, Some(Stop::Torn { .. })), "{stop:?}");
                }
            }
        }
    }
}
