//! What a schema is made of: attributes with their type, mutability and returnability
//! (RFC 7643 §2, §7), and schemas as lists of attributes. The definitions themselves are in
//! `definitions.rs`.

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrType {
    /// A string.
    String,
    /// `true` / `false`.
    Boolean,
    /// An RFC 3339 timestamp.
    DateTime,
    /// Base64 bytes.
    Binary,
    /// A URI.
    Reference,
    /// Sub-attributes.
    Complex,
}

impl AttrType {
    /// The type's name in a schema document.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and how an attribute may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutability {
    /// Set by the server only.
    ReadOnly,
    /// Written freely.
    ReadWrite,
    /// Written once, when the value is created.
    Immutable,
}

impl Mutability {
    /// The name in a schema document.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
        }
    }
}

/// When an attribute is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Returned {
    /// Always, whatever `attributes` says.
    Always,
    /// Unless excluded.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// The name in a schema document.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// One attribute of a schema.
#[derive(Debug)]
pub(crate) struct Attribute {
    /// Its canonical name.
    pub(crate) name: &'static str,
    /// Its type.
    pub(crate) kind: AttrType,
    /// Whether it holds a list.
    pub(crate) multi_valued: bool,
    /// What it means.
    pub(crate) description: &'static str,
    /// Whether a resource must have it.
    pub(crate) required: bool,
    /// Whether string comparisons respect case.
    pub(crate) case_exact: bool,
    /// Who may write it.
    pub(crate) mutability: Mutability,
    /// When it is returned.
    pub(crate) returned: Returned,
    /// Whether the server keeps it unique.
    pub(crate) unique: bool,
    /// Suggested values.
    pub(crate) canonical_values: &'static [&'static str],
    /// What a reference may point at.
    pub(crate) reference_types: &'static [&'static str],
    /// The sub-attributes of a complex attribute.
    pub(crate) sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// A sub-attribute by name, case-insensitively.
    pub(crate) fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }

    /// Whether the attribute is complex.
    pub(crate) fn is_complex(&self) -> bool {
        self.kind == AttrType::Complex
    }
}

/// A schema: a URN and its attributes.
#[derive(Debug)]
pub(crate) struct Schema {
    /// The URN.
    pub(crate) id: &'static str,
    /// A short name.
    pub(crate) name: &'static str,
    /// What it describes.
    pub(crate) description: &'static str,
    /// Its attributes.
    pub(crate) attributes: &'static [Attribute],
}

/// An attribute by name, case-insensitively.
pub(super) fn find(attributes: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}
