//! Identity events: facts in the past tense, one enum, postcard inside a versioned envelope.
//!
//! Encoding rules (see `engine/tests/golden.rs`, which pins the bytes of every variant):
//! - new variants go at the end of an enum; an existing variant's fields never change;
//! - a changed shape is a new variant, or a new envelope version with an upcaster in
//!   [`decode`];
//! - personal fields travel in [`Personal`], their own part of the payload, encrypted per user
//!   (see [`crate::seal`]); from this build on the externalId of a user travels inside it too,
//!   and the `external_id` beside it stays empty.

use serde::{Deserialize, Serialize};

use idpsync_storage::{EventId, Record, SchemaVersion, Seq, Timestamp};

use crate::absence::Absent;
use crate::ids::{GroupId, IntegrationName, Member, RequestId, SyncRunId, TokenId, UserId};
use crate::model::{BindingGroups, BindingRole, Owner, ResourceRef, UserProfile};
use crate::sealed::{ExternalIdHash, Sealed};

/// The envelope version this build writes.
pub const ENVELOPE_VERSION: SchemaVersion = SchemaVersion(1);

/// Which door an event came through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// A SCIM request authenticated by this token.
    Scim {
        /// The token's id.
        token: TokenId,
    },
    /// A sync driver run.
    Integration {
        /// The integration.
        integration: IntegrationName,
        /// The run.
        run: SyncRunId,
    },
    /// The management API, authenticated by this admin token.
    Admin {
        /// The token's id.
        token: TokenId,
    },
    /// An operator on the command line.
    Operator,
    /// The synthetic workload generator (`idpsync dev seed`).
    Workload,
}

/// What caused an event, as precisely as the door knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cause {
    /// An HTTP request.
    Request(RequestId),
    /// An IdP object seen in a sync run (its id in the IdP).
    IdpObject(String),
    /// Nothing more specific than the source.
    Unspecified,
    /// The IdP object of a sync run that the event's user is: its id in the IdP is the
    /// user's externalId, sealed with the user's personal fields rather than repeated here in
    /// the clear. What this build writes for a user's event instead of [`Cause::IdpObject`].
    IdpUser,
    /// [`Cause::IdpObject`] with the IdP's own time of the change, where the IdP tells it (its
    /// change feed's entry, or the object's time of its last status change).
    IdpObjectChanged {
        /// Its id in the IdP.
        object: String,
        /// When the IdP made the change, by its own clock.
        at: Timestamp,
    },
    /// [`Cause::IdpUser`] with the IdP's own time of the change: what this build writes for a
    /// user's event instead of [`Cause::IdpObjectChanged`].
    IdpUserChanged {
        /// When the IdP made the change, by its own clock.
        at: Timestamp,
    },
}

impl Cause {
    /// When the IdP made the change, by its own clock, where it said so.
    pub fn idp_changed_at(&self) -> Option<Timestamp> {
        match self {
            Cause::IdpObjectChanged { at, .. } | Cause::IdpUserChanged { at } => Some(*at),
            Cause::Request(_) | Cause::IdpObject(_) | Cause::Unspecified | Cause::IdpUser => None,
        }
    }
}

/// The personal part of an event's payload.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PersonalOwned")]
pub enum Personal {
    /// Stored as is (logs written before sealing, or with sealing turned off).
    Plain(Box<UserProfile>),
    /// Sealed under the user's key (see [`crate::seal`]).
    Sealed(Sealed),
}

/// How [`Personal`] is encoded, borrowed (events and snapshots encode through it). The tag
/// names the cipher and what is sealed as well as the variant: tag 1 is what builds before
/// AES-GCM wrote for a sealed profile, `Sealed { nonce: [u8; 24], ciphertext }`, so those bytes
/// read as they always did; AES-256-GCM came with tag 2; tag 3 seals the externalId with the
/// profile.
///
/// Ciphertexts go through `serde_bytes`: postcard writes a byte string (length, then the
/// bytes, copied at once) exactly as it writes a sequence of `u8` (length, then each byte),
/// so the bytes are the same and the work is a copy.
#[derive(Serialize)]
pub(crate) enum PersonalRef<'a> {
    Plain(&'a UserProfile),
    XChaCha20Poly1305 {
        nonce: &'a [u8; 24],
        #[serde(with = "serde_bytes")]
        ciphertext: &'a [u8],
    },
    Aes256Gcm {
        nonce: &'a [u8; 12],
        #[serde(with = "serde_bytes")]
        ciphertext: &'a [u8],
    },
    Aes256GcmWithExternalId {
        nonce: &'a [u8; 12],
        #[serde(with = "serde_bytes")]
        ciphertext: &'a [u8],
    },
    Erased {
        external_id_hash: &'a Option<ExternalIdHash>,
    },
}

impl<'a> PersonalRef<'a> {
    /// The encoding of a sealed profile.
    pub(crate) fn sealed(sealed: &'a Sealed) -> PersonalRef<'a> {
        match sealed {
            Sealed::XChaCha20Poly1305 { nonce, ciphertext } => PersonalRef::XChaCha20Poly1305 { nonce, ciphertext },
            Sealed::Aes256Gcm { nonce, ciphertext } => PersonalRef::Aes256Gcm { nonce, ciphertext },
            Sealed::Aes256GcmWithExternalId { nonce, ciphertext } => {
                PersonalRef::Aes256GcmWithExternalId { nonce, ciphertext }
            }
        }
    }
}

/// [`PersonalRef`] owned, for decoding.
#[derive(Deserialize)]
pub(crate) enum PersonalOwned {
    Plain(Box<UserProfile>),
    XChaCha20Poly1305 {
        nonce: [u8; 24],
        #[serde(with = "serde_bytes")]
        ciphertext: Vec<u8>,
    },
    Aes256Gcm {
        nonce: [u8; 12],
        #[serde(with = "serde_bytes")]
        ciphertext: Vec<u8>,
    },
    Aes256GcmWithExternalId {
        nonce: [u8; 12],
        #[serde(with = "serde_bytes")]
        ciphertext: Vec<u8>,
    },
    Erased {
        external_id_hash: Option<ExternalIdHash>,
    },
}

/// A snapshot's erased marker where an event's personal part was expected.
#[derive(Debug, thiserror::Error)]
#[error("an erased user's marker is not a personal part")]
pub(crate) struct NotPersonal;

impl TryFrom<PersonalOwned> for Personal {
    type Error = NotPersonal;

    fn try_from(owned: PersonalOwned) -> Result<Personal, NotPersonal> {
        Ok(match owned {
            PersonalOwned::Plain(profile) => Personal::Plain(profile),
            PersonalOwned::XChaCha20Poly1305 { nonce, ciphertext } => Personal::Sealed(Sealed::XChaCha20Poly1305 {
                nonce: Box::new(nonce),
                ciphertext,
            }),
            PersonalOwned::Aes256Gcm { nonce, ciphertext } => Personal::Sealed(Sealed::Aes256Gcm { nonce, ciphertext }),
            PersonalOwned::Aes256GcmWithExternalId { nonce, ciphertext } => {
                Personal::Sealed(Sealed::Aes256GcmWithExternalId { nonce, ciphertext })
            }
            PersonalOwned::Erased { .. } => return Err(NotPersonal),
        })
    }
}

impl Serialize for Personal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Personal::Plain(profile) => PersonalRef::Plain(profile),
            Personal::Sealed(sealed) => PersonalRef::sealed(sealed),
        }
        .serialize(serializer)
    }
}

/// Counts behind a held reconcile: why the engine refused to apply it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSummary {
    /// Users the integration owned before.
    pub owned_users: u32,
    /// Users the snapshot would deactivate.
    pub deactivations: u32,
    /// Users the snapshot would delete.
    pub deletions: u32,
    /// The configured limit, in thousandths of `owned_users`.
    pub limit_permille: u32,
}

/// An identity event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A user was created.
    UserProvisioned {
        /// Its new id.
        user: UserId,
        /// Who manages it.
        owner: Owner,
        /// The client's id for it.
        external_id: Option<String>,
        /// Whether it starts active.
        active: bool,
        /// Its personal fields.
        personal: Personal,
    },
    /// A user's attributes were replaced (the whole profile and `externalId`).
    UserUpdated {
        /// The user.
        user: UserId,
        /// The client's id for it.
        external_id: Option<String>,
        /// Its new personal fields.
        personal: Personal,
    },
    /// A user was deactivated: it keeps its memberships and loses all access.
    UserDeactivated {
        /// The user.
        user: UserId,
    },
    /// A deactivated user was activated again.
    UserReactivated {
        /// The user.
        user: UserId,
    },
    /// A user was deleted, and with it its memberships.
    UserDeleted {
        /// The user.
        user: UserId,
    },
    /// A group was created, empty.
    GroupCreated {
        /// Its new id.
        group: GroupId,
        /// Who manages it.
        owner: Owner,
        /// The client's id for it.
        external_id: Option<String>,
        /// Its name.
        display_name: String,
    },
    /// A group was renamed.
    GroupRenamed {
        /// The group.
        group: GroupId,
        /// The new name.
        display_name: String,
    },
    /// A group's external id changed.
    GroupExternalIdChanged {
        /// The group.
        group: GroupId,
        /// The new external id.
        external_id: Option<String>,
    },
    /// A group was deleted, and with it its memberships (as a group and as a member).
    GroupDeleted {
        /// The group.
        group: GroupId,
    },
    /// Members joined a group.
    MembersAdded {
        /// The group.
        group: GroupId,
        /// The new members, each not a member before.
        members: Vec<Member>,
    },
    /// Members left a group.
    MembersRemoved {
        /// The group.
        group: GroupId,
        /// The members that left, each a member before.
        members: Vec<Member>,
    },
    /// A management-server resource now references these groups.
    BindingSet {
        /// The resource.
        resource: ResourceRef,
        /// Its groups, replacing what it had.
        groups: BindingGroups,
    },
    /// A management-server resource no longer references any group.
    BindingRemoved {
        /// The resource.
        resource: ResourceRef,
    },
    /// A reconcile was held because it would deactivate or delete too many users.
    ReconcileHeld {
        /// The integration.
        integration: IntegrationName,
        /// The held run.
        run: SyncRunId,
        /// The counts.
        summary: HoldSummary,
    },
    /// A user's personal fields were erased: its key is destroyed, and from this event on the
    /// user reads as erased whatever keys exist. What builds before [`Event::UserErasedWithLookup`]
    /// wrote: the user keeps an externalId logged in the clear.
    UserErased {
        /// The user.
        user: UserId,
    },
    /// A user's personal fields were erased, its externalId included: its key is destroyed,
    /// and from this event on the user reads as erased, without an externalId, whatever keys
    /// exist. What this build writes for an erasure.
    UserErasedWithLookup {
        /// The user.
        user: UserId,
        /// The keyed hash of the externalId it had, by which the integration that owns it still
        /// recognises it; `None` if it had none.
        external_id_hash: Option<ExternalIdHash>,
    },
    /// A complete listing of an integration found these of its objects absent, and their
    /// absence has not taken effect (see [`crate::absence`]): each counts one more listing;
    /// what the integration had pending and is not named here is pending no more.
    AbsencesObserved {
        /// The integration.
        integration: IntegrationName,
        /// The run that listed.
        run: SyncRunId,
        /// Everything still pending after the run.
        absent: Vec<Absent>,
    },
    /// The consumer of the change stream (the management server) applied a revocation.
    RevocationAcknowledged {
        /// Whose access was revoked.
        user: UserId,
        /// The record whose projection revoked it.
        seq: Seq,
        /// Which of that record's access changes it is: the `i` of the stream id `<seq>.<i>`
        /// (from 1).
        index: u32,
        /// The resource the access was to.
        resource: ResourceRef,
        /// In which role.
        role: BindingRole,
        /// The bound group it came through.
        via: GroupId,
    },
}

impl Event {
    /// The user and the personal part of an event that carries one (a provisioning or an
    /// update).
    pub fn personal(&self) -> Option<(UserId, &Personal)> {
        match self {
            Event::UserProvisioned { user, personal, .. } | Event::UserUpdated { user, personal, .. } => {
                Some((*user, personal))
            }
            _ => None,
        }
    }

    /// The user, the externalId and the personal part of an event that carries them, for
    /// sealing them in place.
    pub fn personal_mut(&mut self) -> Option<(UserId, &mut Option<String>, &mut Personal)> {
        match self {
            Event::UserProvisioned {
                user,
                external_id,
                personal,
                ..
            }
            | Event::UserUpdated {
                user,
                external_id,
                personal,
            } => Some((*user, external_id, personal)),
            _ => None,
        }
    }

    /// The user whose own record the event changes, if it is a user event.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Event::UserProvisioned { user, .. }
            | Event::UserUpdated { user, .. }
            | Event::UserDeactivated { user }
            | Event::UserReactivated { user }
            | Event::UserDeleted { user }
            | Event::UserErased { user }
            | Event::UserErasedWithLookup { user, .. } => Some(*user),
            _ => None,
        }
    }

    /// The event's type as the API and the change stream name it: `user.provisioned`,
    /// `members.added`, …
    pub fn kind(&self) -> &'static str {
        match self {
            Event::UserProvisioned { .. } => "user.provisioned",
            Event::UserUpdated { .. } => "user.updated",
            Event::UserDeactivated { .. } => "user.deactivated",
            Event::UserReactivated { .. } => "user.reactivated",
            Event::UserDeleted { .. } => "user.deleted",
            Event::UserErased { .. } | Event::UserErasedWithLookup { .. } => "user.erased",
            Event::GroupCreated { .. } => "group.created",
            Event::GroupRenamed { .. } => "group.renamed",
            Event::GroupExternalIdChanged { .. } => "group.external_id_changed",
            Event::GroupDeleted { .. } => "group.deleted",
            Event::MembersAdded { .. } => "members.added",
            Event::MembersRemoved { .. } => "members.removed",
            Event::BindingSet { .. } => "binding.set",
            Event::BindingRemoved { .. } => "binding.removed",
            Event::ReconcileHeld { .. } => "sync.held",
            Event::AbsencesObserved { .. } => "sync.absences_observed",
            Event::RevocationAcknowledged { .. } => "access.revocation_acknowledged",
        }
    }
}

/// An event with where it came from: what one log record's payload holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Which door.
    pub source: Source,
    /// What caused it.
    pub cause: Cause,
    /// The fact.
    pub event: Event,
}

/// An event as read back from the log, with its position and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Its place in the tenant's log.
    pub seq: Seq,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Its id.
    pub event_id: EventId,
    /// The event and its origin.
    pub envelope: Envelope,
}

/// Why a payload did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Written by a newer build.
    #[error("unknown envelope version {0}")]
    UnknownVersion(SchemaVersion),
    /// The bytes are not a valid envelope.
    #[error("malformed payload: {0}")]
    Malformed(String),
}

/// Room reserved for an encoded envelope.
const ENCODED_CAPACITY: usize = 320;

/// Encodes an envelope as a payload of [`ENVELOPE_VERSION`].
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    // Sized for a typical event (a membership change with its origin, or a user with a sealed
    // profile), so that most encodings never grow their buffer. Serialising plain data into a
    // Vec cannot fail.
    postcard::to_extend(envelope, Vec::with_capacity(ENCODED_CAPACITY)).expect("postcard encodes every envelope")
}

/// Decodes a payload of any supported envelope version.
pub fn decode(version: SchemaVersion, payload: &[u8]) -> Result<Envelope, DecodeError> {
    match version {
        ENVELOPE_VERSION => postcard::from_bytes(payload).map_err(|e| DecodeError::Malformed(e.to_string())),
        other => Err(DecodeError::UnknownVersion(other)),
    }
}

/// Decodes a stored record.
pub fn decode_record(record: &Record) -> Result<LoggedEvent, DecodeError> {
    Ok(LoggedEvent {
        seq: record.seq,
        recorded_at: record.recorded_at,
        event_id: record.event_id,
        envelope: decode(record.version, &record.payload)?,
    })
}
