//! Records: what one log entry holds, the hash chain that links them, and their byte layout.
//!
//! The layout (all integers little-endian) is, per record:
//!
//! ```text
//! seq u64 | recorded_at i64 | event_id [16] | version u16 | payload_len u32 | payload | chain [32]
//! ```
//!
//! Backends store records in this layout, several back to back in one chunk. Decoding checks
//! every length, so a truncated or corrupted chunk is an error naming the `seq` it stopped at.

use std::sync::LazyLock;

use crate::types::{EventId, Hash32, SchemaVersion, Seq, Timestamp};

/// The BLAKE3 key-derivation context of the hash chain. Changing it breaks every log.
pub const CHAIN_CONTEXT: &str = "idpsync log v1";

/// The largest payload one record may carry (16 MiB).
pub const PAYLOAD_LEN_MAX: usize = 16 * 1024 * 1024;

/// Bytes of a record besides its payload.
pub const RECORD_OVERHEAD_LEN: usize = 8 + 8 + 16 + 2 + 4 + 32;

/// One entry of a tenant's log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the tenant's log; dense from 1.
    pub seq: Seq,
    /// When the writer accepted the event; never earlier than the record before.
    pub recorded_at: Timestamp,
    /// The event's unique id.
    pub event_id: EventId,
    /// The envelope version of `payload`.
    pub version: SchemaVersion,
    /// The encoded event; the storage layer never looks inside.
    pub payload: Vec<u8>,
    /// `chain(previous chain, this record)`, see [`chain_link`].
    pub chain: Hash32,
}

/// A record as handed to [`crate::LogStore::append`]: the store adds `seq` and `chain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecord {
    /// When the writer accepted the event.
    pub recorded_at: Timestamp,
    /// The event's unique id.
    pub event_id: EventId,
    /// The envelope version of `payload`.
    pub version: SchemaVersion,
    /// The encoded event.
    pub payload: Vec<u8>,
}

/// The derive-key context, hashed once: starting a hasher from it is the same as
/// `Hasher::new_derive_key(CHAIN_CONTEXT)` without rehashing the context for every record.
static CHAIN_CONTEXT_KEY: LazyLock<blake3::hazmat::ContextKey> =
    LazyLock::new(|| blake3::hazmat::hash_derive_key_context(CHAIN_CONTEXT));

/// Bytes of the fixed-size part of a chain link's input: previous link, seq, time, id, version.
const LINK_HEADER_LEN: usize = 32 + 8 + 8 + 16 + 2;

/// One link of the hash chain:
/// `BLAKE3-derive-key("idpsync log v1", previous ‖ seq ‖ recorded_at ‖ event_id ‖ version ‖ payload)`,
/// integers little-endian. The link before the first record is [`Hash32::ZERO`].
pub fn chain_link(
    previous: &Hash32,
    seq: Seq,
    recorded_at: Timestamp,
    event_id: EventId,
    version: SchemaVersion,
    payload: &[u8],
) -> Hash32 {
    use blake3::hazmat::HasherExt;
    let mut header = [0u8; LINK_HEADER_LEN];
    header[..32].copy_from_slice(&previous.0);
    header[32..40].copy_from_slice(&seq.0.to_le_bytes());
    header[40..48].copy_from_slice(&recorded_at.0.to_le_bytes());
    header[48..64].copy_from_slice(event_id.0.as_bytes());
    header[64..].copy_from_slice(&version.0.to_le_bytes());
    let mut hasher = blake3::Hasher::new_from_context_key(&CHAIN_CONTEXT_KEY);
    hasher.update(&header);
    hasher.update(payload);
    Hash32(*hasher.finalize().as_bytes())
}

impl Record {
    /// The chain link this record should carry after `previous`.
    pub fn expected_chain(&self, previous: &Hash32) -> Hash32 {
        chain_link(
            previous,
            self.seq,
            self.recorded_at,
            self.event_id,
            self.version,
            &self.payload,
        )
    }

    /// Appends this record's bytes to `out` in the layout described in the module docs.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(RECORD_OVERHEAD_LEN + self.payload.len());
        out.extend_from_slice(&self.seq.0.to_le_bytes());
        out.extend_from_slice(&self.recorded_at.0.to_le_bytes());
        out.extend_from_slice(self.event_id.0.as_bytes());
        out.extend_from_slice(&self.version.0.to_le_bytes());
        // The payload length was bounded by PAYLOAD_LEN_MAX when the record was accepted.
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(&self.chain.0);
    }
}

/// Why bytes did not decode as records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end in the middle of a record.
    #[error("truncated record: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the record needs from here.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The payload length field is larger than any record may be.
    #[error("payload length {len} exceeds the limit of {PAYLOAD_LEN_MAX} bytes")]
    PayloadTooLarge {
        /// The length field's value.
        len: usize,
    },
}

/// Reads the records stored back to back in `bytes`.
pub struct RecordDecoder<'a> {
    rest: &'a [u8],
}

impl<'a> RecordDecoder<'a> {
    /// Decodes the records in `bytes`, in order.
    pub fn new(bytes: &'a [u8]) -> RecordDecoder<'a> {
        RecordDecoder { rest: bytes }
    }

    /// The `seq` field of the next record, without decoding it, if at least 8 bytes are left.
    pub fn peek_seq(&self) -> Option<Seq> {
        let bytes: [u8; 8] = self.rest.get(..8)?.try_into().ok()?;
        Some(Seq(u64::from_le_bytes(bytes)))
    }

    /// Steps over the next record, reading only its `seq` and length fields, and returns its
    /// `seq`: for reaching a record in the middle of a chunk without copying what is before it.
    /// `None` at the end; after an error, the decoder is at its end.
    pub fn step_over(&mut self) -> Option<Result<Seq, DecodeError>> {
        if self.rest.is_empty() {
            return None;
        }
        let skipped = (|| {
            let header = self.take(RECORD_OVERHEAD_LEN - 32)?;
            let seq = Seq(u64::from_le_bytes(header[..8].try_into().expect("8 bytes")));
            let len = u32::from_le_bytes(header[34..38].try_into().expect("4 bytes")) as usize;
            if len > PAYLOAD_LEN_MAX {
                return Err(DecodeError::PayloadTooLarge { len });
            }
            self.take(len + 32)?;
            Ok(seq)
        })();
        if skipped.is_err() {
            self.rest = &[];
        }
        Some(skipped)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated {
                needed: len,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        // `take` returned exactly N bytes.
        Ok(bytes.try_into().expect("take returns the requested length"))
    }

    fn decode_one(&mut self) -> Result<Record, DecodeError> {
        let seq = Seq(u64::from_le_bytes(self.take_array()?));
        let recorded_at = Timestamp(i64::from_le_bytes(self.take_array()?));
        let event_id = EventId(uuid::Uuid::from_bytes(self.take_array()?));
        let version = SchemaVersion(u16::from_le_bytes(self.take_array()?));
        let len = u32::from_le_bytes(self.take_array()?) as usize;
        if len > PAYLOAD_LEN_MAX {
            return Err(DecodeError::PayloadTooLarge { len });
        }
        let payload = self.take(len)?.to_vec();
        let chain = Hash32(self.take_array()?);
        Ok(Record {
            seq,
            recorded_at,
            event_id,
            version,
            payload,
            chain,
        })
    }
}

impl Iterator for RecordDecoder<'_> {
    type Item = Result<Record, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = self.decode_one();
        if result.is_err() {
            // Stop after the first error: what follows a bad length is noise.
            self.rest = &[];
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, payload: &[u8]) -> Record {
        let mut record = Record {
            seq: Seq(seq),
            recorded_at: Timestamp(1_700_000_000_000_000 + seq as i64),
            event_id: EventId(uuid::Uuid::from_u128(seq as u128)),
            version: SchemaVersion(1),
            payload: payload.to_vec(),
            chain: Hash32::ZERO,
        };
        record.chain = record.expected_chain(&Hash32::ZERO);
        record
    }

    fn encoded(records: &[Record]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for each in records {
            each.encode_into(&mut bytes);
        }
        bytes
    }

    #[test]
    fn records_round_trip() {
        let records = vec![record(1, b"alpha"), record(2, b""), record(3, &[0xff; 300])];
        let bytes = encoded(&records);
        let decoded: Vec<Record> = RecordDecoder::new(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(decoded, records);
    }

    #[test]
    fn skipping_steps_over_whole_records() {
        let records = vec![record(1, b"alpha"), record(2, b""), record(3, &[0xff; 300])];
        let bytes = encoded(&records);
        let mut decoder = RecordDecoder::new(&bytes);
        assert_eq!(decoder.step_over(), Some(Ok(Seq(1))));
        assert_eq!(decoder.step_over(), Some(Ok(Seq(2))));
        assert_eq!(decoder.next(), Some(Ok(records[2].clone())));
        assert_eq!(decoder.step_over(), None);
        for cut in 1..bytes.len() {
            let mut decoder = RecordDecoder::new(&bytes[..cut]);
            let skipped: Vec<_> = std::iter::from_fn(|| decoder.step_over()).collect();
            assert!(skipped.len() <= records.len(), "cut at {cut}");
            if let Some(last) = skipped.last()
                && last.is_ok()
            {
                // A cut that reads cleanly is at a record boundary.
                assert!(skipped.len() < 3, "cut at {cut}");
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error_never_a_shorter_record() {
        let mut bytes = Vec::new();
        record(7, b"payload").encode_into(&mut bytes);
        for cut in 1..bytes.len() {
            let results: Vec<_> = RecordDecoder::new(&bytes[..cut]).collect();
            assert_eq!(results.len(), 1);
            assert!(results[0].is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn the_chain_covers_every_field() {
        let base = record(1, b"x");
        let link = base.expected_chain(&Hash32::ZERO);
        let mut variants = vec![base.clone(); 6];
        variants[0].seq = Seq(2);
        variants[1].recorded_at = Timestamp(1);
        variants[2].event_id = EventId(uuid::Uuid::from_u128(99));
        variants[3].version = SchemaVersion(2);
        variants[4].payload = b"y".to_vec();
        for variant in &variants[..5] {
            assert_ne!(variant.expected_chain(&Hash32::ZERO), link);
        }
        assert_ne!(base.expected_chain(&Hash32([1; 32])), link);
    }

    #[test]
    fn the_chain_is_keyed_by_its_context() {
        // Pin the construction: a plain BLAKE3 over the same bytes must differ, and the derived
        // key must be the documented context.
        let base = record(1, b"x");
        let mut plain = blake3::Hasher::new();
        plain.update(&[0; 32]);
        assert_ne!(Hash32(*plain.finalize().as_bytes()), base.chain);
        let mut keyed = blake3::Hasher::new_derive_key("idpsync log v1");
        keyed.update(&[0; 32]);
        keyed.update(&1u64.to_le_bytes());
        keyed.update(&base.recorded_at.0.to_le_bytes());
        keyed.update(base.event_id.0.as_bytes());
        keyed.update(&1u16.to_le_bytes());
        keyed.update(b"x");
        assert_eq!(Hash32(*keyed.finalize().as_bytes()), base.chain);
    }
}
