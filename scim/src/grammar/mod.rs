//! The one grammar of SCIM: filters (`filter=`), attribute paths (`attributes=`, `sortBy=`) and
//! PATCH paths (RFC 7644 §3.4.2.2, §3.5.2), as a syntax tree that prints back to the text it
//! was parsed from.
//!
//! The parser is hand-written (`parser.rs`, on the tokens of `lexer.rs`, building the tree of
//! `syntax.rs`) and lenient where real clients are sloppy: keywords and operators in any case,
//! unquoted values (`externalId eq jyoung`), Entra's `emails[type eq "work"].value eq "x"`. It
//! is strict about limits: a filter longer than [`FILTER_LEN_MAX`] bytes or nested deeper than
//! `DEPTH_MAX` levels is refused, so no input can exhaust the stack.
//!
//! Names are kept as the client wrote them; the schema (`crate::schema`) resolves them
//! case-insensitively to canonical names.

mod lexer;
mod parser;
mod syntax;

#[cfg(feature = "internals")]
pub use parser::FILTER_LEN_MAX;
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use parser::{parse_attr_path, parse_filter, parse_patch_path};
#[cfg(feature = "internals")]
pub use syntax::GrammarError;
#[cfg_attr(feature = "internals", visibility::make(pub))]
pub(crate) use syntax::{AttrPath, CompareOp, Filter, Literal, PatchPath};

#[cfg(test)]
mod tests;
