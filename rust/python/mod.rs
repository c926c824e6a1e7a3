//! The `raftwal._native` extension module: the WAL core seen from Python.
//! The binding only converts, maps errors and releases the GIL; the core
//! (`crate::wal`) owns what is on disk and what is durable.
//!
//! * `errors.rs`: the one mapping from the core's errors to raftwal's
//!   exceptions (defined in `raftwal/errors.py`);
//! * `convert.rs`: Python objects to the core's types and back;
//! * `wal.rs`, `entry.rs`, `disklog.rs`, `memlog.rs`: the classes `Wal`,
//!   `Entry`'s native base, `DiskLog` and `MemLog`;
//! * `functions.rs`: the module's functions.
//!
//! The GIL is released around every write, fsync and wait; no Python code
//! runs while a Rust lock is held.
//!
//! Lock order. The GIL comes first and is never taken while a Rust lock is
//! held; a Rust lock is waited for only with the GIL released:
//!
//! 1. the GIL;
//! 2. the lock of a `Wal`'s `SharedWal` (`crate::wal::commit`: the WAL core,
//!    held across its writes, cuts and in-line fsyncs, released during a
//!    group fsync), or `PyDiskLog::inner` (held across its reads), never
//!    both;
//! 3. the core's own: the zero-ahead state, the segment allocator's channel.
//!
//! A thread holding the GIL takes a lock only with `try_lock` (and releases
//! the GIL to wait when it is taken). A replay does not hold the
//! `SharedWal` lock at all: it checks the core out of it, so that the entry
//! sink, which takes the GIL for each chunk, runs with no Rust lock held;
//! other callers wait, GIL released, for the core to come back. Properties
//! read atomics `SharedWal` publishes when a locked call ends and `stats()`
//! reads the core's atomic counters: neither waits on a save, a replay or a
//! cut.

use pyo3::prelude::*;

mod convert;
mod disklog;
mod entry;
mod errors;
mod functions;
mod logruns;
mod memlog;
mod wal;

use crate::wal::DEFAULT_SEGMENT_SIZE;
use disklog::PyDiskLog;
use entry::EntryBase;
use functions::*;
use wal::PyWal;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWal>()?;
    m.add_class::<EntryBase>()?;
    m.add_class::<PyDiskLog>()?;
    m.add_class::<memlog::PyMemLog>()?;
    m.add_class::<logruns::PyLogRuns>()?;
    m.add_class::<logruns::PyLogScan>()?;
    m.add_function(wrap_pyfunction!(logruns::replay_runs, m)?)?;
    m.add_function(wrap_pyfunction!(crc32c_py, m)?)?;
    m.add_function(wrap_pyfunction!(wal_exists, m)?)?;
    m.add_function(wrap_pyfunction!(current_pid, m)?)?;
    m.add_function(wrap_pyfunction!(entry_fits, m)?)?;
    m.add_function(wrap_pyfunction!(entry::copy_entries, m)?)?;
    m.add_function(wrap_pyfunction!(entry::make_entries, m)?)?;
    m.add_function(wrap_pyfunction!(metadata_fits, m)?)?;
    m.add_function(wrap_pyfunction!(repair, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(valid_snapshot_entries, m)?)?;
    m.add_function(wrap_pyfunction!(purge_segments, m)?)?;
    m.add_function(wrap_pyfunction!(salvage, m)?)?;
    m.add_function(wrap_pyfunction!(recover, m)?)?;
    m.add_function(wrap_pyfunction!(set_failpoints, m)?)?;
    m.add_function(wrap_pyfunction!(failpoint_hits, m)?)?;
    m.add("FAILPOINTS", crate::failpoint::ENABLED)?;
    m.add("histogram_buckets", crate::metrics::BUCKETS.to_vec())?;
    m.add("DEFAULT_SEGMENT_SIZE", DEFAULT_SEGMENT_SIZE)?;
    Ok(())
}
