//! A page-aligned write buffer with the flushing rules of etcd's WAL writer.
//!
//! The bytes written do not depend on it, but *when* bytes reach the OS does,
//! and etcd decides segment cuts from the OS-visible offset. Matching its
//! buffering is what makes cut points (and so file names and sizes) equal.
//!
//! Rules: a write that fits under the 128 KiB watermark is buffered. One
//! that does not first tops the buffer up to the next 4 KiB boundary (or, if
//! it is too short for that, is buffered whole, overshooting the watermark),
//! then the buffer goes out; whole pages of a remainder longer than one page
//! are written straight through, and the rest is buffered.

use std::io::{self, Write};

pub const PAGE: usize = 4096;
pub const WATERMARK: usize = 128 * 1024;

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

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
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
