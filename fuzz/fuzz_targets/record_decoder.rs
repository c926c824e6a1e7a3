//! Arbitrary bytes through every record-level decoder. None may panic; a
//! record that decodes must survive `encode_record` and decode to the same
//! fields, and so must the payload types that have an encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use raftwal::frame;
use raftwal::record::{
    decode_entry, decode_hard_state, decode_record, decode_wal_snap, encode_entry,
    encode_hard_state, encode_record, encode_wal_snap, record_len, EntryArena,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(rec) = decode_record(data) {
        let mut out = Vec::new();
        encode_record(&mut out, rec.rtype, rec.crc, rec.data);
        assert_eq!(
            out.len(),
            record_len(rec.rtype, rec.crc, rec.data.map(<[u8]>::len))
        );
        let again = decode_record(&out).expect("re-encoded record must decode");
        assert_eq!(again, rec, "record round trip");
    }

    if let Ok(e) = decode_entry(data) {
        let mut out = Vec::new();
        encode_entry(&mut out, e.term, e.index, e.etype, e.data.as_deref());
        let again = decode_entry(&out).expect("re-encoded entry must decode");
        assert_eq!(again, e, "entry round trip");
    }
    // The arena decoder must agree with the owned one.
    let mut arena = EntryArena::default();
    match (arena.push_decoded(data).copied(), decode_entry(data)) {
        (Ok(m), Ok(e)) => {
            assert_eq!((m.term, m.index, m.etype), (e.term, e.index, e.etype));
            assert_eq!(arena.data(&m), e.data.as_deref());
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("arena and decode_entry disagree: {a:?} vs {b:?}"),
    }

    if let Ok(hs) = decode_hard_state(data) {
        let mut out = Vec::new();
        encode_hard_state(&mut out, &hs);
        let again = decode_hard_state(&out).expect("re-encoded hard state must decode");
        assert_eq!(again, hs, "hard state round trip");
    }

    if let Ok(s) = decode_wal_snap(data) {
        let mut out = Vec::new();
        encode_wal_snap(&mut out, &s);
        let again = decode_wal_snap(&out).expect("re-encoded snapshot must decode");
        assert_eq!(again, s, "walpb.Snapshot round trip");
    }

    // Every 8-byte window as a length word: decode, and when it is a length
    // the writer could produce, encode it back.
    for w in data.chunks_exact(frame::LEN_WORD) {
        let word = u64::from_le_bytes(w.try_into().unwrap());
        let (n, pad) = frame::decode(word);
        assert!(pad < 8);
        assert!(n < 1 << 56);
        let (word2, pad2) = frame::encode(n as usize);
        assert_eq!(frame::decode(word2), (n, pad2 as u64));
        assert_eq!((n as usize + pad2) % 8, 0);
    }
});
