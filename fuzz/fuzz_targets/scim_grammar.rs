//! The SCIM grammar on arbitrary text: filters, PATCH paths and attribute paths never panic;
//! whatever parses prints to text that parses back to the same tree (when the printed text is
//! within the length limit: quoting a bare value makes it longer); a parsed filter compiles (or
//! is refused) and evaluates against a user without panicking.
//!
//! Run: `cargo +nightly fuzz run scim_grammar` in `fuzz/`.

#![no_main]

use idpsync_scim::internals::{
    FILTER_LEN_MAX, GROUP_TYPE, USER_TYPE, compile_filter, filter_matches, parse_attr_path, parse_filter,
    parse_patch_path,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(filter) = parse_filter(text) {
        let printed = filter.to_string();
        if printed.len() <= FILTER_LEN_MAX {
            let again =
                parse_filter(&printed).unwrap_or_else(|error| panic!("{text:?} printed as {printed:?}: {error}"));
            assert_eq!(again, filter, "{text:?} printed as {printed:?}");
        }
        let document = serde_json::json!({
            "id": "2819c223", "userName": "bjensen", "active": true, "title": "x",
            "name": {"givenName": "B"}, "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            "meta": {"created": "2026-01-01T00:00:00Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "7"}
        });
        for resource in [&USER_TYPE, &GROUP_TYPE] {
            if let Ok(matcher) = compile_filter(resource, &filter) {
                let _ = filter_matches(&matcher, document.as_object().expect("an object"));
            }
        }
    }
    if let Ok(path) = parse_patch_path(text) {
        let printed = path.to_string();
        if printed.len() <= FILTER_LEN_MAX {
            assert_eq!(
                parse_patch_path(&printed).ok(),
                Some(path),
                "{text:?} printed as {printed:?}"
            );
        }
    }
    let _ = parse_attr_path(text);
});
