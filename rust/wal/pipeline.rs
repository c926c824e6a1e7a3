//! What keeps the tail ready ahead of the writer: etcd's `file_pipeline.go`
//! and more.
//!
//! * `Pipeline`: one preallocated, locked spare segment (`N.tmp`) ready for
//!   the next cut, zero-filled in the background once the tail is half full.
//! * `ZeroAhead`: zeros written ahead of the writer in a tail segment that
//!   was only fallocated.
//!
//! On ext4 (and other extent file systems) fallocated blocks are
//! "unwritten": the first fdatasync after data lands in one must also
//! commit the extent's conversion to the journal, which for saves of a few
//! KiB and more costs about as much as the data write itself. A background
//! thread therefore keeps writing zeros (and syncing them) a few MiB ahead
//! of the writer, so that the writer's syncs land in blocks that are
//! already written and need no metadata. Zeros are what the file reads as
//! there anyway, so the bytes stay etcd's.
//!
//! The thread never writes below the writer's claimed end plus a margin,
//! and a writer about to enter a range being zeroed waits for it; so no
//! zero ever lands on a record.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::fsutil;

/// A spare segment: the file, its `N.tmp` path, and whether it is zero-filled whole.
pub(super) type Spare = (File, PathBuf, bool);

/// Keeps one preallocated, locked `N.tmp` file ready for the next cut.
///
/// The spare is also filled with zeros ahead of time, in the background,
/// once the tail is half full (so a short-lived WAL never pays for it): on
/// file systems like ext4, fallocated blocks are "unwritten" and the first
/// fdatasync into each of them must also commit an extent change, which
/// roughly halves sync throughput for larger writes. Zeros are what
/// fallocate would read back anyway, so the bytes stay etcd's. A cut that
/// needs the spare before the filling is done takes it at once.
pub(super) struct Pipeline {
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
    pub(super) fn start(dir: &Path, size: u64) -> Pipeline {
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
    pub(super) fn progress(&self, offset: u64, size: u64) {
        if offset >= size / 2 && self.fill_for.load(Ordering::SeqCst) <= self.taken {
            self.fill_for.store(self.taken + 1, Ordering::SeqCst);
            self.unpark();
        }
    }

    pub(super) fn take(&mut self) -> io::Result<Spare> {
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

    pub(super) fn stop(&mut self) {
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

const PAGE: u64 = 4096;

/// On unless `RAFTWAL_ZERO_AHEAD=0` (for file systems where writing zeros
/// ahead buys nothing, such as copy-on-write ones).
pub fn enabled_by_env() -> bool {
    !matches!(
        std::env::var("RAFTWAL_ZERO_AHEAD").as_deref(),
        Ok("0" | "off" | "false" | "no")
    )
}

fn page_down(x: u64) -> u64 {
    x / PAGE * PAGE
}

fn page_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

/// Writes zeros ahead of the writer in the tail segment.
pub struct ZeroAhead {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

struct Shared {
    st: Mutex<ZState>,
    cv: Condvar,
}

#[derive(Default)]
struct ZState {
    target: Option<Target>,
    /// A range being zeroed right now (the writer must not enter it).
    busy: Option<(u64, u64)>,
    /// The filler is waiting for work.
    idle: bool,
    stop: bool,
}

struct Target {
    file: Arc<File>,
    /// The writer's end: no zeros are written below it.
    claimed: u64,
    /// Zeros are written (and synced) up to here.
    zeroed: u64,
    /// Zeros stop at the file's preallocated length.
    limit: u64,
    /// Where the writer was when this segment became the tail.
    base: u64,
}

impl Target {
    /// How far ahead to zero: as much as the writer has written in this
    /// segment (so a WAL that writes little costs little), within bounds.
    fn ahead(&self) -> u64 {
        (self.claimed - self.base).clamp(MIN_AHEAD, AHEAD)
    }
}

/// Zeros go this far ahead of the writer, in chunks of `CHUNK`, starting
/// `SLACK` past its end (so the writer rarely waits for a chunk).
const AHEAD: u64 = 4 << 20;
const MIN_AHEAD: u64 = 256 << 10;
const CHUNK: u64 = 1 << 20;
const SLACK: u64 = 64 << 10;

impl ZeroAhead {
    pub fn start() -> ZeroAhead {
        let shared = Arc::new(Shared {
            st: Mutex::new(ZState::default()),
            cv: Condvar::new(),
        });
        let s2 = shared.clone();
        let handle = std::thread::Builder::new()
            .name("raftwal-zero-ahead".into())
            .spawn(move || s2.run())
            .ok();
        ZeroAhead { shared, handle }
    }

    /// Fill the new tail `file` ahead of offset `from`; `zeroed` is where
    /// zeros already written end (the file's length when the segment
    /// allocator filled it whole).
    pub fn retarget(&self, file: &Arc<File>, from: u64, zeroed: u64) {
        let limit = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut st = self.shared.wait_idle_range();
        st.target = Some(Target {
            file: file.clone(),
            claimed: from,
            zeroed: zeroed.max(from),
            limit: page_down(limit),
            base: from,
        });
    }

    /// Stop filling the current tail (before it is truncated or closed).
    pub fn detach(&self) {
        let mut st = self.shared.wait_idle_range();
        st.target = None;
    }

    /// The writer is about to write up to `end`: wait while zeros are being
    /// written there, and wake the filler when it should run ahead.
    pub fn claim(&self, end: u64) {
        let mut st = self.shared.lock();
        loop {
            match st.busy {
                Some((a, _)) if page_up(end) > a => {
                    st = self.shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                _ => break,
            }
        }
        let wake = match st.target.as_mut() {
            Some(t) => {
                t.claimed = t.claimed.max(end);
                t.zeroed < t.limit && t.zeroed < t.claimed + t.ahead() / 2
            }
            None => false,
        };
        if wake && st.idle {
            self.shared.cv.notify_all();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ZState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, once no range is being zeroed.
    fn wait_idle_range(&self) -> MutexGuard<'_, ZState> {
        let mut st = self.lock();
        while st.busy.is_some() {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st
    }

    fn run(&self) {
        // Page-aligned, as direct I/O wants its buffers.
        let buf = vec![0u8; CHUNK as usize + PAGE as usize];
        let at = buf.as_ptr().align_offset(PAGE as usize);
        let zeros = &buf[at..at + CHUNK as usize];
        let mut direct = Direct::default();
        let mut st = self.lock();
        loop {
            if st.stop {
                return;
            }
            let next = st.target.as_ref().and_then(|t| {
                let lo = t.zeroed.max(page_up(t.claimed + SLACK));
                let hi = (lo + CHUNK.min(t.ahead())).min(t.limit);
                (lo < hi && lo < t.claimed + t.ahead()).then(|| (lo, hi, t.file.clone()))
            });
            let Some((lo, hi, file)) = next else {
                st.idle = true;
                st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                st.idle = false;
                continue;
            };
            st.busy = Some((lo, hi));
            drop(st);
            let written = direct.write_zeros(&file, &zeros[..(hi - lo) as usize], lo);
            // Once in the page cache, the zeros may be overwritten by the
            // writer: the sync that follows no longer needs the range.
            st = self.lock();
            st.busy = None;
            self.cv.notify_all();
            drop(st);
            let done = written.and_then(|()| fsutil::fdatasync_quiet(&file));
            st = self.lock();
            if let Some(t) = st.target.as_mut().filter(|t| Arc::ptr_eq(&t.file, &file)) {
                // On an error, give up on this segment: zeros are only an
                // optimisation.
                t.zeroed = if done.is_ok() { hi } else { t.limit };
            }
            self.cv.notify_all();
        }
    }
}

/// The zeros go to the disk with direct I/O, through a second descriptor
/// of the tail: they never sit dirty in the page cache, where the writer's
/// next fdatasync would have to write them out along with its records.
/// Where direct I/O is refused (tmpfs, some file systems), buffered writes.
#[derive(Default)]
struct Direct {
    /// The tail it was opened for (its `Arc` address) and the descriptor.
    file: Option<(usize, File)>,
    refused: bool,
}

impl Direct {
    fn write_zeros(&mut self, file: &Arc<File>, zeros: &[u8], lo: u64) -> io::Result<()> {
        let key = Arc::as_ptr(file) as usize;
        if !self.refused && self.file.as_ref().map(|(k, _)| *k) != Some(key) {
            self.file = open_direct(file).map(|d| (key, d));
            self.refused = self.file.is_none();
        }
        if let Some((_, d)) = &self.file {
            match d.write_all_at(zeros, lo) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.file = None;
                    self.refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        file.write_all_at(zeros, lo)
    }
}

#[cfg(target_os = "linux")]
fn open_direct(file: &File) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &File) -> Option<File> {
    None
}

impl Drop for ZeroAhead {
    fn drop(&mut self) {
        {
            let mut st = self.shared.lock();
            st.stop = true;
            self.shared.cv.notify_all();
        }
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ZeroAhead {
        /// Where zeros written by the thread end in the current tail.
        fn zeroed_to(&self) -> Option<u64> {
            self.shared.lock().target.as_ref().map(|t| t.zeroed)
        }
    }

    fn is_ext4(p: &Path) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: statfs fills the zeroed struct for a valid C string path.
        unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as u64 == 0xEF53
        }
    }

    #[test]
    fn direct_zeros_are_what_a_buffered_read_sees() {
        let dir = tempfile::tempdir().unwrap();
        let f = Arc::new(fsutil::fresh_file(&dir.path().join("seg")));
        fsutil::preallocate(&f, 1 << 20).unwrap();
        // bytes in the page cache first, then zeros over part of them
        f.write_all_at(&[7u8; 1 << 20], 0).unwrap();
        let buf = vec![0u8; 3 * PAGE as usize];
        let at = buf.as_ptr().align_offset(PAGE as usize);
        let mut d = Direct::default();
        d.write_zeros(&f, &buf[at..at + 2 * PAGE as usize], PAGE)
            .unwrap();
        let mut back = vec![1u8; 1 << 20];
        f.read_exact_at(&mut back, 0).unwrap();
        let p = PAGE as usize;
        assert!(back[..p].iter().all(|&b| b == 7));
        assert!(back[p..3 * p].iter().all(|&b| b == 0), "zeros not seen");
        assert!(back[3 * p..].iter().all(|&b| b == 7));
        // ext4 (where the tests run in CI) takes direct I/O
        if is_ext4(dir.path()) {
            assert!(d.file.is_some() && !d.refused);
        }
    }

    #[test]
    fn zeros_never_land_on_written_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let f = Arc::new(fsutil::fresh_file(&path));
        let size = 24u64 << 20;
        fsutil::preallocate(&f, size).unwrap();
        let z = ZeroAhead::start();
        z.retarget(&f, 0, 0);
        // Writes of odd sizes, some larger than the gap the thread keeps.
        let mut off = 0u64;
        let mut n = 0u64;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        while off < size - (1 << 20) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = 1 + rng % if n % 7 == 0 { 200_000 } else { 3000 };
            let buf: Vec<u8> = (0..len).map(|i| (i % 251) as u8 + 1).collect();
            z.claim(off + len);
            f.write_all_at(&buf, off).unwrap();
            off += len;
            n += 1;
        }
        // The thread got ahead of the writer at some point.
        let mut waited = 0;
        while z.zeroed_to().unwrap() <= off && waited < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert!(z.zeroed_to().unwrap() > off);
        z.detach();
        let mut back = vec![0u8; off as usize];
        f.read_exact_at(&mut back, 0).unwrap();
        // Rebuild what was written and compare.
        let mut pos = 0usize;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut n = 0u64;
        while (pos as u64) < off {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let len = 1 + rng % if n % 7 == 0 { 200_000 } else { 3000 };
            for i in 0..len as usize {
                assert_eq!(back[pos + i], (i % 251) as u8 + 1, "byte {} lost", pos + i);
            }
            pos += len as usize;
            n += 1;
        }
        assert_eq!(f.metadata().unwrap().len(), size);
    }
}
