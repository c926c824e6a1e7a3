//! raftwal's native core: etcd's WAL format (frames, records, the CRC chain,
//! segments, the writer and the reader) in pure Rust. The PyO3 layer in
//! `python/` is compiled only with the `python` feature, so
//! `cargo test --no-default-features` needs no interpreter.

pub mod crc;
pub mod disklog;
pub mod error;
pub mod failpoint;
pub mod frame;
pub mod fsutil;
pub mod logruns;
pub mod memlog;
pub mod metrics;
pub mod record;
pub mod repair;
pub mod segment;
pub mod wal;

#[cfg(feature = "python")]
mod python;
