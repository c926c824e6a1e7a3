//! Reading a WAL back: etcd's `decoder.go` and `ReadAll`.
//!
//! `decoder.rs` reads frames and tells a torn final write from damage;
//! `checks.rs` holds raft's invariants and etcd's checks on the records;
//! this file replays a `Wal`'s selected segments into entries, handing
//! them to a sink in chunks, and turns a decoder stop into an error.

pub(crate) mod checks;
mod damage;
pub mod decoder;
mod recovery;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use super::{name_of, Wal};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::record::{self, EntryArena, HardState, WalSnap};
use crate::segment::{self, SegName};
use checks::Seen;
use decoder::{Decoder, Frame, Input, Stop};
pub(crate) use recovery::Cut;
pub use recovery::{cut_keeping_copy, Mode, Recovery};

/// Receives replayed entries chunk by chunk, so that a caller can build
/// its own objects from them without the whole log ever being held twice.
pub trait EntrySink {
    /// Take every entry in `arena` (they follow the ones taken before).
    /// The replay empties the arena afterwards; a sink may instead take
    /// its buffers, leaving other (empty) ones in their place.
    fn take(&mut self, arena: &mut EntryArena) -> Result<()>;
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

/// The helper thread's sink: forwards every call, in order, handing each
/// chunk's arena over whole and filling one the receiver sent back.
struct Forward {
    tx: mpsc::SyncSender<Handed>,
    spare: mpsc::Receiver<EntryArena>,
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
    fn take(&mut self, arena: &mut EntryArena) -> Result<()> {
        let next = match self.spare.try_recv() {
            Ok(spare) => spare,
            Err(_) => EntryArena::with_capacity(arena.bytes.capacity()),
        };
        let full = std::mem::replace(arena, next);
        self.send(Handed::Take(full))
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

impl Wal {
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
        let Some(mut reader) = self.reader.take() else {
            return Err(Error::Closed(
                "decoder not found: read_all was already called",
            ));
        };
        let res = self.replay(&mut reader, sink);
        if res.is_err() {
            self.read_failed = true;
            self.close_quietly();
            return res;
        }
        if self.writable {
            // Where the log goes on: after the last good frame, or where a
            // recovery mode cut the damage away.
            let (off, crc) = match self.cut.take() {
                None => (reader.end_offset(), reader.crc()),
                Some(cut) => match self.apply_cut(cut) {
                    Ok(at) => at,
                    Err(e) => {
                        self.read_failed = true;
                        return Err(e);
                    }
                },
            };
            let tail = self.held.last().map(|h| h.file.clone());
            let Some(tail) = tail else {
                self.read_failed = true;
                return Err(Error::NotFound(format!(
                    "no WAL segment in {}",
                    self.dir.display()
                )));
            };
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
            self.enc = Some(self.tail_encoder(tail, off, crc, off));
            if let Err(e) = self.start_writing() {
                self.read_failed = true;
                return Err(e);
            }
        }
        self.start = WalSnap::default();
        if let Ok(r) = &res {
            self.limit = self.enti.max(r.last_index);
            // What was read is durable now (a writer synced its tail above).
            self.mark_durable(self.seq, r.last_index.max(self.durable_index));
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
        // Emptied arenas go back to the replay to be filled again: no
        // chunk is copied, and its memory is reused, not faulted in anew.
        let (back, spare) = mpsc::channel::<EntryArena>();
        std::thread::scope(|s| {
            let wal = &mut *self;
            let helper = std::thread::Builder::new()
                .name("raftwal-replay".into())
                .spawn_scoped(s, move || {
                    wal.read_all_with(Some(&mut Forward { tx, spare, chunk }))
                });
            let helper = match helper {
                Ok(h) => h,
                Err(e) => return Err(Error::io("cannot start the replay thread", e)),
            };
            let mut failed = None;
            for h in rx.iter() {
                let r = match h {
                    Handed::Take(mut arena) => {
                        let r = sink.take(&mut arena);
                        arena.clear();
                        // the replay may have ended: then it is dropped here
                        let _ = back.send(arena);
                        r
                    }
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
        reader: &mut Reader,
        mut sink: Option<&mut dyn EntrySink>,
    ) -> Result<ReadResult> {
        let start = self.start.clone();
        let mut seen = Seen::default();
        // Entry data cannot outgrow the files it comes from: reserve that
        // (untouched pages of the reservation cost no memory). With a sink
        // the arena is emptied every SINK_CHUNK bytes and reused.
        let total = reader.total_size();
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
        let names: Vec<String> = (0..reader.segments()).map(|k| reader.path(k)).collect();
        // Damage the recovery mode cuts away: the replay ends before it.
        let mode = self.recovery;
        let mut cut = None;
        // Damage `$e` at the current frame: cut there when `$cuts`, else fail.
        macro_rules! damage {
            ($e:expr, $at:expr, $crc:expr, $cuts:expr) => {{
                let error = $e;
                if $cuts {
                    let (seg, offset) = $at;
                    cut = Some(Cut {
                        seg,
                        offset,
                        crc: $crc,
                        error,
                    });
                    break;
                }
                return Err(error);
            }};
        }
        loop {
            let crc_before = reader.crc();
            let frame = match reader.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(stop) => {
                    // (A reader, beside a live writer, has read a damaged-
                    // looking tail again before stopping there.)
                    let at = stop.at();
                    let err = reader.error(stop);
                    if !self.writable && matches!(err, Error::TornTail { .. }) {
                        // A reader returns the intact prefix, as etcd does.
                        break;
                    }
                    let cuts = mode.cuts_frame(&err);
                    damage!(
                        err,
                        at.unwrap_or_default(),
                        crc_before,
                        at.is_some() && cuts
                    )
                }
            };
            let (seg, offset) = (frame.seg, frame.offset);
            let salvage = mode == Mode::Salvage;
            match frame.rec.rtype {
                record::ENTRY => {
                    let data = frame.rec.data.unwrap_or(&[]);
                    let before = entries.len();
                    let total = taken + before;
                    let e = match record::decode_entry_ref(data) {
                        Ok(e) => e,
                        Err(err) => damage!(
                            Error::Corrupt {
                                file: names[seg].clone(),
                                offset,
                                what: format!("entry data: {err}"),
                            },
                            (seg, offset),
                            crc_before,
                            salvage
                        ),
                    };
                    let (index, term) = (e.index, e.term);
                    seen.entry(index, term, e.etype, &|| names[seg].clone(), offset)?;
                    if index > start.index && index - start.index - 1 > total as u64 {
                        damage!(
                            Error::SliceOutOfRange {
                                file: names[seg].clone(),
                                offset,
                                index,
                                expected: start.index + total as u64 + 1,
                            },
                            (seg, offset),
                            crc_before,
                            salvage
                        );
                    }
                    let m = entries.push(e);
                    m.seg = seg as u32;
                    m.frame_offset = offset;
                    m.prev_crc = crc_before;
                    // The entry sits at the end of the arena; move it to its
                    // place (a later entry replaces earlier ones from its index).
                    if index > start.index {
                        let pos = (index - start.index - 1) as usize;
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
                            let n = entries.len();
                            s.take(&mut entries)?;
                            taken += n;
                            entries.clear();
                        }
                    }
                }
                // The reader checked the chain.
                record::CRC => {}
                rtype => {
                    let file = || names[seg].clone();
                    if let Err(err) = seen.record(rtype, frame.rec.data, &start, &file, offset) {
                        let cuts = salvage && matches!(err, Error::UnknownRecordType { .. });
                        damage!(err, (seg, offset), crc_before, cuts)
                    }
                }
            }
        }
        self.bytes_read = reader.bytes_read();
        seen.finish(&start)?;
        self.cut = cut;
        self.metadata = seen.metadata.clone().flatten();
        let last_index = start.index + (taken + entries.len()) as u64;
        Ok(ReadResult {
            metadata: seen.metadata.flatten(),
            state: seen.state,
            entries,
            last_index,
            segments: reader.names(),
        })
    }
}

/// Reads the records of a run of segments, oldest first, with the checks
/// every reader makes: frames and their CRCs (the decoder), the CRC chain
/// across crc records, and, beside a live writer, a second look at a
/// damaged-looking tail before it is called damage. A `Wal`'s replay,
/// `verify`, `valid_snapshot_entries` and `salvage` all read through it.
pub struct Reader {
    dec: Decoder,
    dir: PathBuf,
    /// Read a damaged-looking tail again while a writer holds it.
    live: bool,
    rereads: u32,
}

impl Reader {
    /// The segments being read, as the decoder holds them open.
    pub fn inputs(&self) -> &[Input] {
        &self.dec.inputs
    }

    /// A reader over `inputs`, segments of `dir` in order; `live` when a
    /// writer may be appending to the last one meanwhile.
    pub fn new(dir: &Path, inputs: Vec<Input>, live: bool) -> Reader {
        Reader {
            dec: Decoder::new(inputs),
            dir: dir.to_path_buf(),
            live,
            rereads: 0,
        }
    }

    /// A reader over the segments `names` of `dir`, opened read-only.
    pub fn open(dir: &Path, names: &[SegName], live: bool) -> Result<Reader> {
        let inputs = names
            .iter()
            .map(|n| {
                let path = dir.join(&n.name);
                let file = segment::open_file(&path, false)?;
                let size = file
                    .metadata()
                    .map_err(|e| Error::io(format!("cannot stat {}", path.display()), e))?
                    .len();
                Ok(Input {
                    name: n.name.clone(),
                    file: Arc::new(file),
                    size,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Reader::new(dir, inputs, live))
    }

    /// The next frame, `Ok(None)` after the last segment's end of log.
    ///
    /// A crc record must carry the chain's value so far (unless the chain
    /// has not started), and the chain goes on from it (`Stop::Chain`).
    /// A live reader can catch the last segment's newest page half written
    /// (zeros, then later bytes): it reads it again before stopping there.
    pub fn next_frame(&mut self) -> std::result::Result<Option<Frame<'_>>, Stop> {
        let found = loop {
            match self.dec.advance() {
                Ok(f) => break f,
                Err(stop) => {
                    if self.live && self.dec.reread_tail(&stop, &mut self.rereads) {
                        continue;
                    }
                    return Err(stop);
                }
            }
        };
        self.rereads = 0;
        let Some(f) = found else {
            return Ok(None);
        };
        if f.rtype == record::CRC {
            if self.dec.crc != 0 && self.dec.crc != f.crc {
                return Err(Stop::Chain {
                    seg: f.seg,
                    offset: f.offset,
                });
            }
            self.dec.crc = f.crc;
        }
        Ok(Some(self.dec.frame(f)))
    }

    /// Go on from the frame at `offset` of segment `seg`, the CRC chain
    /// standing at `crc` there (see `Decoder::seek`).
    pub fn seek(&mut self, seg: usize, offset: u64, crc: u32) {
        self.dec.seek(seg, offset, crc);
    }

    /// The CRC chain after the frames read so far.
    pub fn crc(&self) -> u32 {
        self.dec.crc
    }

    /// Offset just past the last good frame of the segment being read (of
    /// the last one, once done): where a writer appends.
    pub fn end_offset(&self) -> u64 {
        self.dec.last_valid_off
    }

    /// Bytes of the segments read so far.
    pub fn bytes_read(&self) -> u64 {
        self.dec.read
    }

    /// How many segments the reader reads.
    pub fn segments(&self) -> usize {
        self.dec.inputs.len()
    }

    /// The segments' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.dec.inputs.iter().map(|i| i.name.clone()).collect()
    }

    /// Bytes in all the segments.
    pub fn total_size(&self) -> u64 {
        self.dec.inputs.iter().map(|i| i.size).sum()
    }

    /// The path of segment `seg`, as errors name it.
    pub fn path(&self, seg: usize) -> String {
        self.dec
            .inputs
            .get(seg)
            .map(|i| name_of(&self.dir, &i.name))
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// The error a stop stands for.
    pub fn error(&self, stop: Stop) -> Error {
        match stop {
            Stop::Torn { seg, offset } => Error::TornTail {
                file: self.path(seg),
                offset,
            },
            Stop::Crc { seg, offset } | Stop::Chain { seg, offset } => Error::CrcMismatch {
                file: self.path(seg),
                offset,
            },
            Stop::Corrupt { seg, offset, what } => Error::Corrupt {
                file: self.path(seg),
                offset,
                what,
            },
            Stop::TooLarge { seg, offset, len } => Error::FrameTooLarge {
                file: self.path(seg),
                offset,
                len,
            },
            Stop::Io(e, name) => Error::io(format!("cannot read {}", name_of(&self.dir, &name)), e),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wal::{save_range, EntryRef};

    /// Collects what a sink receives, handing over after every `chunk` bytes.
    struct Collect {
        got: Vec<(u64, u64, Option<Vec<u8>>)>,
        chunk: usize,
    }

    impl EntrySink for Collect {
        fn take(&mut self, arena: &mut EntryArena) -> Result<()> {
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

    pub(crate) fn snap(index: u64, term: u64) -> WalSnap {
        WalSnap {
            index,
            term,
            conf_state: None,
        }
    }

    /// (term, index) of what a replay at `at` returns, whole and through a
    /// sink that takes one entry at a time; both must agree.
    pub(crate) fn replayed(d: &Path, at: WalSnap) -> Vec<(u64, u64)> {
        let mut whole = Wal::open(d, at.clone(), false, 4096).unwrap();
        let r = whole.read_all().unwrap();
        let got: Vec<(u64, u64)> = r.entries.metas.iter().map(|m| (m.term, m.index)).collect();
        let mut chunked = Wal::open(d, at, false, 4096).unwrap();
        let mut sink = Collect {
            got: Vec::new(),
            chunk: 1,
        };
        let mut res = chunked.read_all_with(Some(&mut sink)).unwrap();
        sink.take(&mut res.entries).unwrap();
        let via_sink: Vec<(u64, u64)> = sink.got.iter().map(|&(t, i, _)| (t, i)).collect();
        assert_eq!(got, via_sink);
        got
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

    /// Fails on its second chunk.
    struct Failing(usize);

    impl EntrySink for Failing {
        fn take(&mut self, _: &mut EntryArena) -> Result<()> {
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
            let mut res = r.read_all_with(Some(&mut sink)).unwrap();
            sink.take(&mut res.entries).unwrap();
            assert_eq!(sink.got, flat(&want), "chunk {chunk}");
            assert_eq!(res.last_index, 20);
            // The same, with the replay on a helper thread.
            let mut r = Wal::open(&d, WalSnap::default(), false, 4096).unwrap();
            let mut sink = Collect {
                got: Vec::new(),
                chunk,
            };
            let mut res = r.read_all_overlapped(&mut sink).unwrap();
            sink.take(&mut res.entries).unwrap();
            assert_eq!(sink.got, flat(&want), "overlapped, chunk {chunk}");
            assert_eq!(res.last_index, 20);
        }
    }
}
