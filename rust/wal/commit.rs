//! Durability: the one sync path of a `Wal`, and group commit over it.
//!
//! A sync is three steps: under the WAL, hand buffered bytes to the OS and
//! note what an fsync will cover (`begin_sync`); fdatasync the tail
//! (`SyncPoint::fdatasync`); under the WAL again, record the outcome: the
//! saves covered are durable, or the WAL is poisoned (`end_sync`).
//! `Wal::sync` runs the three under one `&mut`; `SharedWal` runs the middle
//! one with its lock released, so that one fsync covers every save made
//! while it runs (group commit).
//!
//! `SharedWal` is the one shared writer: one lock over the core, one
//! condition variable, and what the lock-free getters show. Its methods
//! block: a caller holding another lock (the GIL) releases it first.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::{EntryRef, Wal, FORKED};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::metrics::WalStats;
use crate::record::HardState;

/// What one fdatasync covers: the tail's handle, the save count and the
/// log's last index (a snapshot record past the last entry counts, as it
/// does for replay).
pub(super) struct SyncPoint {
    file: Arc<File>,
    seq: u64,
    index: u64,
    /// Tests: the fdatasync fails (after a pause, so that others wait on it).
    #[cfg(test)]
    fail: bool,
}

impl SyncPoint {
    /// fdatasync the tail, timed and counted in `stats`.
    fn fdatasync(&self, stats: &WalStats) -> io::Result<()> {
        let t0 = Instant::now();
        #[cfg(test)]
        let synced = if self.fail {
            std::thread::sleep(std::time::Duration::from_millis(50));
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            fsutil::fdatasync(&self.file)
        };
        #[cfg(not(test))]
        let synced = fsutil::fdatasync(&self.file);
        stats.fsync.observe(t0.elapsed());
        stats.add(&stats.fsyncs, 1);
        synced
    }
}

impl Wal {
    /// Hand buffered bytes to the OS and say what an fsync must cover.
    fn begin_sync(&mut self) -> Result<SyncPoint> {
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
        Ok(SyncPoint {
            file,
            seq: self.seq,
            index: self.limit,
            #[cfg(test)]
            fail: self.failing_syncs,
        })
    }

    /// Record the outcome of the fsync of `p`: what it covered is durable,
    /// or its failure poisons the WAL.
    fn end_sync(&mut self, p: &SyncPoint, synced: io::Result<()>) -> Result<()> {
        synced.map_err(|e| {
            let tail = self.tail_name();
            self.poison(format!("fdatasync {tail}"), e)
        })?;
        self.mark_durable(p.seq, p.index);
        Ok(())
    }

    /// Record that an fsync covering saves up to `seq` succeeded.
    pub(super) fn mark_durable(&mut self, seq: u64, index: u64) {
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
        let p = self.begin_sync()?;
        let synced = p.fdatasync(&self.stats);
        self.end_sync(&p, synced)
    }

    /// The last index of the log prefix known to be on stable storage.
    pub fn durable_index(&self) -> u64 {
        self.durable_index
    }
}

/// What the getters show, published whenever a locked call ends: read
/// without any lock, so a getter never waits on a save, a replay or a cut.
#[derive(Default)]
struct Shown {
    durable_index: AtomicU64,
    last_index: AtomicU64,
    closed: AtomicBool,
}

impl Shown {
    fn publish(&self, w: &Wal) {
        self.durable_index
            .store(w.durable_index(), Ordering::Release);
        self.last_index.store(w.last_index(), Ordering::Release);
        self.closed.store(w.is_closed(), Ordering::Release);
    }
}

/// What the lock guards: the core (`None` while a replay has it checked
/// out) and whether a sync runs outside the lock.
struct Slot {
    wal: Option<Wal>,
    syncing: bool,
    /// Threads waiting on the condition variable (a signal with none
    /// waiting would still be a system call).
    waiters: usize,
    /// The newest save that an unsynced caller waits to see durable: the
    /// background syncer (`sync_loop`) fsyncs until it is covered.
    wanted: u64,
    /// The syncer waits on `SharedWal::work` (signal it only then).
    syncer_idle: bool,
    /// `stop_sync_loop` was called: the syncer returns.
    syncer_stop: bool,
    /// The sync whose I/O error poisoned the WAL: every caller waiting for
    /// a save it covered gets that error, whichever thread ran it.
    failed: Option<FailedSync>,
}

/// A flush or fdatasync that failed, and the saves it was to cover.
struct FailedSync {
    upto: u64,
    context: String,
    kind: io::ErrorKind,
    errno: Option<i32>,
    detail: String,
}

impl FailedSync {
    fn of(upto: u64, e: &Error) -> Option<FailedSync> {
        match e {
            Error::Io { context, source } => Some(FailedSync {
                upto,
                context: context.clone(),
                kind: source.kind(),
                errno: source.raw_os_error(),
                detail: source.to_string(),
            }),
            _ => None,
        }
    }

    /// The error again, for another caller whose save it covered.
    fn error(&self) -> Error {
        let source = match self.errno {
            Some(n) => io::Error::from_raw_os_error(n),
            None => io::Error::new(self.kind, self.detail.clone()),
        };
        Error::Io {
            context: self.context.clone(),
            source,
        }
    }
}

/// Wait on `cond` with `g`, counted in `waiters`.
fn wait_slot<'a>(cond: &Condvar, mut g: MutexGuard<'a, Slot>) -> MutexGuard<'a, Slot> {
    g.waiters += 1;
    let mut g = cond.wait(g).unwrap_or_else(|p| p.into_inner());
    g.waiters -= 1;
    g
}

/// A WAL shared between threads: one lock over the core and a condition
/// variable for group commit (one fsync covers every save pending when it
/// starts; later callers wait for it and find their save covered). A
/// replay checks the core out of the lock (the slot is empty meanwhile),
/// so that whatever takes its entries runs with no lock of this WAL held.
pub struct SharedWal {
    slot: Mutex<Slot>,
    /// Signalled when a sync ends and when a replay hands the core back.
    cond: Condvar,
    /// Signalled for an idle syncer: a save wants a sync, or it must stop.
    work: Condvar,
    shown: Shown,
    stats: Arc<WalStats>,
    dir: PathBuf,
    segment_size: u64,
    /// The process that opened the WAL (see `Wal::is_owner`).
    owner: u32,
}

/// The core, locked; publishes what the getters show when released.
pub struct Guard<'a> {
    g: Option<MutexGuard<'a, Slot>>,
    shown: &'a Shown,
}

impl<'a> Guard<'a> {
    fn slot(&mut self) -> &mut Slot {
        self.g.as_mut().expect("a guard holds the lock")
    }

    /// Release the lock until `cond` is signalled and the core is back.
    fn wait(self, cond: &Condvar) -> Self {
        self.release_until(cond, |g| wait_slot(cond, g))
    }

    /// The syncer's wait for work on `work` (flagged `syncer_idle`, so
    /// that only a save that finds it idle signals it), then for the core.
    fn idle(self, work: &Condvar, cond: &Condvar) -> Self {
        self.release_until(cond, |mut g| {
            g.syncer_idle = true;
            let mut g = work.wait(g).unwrap_or_else(|p| p.into_inner());
            g.syncer_idle = false;
            g
        })
    }

    /// Publish what the getters show, wait with `wait` (which releases the
    /// lock), then on `cond` until a replay has handed the core back.
    fn release_until(
        mut self,
        cond: &Condvar,
        wait: impl FnOnce(MutexGuard<'a, Slot>) -> MutexGuard<'a, Slot>,
    ) -> Self {
        if let Some(g) = self.g.take() {
            if let Some(w) = g.wal.as_ref() {
                self.shown.publish(w);
            }
            let mut g = wait(g);
            while g.wal.is_none() {
                g = wait_slot(cond, g);
            }
            self.g = Some(g);
        }
        self
    }
}

impl std::ops::Deref for Guard<'_> {
    type Target = Wal;
    fn deref(&self) -> &Wal {
        self.g
            .as_ref()
            .and_then(|g| g.wal.as_ref())
            .expect("a locked WAL slot holds the core")
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut Wal {
        self.g
            .as_mut()
            .and_then(|g| g.wal.as_mut())
            .expect("a locked WAL slot holds the core")
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.g.as_ref().and_then(|g| g.wal.as_ref()) {
            self.shown.publish(w);
        }
    }
}

/// The core taken out of its slot for a replay; handed back when dropped.
struct CheckedOut<'a> {
    wal: Option<Wal>,
    from: &'a SharedWal,
}

impl Drop for CheckedOut<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.wal.take() {
            self.from.shown.publish(&w);
            let mut g = self.from.slot.lock().unwrap_or_else(|p| p.into_inner());
            g.wal = Some(w);
            let wake = g.waiters > 0;
            drop(g);
            if wake {
                self.from.cond.notify_all();
            }
        }
    }
}

impl SharedWal {
    pub fn new(w: Wal) -> SharedWal {
        let shown = Shown::default();
        shown.publish(&w);
        SharedWal {
            stats: w.stats(),
            dir: w.dir().to_path_buf(),
            segment_size: w.segment_size(),
            owner: crate::fsutil::current_pid(),
            shown,
            slot: Mutex::new(Slot {
                wal: Some(w),
                syncing: false,
                waiters: 0,
                wanted: 0,
                syncer_idle: false,
                syncer_stop: false,
                failed: None,
            }),
            cond: Condvar::new(),
            work: Condvar::new(),
        }
    }

    /// The locked slot, once it holds the core.
    fn lock_slot(&self) -> MutexGuard<'_, Slot> {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        while g.wal.is_none() {
            g = wait_slot(&self.cond, g);
        }
        g
    }

    /// The core, locked (waiting for a replay to hand it back).
    pub fn lock(&self) -> Guard<'_> {
        Guard {
            g: Some(self.lock_slot()),
            shown: &self.shown,
        }
    }

    /// Run `f` on the core taken out of the lock: other callers wait for it
    /// to come back, but `f` holds no lock of this WAL (a replay whose sink
    /// takes another lock, such as the GIL, runs this way).
    pub fn with_checked_out<R>(&self, f: impl FnOnce(&mut Wal) -> Result<R>) -> Result<R> {
        let wal = self.lock_slot().wal.take();
        let mut out = CheckedOut { wal, from: self };
        match out.wal.as_mut() {
            Some(w) => f(w),
            None => Err(Error::Closed("the WAL is closed")),
        }
    }

    /// A process forked from the owner must not write, and must not wait
    /// for the lock either: a thread of the parent may have held it at the
    /// fork, and that thread does not exist here.
    pub fn check_owner(&self) -> Result<()> {
        if crate::fsutil::current_pid() != self.owner {
            return Err(Error::Closed(FORKED));
        }
        Ok(())
    }

    /// etcd's `Save`; with `sync`, returns once the save is durable
    /// whenever raft's MustSync rule says so, sharing the fsync with
    /// other callers. Returns the save's sequence number, for `sync_to`.
    ///
    /// Without `sync` the caller will wait for `sync_to(seq)` later: a
    /// running syncer (`sync_loop`) starts that fsync as soon as it can.
    pub fn save(&self, hs: &HardState, entries: &[EntryRef<'_>], sync: bool) -> Result<u64> {
        self.check_owner()?;
        let g = self.lock();
        if !sync {
            return self.save_unsynced(g, hs, entries);
        }
        let (seq, must_sync) = {
            let mut w = g;
            let must = w.save(hs, entries, false)?;
            (w.seq, must)
        };
        if must_sync {
            self.sync_to(seq)?;
        }
        Ok(seq)
    }

    /// `save` without `sync`, for a caller holding another lock (the GIL)
    /// that it would rather not hand over for a save this short: run only
    /// if this WAL's lock is free at once and the save's records stay in
    /// the write buffer (no system call, no wait for the zero-ahead thread,
    /// no cut: pure encoding), else `None`.
    pub fn try_save_unsynced(
        &self,
        hs: &HardState,
        entries: &[EntryRef<'_>],
    ) -> Option<Result<u64>> {
        if let Err(e) = self.check_owner() {
            return Some(Err(e));
        }
        let g = match self.slot.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        g.wal.as_ref()?;
        let g = Guard {
            g: Some(g),
            shown: &self.shown,
        };
        // Each record is its data plus at most 64 bytes of framing, header
        // and padding; the HardState's record is under 64 bytes too.
        let most: u64 = entries
            .iter()
            .map(|e| e.data.map_or(0, <[u8]>::len) as u64 + 64)
            .sum::<u64>()
            + 64;
        if !g.buffers(most) {
            return None;
        }
        Some(self.save_unsynced(g, hs, entries))
    }

    /// The unsynced save under `g`: marks it wanted by the syncer.
    fn save_unsynced(
        &self,
        mut g: Guard<'_>,
        hs: &HardState,
        entries: &[EntryRef<'_>],
    ) -> Result<u64> {
        g.save(hs, entries, false)?;
        let seq = g.seq;
        let slot = g.slot();
        slot.wanted = seq;
        let wake = slot.syncer_idle;
        drop(g);
        if wake {
            self.work.notify_one();
        }
        Ok(seq)
    }

    /// The background syncer: fsync back to back while an unsynced save
    /// (`save` without `sync`) is not durable yet, so that the next fsync
    /// starts as soon as one ends, whoever then settles the waiters.
    /// Returns once `stop_sync_loop` is called or the WAL is closed; an
    /// fsync that fails poisons the WAL and ends the loop with that error.
    pub fn sync_loop(&self) -> Result<()> {
        loop {
            self.check_owner()?;
            let target = {
                let mut g = self.lock();
                loop {
                    if g.slot().syncer_stop || g.is_closed() {
                        return Ok(());
                    }
                    if let Some(m) = &g.poisoned {
                        return Err(Error::Poisoned(m.clone()));
                    }
                    let wanted = g.slot().wanted;
                    if wanted > g.durable_seq {
                        break wanted;
                    }
                    g = g.idle(&self.work, &self.cond);
                }
            };
            self.sync_to(target)?;
        }
    }

    /// Make `sync_loop` return (at once if it is idle, else after its fsync).
    pub fn stop_sync_loop(&self) {
        let mut g = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        g.syncer_stop = true;
        drop(g);
        self.work.notify_all();
    }

    /// Flush and fdatasync the tail now (a new fsync even if every save
    /// is durable already).
    pub fn sync(&self) -> Result<()> {
        self.check_owner()?;
        let seq = {
            let mut w = self.lock();
            w.seq += 1;
            w.seq
        };
        self.sync_to(seq)
    }

    /// Block until every save up to `seq` is durable. One caller at a
    /// time runs the fsync, with the lock released; the others wait and
    /// find their saves covered, or the WAL poisoned: a caller whose save
    /// the failed sync covered gets its I/O error, a later one
    /// `Error::Poisoned`.
    pub fn sync_to(&self, seq: u64) -> Result<()> {
        self.check_owner()?;
        let mut g = self.lock();
        loop {
            if g.durable_seq >= seq {
                return Ok(());
            }
            if let Some(m) = g.poisoned.clone() {
                return Err(match &g.slot().failed {
                    Some(f) if seq <= f.upto => f.error(),
                    _ => Error::Poisoned(m),
                });
            }
            if g.is_closed() {
                return Err(Error::Closed("the WAL is closed"));
            }
            if !g.slot().syncing {
                break;
            }
            g = g.wait(&self.cond);
        }
        g.slot().syncing = true;
        let upto = g.seq;
        let point = g.begin_sync();
        drop(g);
        let synced = point.map(|p| {
            let r = p.fdatasync(&self.stats);
            (p, r)
        });
        let mut g = self.lock();
        g.slot().syncing = false;
        let out = match synced {
            Ok((p, r)) => g.end_sync(&p, r),
            Err(e) => {
                // What stopped the flush stops every later call too.
                if g.poisoned.is_none() {
                    g.poisoned = Some(e.to_string());
                }
                Err(e)
            }
        };
        if let Err(e) = &out {
            if g.slot().failed.is_none() {
                g.slot().failed = FailedSync::of(upto, e);
            }
        }
        let wake = g.slot().waiters > 0;
        drop(g);
        if wake {
            self.cond.notify_all();
        }
        out
    }

    /// etcd's `Close`. In a forked child, lets go of this process's
    /// handles if the lock is free (the core does no I/O there) and never
    /// waits.
    pub fn close(&self) -> Result<()> {
        if self.check_owner().is_err() {
            if let Ok(mut g) = self.slot.try_lock() {
                if let Some(w) = g.wal.as_mut() {
                    let _ = w.close();
                    self.shown.publish(w);
                }
            }
            return Err(Error::Closed(FORKED));
        }
        let r = self.lock().close();
        self.cond.notify_all();
        self.work.notify_all();
        r
    }

    /// The last index of the log prefix known to be on stable storage.
    pub fn durable_index(&self) -> u64 {
        self.shown.durable_index.load(Ordering::Acquire)
    }

    /// The index of the last entry saved or replayed.
    pub fn last_index(&self) -> u64 {
        self.shown.last_index.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.shown.closed.load(Ordering::Acquire)
    }

    /// The WAL's counters and histograms (they stay readable after close).
    pub fn stats(&self) -> &Arc<WalStats> {
        &self.stats
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::WalSnap;

    fn hs(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote: 1,
            commit,
        }
    }

    /// Save one entry after the last one, under `order` (threads race for
    /// the next index; the WAL refuses a gap), waiting for it to be
    /// durable if `sync`; returns (its index, its sequence number).
    fn append(
        shared: &SharedWal,
        order: &Mutex<()>,
        data: &[u8],
        sync: bool,
    ) -> Result<(u64, u64)> {
        let _turn = order.lock().unwrap();
        let index = shared.lock().last_index() + 1;
        let e = EntryRef {
            term: 1,
            index,
            etype: 0,
            data: Some(data),
        };
        Ok((index, shared.save(&hs(1, 0), &[e], sync)?))
    }

    #[test]
    fn threads_saving_and_syncing_at_once_all_become_durable() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let shared = SharedWal::new(Wal::create(&d, Some(b"md"), 64 << 10).unwrap());
        let order = Mutex::new(());
        const THREADS: u64 = 8;
        const SAVES: u64 = 40;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (shared, order) = (&shared, &order);
                s.spawn(move || {
                    for k in 0..SAVES {
                        let data = vec![t as u8; 100 + (k as usize * 37) % 900];
                        let (index, seq) = append(shared, order, &data, false).unwrap();
                        match (t + k) % 3 {
                            0 => shared.sync_to(seq).unwrap(),
                            1 => shared.sync().unwrap(),
                            _ => {
                                // a save that waits for itself, as `save` does
                                let (next, _) = append(shared, order, &data, true).unwrap();
                                assert!(shared.durable_index() >= next);
                            }
                        }
                        assert!(shared.durable_index() >= index);
                    }
                });
            }
        });
        let last = shared.last_index();
        assert!(last >= THREADS * SAVES);
        assert_eq!(shared.durable_index(), last);
        // the saves crossed segment cuts too
        let st = shared.stats();
        assert!(WalStats::get(&st.cuts) > 0);
        shared.close().unwrap();
        let mut w = Wal::open(&d, WalSnap::default(), false, 64 << 10).unwrap();
        let r = w.read_all().unwrap();
        assert_eq!(r.last_index, last);
        let indexes: Vec<u64> = r.entries.metas.iter().map(|m| m.index).collect();
        assert_eq!(indexes, (1..=last).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_fsync_poisons_every_waiter_and_every_later_call() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let shared = SharedWal::new(Wal::create(&d, None, 1 << 20).unwrap());
        let order = Mutex::new(());
        let (_, seq) = append(&shared, &order, b"kept", false).unwrap();
        shared.sync_to(seq).unwrap();
        assert_eq!(shared.durable_index(), 1);
        shared.lock().failing_syncs = true;
        // Every thread saves and waits: one runs the failing fsync (it takes
        // a while), the others wait for it or arrive after it.
        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6)
                .map(|_| {
                    let (shared, order) = (&shared, &order);
                    s.spawn(move || {
                        let (_, seq) = append(shared, order, b"lost", false)?;
                        shared.sync_to(seq)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Whoever ran it, every caller whose save the failed fsync covered
        // gets its EIO; one whose save came after it, that the WAL is
        // poisoned.
        for r in &results {
            match r {
                Err(Error::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(libc::EIO))
                }
                Err(Error::Poisoned(_)) => {}
                other => panic!("{:?}", other.as_ref().err()),
            }
        }
        assert!(results.iter().any(|r| matches!(r, Err(Error::Io { .. }))));
        assert_eq!(shared.durable_index(), 1);
        // Every later call is refused, even with fsyncs working again.
        shared.lock().failing_syncs = false;
        assert!(matches!(
            append(&shared, &order, b"", true),
            Err(Error::Poisoned(_))
        ));
        assert!(matches!(shared.sync(), Err(Error::Poisoned(_))));
        assert!(matches!(shared.sync_to(1), Ok(())));
        // a save the failed fsync covered: its error, however late the call
        assert!(matches!(
            shared.sync_to(seq + 1),
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EIO)
        ));
        let after = shared.lock().seq + 1;
        assert!(matches!(shared.sync_to(after), Err(Error::Poisoned(_))));
        assert!(matches!(
            shared.lock().save_snapshot(&WalSnap::default()),
            Err(Error::Poisoned(_))
        ));
        assert_eq!(shared.durable_index(), 1);
        let _ = shared.close();
    }

    #[test]
    fn an_unsynced_save_under_another_lock_runs_only_if_free_and_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let shared = SharedWal::new(Wal::create(&d, None, 16 << 10).unwrap());
        let data = [5u8; 1000];
        let entry = |index| EntryRef {
            term: 1,
            index,
            etype: 0,
            data: Some(&data[..]),
        };
        // free, far from the end of the segment: saved
        let seq = shared
            .try_save_unsynced(&hs(1, 0), &[entry(1)])
            .expect("runs")
            .unwrap();
        assert_eq!(shared.lock().seq, seq);
        // the lock is held elsewhere: not run, nothing written
        {
            let _held = shared.lock();
            let other = std::thread::scope(|s| {
                s.spawn(|| shared.try_save_unsynced(&hs(1, 0), &[entry(2)]).is_none())
                    .join()
                    .unwrap()
            });
            assert!(other);
        }
        assert_eq!(shared.last_index(), 1);
        // records that would not all stay in the write buffer: left to `save`
        let big = vec![1u8; 130 << 10];
        let large = EntryRef {
            term: 1,
            index: 2,
            etype: 0,
            data: Some(&big[..]),
        };
        assert!(shared.try_save_unsynced(&hs(1, 0), &[large]).is_none());
        assert_eq!(shared.last_index(), 1);
        // The segment (16 KiB) is smaller than the write buffer, so only
        // the end of the segment refuses from here: once the bytes handed to
        // the OS reach it, every save is left to `save`, which cuts; in the
        // new segment it runs again.
        let mut index = 2;
        let mut refused = 0;
        while WalStats::get(&shared.stats().cuts) == 0 {
            assert!(index < 200, "no cut");
            let batch: Vec<EntryRef<'_>> = (index..index + 3).map(entry).collect();
            match shared.try_save_unsynced(&hs(1, 0), &batch) {
                Some(r) => {
                    assert_eq!(refused, 0, "ran after a refusal, before the cut");
                    r.unwrap();
                }
                None => {
                    refused += 1;
                    let (room, off) = {
                        let g = shared.lock();
                        let e = g.enc.as_ref().unwrap();
                        (e.room(), e.os_offset())
                    };
                    assert!(
                        room < 3 * (1000 + 64) + 64 || off >= 16 << 10,
                        "{room} {off}"
                    );
                    let seq = shared.save(&hs(1, 0), &batch, false).unwrap();
                    shared.sync_to(seq).unwrap();
                }
            }
            index += 3;
        }
        assert!(refused > 0);
        assert!(shared
            .try_save_unsynced(&hs(1, 0), &[entry(index)])
            .expect("runs in the new segment")
            .is_ok());
        shared.sync().unwrap();
        let last = shared.last_index();
        assert_eq!(shared.durable_index(), last);
        shared.close().unwrap();
        let mut w = Wal::open(&d, WalSnap::default(), false, 16 << 10).unwrap();
        let r = w.read_all().unwrap();
        let indexes: Vec<u64> = r.entries.metas.iter().map(|m| m.index).collect();
        assert_eq!(indexes, (1..=last).collect::<Vec<_>>());
    }

    /// Wait (bounded) until `shared` shows `index` durable.
    fn until_durable(shared: &SharedWal, index: u64) {
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        while shared.durable_index() < index {
            assert!(
                Instant::now() < deadline,
                "the syncer never covered {index}"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn the_syncer_makes_unsynced_saves_durable_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("wal");
        let shared = SharedWal::new(Wal::create(&d, None, 64 << 10).unwrap());
        let order = Mutex::new(());
        std::thread::scope(|s| {
            let syncer = s.spawn(|| shared.sync_loop());
            // Nobody calls sync_to: the syncer alone covers every save,
            // whether it was idle or mid-fsync when the save came.
            for k in 1..=200u64 {
                let (index, _) = append(&shared, &order, &[7; 300], false).unwrap();
                assert_eq!(index, k);
                if k % 50 == 0 {
                    until_durable(&shared, k);
                }
            }
            until_durable(&shared, 200);
            let fsyncs = WalStats::get(&shared.stats().fsyncs);
            assert!((1..=200).contains(&fsyncs), "{fsyncs} fsyncs");
            // Idle, it does no fsync; stopped, it returns.
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert_eq!(WalStats::get(&shared.stats().fsyncs), fsyncs);
            shared.stop_sync_loop();
            assert!(syncer.join().unwrap().is_ok());
        });
        // Synchronous saves never wake it: they sync themselves.
        let (_, seq) = append(&shared, &order, b"x", true).unwrap();
        assert_eq!(shared.lock().durable_seq, seq);
        shared.close().unwrap();
    }

    #[test]
    fn the_syncer_ends_at_close_and_with_the_error_of_a_failed_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let shared = SharedWal::new(Wal::create(&dir.path().join("a"), None, 1 << 20).unwrap());
        std::thread::scope(|s| {
            let syncer = s.spawn(|| shared.sync_loop());
            std::thread::sleep(std::time::Duration::from_millis(10));
            shared.close().unwrap();
            assert!(syncer.join().unwrap().is_ok());
        });
        let shared = SharedWal::new(Wal::create(&dir.path().join("b"), None, 1 << 20).unwrap());
        let order = Mutex::new(());
        shared.lock().failing_syncs = true;
        std::thread::scope(|s| {
            let syncer = s.spawn(|| shared.sync_loop());
            let (_, seq) = append(&shared, &order, b"lost", false).unwrap();
            let ended = syncer.join().unwrap();
            assert!(matches!(ended, Err(Error::Io { .. })), "{:?}", ended.err());
            // the caller of the save learns its fsync's error
            assert!(matches!(
                shared.sync_to(seq),
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EIO)
            ));
            assert!(matches!(shared.sync(), Err(Error::Poisoned(_))));
        });
        assert_eq!(shared.durable_index(), 0);
        let _ = shared.close();
    }
}
