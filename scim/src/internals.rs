//! The crate's internals for the fuzz targets (`fuzz/`) and the benchmarks (`benches/`), with
//! the `internals` feature: the grammar, the matcher, PATCH, the schema's resource types and
//! the request-body reader. Not an API: it follows the crate's insides and may change with
//! any commit.
//!
//! The items re-exported here are `pub(crate)` without the feature and `pub` with it
//! (`#[cfg_attr(feature = "internals", visibility::make(pub))]` where they are defined), so
//! the normal API does not grow and unused items are still found. That attribute cannot change
//! a method's visibility, hence the three forwarders below.

use serde_json::{Map, Value};

pub use crate::error::{Error, ScimType};
pub use crate::grammar::{
    AttrPath, CompareOp, FILTER_LEN_MAX, Filter, GrammarError, Literal, PatchPath, parse_attr_path, parse_filter,
    parse_patch_path,
};
pub use crate::matcher::Matcher;
pub use crate::patch::{Operation, apply_to_document, parse_operations, plan_group_patch};
pub use crate::resource::BaseUrl;
pub use crate::schema::{GROUP_TYPE, ResourceType, USER_TYPE};
pub use crate::wire::parse_body;

/// Compiles `filter` for `resource`, as a list request does (`Matcher::new`).
pub fn compile_filter(resource: &ResourceType, filter: &Filter) -> Result<Matcher, Error> {
    Matcher::new(resource, filter)
}

/// Whether `document` matches `matcher` (`Matcher::matches`).
pub fn filter_matches(matcher: &Matcher, document: &Map<String, Value>) -> bool {
    matcher.matches(document)
}

/// A SCIM base URL (`BaseUrl::new`).
pub fn base_url(url: &str) -> BaseUrl {
    BaseUrl::new(url)
}
