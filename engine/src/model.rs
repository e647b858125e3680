//! The identity model: users, groups, who owns them, and the bindings of groups to network
//! resources.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{GroupId, IntegrationName, ResourceId, Seq, Timestamp, UserId};
use crate::sealed::{ExternalIdHash, Sealed};

/// Who manages an object: only the owning integration's reconcile touches it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Owner {
    /// Provisioned over SCIM, by any of the tenant's SCIM tokens.
    Scim,
    /// Pulled by a sync driver integration.
    Integration(IntegrationName),
    /// Created by an operator (CLI, admin API, synthetic workload).
    Operator,
}

/// A user as the fold keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The engine's id.
    pub id: UserId,
    /// Who manages it.
    pub owner: Owner,
    /// The provisioning client's or IdP's id for the user, as it can be read now: `None` once
    /// erased by [`crate::Event::UserErasedWithLookup`], or while its key is gone if it was
    /// sealed.
    pub external_id: Option<String>,
    /// Once erased by [`crate::Event::UserErasedWithLookup`]: the keyed hash of the externalId
    /// it had, by which the integration that owns it still recognises it.
    pub external_id_hash: Option<ExternalIdHash>,
    /// Whether the user may have access. Inactive users keep their memberships but no access.
    pub active: bool,
    /// The personal fields (SCIM core and enterprise attributes) as they can be read now; a
    /// placeholder when they are erased (see [`User::is_erased`]).
    pub profile: UserProfile,
    /// The personal fields as logged, sealed under the user's key (with the externalId, when
    /// [`Sealed::holds_external_id`]); `None` when they were logged unsealed (then `profile` is
    /// what was logged) or erased. This, not `profile`, is what a snapshot keeps.
    pub sealed: Option<Sealed>,
    /// Erased by a [`crate::Event::UserErased`] or [`crate::Event::UserErasedWithLookup`] event.
    pub erased: bool,
    /// Whether `profile` could be read: false when the user's key is gone.
    pub readable: bool,
    /// When it was provisioned.
    pub created: Timestamp,
    /// When it last changed.
    pub last_modified: Timestamp,
    /// The `seq` of its last change: the resource version behind SCIM ETags.
    pub version: Seq,
}

impl User {
    /// Whether the user's personal fields are erased: by an erasure event, or because its key
    /// is gone. `profile` is then a placeholder whose userName is `erased-<id>`.
    pub fn is_erased(&self) -> bool {
        self.erased || !self.readable
    }

    /// Whether some of its personal fields were logged in the clear (by builds before sealing,
    /// or before sealed externalIds): erasing makes them unreadable here, but the log keeps them.
    pub fn logged_in_the_clear(&self) -> bool {
        let external_id_sealed = self.sealed.as_ref().is_some_and(Sealed::holds_external_id);
        !self.erased && (self.sealed.is_none() || (self.external_id.is_some() && !external_id_sealed))
    }
}

/// The profile an erased user reads as: only a userName, which says so and stays unique.
pub fn erased_profile(user: UserId) -> UserProfile {
    UserProfile {
        user_name: format!("erased-{user}"),
        ..UserProfile::default()
    }
}

/// The personal fields of a user: everything that names or describes a person. Events carry
/// them in their own part of the payload (see [`crate::event::Personal`]) so that they can be
/// encrypted per user and erased.
///
/// The attributes most users have are inline; the rest are in [`ProfileDetails`], boxed and
/// absent while all of them are empty: a tenant keeps every user's profile in memory, and inline
/// their empty room took about 350 bytes per user. Encoded (serde) it is one flat struct, the
/// same bytes as before the split (`profile_encoding.rs`).
#[derive(Clone, Debug, Default, Eq)]
pub struct UserProfile {
    /// Unique per tenant, compared case-insensitively.
    pub user_name: String,
    /// The components of the user's name (boxed: most users have few of the optional parts,
    /// and a user costs less memory without their room inline).
    pub name: Option<Box<Name>>,
    /// The name to show.
    pub display_name: Option<String>,
    /// Email addresses.
    pub emails: Vec<MultiValue>,
    /// The enterprise extension (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User`).
    pub enterprise: Option<Box<EnterpriseUser>>,
    /// The attributes fewer users have; `None` or empty when they have none (see
    /// [`UserProfile::details`] and [`UserProfile::details_mut`]).
    pub details: Option<Box<ProfileDetails>>,
}

/// The attributes of a [`UserProfile`] that few users have.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileDetails {
    /// A casual name.
    pub nick_name: Option<String>,
    /// A URL of the user's profile page.
    pub profile_url: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Relationship to the organisation ("Employee", "Contractor").
    pub user_type: Option<String>,
    /// Preferred language, as an `Accept-Language` value.
    pub preferred_language: Option<String>,
    /// Locale, such as `en-US`.
    pub locale: Option<String>,
    /// Time zone, such as `Europe/Berlin`.
    pub timezone: Option<String>,
    /// Phone numbers.
    pub phone_numbers: Vec<MultiValue>,
    /// Instant messaging addresses.
    pub ims: Vec<MultiValue>,
    /// Photo URLs.
    pub photos: Vec<MultiValue>,
    /// Postal addresses.
    pub addresses: Vec<Address>,
    /// Entitlements.
    pub entitlements: Vec<MultiValue>,
    /// Roles.
    pub roles: Vec<MultiValue>,
    /// Certificates.
    pub x509_certificates: Vec<MultiValue>,
    /// Any other attribute a client sent, by its full name (URN-qualified for extensions).
    pub extra: BTreeMap<String, AttrValue>,
}

/// The details of a profile that has none.
static NO_DETAILS: ProfileDetails = ProfileDetails {
    nick_name: None,
    profile_url: None,
    title: None,
    user_type: None,
    preferred_language: None,
    locale: None,
    timezone: None,
    phone_numbers: Vec::new(),
    ims: Vec::new(),
    photos: Vec::new(),
    addresses: Vec::new(),
    entitlements: Vec::new(),
    roles: Vec::new(),
    x509_certificates: Vec::new(),
    extra: BTreeMap::new(),
};

impl ProfileDetails {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        *self == NO_DETAILS
    }

    /// Boxed, or `None` when it holds nothing: what [`UserProfile::details`] keeps.
    pub fn boxed(self) -> Option<Box<ProfileDetails>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

impl PartialEq for UserProfile {
    /// Empty details equal none.
    fn eq(&self, other: &UserProfile) -> bool {
        self.user_name == other.user_name
            && self.name == other.name
            && self.display_name == other.display_name
            && self.emails == other.emails
            && self.enterprise == other.enterprise
            && self.details() == other.details()
    }
}

impl UserProfile {
    /// The attributes few users have (empty ones if it has none).
    pub fn details(&self) -> &ProfileDetails {
        self.details.as_deref().unwrap_or(&NO_DETAILS)
    }

    /// The attributes few users have, to change (made empty first if it had none).
    pub fn details_mut(&mut self) -> &mut ProfileDetails {
        self.details.get_or_insert_with(Box::default)
    }

    /// Drops the details if they are empty, so that they take no memory.
    pub fn compact(&mut self) {
        self.details = self.details.take().and_then(|details| details.boxed());
    }

    /// The single-valued text attributes, by their SCIM names, in the order of RFC 7643's
    /// core User: what validating and rendering a profile both walk.
    pub fn text_fields(&self) -> [(&'static str, &Option<String>); 8] {
        let details = self.details();
        [
            ("displayName", &self.display_name),
            ("nickName", &details.nick_name),
            ("profileUrl", &details.profile_url),
            ("title", &details.title),
            ("userType", &details.user_type),
            ("preferredLanguage", &details.preferred_language),
            ("locale", &details.locale),
            ("timezone", &details.timezone),
        ]
    }

    /// The multi-valued attributes of plain values, by their SCIM names (addresses, which have
    /// parts, are apart).
    pub fn multi_valued_fields(&self) -> [(&'static str, &Vec<MultiValue>); 7] {
        let details = self.details();
        [
            ("emails", &self.emails),
            ("phoneNumbers", &details.phone_numbers),
            ("ims", &details.ims),
            ("photos", &details.photos),
            ("entitlements", &details.entitlements),
            ("roles", &details.roles),
            ("x509Certificates", &details.x509_certificates),
        ]
    }
}

/// A user's name, as in SCIM's `name` attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Name {
    /// The full name, formatted for display.
    pub formatted: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Middle name.
    pub middle_name: Option<String>,
    /// Honorific prefix ("Dr.").
    pub honorific_prefix: Option<String>,
    /// Honorific suffix ("III").
    pub honorific_suffix: Option<String>,
}

/// One value of a multi-valued attribute such as `emails`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiValue {
    /// The value (an address, a number, a URL).
    pub value: String,
    /// A label to show.
    pub display: Option<String>,
    /// SCIM's `type` ("work", "home").
    pub kind: Option<String>,
    /// Whether this is the preferred value; at most one value is primary.
    pub primary: bool,
}

/// A postal address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// The full address, formatted for display.
    pub formatted: Option<String>,
    /// Street.
    pub street_address: Option<String>,
    /// City.
    pub locality: Option<String>,
    /// State or region.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// Country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// SCIM's `type`.
    pub kind: Option<String>,
    /// Whether this is the preferred address.
    pub primary: bool,
}

/// The SCIM enterprise user extension.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnterpriseUser {
    /// Employee number.
    pub employee_number: Option<String>,
    /// Cost center.
    pub cost_center: Option<String>,
    /// Organization.
    pub organization: Option<String>,
    /// Division.
    pub division: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// The user's manager.
    pub manager: Option<Manager>,
}

/// A reference to a user's manager.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    /// The manager's id as the client sent it.
    pub value: String,
    /// The manager's display name.
    pub display_name: Option<String>,
}

/// The value of an attribute the schema does not know, kept as the client sent it.
///
/// A JSON-like tree; numbers keep their text so they round-trip exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrValue {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<AttrValue>),
    /// An object, its members in the order sent.
    Object(Vec<(String, AttrValue)>),
}

/// A group as the fold keeps it. Its members are kept apart, as edges (see
/// [`crate::State::direct_members`]), so that no membership change copies a member list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The engine's id.
    pub id: GroupId,
    /// Who manages it.
    pub owner: Owner,
    /// The provisioning client's or IdP's id for the group.
    pub external_id: Option<String>,
    /// The group's name.
    pub display_name: String,
    /// When it was created.
    pub created: Timestamp,
    /// When it last changed (renames, membership changes).
    pub last_modified: Timestamp,
    /// The `seq` of its last change.
    pub version: Seq,
}

/// The kinds of management-server resources that reference groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceKind {
    /// An access policy: its rules' source and destination groups.
    Policy,
    /// A nameserver group and the peer groups it applies to.
    NameserverGroup,
    /// The DNS settings' management-disabled groups.
    DnsManagement,
    /// A network route and its access-control groups.
    Route,
    /// A setup key and its auto-groups.
    SetupKey,
    /// A role binding: the groups whose members hold a management role (see
    /// [`crate::roles`]). Not network access: it grants no [`crate::access::Grant`]. Its id
    /// names the binding; the id [`crate::roles::DEFAULT_BINDING`] is the tenant's default role.
    Role,
}

impl ResourceKind {
    /// Every kind of network resource, in order: the kinds whose bindings grant access. The
    /// role kind ([`ResourceKind::Role`]) is apart.
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Policy,
        ResourceKind::NameserverGroup,
        ResourceKind::DnsManagement,
        ResourceKind::Route,
        ResourceKind::SetupKey,
    ];

    /// The kind's name in APIs and on the command line (`policy`, `nameserver-group`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Policy => "policy",
            ResourceKind::NameserverGroup => "nameserver-group",
            ResourceKind::DnsManagement => "dns-management",
            ResourceKind::Route => "route",
            ResourceKind::SetupKey => "setup-key",
            ResourceKind::Role => "role",
        }
    }

    /// Parses [`ResourceKind::as_str`]'s names, the role kind's included.
    pub fn parse(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL
            .into_iter()
            .chain([ResourceKind::Role])
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One management-server resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// What it is.
    pub kind: ResourceKind,
    /// Its id in the management server.
    pub id: ResourceId,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

/// The part a group plays in a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BindingRole {
    /// A policy's source group: its members' traffic is allowed out.
    Source,
    /// A policy's destination group: its members may be reached.
    Destination,
    /// The one role of the other kinds (nameserver, DNS, route, setup key).
    Member,
}

impl BindingRole {
    /// The role's name in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            BindingRole::Source => "source",
            BindingRole::Destination => "destination",
            BindingRole::Member => "member",
        }
    }
}

/// The groups one resource references.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingGroups {
    /// A policy's source and destination groups.
    Policy {
        /// Source groups.
        sources: Vec<GroupId>,
        /// Destination groups.
        destinations: Vec<GroupId>,
    },
    /// The groups of a nameserver group, DNS setting, route or setup key.
    Groups(Vec<GroupId>),
    /// A role binding: the management role its groups' effective members hold, when no
    /// binding of a higher priority matches them (see [`crate::roles`]).
    Role {
        /// The role's name (see [`crate::roles::BUILT_IN`]).
        role: String,
        /// Higher wins.
        priority: i32,
        /// The groups that grant it; none for the default binding.
        groups: Vec<GroupId>,
    },
}

impl BindingGroups {
    /// Every (group, role) pair through which the binding grants network access, sorted and
    /// without duplicates: none for a role binding, which grants a management role instead.
    pub fn pairs(&self) -> Vec<(GroupId, BindingRole)> {
        let mut pairs: Vec<(GroupId, BindingRole)> = match self {
            BindingGroups::Policy { sources, destinations } => sources
                .iter()
                .map(|g| (*g, BindingRole::Source))
                .chain(destinations.iter().map(|g| (*g, BindingRole::Destination)))
                .collect(),
            BindingGroups::Groups(groups) => groups.iter().map(|g| (*g, BindingRole::Member)).collect(),
            BindingGroups::Role { .. } => Vec::new(),
        };
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// Every group the binding names, sorted and without duplicates.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = match self {
            BindingGroups::Role { groups, .. } => groups.clone(),
            other => other.pairs().into_iter().map(|(group, _)| group).collect(),
        };
        groups.sort();
        groups.dedup();
        groups
    }

    /// Whether this shape fits `kind`: policies have sources and destinations, role bindings
    /// a role, the rest a list.
    pub fn fits(&self, kind: ResourceKind) -> bool {
        match self {
            BindingGroups::Policy { .. } => kind == ResourceKind::Policy,
            BindingGroups::Role { .. } => kind == ResourceKind::Role,
            BindingGroups::Groups(_) => !matches!(kind, ResourceKind::Policy | ResourceKind::Role),
        }
    }
}
