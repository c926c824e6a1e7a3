//! CRC-32C (Castagnoli), as etcd's WAL and snapshot files use it.
//!
//! `update(crc, data)` continues a finished CRC over more bytes, so
//! `update(update(0, a), b) == update(0, a ++ b)`: the WAL's chain is one
//! running value carried from record to record and file to file.
//! The `crc32c` crate uses SSE4.2 / ARMv8 CRC instructions where present.

/// Continue `crc` (a finished CRC-32C, 0 for none) over `data`.
#[inline]
pub fn update(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// CRC-32C of `data` from the empty seed.
#[inline]
pub fn checksum(data: &[u8]) -> u32 {
    update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(checksum(b"123456789"), 0xe306_9283);
        assert_eq!(checksum(b"somedata"), 0x741f_6a05);
        assert_eq!(update(0x741f_6a05, &[0x08, 0x00, 0x10, 0x00]), 0x1820_6d80);
        assert_eq!(checksum(&[0x08, 0x00, 0x10, 0x00]), 0x81e6_d9a0);
    }

    #[test]
    fn chaining_equals_concatenation() {
        let a = b"hello, ";
        let b = b"world";
        assert_eq!(update(checksum(a), b), checksum(b"hello, world"));
        assert_eq!(update(0, b""), 0);
    }
}
