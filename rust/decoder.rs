//! Reading frames back: one decoder runs over the selected segments in
//! order, checking every record's CRC against the running chain.
//!
//! End of a segment: a clean end of file or a zero length word (the
//! preallocated, never-written space). A frame that is cut short, or a
//! record that fails to parse or to match its CRC while the body holds a
//! zeroed 512-byte sector of the last segment, is a torn write. Lengths are
//! checked against what the file holds before anything is allocated.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::crc;
use crate::frame;
use crate::record::{self, Record};

const SECTOR: u64 = 512;
const READ_CHUNK: usize = 1 << 20;

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
    Io(io::Error, String),
}

/// A decoded frame: where it is and its record; `data` borrows the decoder.
pub struct Frame<'a> {
    pub seg: usize,
    pub offset: u64,
    pub rec: Record<'a>,
}

pub struct Decoder {
    pub inputs: Vec<Input>,
    cur: usize,
    /// Offset just past the last good frame of the current segment.
    pub last_valid_off: u64,
    /// The running CRC chain.
    pub crc: u32,
    buf: Vec<u8>,
    buf_off: u64,
    /// When set, a segment that ends at a zero length word must be all
    /// zeros from there to its end (`verify`'s stricter check).
    pub check_trailing_zeros: bool,
    /// Set by `next` when a segment's tail held non-zero bytes.
    pub dirty_tail: Option<(usize, u64)>,
}

impl Decoder {
    pub fn new(inputs: Vec<Input>) -> Self {
        Decoder {
            inputs,
            cur: 0,
            last_valid_off: 0,
            crc: 0,
            buf: Vec::new(),
            buf_off: 0,
            check_trailing_zeros: false,
            dirty_tail: None,
        }
    }

    /// Index of the segment being read (the last one once done).
    pub fn current(&self) -> usize {
        self.cur.min(self.inputs.len().saturating_sub(1))
    }

    /// Make `buf` cover [off, off+n) of the current file if the file has
    /// those bytes; return how many of them are available.
    fn fill(&mut self, off: u64, n: usize) -> io::Result<usize> {
        let inp = &self.inputs[self.cur];
        let have_start = off >= self.buf_off;
        let have_end = off + n as u64 <= self.buf_off + self.buf.len() as u64;
        if have_start && have_end {
            return Ok(n);
        }
        let want = n.max(READ_CHUNK);
        let avail = inp.size.saturating_sub(off);
        let len = (want as u64).min(avail) as usize;
        self.buf.resize(len, 0);
        let mut got = 0;
        while got < len {
            match inp.file.read_at(&mut self.buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        self.buf_off = off;
        Ok(got.min(n))
    }

    fn slice(&self, off: u64, n: usize) -> &[u8] {
        let s = (off - self.buf_off) as usize;
        &self.buf[s..s + n]
    }

    fn is_last(&self) -> bool {
        self.cur + 1 == self.inputs.len()
    }

    /// Whether a frame of the last segment that failed its checks looks like
    /// a write that never finished rather than changed bytes: its record
    /// ends in zeros and nothing but zeros follows it to the end of the
    /// file. A record whose last sector was only partly written before a
    /// crash looks like this; etcd's test (a whole zero sector, below)
    /// misses it when the frame is shorter than a sector.
    fn unfinished_tail(&mut self, body_start: u64, n: u64) -> bool {
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
    fn torn_body(&self, start: u64, len: usize) -> bool {
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

    fn io_err(&self, e: io::Error) -> Stop {
        let name = self
            .inputs
            .get(self.cur)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        Stop::Io(e, name)
    }

    fn trailing_zeros_ok(&mut self, from: u64) -> io::Result<bool> {
        let size = self.inputs[self.cur].size;
        let mut off = from;
        while off < size {
            let n = ((size - off) as usize).min(READ_CHUNK);
            let got = self.fill(off, n)?;
            if got == 0 {
                break;
            }
            if self.slice(off, got).iter().any(|&b| b != 0) {
                return Ok(false);
            }
            off += got as u64;
        }
        Ok(true)
    }

    /// The next frame, `Ok(None)` at the end of the last segment.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Stop> {
        loop {
            if self.cur >= self.inputs.len() {
                return Ok(None);
            }
            let off = self.last_valid_off;
            let got = self
                .fill(off, frame::LEN_WORD)
                .map_err(|e| self.io_err(e))?;
            let word = if got == frame::LEN_WORD {
                u64::from_le_bytes(self.slice(off, 8).try_into().unwrap_or([0; 8]))
            } else if got == 0 {
                0
            } else {
                return Err(Stop::Torn {
                    seg: self.cur,
                    offset: off,
                });
            };
            if word == 0 {
                if got == frame::LEN_WORD && self.check_trailing_zeros && self.dirty_tail.is_none()
                {
                    let clean = self.trailing_zeros_ok(off).map_err(|e| self.io_err(e))?;
                    if !clean {
                        self.dirty_tail = Some((self.cur, off));
                    }
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
            let size = self.inputs[self.cur].size;
            let body_start = off + frame::LEN_WORD as u64;
            let remaining = size.saturating_sub(body_start);
            if n.saturating_add(pad) > remaining {
                return Err(Stop::Torn {
                    seg: self.cur,
                    offset: off,
                });
            }
            let body_len = (n + pad) as usize;
            let got = self
                .fill(body_start, body_len)
                .map_err(|e| self.io_err(e))?;
            if got < body_len {
                return Err(Stop::Torn {
                    seg: self.cur,
                    offset: off,
                });
            }
            let torn = self.is_last() && self.torn_body(body_start, body_len);
            let seg = self.cur;
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
                    return Err(if torn {
                        Stop::Torn { seg, offset: off }
                    } else {
                        Stop::Corrupt {
                            seg,
                            offset: off,
                            what: e.to_string(),
                        }
                    });
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
                    return Err(if torn {
                        Stop::Torn { seg, offset: off }
                    } else {
                        Stop::Crc { seg, offset: off }
                    });
                }
                self.crc = c;
            }
            self.last_valid_off = body_start + n + pad;
            let data = range.map(|(st, len)| &self.buf[body_idx + st..body_idx + st + len]);
            let rec = Record {
                rtype,
                crc: rcrc,
                data,
            };
            return Ok(Some(Frame {
                seg,
                offset: off,
                rec,
            }));
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
    fn huge_length_is_torn_not_allocated() {
        let mut v = (u64::MAX >> 8).to_le_bytes().to_vec();
        v.extend_from_slice(&[0x08, 0x01]);
        let (_d, mut dec) = decoder_over(&v);
        assert!(matches!(dec.next_frame(), Err(Stop::Torn { .. })));
    }
}
