//! What erasure asks of a state besides the fold: a state folded while a user's key existed
//! made to read as one folded without it (in-memory checkpoints keep such states after the key
//! is destroyed), and a state in which erased users carry externalIds again, for a reconcile to
//! recognise them by (the externalIds exist only in that copy).

use std::sync::Arc;

use super::State;
use crate::ids::{IntegrationName, UserId};
use crate::model::{User, erased_profile};
use crate::sealed::ExternalIdHash;

impl State {
    /// Makes `user` read as it reads in a state folded without its key: the erased placeholder
    /// for a profile and, if it was sealed with it, no externalId. A state folded before the key
    /// was destroyed then answers as a replay of the log now would. A user whose fields were
    /// logged in the clear, or that reads as erased already, is left as it is.
    pub fn forget_personal_fields(&mut self, user: UserId) {
        let Some(old) = self.users.get(&user).map(Arc::clone) else {
            return;
        };
        let Some(sealed) = &old.sealed else {
            return;
        };
        if old.erased || !old.readable {
            return;
        }
        let mut record = User::clone(&old);
        record.profile = erased_profile(user);
        record.readable = false;
        if sealed.holds_external_id() {
            record.external_id = None;
        }
        self.indexes.unindex_user(&old);
        self.indexes.index_user(&record);
        self.users.insert(user, Arc::new(record));
    }

    /// The erased users `integration` owns, by the keyed hash of the externalId each had, in
    /// hash order.
    pub fn erased_users_owned_by<'a>(
        &'a self,
        integration: &'a IntegrationName,
    ) -> impl Iterator<Item = (&'a ExternalIdHash, UserId)> + 'a {
        self.indexes
            .owned_erased_users
            .range((integration.clone(), ExternalIdHash(Box::new([0; 32])))..)
            .take_while(move |((owner, _), _)| owner == integration)
            .map(|((_, hash), id)| (hash, *id))
    }

    /// A copy of the state in which each of `external_ids`' users has that externalId, indexed
    /// as any user's.
    pub fn with_external_ids(&self, external_ids: impl IntoIterator<Item = (UserId, String)>) -> State {
        let mut copy = self.clone();
        for (user, external_id) in external_ids {
            let Some(old) = copy.users.get(&user).map(Arc::clone) else {
                continue;
            };
            let mut record = User::clone(&old);
            record.external_id = Some(external_id);
            copy.indexes.unindex_user(&old);
            copy.indexes.index_user(&record);
            copy.users.insert(user, Arc::new(record));
        }
        copy
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::event::{Cause, Envelope, Event, LoggedEvent, Personal, Source};
    use crate::ids::{EventId, Seq, Timestamp};
    use crate::model::{Owner, UserProfile};
    use crate::seal::{Keyring, PersonalFields, UserKey, WithoutKeys, seal, secret_id};

    fn logged(seq: u64, event: Event) -> LoggedEvent {
        LoggedEvent {
            seq: Seq(seq),
            recorded_at: Timestamp(1_700_000_000_000_000 + seq as i64),
            event_id: EventId(Uuid::from_u128(u128::from(seq))),
            envelope: Envelope {
                source: Source::Operator,
                cause: Cause::Unspecified,
                event,
            },
        }
    }

    #[test]
    fn a_state_made_to_forget_a_user_reads_as_one_folded_without_its_key() {
        let tenant = idpsync_storage::TenantId::new("acme").unwrap();
        let alice = UserId(Uuid::from_u128(1));
        let key = UserKey::generate();
        let fields = PersonalFields {
            external_id: Some("00u-alice".into()),
            profile: UserProfile {
                user_name: "alice@example.com".into(),
                ..UserProfile::default()
            },
        };
        let provisioned = logged(
            1,
            Event::UserProvisioned {
                user: alice,
                owner: Owner::Integration(IntegrationName::new("okta").unwrap()),
                external_id: None,
                active: true,
                personal: Personal::Sealed(seal(&tenant, alice, &key, &fields)),
            },
        );
        let keyring = Keyring::new(tenant, vec![(secret_id(alice), key.to_secret(alice).material)]);
        let mut with_key = State::new().apply(&provisioned, &keyring);
        assert_eq!(with_key.user_by_name("alice@example.com").map(|u| u.id), Some(alice));
        assert_eq!(with_key.users_by_external_id("00u-alice").count(), 1);
        with_key.forget_personal_fields(alice);
        let without_key = State::new().apply(&provisioned, &WithoutKeys);
        assert_eq!(with_key.user(alice), without_key.user(alice));
        assert_eq!(with_key.indexes, without_key.indexes);
        assert!(with_key.user_by_name("alice@example.com").is_none());
        assert_eq!(with_key.users_by_external_id("00u-alice").count(), 0);
    }
}
