//! The write-ahead log: etcd 3.4's `wal` package, file for file.
//!
//! A writer appends frames to the tail segment through a page writer that
//! flushes exactly when etcd's does, and cuts to a new segment exactly when
//! etcd would, so the same calls give the same files. A reader selects
//! segments from a snapshot position, replays them and, in write mode, wipes
//! whatever follows the last good frame before appending behind it.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crate::crc;
use crate::decoder::{Decoder, Input, Stop};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::frame;
use crate::fsutil;
use crate::metrics::WalStats;
use crate::pagewriter::PageWriter;
use crate::record::{self, EntryArena, HardState, WalSnap};
use crate::segment;
use crate::zeroahead::{self, ZeroAhead};

/// etcd's default segment size ("64MB": 64,000,000 bytes).
pub const DEFAULT_SEGMENT_SIZE: u64 = 64_000_000;

/// What a process forked from the WAL's owner gets for a write.
pub const FORKED: &str =
    "the WAL belongs to the process that opened it; a forked child cannot write to it";

/// Largest frame (record plus padding) etcd 3.4's reader accepts is below this.
pub const MAX_FRAME_BODY: usize = 10 * 1024 * 1024;

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

/// A spare segment: the file, its `N.tmp` path, and whether it is zero-filled whole.
type Spare = (File, PathBuf, bool);

/// Keeps one preallocated, locked `N.tmp` file ready for the next cut.
///
/// The spare is also filled with zeros ahead of time, in the background,
/// once the tail is half full (so a short-lived WAL never pays for it): on
/// file systems like ext4, fallocated blocks are "unwritten" and the first
/// fdatasync into each of them must also commit an extent change, which
/// roughly halves sync throughput for larger writes. Zeros are what
/// fallocate would read back anyway, so the bytes stay etcd's. A cut that
/// needs the spare before the filling is done takes it at once.
struct Pipeline {
    rx: Option<Receiver<io::Result<Spare>>>,
    handle: Option<JoinHandle<()>>,
    /// Spares asked for so far; the allocator knows how many it handed over.
    /// Counters, not flags: a flag reset by the allocator after a hand-over
    /// could erase the next request if the writer asks again quickly.
    requested: Arc<AtomicU64>,
    /// Spares received so far (the current tail came with the last one).
    taken: u64,
    /// `k + 1` once the tail that came with spare `k` is half full: time
    /// to zero-fill the next spare.
    fill_for: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// Write zeros over `[0, size)` in 1 MiB steps and sync them, giving up
/// early (harmlessly) when `hurry` says the file is needed now.
fn zero_fill(f: &File, size: u64, hurry: &dyn Fn() -> bool) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(size as usize)];
    let mut off = 0u64;
    while off < size {
        if hurry() {
            return Ok(false);
        }
        let n = (size - off).min(CHUNK as u64) as usize;
        f.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    fsutil::fdatasync(f)?;
    Ok(true)
}

impl Pipeline {
    fn start(dir: &Path, size: u64) -> Pipeline {
        let (tx, rx) = mpsc::sync_channel::<io::Result<Spare>>(0);
        let dir = dir.to_path_buf();
        let requested = Arc::new(AtomicU64::new(0));
        let fill_for = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, f2, s2) = (requested.clone(), fill_for.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("raftwal-pipeline".into())
            .spawn(move || {
                let mut served = 0u64;
                loop {
                    let path = dir.join(format!("{}.tmp", served % 2));
                    let made = (|| {
                        let f = fsutil::create_locked(&path, true)?
                            .ok_or_else(|| io::Error::other("lock not granted"))?;
                        // A spare left by a crash may hold a header from an
                        // unfinished cut: start from zeros (etcd reuses it as is).
                        f.set_len(0)?;
                        fsutil::preallocate(&f, size)?;
                        let hurry =
                            || r2.load(Ordering::SeqCst) > served || s2.load(Ordering::SeqCst);
                        let mut zeroed = false;
                        while !hurry() {
                            if f2.load(Ordering::SeqCst) > served {
                                zeroed = zero_fill(&f, size, &hurry)?;
                                break;
                            }
                            // Every change `hurry` or the fill request look
                            // at comes with an unpark (`take`, `progress`,
                            // `stop`), and an unpark that comes first makes
                            // this return at once: sleep until there is work.
                            std::thread::park();
                        }
                        Ok((f, zeroed))
                    })();
                    match made {
                        Ok((f, zeroed)) => {
                            if tx.send(Ok((f, path.clone(), zeroed))).is_err() {
                                // The WAL closed: the spare is not needed.
                                let _ = std::fs::remove_file(&path);
                                return;
                            }
                            served += 1;
                        }
                        Err(e) => {
                            let _ = std::fs::remove_file(&path);
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })
            .ok();
        Pipeline {
            rx: Some(rx),
            handle,
            requested,
            taken: 0,
            fill_for,
            stop,
        }
    }

    fn unpark(&self) {
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
    }

    /// The tail has reached `offset` of `size` bytes: past half, start
    /// filling the spare.
    fn progress(&self, offset: u64, size: u64) {
        if offset >= size / 2 && self.fill_for.load(Ordering::SeqCst) <= self.taken {
            self.fill_for.store(self.taken + 1, Ordering::SeqCst);
            self.unpark();
        }
    }

    fn take(&mut self) -> io::Result<Spare> {
        self.requested.fetch_add(1, Ordering::SeqCst);
        self.unpark();
        let got = match &self.rx {
            Some(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("segment allocator stopped"))),
            None => Err(io::Error::other("segment allocator stopped")),
        };
        if got.is_ok() {
            self.taken += 1;
        }
        got
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.unpark();
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A segment a writer holds locked.
struct Held {
    name: String,
    index: u64,
    seq: u64,
    file: Arc<File>,
}

/// Receives replayed entries chunk by chunk, so that a caller can build
/// its own objects from them without the whole log ever being held twice.
pub trait EntrySink {
    /// Take every entry in `arena` (they follow the ones taken before).
    fn take(&mut self, arena: &EntryArena) -> Result<()>;
    /// Keep only the first `n` entries taken so far (a log overwrite).
    fn truncate(&mut self, n: usize) -> Result<()>;
    /// Arena size (bytes of entry data) at which entries are handed over.
    fn chunk_bytes(&self) -> usize {
        SINK_CHUNK
    }
}

/// Arena size at which replayed entries are handed to a sink.
pub const SINK_CHUNK: usize = 4 << 20;

/// What a replay on a helper thread hands to the sink's thread.
enum Handed {
    Take(EntryArena),
    Truncate(usize),
}

/// The helper thread's sink: forwards every call, in order.
struct Forward {
    tx: mpsc::SyncSender<Handed>,
    chunk: usize,
}

impl Forward {
    fn send(&self, h: Handed) -> Result<()> {
        self.tx
            .send(h)
            .map_err(|_| Error::Invalid("the entry sink stopped".into()))
    }
}

impl EntrySink for Forward {
    fn take(&mut self, arena: &EntryArena) -> Result<()> {
        self.send(Handed::Take(arena.clone()))
    }
    fn truncate(&mut self, n: usize) -> Result<()> {
        self.send(Handed::Truncate(n))
    }
    fn chunk_bytes(&self) -> usize {
        self.chunk
    }
}

/// The (index, term) of replayed entries at or below the start index, as
/// a log: a new entry replaces those from its index on.
#[derive(Default)]
struct Below(Vec<(u64, u64)>);

impl Below {
    /// Record entry (`index`, `term`); true if it replaced an entry of
    /// another term at that index (a raft overwrite).
    fn overwrites(&mut self, index: u64, term: u64) -> bool {
        let replaced = match self.0.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(k) => self.0[k].1 != term,
            Err(_) => false,
        };
        let keep = self.0.partition_point(|&(i, _)| i < index);
        self.0.truncate(keep);
        self.0.push((index, term));
        replaced
    }
}

/// What `read_all` returns.
pub struct ReadResult {
    pub metadata: Option<Vec<u8>>,
    pub state: HardState,
    /// The entries not handed to a sink (all of them without one).
    pub entries: EntryArena,
    /// Index of the last entry of the replayed log (the snapshot's if none).
    pub last_index: u64,
    /// The replayed segments' names, in the order `EntryMeta::seg` counts.
    pub segments: Vec<String>,
}

pub struct Wal {
    dir: PathBuf,
    writable: bool,
    segment_size: u64,
    start: WalSnap,
    decoder: Option<Decoder>,
    /// Write mode: segments held locked, oldest first; the last is the tail.
    held: Vec<Held>,
    enc: Option<Encoder>,
    pipeline: Option<Pipeline>,
    /// The WAL directory, open while writing: a cut fsyncs it without
    /// needing a new descriptor (which could fail with EMFILE).
    dir_file: Option<File>,
    /// Writes zeros ahead of the writer in a tail that was only fallocated.
    zero: Option<Arc<ZeroAhead>>,
    metadata: Option<Vec<u8>>,
    /// The last non-empty HardState saved by this process (etcd's `w.state`).
    state: HardState,
    /// Index of the last entry saved (or a larger snapshot index).
    enti: u64,
    /// The log's last index as a save must continue it: `enti`, or after
    /// a replay the last index replayed when a snapshot lies beyond `enti`.
    limit: u64,
    pub poisoned: Option<String>,
    read_failed: bool,
    closed: bool,
    /// Count of saves that wrote records; `durable_seq` of them are synced.
    pub seq: u64,
    pub durable_seq: u64,
    pub durable_index: u64,
    stats: Arc<WalStats>,
    /// A sync is running outside the lock (group commit).
    pub syncing: bool,
    scratch: Vec<u8>,
    /// The process that opened the WAL: a child forked from it inherits
    /// the open files and their locks, but must not write through them.
    owner: u32,
}

fn name_of(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

impl Wal {
    fn blank(dir: &Path, writable: bool, segment_size: u64) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            writable,
            segment_size,
            start: WalSnap::default(),
            decoder: None,
            held: Vec::new(),
            enc: None,
            pipeline: None,
            dir_file: None,
            zero: None,
            metadata: None,
            state: HardState::default(),
            enti: 0,
            limit: 0,
            poisoned: None,
            read_failed: false,
            closed: false,
            seq: 0,
            durable_seq: 0,
            durable_index: 0,
            stats: Arc::new(WalStats::default()),
            syncing: false,
            scratch: Vec::new(),
            owner: std::process::id(),
        }
    }

    /// An encoder appending to the tail `file` at `off`, with zeros written
    /// ahead of it from `zeroed` on (the file's length when it is
    /// zero-filled already).
    fn tail_encoder(&mut self, file: Arc<File>, off: u64, crc: u32, zeroed: u64) -> Encoder {
        if !zeroahead::enabled_by_env() {
            return Encoder::new(file, off, crc, None);
        }
        let zero = self
            .zero
            .get_or_insert_with(|| Arc::new(ZeroAhead::start()))
            .clone();
        zero.retarget(&file, off, zeroed);
        Encoder::new(file, off, crc, Some(zero))
    }

    /// Ready to append: the directory held open for cuts and the spare
    /// segment allocator running.
    fn start_writing(&mut self) -> Result<()> {
        let d = fsutil::open_dir(&self.dir)
            .map_err(|e| Error::io(format!("cannot open {}", self.dir.display()), e))?;
        self.dir_file = Some(d);
        self.pipeline = Some(Pipeline::start(&self.dir, self.segment_size));
        Ok(())
    }

    /// Stop writing zeros into the tail (before it is truncated or closed).
    fn detach_zeros(&self) {
        if let Some(z) = &self.zero {
            z.detach();
        }
    }

    /// etcd's `wal.Create`: a new WAL in `dir`, which must be missing or empty.
    pub fn create(dir: &Path, metadata: Option<&[u8]>, segment_size: u64) -> Result<Wal> {
        if let Some(m) = metadata.filter(|m| !metadata_fits(m.len())) {
            return Err(Error::EntryTooLarge {
                what: format!(
                    "metadata of {} bytes; etcd 3.4 reads records below {} bytes",
                    m.len(),
                    MAX_FRAME_BODY
                ),
            });
        }
        let dir = normalize(dir);
        if !dir_is_missing_or_empty(&dir)? {
            return Err(Error::Exists(dir.display().to_string()));
        }
        let tmp = tmp_beside(&dir);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            create_dir_all(parent)?;
        }
        // Held until the rename below: a second creator gets `Locked`.
        let tmp_lock = take_tmp(&tmp)?;
        // Another creator may have finished while we waited for the lock.
        if !dir_is_missing_or_empty(&dir)? {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Exists(dir.display().to_string()));
        }
        let first = segment::wal_name(0, 0);
        let fpath = tmp.join(&first);
        let made = (|| -> Result<Wal> {
            let f = fsutil::create_locked(&fpath, false)
                .map_err(|e| Error::io(format!("cannot create {}", fpath.display()), e))?
                .ok_or_else(|| Error::Locked(fpath.display().to_string()))?;
            fsutil::preallocate(&f, segment_size).map_err(|e| {
                Error::io(
                    format!(
                        "cannot preallocate {} bytes for {}",
                        segment_size,
                        fpath.display()
                    ),
                    e,
                )
            })?;
            let file = Arc::new(f);
            let mut w = Wal::blank(&dir, true, segment_size);
            w.held.push(Held {
                name: first.clone(),
                index: 0,
                seq: 0,
                file: file.clone(),
            });
            w.enc = Some(w.tail_encoder(file, 0, 0, 0));
            w.metadata = metadata.map(|m| m.to_vec());
            w.write(|enc| {
                enc.encode(record::CRC, None)?;
                enc.encode(record::METADATA, metadata)
            })?;
            w.save_snapshot(&WalSnap::default())?;
            Ok(w)
        })();
        let mut w = match made {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        // An empty `dir` is replaced by the renamed one.
        if let Err(e) =
            failpoint::hit("create_before_rename").and_then(|()| std::fs::rename(&tmp, &dir))
        {
            w.held.clear();
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::io(
                format!("cannot rename {} to {}", tmp.display(), dir.display()),
                e,
            ));
        }
        drop(tmp_lock);
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsutil::sync_dir(parent)
                .map_err(|e| Error::io(format!("cannot fsync {}", parent.display()), e))?;
        }
        w.start_writing()?;
        Ok(w)
    }

    /// etcd's `wal.Open` (writable) and `wal.OpenForRead`.
    pub fn open(dir: &Path, snap: WalSnap, writable: bool, segment_size: u64) -> Result<Wal> {
        if writable {
            return Wal::open_once(dir, snap, true, segment_size);
        }
        // A reader beside a live writer: a segment listed a moment ago may
        // be purged before it is opened.
        segment::relisting(|| Wal::open_once(dir, snap.clone(), false, segment_size))
    }

    fn open_once(dir: &Path, snap: WalSnap, writable: bool, segment_size: u64) -> Result<Wal> {
        let dir = normalize(dir);
        let names = segment::select(&dir, snap.index)?;
        let mut inputs = Vec::with_capacity(names.len());
        let mut w = Wal::blank(&dir, writable, segment_size);
        for n in &names {
            let path = dir.join(&n.name);
            let file = if writable {
                segment::open_locked(&path)?
            } else {
                segment::open_file(&path, false)?
            };
            let size = file
                .metadata()
                .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
                .len();
            let file = Arc::new(file);
            if writable {
                w.held.push(Held {
                    name: n.name.clone(),
                    index: n.index,
                    seq: n.seq,
                    file: file.clone(),
                });
            }
            inputs.push(Input {
                name: n.name.clone(),
                file,
                size,
            });
        }
        w.start = snap;
        w.decoder = Some(Decoder::new(inputs));
        Ok(w)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// etcd's `ReadAll`: replay the selected segments.
    ///
    /// Differences from etcd 3.4, on purpose: a missing snapshot record is an
    /// error in write mode too, and malformed entry data is an error, not a
    /// panic.
    pub fn read_all(&mut self) -> Result<ReadResult> {
        self.read_all_with(None)
    }

    /// `read_all`, handing entries to `sink` in chunks as they are replayed;
    /// the result then holds only the entries not yet handed over.
    pub fn read_all_with(&mut self, sink: Option<&mut dyn EntrySink>) -> Result<ReadResult> {
        self.check_open()?;
        if self.writable {
            self.check_owner()?;
        }
        let Some(mut dec) = self.decoder.take() else {
            return Err(Error::Closed(
                "decoder not found: read_all was already called",
            ));
        };
        let res = self.replay(&mut dec, sink);
        if res.is_err() {
            self.read_failed = true;
            self.close_quietly();
            return res;
        }
        if self.writable {
            let tail = self.held.last().map(|h| h.file.clone());
            let Some(tail) = tail else {
                self.read_failed = true;
                return Err(Error::NotFound(format!(
                    "no WAL segment in {}",
                    self.dir.display()
                )));
            };
            let off = dec.last_valid_off;
            let tail_name = self
                .held
                .last()
                .map(|h| name_of(&self.dir, &h.name))
                .unwrap_or_default();
            let prepared = (|| -> io::Result<()> {
                fsutil::zero_to_end(&tail, off)?;
                use std::io::Seek;
                (&*tail).seek(io::SeekFrom::Start(off))?;
                // What was read may have reached the page cache without an
                // fsync before a crash: make it durable before reporting it so.
                fsutil::fdatasync(&tail)
            })();
            if let Err(e) = prepared {
                self.read_failed = true;
                return Err(Error::io(
                    format!("cannot prepare {tail_name} for appending"),
                    e,
                ));
            }
            self.enc = Some(self.tail_encoder(tail, off, dec.crc, off));
            if let Err(e) = self.start_writing() {
                self.read_failed = true;
                return Err(e);
            }
        }
        self.start = WalSnap::default();
        if let Ok(r) = &res {
            self.limit = self.enti.max(r.last_index);
        }
        res
    }

    /// `read_all_with`, the replay (reading, CRC chain, decoding) running
    /// on a helper thread while `sink` takes the chunks on this one, so
    /// that decoding overlaps with building the caller's objects.
    pub fn read_all_overlapped(&mut self, sink: &mut dyn EntrySink) -> Result<ReadResult> {
        let chunk = sink.chunk_bytes();
        // Two chunks in flight: the sink never waits for the decoder
        // unless the decoder is the slower one.
        let (tx, rx) = mpsc::sync_channel::<Handed>(2);
        std::thread::scope(|s| {
            let wal = &mut *self;
            let helper = std::thread::Builder::new()
                .name("raftwal-replay".into())
                .spawn_scoped(s, move || {
                    wal.read_all_with(Some(&mut Forward { tx, chunk }))
                });
            let helper = match helper {
                Ok(h) => h,
                Err(e) => return Err(Error::io("cannot start the replay thread", e)),
            };
            let mut failed = None;
            for h in rx.iter() {
                let r = match h {
                    Handed::Take(arena) => sink.take(&arena),
                    Handed::Truncate(n) => sink.truncate(n),
                };
                if let Err(e) = r {
                    failed = Some(e);
                    break;
                }
            }
            // A replay still sending finds the channel closed and stops.
            drop(rx);
            let res = helper
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("the replay thread panicked".into())));
            match failed {
                Some(e) => Err(e),
                None => res,
            }
        })
    }

    fn replay(
        &mut self,
        dec: &mut Decoder,
        mut sink: Option<&mut dyn EntrySink>,
    ) -> Result<ReadResult> {
        let start = self.start.clone();
        let mut seen = Seen::default();
        // Entry data cannot outgrow the files it comes from: reserve that
        // (untouched pages of the reservation cost no memory). With a sink
        // the arena is emptied every SINK_CHUNK bytes and reused.
        let total: u64 = dec.inputs.iter().map(|i| i.size).sum();
        let chunk = sink.as_ref().map_or(usize::MAX, |s| s.chunk_bytes());
        let reserve = if sink.is_some() {
            chunk.saturating_add(1 << 20)
        } else {
            total as usize
        };
        let mut entries = EntryArena::with_capacity(reserve);
        // Entries already handed to the sink; the arena holds the ones after.
        let mut taken = 0usize;
        // Entries at or below the start index seen so far (and in `seen`,
        // the newest snapshot record: entries at or below it were compacted
        // when written, so they changed nothing).
        let mut below = Below::default();
        let dir = self.dir.clone();
        let names: Vec<String> = dec.inputs.iter().map(|i| name_of(&dir, &i.name)).collect();
        let mut rereads = 0;
        loop {
            let crc_before = dec.crc;
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(stop) => {
                    // A reader beside a live writer can catch the last
                    // segment's newest page half written (zeros, then
                    // later bytes): read it again before calling it damage.
                    if !self.writable && dec.reread_tail(&stop, &mut rereads) {
                        continue;
                    }
                    let err = stop_error(stop, dec, &dir);
                    if !self.writable && matches!(err, Error::TornTail { .. }) {
                        // A reader returns the intact prefix, as etcd does.
                        break;
                    }
                    return Err(err);
                }
            };
            rereads = 0;
            let (seg, offset) = (frame.seg, frame.offset);
            match frame.rec.rtype {
                record::ENTRY => {
                    let data = frame.rec.data.unwrap_or(&[]);
                    let before = entries.len();
                    let total = taken + before;
                    let (index, term, etype) = entries
                        .push_decoded(data)
                        .map(|m| (m.index, m.term, m.etype))
                        .map_err(|err| Error::Corrupt {
                            file: names[seg].clone(),
                            offset,
                            what: format!("entry data: {err}"),
                        })?;
                    seen.entry(index, term, etype, &|| names[seg].clone(), offset)?;
                    if let Some(m) = entries.metas.last_mut() {
                        m.seg = seg as u32;
                        m.frame_offset = offset;
                        m.prev_crc = crc_before;
                    }
                    // The entry sits at the end of the arena; move it to its
                    // place (a later entry replaces earlier ones from its index).
                    if index > start.index {
                        let pos = index - start.index - 1;
                        if pos > total as u64 {
                            return Err(Error::SliceOutOfRange {
                                file: names[seg].clone(),
                                offset,
                                index,
                                expected: start.index + total as u64 + 1,
                            });
                        }
                        let pos = pos as usize;
                        if pos < taken {
                            if let Some(s) = sink.as_deref_mut() {
                                s.truncate(pos)?;
                            }
                            taken = pos;
                            entries.replace_tail(0);
                        } else if pos < total {
                            entries.replace_tail(pos - taken);
                        }
                    } else {
                        // Covered by the snapshot: not returned. But if it
                        // replaced an entry of another term that was not yet
                        // compacted when it was written, it was a raft
                        // overwrite, and the entries replayed after that
                        // index were removed by it. etcd's ReadAll skips it
                        // all the same, so those entries come back after a
                        // restart, behind a snapshot of a newer term.
                        let term = entries.metas.last().map_or(0, |m| m.term);
                        entries.truncate(before);
                        if below.overwrites(index, term) && index > seen.floor {
                            if taken > 0 {
                                if let Some(s) = sink.as_deref_mut() {
                                    s.truncate(0)?;
                                }
                                taken = 0;
                            }
                            entries.truncate(0);
                        }
                    }
                    self.enti = index;
                    if let Some(s) = sink.as_deref_mut() {
                        if entries.bytes.len() >= chunk || entries.len() >= 1 << 16 {
                            s.take(&entries)?;
                            taken += entries.len();
                            entries.clear();
                        }
                    }
                }
                record::CRC => {
                    let crc = frame.rec.crc;
                    check_chain(dec, crc, names[seg].clone(), offset)?;
                }
                rtype => seen.record(
                    rtype,
                    frame.rec.data,
                    &start,
                    &|| names[seg].clone(),
                    offset,
                )?,
            }
        }
        seen.finish(&start)?;
        self.metadata = seen.metadata.clone().flatten();
        let last_index = start.index + (taken + entries.len()) as u64;
        Ok(ReadResult {
            metadata: seen.metadata.flatten(),
            state: seen.state,
            entries,
            last_index,
            segments: dec.inputs.iter().map(|i| i.name.clone()).collect(),
        })
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed("the WAL is closed"));
        }
        Ok(())
    }

    /// Whether this process opened the WAL (not a child forked from it).
    pub fn is_owner(&self) -> bool {
        std::process::id() == self.owner
    }

    /// Refuse a write from a process forked from the one that opened the
    /// WAL: it shares the parent's files and locks, and interleaved writes
    /// would break the CRC chain.
    fn check_owner(&self) -> Result<()> {
        if !self.is_owner() {
            return Err(Error::Closed(FORKED));
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.check_owner()?;
        if let Some(m) = &self.poisoned {
            return Err(Error::Poisoned(m.clone()));
        }
        if self.read_failed {
            return Err(Error::Closed("read_all failed; the WAL can only be closed"));
        }
        if !self.writable {
            return Err(Error::ReadOnly);
        }
        if self.enc.is_none() {
            return Err(Error::Closed(
                "read_all must consume the log before appending",
            ));
        }
        Ok(())
    }

    /// Run `f` on the encoder; an I/O failure poisons the WAL.
    fn write<F: FnOnce(&mut Encoder) -> io::Result<()>>(&mut self, f: F) -> Result<()> {
        let Some(enc) = self.enc.as_mut() else {
            return Err(Error::Closed("no tail segment"));
        };
        let before = enc.os_offset();
        let t0 = Instant::now();
        let res = f(enc);
        let written = enc.os_offset() - before;
        if written > 0 {
            self.stats.write.observe(t0.elapsed());
            self.stats.add(&self.stats.write_bytes, written);
        }
        res.map_err(|e| {
            let tail = self.tail_name();
            self.poison(format!("write to {tail}"), e)
        })
    }

    fn tail_name(&self) -> String {
        self.held
            .last()
            .map(|h| name_of(&self.dir, &h.name))
            .unwrap_or_default()
    }

    /// The WAL's counters and histograms (shared; they stay readable after close).
    pub fn stats(&self) -> Arc<WalStats> {
        self.stats.clone()
    }

    fn poison(&mut self, what: String, e: io::Error) -> Error {
        let msg = format!("{what}: {e}");
        self.poisoned = Some(msg.clone());
        Error::Io {
            context: format!("{what} failed; the WAL is poisoned"),
            source: e,
        }
    }

    /// Hand buffered bytes to the OS and return what an fsync must cover:
    /// the tail's handle, the save count and the log's last index (a
    /// snapshot record past the last entry counts, as it does for replay).
    pub fn flush_for_sync(&mut self) -> Result<(Arc<File>, u64, u64)> {
        self.check_open()?;
        self.check_owner()?;
        if let Some(m) = &self.poisoned {
            return Err(Error::Poisoned(m.clone()));
        }
        self.write(|enc| enc.flush())?;
        let file = self
            .enc
            .as_ref()
            .map(|e| e.file().clone())
            .ok_or(Error::Closed("no tail segment"))?;
        Ok((file, self.seq, self.limit))
    }

    /// Record that an fsync covering saves up to `seq` succeeded.
    pub fn mark_durable(&mut self, seq: u64, index: u64) {
        if seq > self.durable_seq || (seq == self.durable_seq && index > self.durable_index) {
            self.durable_seq = seq;
            self.durable_index = index;
        }
    }

    /// etcd's `sync`: flush and fdatasync the tail.
    pub fn sync(&mut self) -> Result<()> {
        if self.enc.is_none() {
            return Ok(());
        }
        let (file, seq, index) = self.flush_for_sync()?;
        let t0 = Instant::now();
        let synced = fsutil::fdatasync(&file);
        self.stats.fsync.observe(t0.elapsed());
        self.stats.add(&self.stats.fsyncs, 1);
        synced.map_err(|e| {
            let tail = self.tail_name();
            self.poison(format!("fdatasync {tail}"), e)
        })?;
        self.mark_durable(seq, index);
        Ok(())
    }

    /// etcd's `Save`. Returns true if the caller must still sync the save
    /// (raft's MustSync rule held and no cut already synced it).
    pub fn save(&mut self, hs: &HardState, entries: &[EntryRef<'_>], sync: bool) -> Result<bool> {
        self.check_writable()?;
        if hs.is_empty() && entries.is_empty() {
            return Ok(false);
        }
        self.check_save(hs, entries)?;
        let must_sync =
            !entries.is_empty() || hs.vote != self.state.vote || hs.term != self.state.term;
        let mut scratch = std::mem::take(&mut self.scratch);
        let res = self.write(|enc| {
            for e in entries {
                scratch.clear();
                record::encode_entry(&mut scratch, e.term, e.index, e.etype, e.data);
                enc.encode(record::ENTRY, Some(&scratch))?;
            }
            if !hs.is_empty() {
                scratch.clear();
                record::encode_hard_state(&mut scratch, hs);
                enc.encode(record::STATE, Some(&scratch))?;
            }
            Ok(())
        });
        self.scratch = scratch;
        res?;
        if let Some(last) = entries.last() {
            self.enti = last.index;
            self.limit = last.index;
        }
        if !hs.is_empty() {
            self.state = *hs;
        }
        self.seq += 1;
        self.stats.add(&self.stats.saves, 1);
        self.stats.add(&self.stats.entries, entries.len() as u64);
        let off = self.enc.as_ref().map_or(0, |e| e.os_offset());
        if let Some(p) = &self.pipeline {
            p.progress(off, self.segment_size);
        }
        if off < self.segment_size {
            if must_sync && sync {
                self.sync()?;
                return Ok(false);
            }
            return Ok(must_sync);
        }
        let t0 = Instant::now();
        self.cut()?;
        self.stats.cut.observe(t0.elapsed());
        self.stats.add(&self.stats.cuts, 1);
        Ok(false)
    }

    /// Refuse, before a byte is written, a save no replay could read back
    /// as it was meant: an entry type raft does not define, a batch whose
    /// indexes are not consecutive or that leaves a gap after the log's last
    /// index, a HardState committing past the last index, or a record
    /// larger than etcd reads. etcd's own saves never trip these.
    fn check_save(&self, hs: &HardState, entries: &[EntryRef<'_>]) -> Result<()> {
        for (k, e) in entries.iter().enumerate() {
            if !(0..=2).contains(&e.etype) {
                return Err(Error::Invalid(format!(
                    "entry {} has type {}; raft defines types 0 to 2",
                    e.index, e.etype
                )));
            }
            if k == 0 {
                if e.index > self.limit.saturating_add(1) {
                    return Err(Error::Invalid(format!(
                        "missing log entry [last: {}, append at: {}]",
                        self.limit, e.index
                    )));
                }
            } else if e.index != entries[k - 1].index.wrapping_add(1) {
                return Err(Error::Invalid(format!(
                    "entries are not consecutive: {} follows {}",
                    e.index,
                    entries[k - 1].index
                )));
            }
            if !entry_fits(entry_len(e)) {
                return Err(Error::EntryTooLarge {
                    what: format!(
                        "entry {} encodes to {} bytes; etcd 3.4 reads records below {} bytes",
                        e.index,
                        entry_len(e),
                        MAX_FRAME_BODY
                    ),
                });
            }
        }
        let last = entries.last().map_or(self.limit, |e| e.index);
        if !hs.is_empty() && hs.commit > last {
            return Err(Error::Invalid(format!(
                "hard state commits {} past the last index {}",
                hs.commit, last
            )));
        }
        Ok(())
    }

    /// etcd's `SaveSnapshot`: write the record and sync.
    pub fn save_snapshot(&mut self, snap: &WalSnap) -> Result<()> {
        self.check_owner()?;
        if self.enc.is_none() || self.read_failed || !self.writable {
            self.check_writable()?;
        }
        if let Some(m) = &self.poisoned {
            return Err(Error::Poisoned(m.clone()));
        }
        failpoint::hit("snapshot_before_record")
            .map_err(|e| self.poison("write a snapshot record".into(), e))?;
        let mut buf = Vec::new();
        record::encode_wal_snap(&mut buf, snap);
        self.write(|enc| enc.encode(record::SNAPSHOT, Some(&buf)))?;
        if self.enti < snap.index {
            self.enti = snap.index;
        }
        self.limit = self.limit.max(snap.index);
        self.seq += 1;
        self.sync()
    }

    /// etcd's `cut`: close the tail at its true end and continue in a new
    /// segment named after the next index.
    fn cut(&mut self) -> Result<()> {
        self.check_owner()?;
        let tail = self
            .held
            .last()
            .map(|h| (h.file.clone(), name_of(&self.dir, &h.name), h.seq));
        let Some((tail_file, tail_name, tail_seq)) = tail else {
            return Err(Error::Closed("no tail segment"));
        };
        let off = self.enc.as_ref().map_or(0, |e| e.os_offset());
        self.detach_zeros();
        failpoint::hit("cut_before_truncate")
            .and_then(|()| tail_file.set_len(off))
            .map_err(|e| self.poison(format!("truncate {tail_name}"), e))?;
        self.sync()?;

        let next_seq = tail_seq + 1;
        let next_index = self.enti + 1;
        let name = segment::wal_name(next_seq, next_index);
        let fpath = self.dir.join(&name);
        let taken = match self.pipeline.as_mut() {
            Some(p) => p.take(),
            None => Err(io::Error::other("segment allocator not running")),
        };
        let (file, tmp_path, zeroed) = taken
            .and_then(|t| failpoint::hit("cut_before_header").map(|()| t))
            .map_err(|e| self.poison(format!("allocate segment {}", fpath.display()), e))?;
        let file = Arc::new(file);
        let prev_crc = self.enc.as_ref().map_or(0, |e| e.crc);
        self.held.push(Held {
            name: name.clone(),
            index: next_index,
            seq: next_seq,
            file: file.clone(),
        });
        let zeroed_to = if zeroed { self.segment_size } else { 0 };
        self.enc = Some(self.tail_encoder(file, 0, prev_crc, zeroed_to));
        let metadata = self.metadata.clone();
        let state = self.state;
        self.write(|enc| {
            enc.encode(record::CRC, None)?;
            enc.encode(record::METADATA, metadata.as_deref())?;
            if !state.is_empty() {
                let mut b = Vec::new();
                record::encode_hard_state(&mut b, &state);
                enc.encode(record::STATE, Some(&b))?;
            }
            Ok(())
        })?;
        self.sync()?;
        let renamed =
            failpoint::hit("cut_before_rename").and_then(|()| std::fs::rename(&tmp_path, &fpath));
        renamed.map_err(|e| {
            self.poison(
                format!("rename {} to {}", tmp_path.display(), fpath.display()),
                e,
            )
        })?;
        failpoint::hit("cut_after_rename")
            .and_then(|()| match &self.dir_file {
                Some(d) => fsutil::sync_dir_handle(d),
                None => fsutil::sync_dir(&self.dir),
            })
            .map_err(|e| self.poison(format!("fsync {}", self.dir.display()), e))?;
        Ok(())
    }

    /// etcd's `ReleaseLockTo`: unlock the segments older than the one that
    /// holds `index` (keeping that one's predecessor).
    pub fn release_lock_to(&mut self, index: u64) -> Result<()> {
        self.check_open()?;
        self.check_owner()?;
        if self.held.is_empty() {
            return Ok(());
        }
        let smaller = match self.held.iter().position(|h| h.index >= index) {
            Some(i) => i as isize - 1,
            None => self.held.len() as isize - 1,
        };
        if smaller <= 0 {
            return Ok(());
        }
        self.held.drain(..smaller as usize);
        Ok(())
    }

    /// Names of the segments this writer holds locked, oldest first.
    pub fn locked_segments(&self) -> Vec<String> {
        self.held.iter().map(|h| h.name.clone()).collect()
    }

    pub fn last_index(&self) -> u64 {
        self.enti
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn close_quietly(&mut self) {
        if let Some(mut p) = self.pipeline.take() {
            p.stop();
        }
        self.detach_zeros();
    }

    /// etcd's `Close`: stop the allocator, sync the tail, unlock everything.
    pub fn close(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        if self.writable && !self.is_owner() {
            // A forked child: the helper threads are the parent's (they do
            // not exist here) and the files and locks are shared with it.
            // Let go of this process's handles without a byte of I/O and
            // without joining a thread.
            if let Some(p) = self.pipeline.take() {
                std::mem::forget(p);
            }
            if let Some(z) = self.zero.take() {
                std::mem::forget(z);
            }
            self.closed = true;
            self.enc = None;
            self.held.clear();
            self.decoder = None;
            return Err(Error::Closed(FORKED));
        }
        self.close_quietly();
        let res = if self.enc.is_some() && self.poisoned.is_none() && !self.read_failed {
            self.sync()
        } else {
            Ok(())
        };
        self.closed = true;
        self.enc = None;
        self.zero = None;
        self.dir_file = None;
        self.held.clear();
        self.decoder = None;
        res
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// An entry to save, borrowing its data from the caller.
pub struct EntryRef<'a> {
    pub term: u64,
    pub index: u64,
    pub etype: i32,
    pub data: Option<&'a [u8]>,
}

/// True if an entry record whose entry encodes to `entry_len` bytes is
/// below the frame size etcd 3.4 reads.
pub fn entry_fits(entry_len: usize) -> bool {
    let body = record::record_len(0, 0, Some(entry_len));
    frame_body_len(record::ENTRY, Some(body)) < MAX_FRAME_BODY
}

/// True if a metadata record of `len` bytes is below the frame size etcd 3.4 reads.
pub fn metadata_fits(len: usize) -> bool {
    frame_body_len(record::METADATA, Some(len)) < MAX_FRAME_BODY
}

fn entry_len(e: &EntryRef<'_>) -> usize {
    let mut n = 3 + record::uvarint_len(i64::from(e.etype) as u64) + record::uvarint_len(e.term);
    n += record::uvarint_len(e.index);
    if let Some(d) = e.data {
        n += 1 + record::uvarint_len(d.len() as u64) + d.len();
    }
    n
}

/// `dir` without trailing slashes, byte for byte (a path need not be UTF-8).
fn normalize(dir: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let b = dir.as_os_str().as_bytes();
    let end = b.iter().rposition(|&c| c != b'/').map_or(0, |k| k + 1);
    if end == 0 {
        PathBuf::from("/")
    } else {
        PathBuf::from(std::ffi::OsStr::from_bytes(&b[..end]))
    }
}

/// `<dir>.tmp`, the directory a creation builds in before renaming it.
fn tmp_beside(dir: &Path) -> PathBuf {
    let mut t = dir.as_os_str().to_owned();
    t.push(".tmp");
    PathBuf::from(t)
}

/// Take the directory a creation builds in (made if missing), locked, so
/// that a second creator of the same directory, in any process, sees it is
/// in use instead of removing it under the first. The lock is held until
/// the directory is renamed into place or removed; one left by a creator
/// that died (its lock went with it) is emptied and reused.
fn take_tmp(tmp: &Path) -> Result<File> {
    let ctx = |what: &str| format!("cannot {what} {}", tmp.display());
    // Each retry means another creator renamed or removed the directory
    // between two of our steps: it made progress, so this ends.
    for _ in 0..1000 {
        match fsutil::mkdir(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(ctx("create"), e)),
        }
        let d = match File::open(tmp) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(ctx("open"), e)),
        };
        if !fsutil::lock_dir(&d).map_err(|e| Error::io(ctx("lock"), e))? {
            return Err(Error::Locked(format!(
                "{} (another process is creating the WAL)",
                tmp.display()
            )));
        }
        // The holder before us may have renamed it into place or removed
        // it: the lock counts only if the path still names what we locked.
        use std::os::unix::fs::MetadataExt;
        let held = d.metadata().map_err(|e| Error::io(ctx("stat"), e))?;
        match std::fs::symlink_metadata(tmp) {
            Ok(m) if m.dev() == held.dev() && m.ino() == held.ino() && m.is_dir() => {}
            Ok(m) if !m.is_dir() => {
                return Err(Error::Exists(format!(
                    "{} is not a directory",
                    tmp.display()
                )))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(ctx("stat"), e)),
        }
        // Ours now: whatever is inside was left by a creator that died.
        let entries = std::fs::read_dir(tmp).map_err(|e| Error::io(ctx("read"), e))?;
        for ent in entries {
            let p = ent.map_err(|e| Error::io(ctx("read"), e))?.path();
            let removed = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(|e| Error::io(format!("cannot remove {}", p.display()), e))?;
        }
        return Ok(d);
    }
    Err(Error::Locked(format!(
        "{} (other processes keep creating the WAL)",
        tmp.display()
    )))
}

fn dir_is_missing_or_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("cannot read {}", dir.display()), e)),
    }
}

fn create_dir_all(p: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(fsutil::DIR_MODE)
        .create(p)
        .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))
}

/// Turn a decoder stop into the error it stands for.
/// A crc record: it must carry the chain's value so far (unless the chain
/// has not started), and the chain goes on from it.
pub(crate) fn check_chain(dec: &mut Decoder, crc: u32, file: String, offset: u64) -> Result<()> {
    if dec.crc != 0 && dec.crc != crc {
        return Err(Error::CrcMismatch { file, offset });
    }
    dec.crc = crc;
    Ok(())
}

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

pub fn stop_error(stop: Stop, dec: &Decoder, dir: &Path) -> Error {
    let path = |seg: usize| {
        dec.inputs
            .get(seg)
            .map(|i| name_of(dir, &i.name))
            .unwrap_or_else(|| dir.display().to_string())
    };
    match stop {
        Stop::Torn { seg, offset } => Error::TornTail {
            file: path(seg),
            offset,
        },
        Stop::Crc { seg, offset } => Error::CrcMismatch {
            file: path(seg),
            offset,
        },
        Stop::Corrupt { seg, offset, what } => Error::Corrupt {
            file: path(seg),
            offset,
            what,
        },
        Stop::TooLarge { seg, offset, len } => Error::FrameTooLarge {
            file: path(seg),
            offset,
            len,
        },
        Stop::Io(e, name) => Error::io(format!("cannot read {}", name_of(dir, &name)), e),
    }
}

// --- the replay's files, for readers that keep the log on disk ------------

impl Wal {
    /// The segments the replay will read, as its decoder holds them open,
    /// in the order `EntryMeta::seg` counts (empty once replayed). A log
    /// kept on disk takes these instead of opening every file again; in
    /// write mode they are the descriptors that hold the locks.
    pub fn replay_inputs(&self) -> Vec<(String, Arc<File>)> {
        self.decoder.as_ref().map_or_else(Vec::new, |d| {
            d.inputs
                .iter()
                .map(|i| (i.name.clone(), Arc::clone(&i.file)))
                .collect()
        })
    }
}

/// Save entries `from..=to` of `term` in one batch, entry `i` holding
/// `size(i)` bytes of `i as u8` and type `i % 3` (tests only).
#[cfg(test)]
pub(crate) fn save_range(w: &mut Wal, term: u64, from: u64, to: u64, size: impl Fn(u64) -> usize) {
    let datas: Vec<Vec<u8>> = (from..=to).map(|i| vec![i as u8; size(i)]).collect();
    let ents: Vec<EntryRef<'_>> = (from..=to)
        .zip(&datas)
        .map(|(i, d)| EntryRef {
            term,
            index: i,
            etype: (i % 3) as i32,
            data: Some(d),
        })
        .collect();
    let hs = HardState {
        term,
        vote: 1,
        commit: 0,
    };
    w.save(&hs, &ents, true).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what a sink receives, handing over after every `chunk` bytes.
    struct Collect {
        got: Vec<(u64, u64, Option<Vec<u8>>)>,
        chunk: usize,
    }

    impl EntrySink for Collect {
        fn take(&mut self, arena: &EntryArena) -> Result<()> {
            for m in &arena.metas {
                self.got
                    .push((m.term, m.index, arena.data(m).map(<[u8]>::to_vec)));
            }
            Ok(())
        }
        fn truncate(&mut self, n: usize) -> Result<()> {
            self.got.truncate(n);
            Ok(())
        }
        fn chunk_bytes(&self) -> usize {
            self.chunk
        }
    }

    fn flat(r: &ReadResult) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        r.entries
            .metas
            .iter()
            .map(|m| (m.term, m.index, r.entries.data(m).map(<[u8]>::to_vec)))
            .collect()
    }

    fn snap(index: u64, term: u64) -> WalSnap {
        WalSnap {
            index,
            term,
            conf_state: None,
        }
    }

    /// (term, index) of what a replay at `at` returns, whole and through a
    /// sink that takes one entry at a time; both must agree.
    fn replayed(d: &Path, at: WalSnap) -> Vec<(u64, u64)> {
        let mut whole = Wal::open(d, at.clone(), false, 4096).unwrap();
        let r = whole.read_all().unwrap();
        let got: Vec<(u64, u64)> = r.entries.metas.iter().map(|m| (m.term, m.index)).collect();
        let mut chunked = Wal::open(d, at, false, 4096).unwrap();
        let mut sink = Collect {
            got: Vec::new(),
            chunk: 1,
        };
        let res = chunked.read_all_with(Some(&mut sink)).unwrap();
        sink.take(&res.entries).unwrap();
        let via_sink: Vec<(u64, u64)> = sink.got.iter().map(|&(t, i, _)| (t, i)).collect();
        assert_eq!(got, via_sink);
        got
    }

    fn ent(index: u64, etype: i32) -> EntryRef<'static> {
        EntryRef {
            term: 1,
            index,
            etype,
            data: Some(b"x"),
        }
    }

    #[test]
    fn a_save_no_replay_could_read_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 3, |_| 10);
        w.sync().unwrap();
        let seg = d.join(segment::wal_name(0, 0));
        let before = std::fs::read(&seg).unwrap();
        let hs = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        let bad: Vec<(HardState, Vec<EntryRef<'_>>)> = vec![
            (hs(0), vec![ent(5, 0)]),            // a gap after the last index
            (hs(0), vec![ent(4, 0), ent(6, 0)]), // a gap inside the batch
            (hs(0), vec![ent(3, 0), ent(2, 0)]), // backwards
            (hs(0), vec![ent(4, 3)]),            // no such entry type
            (hs(5), vec![ent(4, 0)]),            // commits past the end
            (hs(4), vec![]),
        ];
        for (h, ents) in &bad {
            assert!(matches!(w.save(h, ents, true), Err(Error::Invalid(_))));
        }
        let huge = vec![0u8; MAX_FRAME_BODY];
        let big = EntryRef {
            term: 1,
            index: 4,
            etype: 0,
            data: Some(&huge),
        };
        assert!(matches!(
            w.save(&hs(0), &[big], true),
            Err(Error::EntryTooLarge { .. })
        ));
        w.sync().unwrap();
        assert_eq!(std::fs::read(&seg).unwrap(), before);
        // what etcd's raft does is still taken: an overwrite, then more
        w.save(&hs(2), &[ent(2, 0)], true).unwrap();
        w.save(&hs(3), &[ent(3, 0), ent(4, 1)], true).unwrap();
        // a snapshot record past the last entry lets the log continue after it
        w.save_snapshot(&snap(9, 1)).unwrap();
        w.close().unwrap();
        let mut w = Wal::open(&d, snap(9, 1), true, 1 << 20).unwrap();
        w.read_all().unwrap();
        assert!(matches!(
            w.save(&hs(0), &[ent(11, 0)], true),
            Err(Error::Invalid(_))
        ));
        w.save(&hs(10), &[ent(10, 0)], true).unwrap();
        w.close().unwrap();
        assert_eq!(replayed(&d, snap(9, 1)), vec![(1, 10)]);
    }

    #[test]
    fn a_metadata_etcd_cannot_read_is_refused_at_create() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let huge = vec![0u8; MAX_FRAME_BODY];
        assert!(matches!(
            Wal::create(&d, Some(&huge), 1 << 20),
            Err(Error::EntryTooLarge { .. })
        ));
        assert!(!d.exists());
    }

    #[test]
    fn an_overwrite_below_the_snapshot_removes_what_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 5, |_| 10);
        save_range(&mut w, 2, 2, 2, |_| 10); // a new leader replaces 2..5 with 2
        w.save_snapshot(&snap(2, 2)).unwrap();
        w.close().unwrap();
        // Opened at the snapshot: 3..5 of term 1 were removed by the overwrite.
        assert_eq!(replayed(&d, snap(2, 2)), vec![]);
        // From the start, the overwrite is an ordinary one.
        assert_eq!(replayed(&d, snap(0, 0)), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn an_entry_compacted_when_written_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 3, |_| 10);
        w.save_snapshot(&snap(3, 1)).unwrap();
        save_range(&mut w, 1, 4, 5, |_| 10);
        // Below the snapshot record at 3: a storage ignores it, and so does
        // the replay, even though its term differs from entry 2's.
        save_range(&mut w, 7, 2, 2, |_| 10);
        // The same index again with its own term: not an overwrite either.
        // (The HardState stays at term 7: a term never goes back.)
        let data = [1u8; 10];
        let one = EntryRef {
            term: 1,
            index: 1,
            etype: 1,
            data: Some(&data),
        };
        let hs = HardState {
            term: 7,
            vote: 1,
            commit: 0,
        };
        w.save(&hs, &[one], true).unwrap();
        w.close().unwrap();
        assert_eq!(replayed(&d, snap(3, 1)), vec![(1, 4), (1, 5)]);
    }

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

    /// Fails on its second chunk.
    struct Failing(usize);

    impl EntrySink for Failing {
        fn take(&mut self, _: &EntryArena) -> Result<()> {
            self.0 += 1;
            if self.0 == 2 {
                return Err(Error::Invalid("sink failed".into()));
            }
            Ok(())
        }
        fn truncate(&mut self, _: usize) -> Result<()> {
            Ok(())
        }
        fn chunk_bytes(&self) -> usize {
            10
        }
    }

    #[test]
    fn a_failing_sink_stops_an_overlapped_replay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, None, 1 << 20).unwrap();
        save_range(&mut w, 1, 1, 500, |_| 100);
        w.close().unwrap();
        let mut r = Wal::open(&d, WalSnap::default(), true, 1 << 20).unwrap();
        let err = r.read_all_overlapped(&mut Failing(0)).err().unwrap();
        assert_eq!(
            err.to_string(),
            Error::Invalid("sink failed".into()).to_string()
        );
        // The WAL gave up: it can only be closed.
        let hs = HardState {
            term: 1,
            vote: 0,
            commit: 1,
        };
        assert!(r.save(&hs, &[], true).is_err());
    }

    #[test]
    fn a_sink_sees_the_same_log_as_a_whole_replay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let mut w = Wal::create(&d, Some(b"md"), 4096).unwrap();
        let size = |i: u64| (i % 7) as usize * 30;
        save_range(&mut w, 1, 1, 40, size);
        save_range(&mut w, 2, 10, 30, size); // overwrite far back
        save_range(&mut w, 3, 29, 60, size); // and near the end
        save_range(&mut w, 4, 1, 5, size); // and from the very start
        save_range(&mut w, 4, 6, 20, size);
        w.close().unwrap();
        let mut whole = Wal::open(&d, WalSnap::default(), false, 4096).unwrap();
        let want = whole.read_all().unwrap();
        assert_eq!(want.last_index, 20);
        for chunk in [1, 50, 200, 1 << 20] {
            let mut r = Wal::open(&d, WalSnap::default(), false, 4096).unwrap();
            let mut sink = Collect {
                got: Vec::new(),
                chunk,
            };
            let res = r.read_all_with(Some(&mut sink)).unwrap();
            sink.take(&res.entries).unwrap();
            assert_eq!(sink.got, flat(&want), "chunk {chunk}");
            assert_eq!(res.last_index, 20);
            // The same, with the replay on a helper thread.
            let mut r = Wal::open(&d, WalSnap::default(), false, 4096).unwrap();
            let mut sink = Collect {
                got: Vec::new(),
                chunk,
            };
            let res = r.read_all_overlapped(&mut sink).unwrap();
            sink.take(&res.entries).unwrap();
            assert_eq!(sink.got, flat(&want), "overlapped, chunk {chunk}");
            assert_eq!(res.last_index, 20);
        }
    }
}
