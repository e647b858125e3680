//! Reading an integration's TOML keys into typed settings: [`parse`] runs a
//! `#[derive(Deserialize)]` struct over a table, and every mistake comes back as a [`KeyError`]
//! that names its key.
//!
//! The table is read by a deserializer of our own rather than toml's: toml's error carries a
//! message, not the key or the kind of mistake, and a caller that wants to say "unknown key
//! `domian`" or "key `realm`: missing" would have to take that message apart. Here serde hands
//! the kind over (`unknown_field`, `missing_field`), and every other failure happens while one
//! key's value is read, so it is tagged with that key on the way out.

use std::fmt;

use serde::de::value::{SeqDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// What is wrong with one key of an integration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key that the integration's provider does not have (often a misspelling).
    #[error("unknown key `{key}`")]
    Unknown {
        /// The key as written.
        key: String,
    },
    /// A required key is absent.
    #[error("key `{key}`: missing{}", instead.map(|instead| format!(" (or {instead})")).unwrap_or_default())]
    Missing {
        /// The key.
        key: &'static str,
        /// The keys that may be given instead, if any, as the message names them.
        instead: Option<&'static str>,
    },
    /// A key that means nothing next to another one given (two ways to authenticate at once).
    #[error("key `{key}` does not apply with `{given}`")]
    DoesNotApply {
        /// The key that does not apply.
        key: &'static str,
        /// The key that makes it meaningless.
        given: &'static str,
    },
    /// A value of the wrong type or form, or a secret that does not resolve.
    #[error("key `{key}`: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong with its value.
        message: String,
    },
}

impl KeyError {
    /// The error of a required `key` that is absent, with nothing that may replace it.
    pub(crate) fn missing(key: &'static str) -> KeyError {
        KeyError::Missing { key, instead: None }
    }

    /// The error of a `key` whose value is wrong for the reason `message` gives.
    pub(crate) fn invalid(key: &str, message: impl fmt::Display) -> KeyError {
        KeyError::Invalid {
            key: key.to_owned(),
            message: message.to_string(),
        }
    }
}

/// Reads `table` into `T`. `T` should deny unknown fields, so that a misspelt key is an error
/// rather than a setting that silently does nothing.
pub(crate) fn parse<T: DeserializeOwned>(table: toml::Table) -> Result<T, KeyError> {
    T::deserialize(ValueDeserializer(toml::Value::Table(table))).map_err(|error| match error {
        Error::Key(error) => error,
        // A struct fails only inside a key's value or on a missing or unknown key, all tagged
        // with their key; a message without one would come from a type that is not a struct.
        Error::Message(message) => KeyError::invalid("", message),
    })
}

/// Refuses the first of `others` that is given, when `given` leaves no use for it.
pub(crate) fn none_given_with(given: &'static str, others: &[(&'static str, bool)]) -> Result<(), KeyError> {
    match others.iter().find(|(_, present)| *present) {
        Some((key, _)) => Err(KeyError::DoesNotApply { key, given }),
        None => Ok(()),
    }
}

/// The deserializer's error: a key's error, or a message not yet tied to its key.
#[derive(Debug)]
enum Error {
    Key(KeyError),
    Message(String),
}

impl Error {
    /// The error as the value of `key`.
    fn at(self, key: &str) -> Error {
        match self {
            Error::Message(message) => Error::Key(KeyError::invalid(key, message)),
            // A nested table's own key error, told as the outer key's.
            Error::Key(error) => Error::Key(KeyError::invalid(key, error)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Key(error) => error.fmt(f),
            Error::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error::Message(message.to_string())
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Error {
        Error::Key(KeyError::Unknown { key: field.to_owned() })
    }

    fn missing_field(field: &'static str) -> Error {
        Error::Key(KeyError::Missing {
            key: field,
            instead: None,
        })
    }

    fn duplicate_field(field: &'static str) -> Error {
        Error::Key(KeyError::invalid(field, "given twice"))
    }
}

/// One TOML value, read by serde.
struct ValueDeserializer(toml::Value);

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            toml::Value::String(text) => visitor.visit_string(text),
            toml::Value::Integer(number) => visitor.visit_i64(number),
            toml::Value::Float(number) => visitor.visit_f64(number),
            toml::Value::Boolean(value) => visitor.visit_bool(value),
            // No setting takes one; toml's own deserializer would hand it over as a string.
            toml::Value::Datetime(_) => Err(Error::Message(
                "a date-time is not a value any setting takes".to_owned(),
            )),
            toml::Value::Array(items) => {
                visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(ValueDeserializer)))
            }
            toml::Value::Table(table) => visitor.visit_map(TableAccess {
                entries: table.into_iter(),
                value: None,
            }),
        }
    }

    /// A key that is present has a value: absent keys never reach the deserializer.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    /// Enums are chosen by name (`groups = "both"`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            toml::Value::String(text) => {
                let variant: StringDeserializer<Error> = text.into_deserializer();
                visitor.visit_enum(variant)
            }
            _ => Err(Error::Message(format!(
                "must be a string, one of {}",
                variants.join(", ")
            ))),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for ValueDeserializer {
    type Deserializer = ValueDeserializer;

    fn into_deserializer(self) -> ValueDeserializer {
        self
    }
}

/// A table's entries, each value read with its key at hand so that its errors name it.
struct TableAccess {
    entries: toml::map::IntoIter<String, toml::Value>,
    value: Option<(String, toml::Value)>,
}

impl<'de> MapAccess<'de> for TableAccess {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let field: StringDeserializer<Error> = key.clone().into_deserializer();
        let field = seed.deserialize(field)?;
        self.value = Some((key, value));
        Ok(Some(field))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some((key, value)) = self.value.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(ValueDeserializer(value))
            .map_err(|error| error.at(&key))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Keys {
        realm: String,
        scopes: Option<String>,
        #[serde(default)]
        groups: Vec<String>,
        #[serde(default)]
        kind: Kind,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        #[default]
        Roles,
        Both,
    }

    fn check(text: &str) -> Result<Keys, KeyError> {
        parse(toml::from_str(text).unwrap())
    }

    #[test]
    fn values_of_every_shape_are_read() {
        assert_eq!(
            check("realm = \"acme\"\nscopes = \"a b\"\ngroups = [\"x\", \"y\"]\nkind = \"both\"").unwrap(),
            Keys {
                realm: "acme".to_owned(),
                scopes: Some("a b".to_owned()),
                groups: vec!["x".to_owned(), "y".to_owned()],
                kind: Kind::Both,
            }
        );
        assert_eq!(check("realm = \"acme\"").unwrap().kind, Kind::Roles);
    }

    #[test]
    fn every_mistake_names_its_key() {
        assert_eq!(
            check("realm = \"acme\"\nrelm = \"acme\"").unwrap_err(),
            KeyError::Unknown { key: "relm".to_owned() }
        );
        assert_eq!(
            check("scopes = \"a\"").unwrap_err(),
            KeyError::Missing {
                key: "realm",
                instead: None
            }
        );
        let cases = [
            ("realm = 5", "key `realm`: invalid type: integer `5`, expected a string"),
            (
                "realm = \"a\"\ngroups = [\"x\", 1]",
                "key `groups`: invalid type: integer `1`",
            ),
            ("realm = \"a\"\nkind = \"all\"", "key `kind`: unknown variant `all`"),
            (
                "realm = \"a\"\nkind = 1",
                "key `kind`: must be a string, one of roles, both",
            ),
            (
                "realm = 1979-05-27",
                "key `realm`: a date-time is not a value any setting takes",
            ),
            ("realm = \"a\"\nwhen = 1979-05-27", "unknown key `when`"),
        ];
        for (text, expected) in cases {
            let error = check(text).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }
}
