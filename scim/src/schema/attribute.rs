//! What a schema is made of: attributes with their type, mutability and returnability
//! (RFC 7643 §2, §7), and schemas as lists of attributes. The definitions themselves are in
//! `definitions.rs`.

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrType {
    /// A string.
    String,
    /// `true` / `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
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
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and how an attribute may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    /// Set by the server only.
    ReadOnly,
    /// Written freely.
    ReadWrite,
    /// Written once, when the value is created.
    Immutable,
}

impl Mutability {
    /// The name in a schema document.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
        }
    }
}

/// When an attribute is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Returned {
    /// Always, whatever `attributes` says.
    Always,
    /// Unless excluded.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// The name in a schema document.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attribute {
    /// Its canonical name.
    pub name: &'static str,
    /// Its type.
    pub kind: AttrType,
    /// Whether it holds a list.
    pub multi_valued: bool,
    /// What it means.
    pub description: &'static str,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether string comparisons respect case.
    pub case_exact: bool,
    /// Who may write it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Whether the server keeps it unique.
    pub unique: bool,
    /// Suggested values.
    pub canonical_values: &'static [&'static str],
    /// What a reference may point at.
    pub reference_types: &'static [&'static str],
    /// The sub-attributes of a complex attribute.
    pub sub_attributes: &'static [Attribute],
}

impl Attribute {
    /// A sub-attribute by name, case-insensitively.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        find(self.sub_attributes, name)
    }

    /// Whether the attribute is complex.
    pub fn is_complex(&self) -> bool {
        self.kind == AttrType::Complex
    }
}

/// A schema: a URN and its attributes.
#[derive(Debug)]
pub struct Schema {
    /// The URN.
    pub id: &'static str,
    /// A short name.
    pub name: &'static str,
    /// What it describes.
    pub description: &'static str,
    /// Its attributes.
    pub attributes: &'static [Attribute],
}

/// An attribute by name, case-insensitively.
pub(super) fn find(attributes: &'static [Attribute], name: &str) -> Option<&'static Attribute> {
    attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))
}
