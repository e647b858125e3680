//! Bounds on everything a command may carry. Each door enforces its own limits first (request
//! sizes, page sizes); these are the engine's, so no door can bypass them.

/// The longest userName, in bytes.
pub(crate) const USER_NAME_LEN_MAX: usize = 256;
/// The longest group displayName, in bytes.
pub(crate) const DISPLAY_NAME_LEN_MAX: usize = 256;
/// The longest externalId, in bytes.
pub(crate) const EXTERNAL_ID_LEN_MAX: usize = 512;
/// The longest value of any other string attribute, in bytes.
pub(crate) const ATTRIBUTE_LEN_MAX: usize = 4096;
/// The most values of one multi-valued attribute (emails, phoneNumbers, …).
pub(crate) const MULTI_VALUES_MAX: usize = 64;
/// The most attributes outside the schema a user may carry.
pub(crate) const EXTRA_ATTRIBUTES_MAX: usize = 64;
/// The most bytes of all attributes outside the schema of one user, as encoded.
pub(crate) const EXTRA_BYTES_MAX: usize = 16 * 1024;
/// The most members one command may add, remove or set.
pub(crate) const MEMBERS_PER_COMMAND_MAX: usize = 100_000;
/// The most groups one binding may reference.
pub(crate) const BINDING_GROUPS_MAX: usize = 1_000;
