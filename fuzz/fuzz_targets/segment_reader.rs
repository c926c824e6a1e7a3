//! Arbitrary bytes as the only segment of a WAL directory, through the
//! reader and every repair-side entry point. Errors are fine; a panic (or
//! an abort from a huge allocation) is a bug.
#![no_main]

use std::fs;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use raftwal::record::WalSnap;
use raftwal::repair;
use raftwal::wal::{Wal, DEFAULT_SEGMENT_SIZE as SEGMENT_SIZE};

const SEGMENT: &str = "0000000000000000-0000000000000000.wal";

fn fresh_copy(data: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(SEGMENT), data).expect("write segment");
    dir
}

fn read_only(dir: &Path) {
    if let Ok(mut w) = Wal::open(dir, WalSnap::default(), false, SEGMENT_SIZE) {
        let _ = w.read_all();
    }
    let _ = repair::verify(dir, &WalSnap::default());
    if let Ok(snaps) = repair::valid_snapshot_entries(dir) {
        // Each snapshot the log vouches for must open and read, or fail
        // with an error.
        for s in snaps.into_iter().take(4) {
            let _ = repair::verify(dir, &s);
            if let Ok(mut w) = Wal::open(dir, s, false, SEGMENT_SIZE) {
                let _ = w.read_all();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = fresh_copy(data);
    read_only(dir.path());

    // repair rewrites the directory: run it on its own copy, then check that
    // whatever it left still reads without panicking.
    let copy = fresh_copy(data);
    if let Ok(true) = repair::repair(copy.path()) {
        read_only(copy.path());
    }

    let copy = fresh_copy(data);
    if repair::salvage(copy.path()).is_ok() {
        read_only(copy.path());
    }
});
