//! Record and event decoding: arbitrary bytes never panic the decoders, and whatever decodes
//! encodes back to exactly the bytes it came from.
//!
//! Covers the storage record layout (`RecordDecoder`), the event envelope (`event::decode`),
//! and state snapshots (`decode_snapshot`), which all read bytes from disk.

#![no_main]

use idpsync_engine::event::{ENVELOPE_VERSION, decode, encode};
use idpsync_engine::seal::WithoutKeys;
use idpsync_engine::state::{decode_snapshot, encode_snapshot};
use idpsync_storage::record::RecordDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // Records: a decoded prefix re-encodes to the same bytes.
    let mut reencoded = Vec::new();
    for record in RecordDecoder::new(bytes) {
        match record {
            Ok(record) => record.encode_into(&mut reencoded),
            Err(_) => break,
        }
    }
    assert_eq!(&bytes[..reencoded.len()], reencoded.as_slice());

    // Event payloads: a decoded envelope encodes to a payload that decodes to it again.
    if let Ok(envelope) = decode(ENVELOPE_VERSION, bytes) {
        let again = decode(ENVELOPE_VERSION, &encode(&envelope)).expect("an encoded envelope decodes");
        assert_eq!(again, envelope);
    }

    // Snapshots: whatever decodes re-encodes canonically and decodes to the same state.
    if let Ok((state, history)) = decode_snapshot(bytes, &WithoutKeys) {
        let canonical = encode_snapshot(&state, &history);
        let (again, again_history) = decode_snapshot(&canonical, &WithoutKeys).expect("a canonical snapshot decodes");
        assert_eq!(encode_snapshot(&again, &again_history), canonical);
    }
});
