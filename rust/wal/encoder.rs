//! Framing records onto the tail segment: etcd's `encoder.go`.
//!
//! The encoder carries the CRC chain and frames each record (length word,
//! record, padding to 8 bytes); the page writer below it hands bytes to the
//! OS exactly when etcd's buffered writer does.
//!
//! The bytes written do not depend on the page writer, but *when* bytes
//! reach the OS does, and etcd decides segment cuts from the OS-visible
//! offset. Matching its buffering is what makes cut points (and so file
//! names and sizes) equal.
//!
//! Rules: a write that fits under the 128 KiB watermark is buffered. One
//! that does not first tops the buffer up to the next 4 KiB boundary (or, if
//! it is too short for that, is buffered whole, overshooting the watermark),
//! then the buffer goes out; whole pages of a remainder longer than one page
//! are written straight through, and the rest is buffered.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use super::pipeline::ZeroAhead;
use crate::crc;
use crate::failpoint;
use crate::frame;
use crate::record;

pub const PAGE: usize = 4096;
pub const WATERMARK: usize = 128 * 1024;

/// A page-aligned write buffer with the flushing rules of etcd's WAL writer.
pub struct PageWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
    /// Offset, modulo the page size, at which `buf[0]` will land.
    page_offset: usize,
    /// Bytes handed to `inner` so far, counted from the writer's start offset.
    flushed: u64,
}

impl<W: Write> PageWriter<W> {
    /// A writer whose first byte lands at file offset `offset`.
    pub fn new(inner: W, offset: u64) -> Self {
        PageWriter {
            inner,
            buf: Vec::with_capacity(WATERMARK + PAGE),
            page_offset: (offset % PAGE as u64) as usize,
            flushed: 0,
        }
    }

    /// Bytes a write may add without a flush (under the watermark).
    pub fn room(&self) -> usize {
        WATERMARK.saturating_sub(self.buf.len())
    }

    /// Bytes held, not yet handed to the OS.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes handed to the OS since the writer was created.
    pub fn flushed(&self) -> u64 {
        self.flushed
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn write(&mut self, mut p: &[u8]) -> io::Result<()> {
        loop {
            if self.buf.len() + p.len() <= WATERMARK {
                self.buf.extend_from_slice(p);
                return Ok(());
            }
            let slack = PAGE - (self.page_offset + self.buf.len()) % PAGE;
            if slack != PAGE {
                if p.len() < slack {
                    self.buf.extend_from_slice(p);
                    return Ok(());
                }
                self.buf.extend_from_slice(&p[..slack]);
                p = &p[slack..];
            }
            self.flush()?;
            if p.len() > PAGE {
                let whole = p.len() / PAGE * PAGE;
                self.inner.write_all(&p[..whole])?;
                self.flushed += whole as u64;
                p = &p[whole..];
            }
        }
    }

    /// Hand everything buffered to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self.buf.len();
        let res = self.inner.write_all(&self.buf);
        self.page_offset = (self.page_offset + n) % PAGE;
        self.buf.clear();
        if res.is_ok() {
            self.flushed += n as u64;
        }
        res
    }
}

/// Writes to the tail at its current position (`pos`), first telling the
/// zero-ahead thread where the writer is going.
pub struct FileSink {
    file: Arc<File>,
    pos: u64,
    zero: Option<Arc<ZeroAhead>>,
}

impl Write for FileSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if let Some(z) = &self.zero {
            z.claim(self.pos + b.len() as u64);
        }
        let f = &*self.file;
        failpoint::write_site("write_before", b, |buf| {
            // A torn write keeps whole 512-byte sectors: what a crash or a
            // power cut leaves of a write (the rest stays as it was, zeros).
            use std::io::Seek;
            let mut w = f;
            let pos = w.stream_position()?;
            let end = pos + buf.len() as u64;
            let boundary = end.saturating_sub(1) / 512 * 512;
            let keep = boundary.saturating_sub(pos) as usize;
            w.write_all(&buf[..keep.min(buf.len())])
        })?;
        let n = (&*self.file).write(b)?;
        self.pos += n as u64;
        failpoint::hit("write_after")?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Frames records onto a segment, carrying the CRC chain.
pub struct Encoder {
    pw: PageWriter<FileSink>,
    base: u64,
    pub crc: u32,
    rec: Vec<u8>,
}

impl Encoder {
    /// An encoder appending to `file`, positioned at `offset`.
    pub fn new(file: Arc<File>, offset: u64, crc: u32, zero: Option<Arc<ZeroAhead>>) -> Self {
        let sink = FileSink {
            file,
            pos: offset,
            zero,
        };
        Encoder {
            pw: PageWriter::new(sink, offset),
            base: offset,
            crc,
            rec: Vec::new(),
        }
    }

    /// File offset the OS has seen (buffered bytes excluded), as etcd's
    /// `Seek(0, io.SeekCurrent)` reports it.
    pub fn os_offset(&self) -> u64 {
        self.base + self.pw.flushed()
    }

    /// Bytes records may add without any reaching the OS (no system call).
    pub fn room(&self) -> usize {
        self.pw.room()
    }

    pub fn file(&self) -> &Arc<File> {
        &self.pw.get_ref().file
    }

    pub fn encode(&mut self, rtype: i64, data: Option<&[u8]>) -> io::Result<()> {
        if let Some(d) = data {
            self.crc = crc::update(self.crc, d);
        }
        self.rec.clear();
        record::encode_record(&mut self.rec, rtype, self.crc, data);
        let (word, pad) = frame::encode(self.rec.len());
        self.rec.resize(self.rec.len() + pad, 0);
        self.pw.write(&word.to_le_bytes())?;
        self.pw.write(&self.rec)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.pw.flush()
    }
}

/// Size of the frame body (record and padding) holding `data_len` bytes of data.
pub fn frame_body_len(rtype: i64, data_len: Option<usize>) -> usize {
    // The CRC is at most a 5-byte varint; use the worst case.
    let n = record::record_len(rtype, u32::MAX, data_len);
    n + (8 - n % 8) % 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the size of every write that reaches the sink.
    #[derive(Default)]
    struct Sink {
        writes: Vec<usize>,
        data: Vec<u8>,
    }

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.push(b.len());
            self.data.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn small_writes_stay_buffered() {
        let mut pw = PageWriter::new(Sink::default(), 0);
        pw.write(&[1; 100]).unwrap();
        assert!(pw.get_ref().writes.is_empty());
        assert_eq!(pw.buffered(), 100);
        pw.flush().unwrap();
        assert_eq!(pw.get_ref().writes, vec![100]);
    }

    #[test]
    fn overflow_flushes_page_aligned() {
        let mut pw = PageWriter::new(Sink::default(), 0);
        pw.write(&vec![1; WATERMARK - 10]).unwrap();
        pw.write(&[2; 100]).unwrap();
        // buffer topped up to the page boundary (WATERMARK) and flushed
        assert_eq!(pw.get_ref().writes, vec![WATERMARK]);
        assert_eq!(pw.buffered(), 90);
        assert_eq!(pw.flushed(), WATERMARK as u64);
    }

    #[test]
    fn large_write_goes_through_in_pages() {
        let mut pw = PageWriter::new(Sink::default(), 100);
        pw.write(&[0; 50]).unwrap();
        let big = vec![7u8; 3 * WATERMARK];
        pw.write(&big).unwrap();
        let s = pw.get_ref();
        // first flush ends at a page boundary of the file (offset 100 + ...)
        assert_eq!((100 + s.writes[0]) % PAGE, 0);
        assert_eq!(s.writes[1] % PAGE, 0);
        pw.flush().unwrap();
        assert_eq!(pw.get_ref().data.len(), 50 + big.len());
    }

    #[test]
    fn short_write_past_watermark_is_buffered_unaligned() {
        let mut pw = PageWriter::new(Sink::default(), 0);
        pw.write(&vec![1; WATERMARK - 1]).unwrap();
        pw.write(&[2; 8]).unwrap();
        // slack to the page boundary is 1: it is filled, the buffer flushed
        assert_eq!(pw.get_ref().writes, vec![WATERMARK]);
        assert_eq!(pw.buffered(), 7);
        // a writer starting mid-page: the slack to its page boundary is 4006
        let mut pw = PageWriter::new(Sink::default(), 100);
        pw.write(&vec![1; WATERMARK - 4000]).unwrap();
        pw.write(&[1; 3990]).unwrap(); // 10 below the watermark
        pw.write(&[2; 20]).unwrap(); // shorter than the slack: buffered, over the watermark
        assert!(pw.get_ref().writes.is_empty());
        assert_eq!(pw.buffered(), WATERMARK + 10);
    }
}
