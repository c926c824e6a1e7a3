//! Durability: the one sync path of a `Wal`, and group commit.

use std::fs::File;
use std::sync::Arc;
use std::time::Instant;

use super::Wal;
use crate::error::{Error, Result};
use crate::fsutil;

impl Wal {
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
}
