//! [`DirectorySnapshot`]: what an IdP holds, scoped to what the integration syncs and ready to
//! be planned against the state. The IdP's objects go by their own ids here; the plan resolves
//! them to the engine's.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::idp_times::IdpTimes;
use crate::absence::AbsenceRules;
use crate::ids::{IntegrationName, SyncRunId};
use crate::model::{User, UserProfile};

/// What an IdP holds, as a driver read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySnapshot {
    /// The integration that read it.
    pub integration: IntegrationName,
    /// The sync run.
    pub run: SyncRunId,
    /// Users (for a delta: those created or changed).
    pub users: Vec<ListedUser>,
    /// Groups (for a delta: those created or changed).
    pub groups: Vec<SnapshotGroup>,
    /// Complete listing or delta, and the memberships.
    pub scope: SnapshotScope,
    /// When what a complete listing no longer contains is removed.
    #[serde(default)]
    pub absence: AbsenceRules,
    /// When the IdP says the changes happened, where it says so. Not kept with a held sync
    /// (whose stored form predates it): a hold confirmed after a restart dates its changes by
    /// the run only.
    #[serde(skip)]
    pub idp_times: IdpTimes,
}

impl DirectorySnapshot {
    /// Every user id the snapshot names (its users, the user members of its edges, a delta's
    /// removed users), repeats included: what recognises the erased users it lists (see
    /// `Tenant::reconcile`).
    pub fn named_user_ids(&self) -> impl Iterator<Item = &str> + '_ {
        let (edges, removed): (Vec<&Membership>, &[String]) = match &self.scope {
            SnapshotScope::Complete { memberships } => (memberships.iter().collect(), &[]),
            SnapshotScope::Delta {
                removed_users,
                joined,
                left,
                ..
            } => (joined.iter().chain(left).collect(), removed_users),
        };
        self.users
            .iter()
            .map(ListedUser::external_id)
            .chain(removed.iter().map(String::as_str))
            .chain(edges.into_iter().filter_map(Membership::user))
    }
}

/// A user as the IdP has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUser {
    /// The IdP's stable id: becomes the user's externalId.
    pub external_id: String,
    /// From the IdP's status fields.
    pub active: bool,
    /// userName, names, emails.
    pub profile: UserProfile,
}

/// A user of a listing: as the driver read it, or, where the driver read it exactly as the
/// state held it when the run began (see [`Baseline`](super::Baseline)), that state's record,
/// shared rather than copied. A resync that finds nothing changed then holds one pointer per
/// user instead of a second copy of every profile. Either way it reads, compares and is
/// stored (in a held sync) as the [`SnapshotUser`] it stands for.
#[derive(Clone, Debug)]
pub struct ListedUser(Listed);

#[derive(Clone, Debug)]
enum Listed {
    Read(Box<SnapshotUser>),
    /// A record whose externalId is readable (see [`ListedUser::as_held`]).
    AsHeld(Arc<User>),
}

impl ListedUser {
    /// `user` as the state holds it, if it is what `listed` says: readable, active or not alike,
    /// with the same externalId and profile; `listed` itself otherwise.
    pub(super) fn as_held(record: &Arc<User>, listed: SnapshotUser) -> ListedUser {
        let same = !record.is_erased()
            && record.active == listed.active
            && record.external_id.as_deref() == Some(listed.external_id.as_str())
            && record.profile == listed.profile;
        ListedUser(match same {
            true => Listed::AsHeld(Arc::clone(record)),
            false => Listed::Read(Box::new(listed)),
        })
    }

    /// The IdP's stable id: becomes the user's externalId.
    pub fn external_id(&self) -> &str {
        match &self.0 {
            Listed::Read(user) => &user.external_id,
            Listed::AsHeld(record) => record
                .external_id
                .as_deref()
                .expect("a record is shared only when its externalId is readable"),
        }
    }

    /// From the IdP's status fields.
    pub fn active(&self) -> bool {
        match &self.0 {
            Listed::Read(user) => user.active,
            Listed::AsHeld(record) => record.active,
        }
    }

    /// userName, names, emails.
    pub fn profile(&self) -> &UserProfile {
        match &self.0 {
            Listed::Read(user) => &user.profile,
            Listed::AsHeld(record) => &record.profile,
        }
    }

    /// Whether it is the state's record rather than a copy (for tests of the sharing).
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Listed::AsHeld(_))
    }
}

impl From<SnapshotUser> for ListedUser {
    fn from(user: SnapshotUser) -> ListedUser {
        ListedUser(Listed::Read(Box::new(user)))
    }
}

impl PartialEq for ListedUser {
    fn eq(&self, other: &ListedUser) -> bool {
        self.external_id() == other.external_id()
            && self.active() == other.active()
            && self.profile() == other.profile()
    }
}

impl Eq for ListedUser {}

/// [`SnapshotUser`]'s fields, borrowed: what a [`ListedUser`] is stored as.
#[derive(Serialize)]
struct SnapshotUserRef<'u> {
    external_id: &'u str,
    active: bool,
    profile: &'u UserProfile,
}

impl Serialize for ListedUser {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SnapshotUserRef {
            external_id: self.external_id(),
            active: self.active(),
            profile: self.profile(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ListedUser {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ListedUser, D::Error> {
        SnapshotUser::deserialize(deserializer).map(ListedUser::from)
    }
}

/// A group as the IdP has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    /// The IdP's stable id.
    pub external_id: String,
    /// Its name.
    pub display_name: String,
}

/// A member as the IdP names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ExternalMember {
    /// A user, by its IdP id.
    User(String),
    /// A nested group, by its IdP id.
    Group(String),
}

/// One membership edge, by IdP ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The group's IdP id.
    pub group: String,
    /// The member.
    pub member: ExternalMember,
}

impl Membership {
    /// The member's IdP id, if it is a user.
    pub fn user(&self) -> Option<&str> {
        match &self.member {
            ExternalMember::User(id) => Some(id),
            ExternalMember::Group(_) => None,
        }
    }
}

/// Whether a snapshot is everything or a change set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotScope {
    /// Everything the IdP has: owned objects not listed are gone, and the listed groups'
    /// memberships are exactly `memberships`.
    Complete {
        /// Every membership edge of the listed groups.
        memberships: Vec<Membership>,
    },
    /// What changed since the last sync.
    Delta {
        /// Users deleted in the IdP.
        removed_users: Vec<String>,
        /// Groups deleted in the IdP.
        removed_groups: Vec<String>,
        /// Edges added.
        joined: Vec<Membership>,
        /// Edges removed.
        left: Vec<Membership>,
    },
}
