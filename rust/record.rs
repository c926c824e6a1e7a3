//! Protobuf wire encoding of the few messages the core touches: walpb.Record,
//! raftpb.Entry, raftpb.HardState and walpb.Snapshot.
//!
//! The output matches etcd 3.4's gogoproto marshalers: fields in number
//! order, non-nullable scalars always written (zero included), bytes fields
//! only when present. Decoding follows protobuf rules (unknown fields
//! skipped, a repeated scalar's last value wins) and never panics: every
//! length is checked against what remains before it is used.

/// Record types of a WAL segment.
pub const METADATA: i64 = 1;
pub const ENTRY: i64 = 2;
pub const STATE: i64 = 3;
pub const CRC: i64 = 4;
pub const SNAPSHOT: i64 = 5;

/// Why bytes did not decode as a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

#[inline]
pub fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
fn put_bytes_field(out: &mut Vec<u8>, tag: u8, data: &[u8]) {
    out.push(tag);
    put_uvarint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A cursor over protobuf wire bytes.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(DecodeError("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(DecodeError("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint overflows 64 bits"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let remaining = (self.buf.len() - self.pos) as u64;
        if n > remaining {
            return Err(DecodeError("field length exceeds the message"));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 {
            return Err(DecodeError("illegal field number 0"));
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Other
            }
            2 => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Other
            }
            _ => return Err(DecodeError("unsupported wire type")),
        };
        Ok(Some((field, value)))
    }
}

/// A decoded walpb.Record borrowing its data from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub rtype: i64,
    pub crc: u32,
    pub data: Option<&'a [u8]>,
}

pub fn encode_record(out: &mut Vec<u8>, rtype: i64, crc: u32, data: Option<&[u8]>) {
    out.push(0x08);
    put_uvarint(out, rtype as u64);
    out.push(0x10);
    put_uvarint(out, u64::from(crc));
    if let Some(d) = data {
        put_bytes_field(out, 0x1a, d);
    }
}

pub fn record_len(rtype: i64, crc: u32, data_len: Option<usize>) -> usize {
    let mut n = 2 + uvarint_len(rtype as u64) + uvarint_len(u64::from(crc));
    if let Some(d) = data_len {
        n += 1 + uvarint_len(d as u64) + d;
    }
    n
}

pub fn decode_record(buf: &[u8]) -> Result<Record<'_>, DecodeError> {
    let mut w = Wire::new(buf);
    let mut rec = Record {
        rtype: 0,
        crc: 0,
        data: None,
    };
    while let Some((field, value)) = w.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => rec.rtype = v as i64,
            (2, Value::Varint(v)) => rec.crc = v as u32,
            (3, Value::Bytes(b)) => rec.data = Some(b),
            (1..=3, _) => return Err(DecodeError("wrong wire type in walpb.Record")),
            _ => {}
        }
    }
    Ok(rec)
}

/// raftpb.Entry with owned data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub etype: i32,
    pub data: Option<Vec<u8>>,
}

/// Length of the entry `encode_entry` writes, given its data's length.
pub fn entry_len(term: u64, index: u64, etype: i32, data_len: Option<usize>) -> usize {
    let mut n = 3 + uvarint_len(i64::from(etype) as u64) + uvarint_len(term) + uvarint_len(index);
    if let Some(d) = data_len {
        n += 1 + uvarint_len(d as u64) + d;
    }
    n
}

pub fn encode_entry(out: &mut Vec<u8>, term: u64, index: u64, etype: i32, data: Option<&[u8]>) {
    out.push(0x08);
    put_uvarint(out, i64::from(etype) as u64);
    out.push(0x10);
    put_uvarint(out, term);
    out.push(0x18);
    put_uvarint(out, index);
    if let Some(d) = data {
        put_bytes_field(out, 0x22, d);
    }
}

/// Where one decoded entry is: its fields, and its data inside an arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta {
    pub term: u64,
    pub index: u64,
    pub etype: i32,
    /// Offset of the data in the arena (where it would start when absent).
    pub start: usize,
    /// Data length, or None when the entry has no data field.
    pub len: Option<usize>,
    /// Where the entry's frame is: segment (position among the replayed
    /// ones) and the offset of its length word.
    pub seg: u32,
    pub frame_offset: u64,
    /// The CRC chain just before the record (its CRC continues from this).
    pub prev_crc: u32,
}

/// Decoded entries with their data packed in one buffer: no allocation per
/// entry while a log is replayed.
#[derive(Debug, Default, Clone)]
pub struct EntryArena {
    pub metas: Vec<EntryMeta>,
    pub bytes: Vec<u8>,
}

impl EntryArena {
    /// An arena whose data buffer holds `bytes` without growing.
    pub fn with_capacity(bytes: usize) -> Self {
        EntryArena {
            metas: Vec::new(),
            bytes: Vec::with_capacity(bytes),
        }
    }

    pub fn data(&self, m: &EntryMeta) -> Option<&[u8]> {
        m.len.map(|l| &self.bytes[m.start..m.start + l])
    }

    /// Keep the first `n` entries.
    pub fn truncate(&mut self, n: usize) {
        if let Some(m) = self.metas.get(n) {
            self.bytes.truncate(m.start);
        }
        self.metas.truncate(n);
    }

    /// Move the last entry to position `pos`, dropping those in between
    /// (a log overwrite: the new entry replaces everything from its index).
    pub fn replace_tail(&mut self, pos: usize) {
        let Some(last) = self.metas.pop() else { return };
        let data = last
            .len
            .map(|l| self.bytes[last.start..last.start + l].to_vec());
        self.truncate(pos);
        let start = self.bytes.len();
        if let Some(d) = &data {
            self.bytes.extend_from_slice(d);
        }
        self.metas.push(EntryMeta { start, ..last });
    }

    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Drop every entry, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.metas.clear();
        self.bytes.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// Decode an entry record's payload and append it.
    pub fn push_decoded(&mut self, buf: &[u8]) -> Result<&EntryMeta, DecodeError> {
        Ok(self.push(decode_entry_ref(buf)?))
    }

    /// Append a decoded entry.
    pub fn push(&mut self, e: EntryView<'_>) -> &mut EntryMeta {
        let start = self.bytes.len();
        if let Some(d) = e.data {
            self.bytes.extend_from_slice(d);
        }
        self.metas.push(EntryMeta {
            term: e.term,
            index: e.index,
            etype: e.etype,
            start,
            len: e.data.map(<[u8]>::len),
            seg: 0,
            frame_offset: 0,
            prev_crc: 0,
        });
        let last = self.metas.len() - 1;
        &mut self.metas[last]
    }
}

/// raftpb.Entry borrowing its data from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryView<'a> {
    pub term: u64,
    pub index: u64,
    pub etype: i32,
    pub data: Option<&'a [u8]>,
}

/// Decode raftpb.Entry without copying its data.
pub fn decode_entry_ref(buf: &[u8]) -> Result<EntryView<'_>, DecodeError> {
    let mut w = Wire::new(buf);
    let mut e = EntryView::default();
    while let Some((field, value)) = w.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => e.etype = i32::try_from(v).unwrap_or(-1),
            (2, Value::Varint(v)) => e.term = v,
            (3, Value::Varint(v)) => e.index = v,
            (4, Value::Bytes(b)) => e.data = Some(b),
            (1..=4, _) => return Err(DecodeError("wrong wire type in raftpb.Entry")),
            _ => {}
        }
    }
    Ok(e)
}

pub fn decode_entry(buf: &[u8]) -> Result<Entry, DecodeError> {
    let e = decode_entry_ref(buf)?;
    Ok(Entry {
        term: e.term,
        index: e.index,
        etype: e.etype,
        data: e.data.map(<[u8]>::to_vec),
    })
}

/// raftpb.HardState.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
}

impl HardState {
    pub fn is_empty(&self) -> bool {
        self.term == 0 && self.vote == 0 && self.commit == 0
    }
}

pub fn encode_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    out.push(0x08);
    put_uvarint(out, hs.term);
    out.push(0x10);
    put_uvarint(out, hs.vote);
    out.push(0x18);
    put_uvarint(out, hs.commit);
}

pub fn decode_hard_state(buf: &[u8]) -> Result<HardState, DecodeError> {
    let mut w = Wire::new(buf);
    let mut hs = HardState::default();
    while let Some((field, value)) = w.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => hs.term = v,
            (2, Value::Varint(v)) => hs.vote = v,
            (3, Value::Varint(v)) => hs.commit = v,
            (1..=3, _) => return Err(DecodeError("wrong wire type in raftpb.HardState")),
            _ => {}
        }
    }
    Ok(hs)
}

/// `decode_hard_state`, refusing fields a HardState does not have (a
/// record of another type whose type byte changed reads this way).
pub fn decode_hard_state_strict(buf: &[u8]) -> Result<HardState, DecodeError> {
    let mut w = Wire::new(buf);
    while let Some((field, _)) = w.next()? {
        if !(1..=3).contains(&field) {
            return Err(DecodeError("a field raftpb.HardState does not have"));
        }
    }
    decode_hard_state(buf)
}

/// walpb.Snapshot: index, term and (etcd 3.5) the raw bytes of a ConfState.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalSnap {
    pub index: u64,
    pub term: u64,
    pub conf_state: Option<Vec<u8>>,
}

pub fn encode_wal_snap(out: &mut Vec<u8>, s: &WalSnap) {
    out.push(0x08);
    put_uvarint(out, s.index);
    out.push(0x10);
    put_uvarint(out, s.term);
    if let Some(cs) = &s.conf_state {
        put_bytes_field(out, 0x1a, cs);
    }
}

pub fn decode_wal_snap(buf: &[u8]) -> Result<WalSnap, DecodeError> {
    let mut w = Wire::new(buf);
    let mut s = WalSnap::default();
    while let Some((field, value)) = w.next()? {
        match (field, value) {
            (1, Value::Varint(v)) => s.index = v,
            (2, Value::Varint(v)) => s.term = v,
            (3, Value::Bytes(b)) => s.conf_state = Some(b.to_vec()),
            (1..=3, _) => return Err(DecodeError("wrong wire type in walpb.Snapshot")),
            _ => {}
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn vectors() {
        let mut o = Vec::new();
        encode_entry(&mut o, 0, 0, 0, None);
        assert_eq!(hex(&o), "080010001800");
        o.clear();
        encode_entry(&mut o, 0, 0, 0, Some(b""));
        assert_eq!(hex(&o), "0800100018002200");
        o.clear();
        encode_entry(&mut o, 1, 2, 2, Some(b"ab"));
        assert_eq!(hex(&o), "08021001180222026162");
        o.clear();
        encode_hard_state(
            &mut o,
            &HardState {
                term: 1,
                vote: 2,
                commit: 3,
            },
        );
        assert_eq!(hex(&o), "080110021803");
        o.clear();
        encode_wal_snap(
            &mut o,
            &WalSnap {
                index: 300,
                term: 7,
                conf_state: None,
            },
        );
        assert_eq!(hex(&o), "08ac021007");
        o.clear();
        encode_record(&mut o, 1, 0, None);
        assert_eq!(hex(&o), "08011000");
        o.clear();
        encode_record(&mut o, 1, 0, Some(b""));
        assert_eq!(hex(&o), "080110001a00");
        o.clear();
        encode_record(&mut o, -1, 0, None);
        assert_eq!(hex(&o), "08ffffffffffffffffff011000");
        assert_eq!(record_len(-1, 0, None), o.len());
    }

    #[test]
    fn decode_round_trips() {
        let mut o = Vec::new();
        encode_entry(&mut o, 7, 9, 1, Some(b"xyz"));
        let e = decode_entry(&o).unwrap();
        assert_eq!(
            (e.term, e.index, e.etype, e.data.as_deref()),
            (7, 9, 1, Some(&b"xyz"[..]))
        );
        o.clear();
        encode_record(&mut o, ENTRY, 0xdead_beef, Some(b"q"));
        let r = decode_record(&o).unwrap();
        assert_eq!(
            r,
            Record {
                rtype: ENTRY,
                crc: 0xdead_beef,
                data: Some(b"q")
            }
        );
    }

    #[test]
    fn rejects_malformed_without_panicking() {
        assert!(decode_record(&[0x1a, 0x05, 1]).is_err());
        assert!(decode_record(&[0x08]).is_err());
        assert!(decode_record(&[0x00]).is_err());
        assert!(decode_record(&[0x0b]).is_err());
        assert!(
            decode_record(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
                .is_err()
        );
        // unknown fields are skipped
        let r = decode_record(&[0x08, 0x02, 0x25, 1, 2, 3, 4, 0x10, 0x05]).unwrap();
        assert_eq!((r.rtype, r.crc, r.data), (2, 5, None));
    }
}
