//! The syntax tree of the grammar: attribute paths, filters and PATCH paths as parsed, each
//! printing back to text that parses to the same tree; and the error the parser refuses input
//! with.

use std::fmt;

/// An attribute path: an optional schema URN, an attribute name, an optional sub-attribute
/// (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`).
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttrPath {
    /// The schema URN, without the `:` that joins it to the name.
    pub(crate) urn: Option<String>,
    /// The attribute's name.
    pub(crate) name: String,
    /// The sub-attribute's name.
    pub(crate) sub: Option<String>,
}

impl AttrPath {
    /// A path to a top-level attribute of the core schema.
    pub(crate) fn named(name: &str) -> AttrPath {
        AttrPath {
            urn: None,
            name: name.to_owned(),
            sub: None,
        }
    }
}

/// A comparison operator (`pr`, the tenth, is [`Filter::Present`]).
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator, for tests and generators.
    pub(crate) const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator as written in a filter.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Parses an operator, in any case.
    pub(crate) fn parse(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    /// Whether the operator orders values (`gt`, `ge`, `lt`, `le`).
    pub(crate) fn is_ordering(self) -> bool {
        matches!(self, CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le)
    }
}

/// A value in a comparison.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Literal {
    /// A string, quoted or (leniently) bare.
    String(String),
    /// A number, as written (checked to be a JSON number).
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// A filter expression.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    /// `path op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The operator.
        op: CompareOp,
        /// The value compared with.
        value: Literal,
    },
    /// `path pr`: the attribute has a value.
    Present(AttrPath),
    /// Every part holds (two or more parts, none of them an `And`).
    And(Vec<Filter>),
    /// Some part holds (two or more parts, none of them an `Or`).
    Or(Vec<Filter>),
    /// `not (filter)`.
    Not(Box<Filter>),
    /// `path[filter]`: some value of a multi-valued attribute matches `filter`, whose paths
    /// name sub-attributes.
    ValuePath {
        /// The multi-valued attribute (no sub-attribute).
        path: AttrPath,
        /// The condition on each value.
        filter: Box<Filter>,
    },
}

/// The target of a PATCH operation: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`,
/// each optionally URN-qualified.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PatchPath {
    /// The attribute, and the sub-attribute (after the filter, when there is one).
    pub(crate) attr: AttrPath,
    /// The value filter of a multi-valued attribute.
    pub(crate) filter: Option<Filter>,
}

/// Why a filter or path does not parse.
#[cfg_attr(feature = "internals", visibility::make(pub))]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at byte {position})")]
pub(crate) struct GrammarError {
    /// Where in the input, in bytes.
    pub(crate) position: usize,
    /// What is wrong.
    pub(crate) reason: String,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Quoting through serde_json escapes exactly as the lexer unescapes.
            Literal::String(text) => f.write_str(&serde_json::Value::String(text.clone()).to_string()),
            Literal::Number(text) => f.write_str(text),
            Literal::Bool(value) => write!(f, "{value}"),
            Literal::Null => f.write_str("null"),
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(parts) => write_joined(f, parts, " and ", |part| matches!(part, Filter::Or(_))),
            Filter::Or(parts) => write_joined(f, parts, " or ", |_| false),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    parts: &[Filter],
    separator: &str,
    needs_parentheses: impl Fn(&Filter) -> bool,
) -> fmt::Result {
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            f.write_str(separator)?;
        }
        if needs_parentheses(part) {
            write!(f, "({part})")?;
        } else {
            write!(f, "{part}")?;
        }
    }
    Ok(())
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(filter) = &self.filter else {
            return write!(f, "{}", self.attr);
        };
        if let Some(urn) = &self.attr.urn {
            write!(f, "{urn}:")?;
        }
        write!(f, "{}[{filter}]", self.attr.name)?;
        if let Some(sub) = &self.attr.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
