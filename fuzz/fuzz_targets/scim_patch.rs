//! PATCH bodies on arbitrary bytes: the body reader, the operation parser and the document
//! patcher never panic, whatever they are given.
//!
//! Run: `cargo +nightly fuzz run scim_patch` in `fuzz/`.

#![no_main]

use idpsync_scim::internals::{USER_TYPE, apply_to_document, parse_body, parse_operations};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = parse_body(data) else { return };
    let Ok(operations) = parse_operations(&body) else {
        return;
    };
    let mut document = serde_json::json!({
        "userName": "bjensen", "active": true, "name": {"givenName": "B", "familyName": "J"},
        "emails": [{"value": "b@example.com", "type": "work", "primary": true}, {"value": "h@example.com", "type": "home"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}}
    })
    .as_object()
    .cloned()
    .expect("an object");
    let _ = apply_to_document(&USER_TYPE, &mut document, &operations);
});
