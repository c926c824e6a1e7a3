//! The 8-byte length word in front of every WAL record.
//!
//! Low 56 bits: the record's length `n`. Top byte: `0x80 | pad` when the
//! record is followed by `pad` (1..=7) zero bytes so the frame ends on an
//! 8-byte boundary, `0x00` when no padding is needed. Readers also accept an
//! unpadded frame of any length (older writers produced them).

/// Bytes in a length word.
pub const LEN_WORD: usize = 8;

/// The length word and padding for a record of `n` bytes.
#[inline]
pub fn encode(n: usize) -> (u64, usize) {
    let pad = (8 - n % 8) % 8;
    let mut word = n as u64;
    if pad != 0 {
        word |= (0x80 | pad as u64) << 56;
    }
    (word, pad)
}

/// Split a length word into (record length, padding).
#[inline]
pub fn decode(word: u64) -> (u64, u64) {
    let n = word & 0x00ff_ffff_ffff_ffff;
    let top = word >> 56;
    let pad = if top & 0x80 != 0 { top & 0x07 } else { 0 };
    (n, pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_the_format() {
        assert_eq!(encode(4).0.to_le_bytes(), [4, 0, 0, 0, 0, 0, 0, 0x84]);
        assert_eq!(encode(18).0.to_le_bytes(), [0x12, 0, 0, 0, 0, 0, 0, 0x86]);
        assert_eq!(encode(16).0.to_le_bytes(), [0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(encode(15).0.to_le_bytes(), [0x0f, 0, 0, 0, 0, 0, 0, 0x81]);
    }

    #[test]
    fn round_trip_and_alignment() {
        for n in 0..100usize {
            let (w, pad) = encode(n);
            assert_eq!((n + pad) % 8, 0);
            assert_eq!(decode(w), (n as u64, pad as u64));
        }
        // an unpadded odd length (flag clear) decodes with no padding
        assert_eq!(decode(14), (14, 0));
        // bits 59..62 are ignored when the flag is set
        assert_eq!(decode((0xf8 | 3) << 56 | 5), (5, 3));
    }
}
