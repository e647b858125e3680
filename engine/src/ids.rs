//! Id newtypes. No bare `String` or `Uuid` crosses a crate boundary as an id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use idpsync_storage::{EventId, Seq, TenantId, Timestamp};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        // Ordered as a big-endian u128, which is the same order as the UUID's bytes but two
        // integer comparisons instead of a 16-byte memcmp: ids are the keys of every map.
        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.0.as_u128().cmp(&other.0.as_u128())
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl $name {
            /// The smallest id, for range bounds.
            pub const MIN: $name = $name(Uuid::nil());
            /// The largest id, for range bounds.
            pub const MAX: $name = $name(Uuid::max());

            /// A fresh UUID v7.
            pub fn new() -> $name {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map($name)
            }
        }
    };
}

uuid_id!(
    /// A user's id: a UUID v7 the engine assigns when the user is provisioned.
    UserId
);
uuid_id!(
    /// A group's id: a UUID v7 the engine assigns when the group is created.
    GroupId
);
uuid_id!(
    /// The id of an API token (SCIM or admin); the token's secret is never in the log.
    TokenId
);
uuid_id!(
    /// The id of one HTTP request, carried into the events it caused.
    RequestId
);
uuid_id!(
    /// The id of one run of a sync driver.
    SyncRunId
);

/// The name of a driver integration, unique within its tenant (`entra`, `okta-eu`).
///
/// Same alphabet as tenant names: 1 to 64 characters from `a-z0-9-_.`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntegrationName(String);

impl IntegrationName {
    /// Checks `name` and wraps it.
    pub fn new(name: &str) -> Result<IntegrationName, String> {
        match TenantId::new(name) {
            Ok(_) => Ok(IntegrationName(name.to_owned())),
            Err(_) => Err(format!(
                "invalid integration name {name:?}: use 1 to 64 characters from a-z, 0-9, '-', '_' and '.'"
            )),
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IntegrationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IntegrationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntegrationName({})", self.0)
    }
}

/// The management server's id of a resource that references groups (a policy, a route, …).
/// 1 to 256 characters, no control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceId(String);

impl ResourceId {
    /// The longest resource id accepted.
    pub const LENGTH_MAX: usize = 256;

    /// Checks `id` and wraps it.
    pub fn new(id: &str) -> Result<ResourceId, String> {
        if id.is_empty() || id.len() > Self::LENGTH_MAX || id.chars().any(char::is_control) {
            return Err(format!(
                "invalid resource id {id:?}: use 1 to 256 characters without control characters"
            ));
        }
        Ok(ResourceId(id.to_owned()))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({})", self.0)
    }
}

/// A direct member of a group: a user, or a nested group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Member {
    /// A user.
    User(UserId),
    /// A nested group; its members are members of the outer group, transitively.
    Group(GroupId),
}
