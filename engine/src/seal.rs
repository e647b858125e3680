//! Sealing personal fields: each user's profile and externalId are encrypted under a key of
//! its own (AES-256-GCM), kept outside the log in the store's secrets. Destroying the key erases
//! them from every record that carries them, while the records, their chain and everything
//! else about the user stay (crypto-shredding).
//!
//! The associated data binds a ciphertext to its tenant and user, and to what it holds (the
//! profile alone, or the profile and the externalId), so a sealed part cannot be moved to
//! another user or tenant, or read as the other shape, and still open.
//!
//! An erased user keeps one thing of its externalId: its keyed hash ([`ExternalIdHash`], BLAKE3
//! under the tenant's [`LookupKey`]), so that the integration that owns it recognises the user
//! when its IdP lists the id again, instead of provisioning the person anew. The lookup key is
//! one per tenant, a secret beside the users' keys that is never destroyed.
//!
//! Builds before AES-GCM sealed with XChaCha20-Poly1305 under the same keys, and builds before
//! sealed externalIds sealed the profile alone; both still open. AES-GCM replaced
//! XChaCha20-Poly1305 because it seals a typical profile about six times faster on CPUs with
//! AES instructions (0.35 µs against 2.3 µs), which is most of what sealing costs when users
//! are provisioned. Its 96-bit random nonces are safe for far more seals than one user's key
//! ever makes (one per change of that user's profile; the bound is 2^32).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use aes_gcm::Aes256Gcm;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use idpsync_storage::{NewSecret, SecretId, TenantId};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::event::Personal;
use crate::ids::UserId;
use crate::model::UserProfile;
use crate::sealed::{ExternalIdHash, Sealed};

/// Domain separation for the associated data of sealed profiles.
const AAD_CONTEXT: &[u8] = b"idpsync personal v1";

/// Domain separation for the associated data of a profile sealed with its externalId.
const AAD_CONTEXT_WITH_EXTERNAL_ID: &[u8] = b"idpsync personal v2";

/// Domain separation for the keyed hashes of externalIds.
const HASH_CONTEXT: &[u8] = b"idpsync external id v1";

/// The GCM tag the ciphertext carries after the encrypted bytes.
const TAG_LEN: usize = 16;

/// Room reserved for encoded fields, so that a typical profile (user name, names, an email or
/// two) and its externalId are encoded and then encrypted in place, tag included, without
/// growing their buffer.
const FIELDS_CAPACITY: usize = 280;

/// The store's id for a tenant's lookup key: the one id no user has (user ids are UUID v7;
/// this is the all-ones UUID, [`UserId::MAX`], which only bounds ranges).
pub const LOOKUP_KEY_ID: SecretId = SecretId([0xff; 16]);

/// A user's personal fields as they read once opened: the profile, and the externalId when
/// it was sealed with it (an externalId logged in the clear is the event's, not this).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalFields {
    /// The externalId, when sealed with the profile.
    pub external_id: Option<String>,
    /// The profile.
    pub profile: UserProfile,
}

/// A 256-bit key: a user's, or a tenant's lookup key.
#[derive(Clone)]
struct KeyBytes([u8; 32]);

impl KeyBytes {
    fn generate() -> KeyBytes {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        KeyBytes(bytes)
    }
}

/// A user's 256-bit key.
#[derive(Clone)]
pub struct UserKey(KeyBytes);

impl UserKey {
    /// A fresh random key.
    pub fn generate() -> UserKey {
        UserKey(KeyBytes::generate())
    }

    /// The secret the store keeps for this key.
    pub fn to_secret(&self, user: UserId) -> NewSecret {
        NewSecret {
            id: secret_id(user),
            material: self.0.0.to_vec(),
        }
    }
}

/// A tenant's key for the keyed hashes of externalIds ([`ExternalIdHash`]).
#[derive(Clone)]
pub struct LookupKey(KeyBytes);

impl LookupKey {
    /// A fresh random key.
    pub fn generate() -> LookupKey {
        LookupKey(KeyBytes::generate())
    }

    /// The secret the store keeps for this key.
    pub fn to_secret(&self) -> NewSecret {
        NewSecret {
            id: LOOKUP_KEY_ID,
            material: self.0.0.to_vec(),
        }
    }

    /// The keyed hash of `external_id`.
    pub fn hash(&self, external_id: &str) -> ExternalIdHash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0.0);
        hasher.update(HASH_CONTEXT);
        hasher.update(&[0]);
        hasher.update(external_id.as_bytes());
        ExternalIdHash(Box::new(*hasher.finalize().as_bytes()))
    }
}

/// The store's id for a user's key.
pub fn secret_id(user: UserId) -> SecretId {
    SecretId(*user.0.as_bytes())
}

fn associated_data(context: &[u8], tenant: &TenantId, user: UserId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(context.len() + tenant.as_str().len() + 17);
    aad.extend_from_slice(context);
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(user.0.as_bytes());
    aad
}

/// Seals `fields` (the profile and the externalId) for `user` of `tenant` under `key`.
pub fn seal(tenant: &TenantId, user: UserId, key: &UserKey, fields: &PersonalFields) -> Sealed {
    let mut nonce = [0u8; 12];
    rand::rng().fill_bytes(&mut nonce);
    // Serialising plain data into a Vec cannot fail.
    let mut ciphertext =
        postcard::to_extend(fields, Vec::with_capacity(FIELDS_CAPACITY)).expect("postcard encodes every profile");
    ciphertext.reserve(TAG_LEN);
    // Encrypted where it was encoded; fails only for messages beyond the cipher's length
    // limit, far above ours.
    Aes256Gcm::new(&key.0.0.into())
        .encrypt_in_place(
            &nonce.into(),
            &associated_data(AAD_CONTEXT_WITH_EXTERNAL_ID, tenant, user),
            &mut ciphertext,
        )
        .expect("profile fits the cipher");
    Sealed::Aes256GcmWithExternalId { nonce, ciphertext }
}

/// Opens sealed fields; `None` if the key is wrong or the bytes were altered.
pub fn open(tenant: &TenantId, user: UserId, key: &UserKey, sealed: &Sealed) -> Option<PersonalFields> {
    let context = match sealed {
        Sealed::Aes256GcmWithExternalId { .. } => AAD_CONTEXT_WITH_EXTERNAL_ID,
        Sealed::Aes256Gcm { .. } | Sealed::XChaCha20Poly1305 { .. } => AAD_CONTEXT,
    };
    let aad = associated_data(context, tenant, user);
    let payload = Payload {
        msg: sealed.ciphertext(),
        aad: &aad,
    };
    let key = &key.0.0;
    let plaintext = match sealed {
        Sealed::Aes256Gcm { nonce, .. } | Sealed::Aes256GcmWithExternalId { nonce, .. } => {
            Aes256Gcm::new(key.into()).decrypt(nonce.into(), payload)
        }
        Sealed::XChaCha20Poly1305 { nonce, .. } => {
            XChaCha20Poly1305::new(key.into()).decrypt((&**nonce).into(), payload)
        }
    }
    .ok()?;
    match sealed {
        Sealed::Aes256GcmWithExternalId { .. } => postcard::from_bytes(&plaintext).ok(),
        Sealed::Aes256Gcm { .. } | Sealed::XChaCha20Poly1305 { .. } => Some(PersonalFields {
            external_id: None,
            profile: postcard::from_bytes(&plaintext).ok()?,
        }),
    }
}

/// Reads the personal part of events. The fold asks it for every profile it stores.
pub trait Opener {
    /// The fields `personal` carries for `user`, or `None` if they cannot be read (its key was
    /// destroyed: the user's personal fields are erased).
    fn open(&self, user: UserId, personal: &Personal) -> Option<PersonalFields>;
}

/// The fields of a personal part logged in the clear.
fn plain(profile: &UserProfile) -> PersonalFields {
    PersonalFields {
        external_id: None,
        profile: profile.clone(),
    }
}

/// Opens only unsealed profiles: for reading logs without their keys.
pub struct WithoutKeys;

impl Opener for WithoutKeys {
    fn open(&self, _user: UserId, personal: &Personal) -> Option<PersonalFields> {
        match personal {
            Personal::Plain(profile) => Some(plain(profile)),
            Personal::Sealed(_) => None,
        }
    }
}

/// One tenant's keys, shared by the writer and every reader of that tenant: each user's key,
/// and the tenant's lookup key once it has one.
pub struct Keyring {
    tenant: TenantId,
    // std locks: every critical section is a map lookup or insert, never across an await.
    /// In id order: a snapshot opens its users in id order, so each lookup walks the nodes
    /// the one before it left in the cache; in a hash map, each was two cache misses, and
    /// looking up the keys was the largest single cost of opening a large tenant's users.
    keys: RwLock<BTreeMap<UserId, UserKey>>,
    lookup: RwLock<Option<LookupKey>>,
}

impl Keyring {
    /// The keys of `tenant`, from the store's secrets (secrets that are not 32-byte keys are
    /// skipped with a warning).
    pub fn new(tenant: TenantId, secrets: Vec<(SecretId, Vec<u8>)>) -> Keyring {
        let keys = RwLock::new(BTreeMap::new());
        let keyring = Keyring {
            tenant,
            keys,
            lookup: RwLock::new(None),
        };
        keyring.insert_secrets(secrets);
        keyring
    }

    /// Adds the keys among the store's `secrets` (those that are not 32-byte keys are skipped
    /// with a warning).
    pub fn insert_secrets(&self, secrets: Vec<(SecretId, Vec<u8>)>) {
        let mut added = Vec::with_capacity(secrets.len());
        for (id, material) in secrets {
            let Ok(bytes) = <[u8; 32]>::try_from(material.as_slice()) else {
                tracing::warn!(tenant = %self.tenant, "skipping a secret that is not a 32-byte key");
                continue;
            };
            if id == LOOKUP_KEY_ID {
                *self.lookup.write().unwrap_or_else(|p| p.into_inner()) = Some(LookupKey(KeyBytes(bytes)));
            } else {
                added.push((UserId(uuid::Uuid::from_bytes(id.0)), UserKey(KeyBytes(bytes))));
            }
        }
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.is_empty() {
            // Built at once from sorted keys, the map's nodes are full; inserted one at a time
            // in order, each would be left half empty.
            *keys = BTreeMap::from_iter(added);
        } else {
            keys.extend(added);
        }
    }

    /// The keys of `tenant` in `store`.
    pub async fn load(
        store: &dyn idpsync_storage::LogStore,
        tenant: &TenantId,
    ) -> Result<Keyring, idpsync_storage::StoreError> {
        Ok(Keyring::new(tenant.clone(), store.secrets(tenant).await?))
    }

    /// The tenant the keys belong to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// A user's key.
    pub fn key(&self, user: UserId) -> Option<UserKey> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(&user).cloned()
    }

    /// Whether the user has a key.
    pub fn has_key(&self, user: UserId) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).contains_key(&user)
    }

    /// Adds keys that are now durable.
    pub fn insert_all(&self, added: impl IntoIterator<Item = (UserId, UserKey)>) {
        self.keys.write().unwrap_or_else(|p| p.into_inner()).extend(added);
    }

    /// Forgets a key (after the store destroyed it).
    pub fn forget(&self, user: UserId) {
        self.keys.write().unwrap_or_else(|p| p.into_inner()).remove(&user);
    }

    /// The tenant's lookup key, if it has one yet (the first erasure makes it).
    pub fn lookup_key(&self) -> Option<LookupKey> {
        self.lookup.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets the lookup key, now durable.
    pub fn set_lookup_key(&self, key: LookupKey) {
        *self.lookup.write().unwrap_or_else(|p| p.into_inner()) = Some(key);
    }
}

/// A tenant's keys while they load: an opener that waits for them, so that a snapshot can be
/// read while the keys are. Once [`KeysLoading::set`] (or dropped unset, as when the load is
/// given up), every open goes on; without keys, nothing opens.
#[derive(Default)]
pub(crate) struct KeysLoading {
    keys: OnceLock<Option<Arc<Keyring>>>,
}

impl KeysLoading {
    /// The keys, loaded, or `None` if they could not be.
    pub(crate) fn set(&self, keys: Option<Arc<Keyring>>) {
        let _ = self.keys.set(keys);
    }
}

/// Lets the openers of a [`KeysLoading`] go on without keys when the load stops before it set
/// them, so that no decoding thread waits for ever.
pub(crate) struct KeysLoadingGuard(pub(crate) Arc<KeysLoading>);

impl Drop for KeysLoadingGuard {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

impl Opener for KeysLoading {
    fn open(&self, user: UserId, personal: &Personal) -> Option<PersonalFields> {
        self.keys.wait().as_ref()?.open(user, personal)
    }
}

impl Opener for Keyring {
    fn open(&self, user: UserId, personal: &Personal) -> Option<PersonalFields> {
        match personal {
            Personal::Plain(profile) => Some(plain(profile)),
            Personal::Sealed(sealed) => open(&self.tenant, user, &self.key(user)?, sealed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> UserProfile {
        UserProfile {
            user_name: "alice@example.com".into(),
            details: Some(Box::new(crate::model::ProfileDetails {
                title: Some("Engineer".into()),
                ..Default::default()
            })),
            ..UserProfile::default()
        }
    }

    fn fields() -> PersonalFields {
        PersonalFields {
            external_id: Some("00u-alice".into()),
            profile: profile(),
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|window| window == needle)
    }

    #[test]
    fn openers_of_keys_still_loading_wait_for_them_or_go_on_without() {
        let tenant = TenantId::new("acme").unwrap();
        let alice = UserId(uuid::Uuid::from_u128(1));
        let key = UserKey::generate();
        let personal = Personal::Sealed(seal(&tenant, alice, &key, &fields()));
        let secret = key.to_secret(alice);
        let keyring = Arc::new(Keyring::new(tenant.clone(), vec![(secret.id, secret.material)]));

        let loading = Arc::new(KeysLoading::default());
        let opener = {
            let (loading, personal) = (Arc::clone(&loading), personal.clone());
            std::thread::spawn(move || loading.open(alice, &personal))
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!opener.is_finished(), "an opener waits for the keys");
        loading.set(Some(keyring));
        assert_eq!(opener.join().unwrap(), Some(fields()));

        // A load given up before it set the keys lets its openers go on, reading nothing.
        let loading = Arc::new(KeysLoading::default());
        let opener = {
            let loading = Arc::clone(&loading);
            std::thread::spawn(move || loading.open(alice, &personal))
        };
        drop(KeysLoadingGuard(loading));
        assert_eq!(opener.join().unwrap(), None);
    }

    #[test]
    fn sealed_fields_open_with_their_key_only() {
        let tenant = TenantId::new("acme").unwrap();
        let (alice, bob) = (UserId(uuid::Uuid::from_u128(1)), UserId(uuid::Uuid::from_u128(2)));
        let key = UserKey::generate();
        let sealed = seal(&tenant, alice, &key, &fields());
        assert_eq!(open(&tenant, alice, &key, &sealed), Some(fields()));
        assert_eq!(open(&tenant, alice, &UserKey::generate(), &sealed), None, "another key");
        assert_eq!(open(&tenant, bob, &key, &sealed), None, "moved to another user");
        assert_eq!(
            open(&TenantId::new("globex").unwrap(), alice, &key, &sealed),
            None,
            "moved to another tenant"
        );
        let Sealed::Aes256GcmWithExternalId { nonce, ciphertext } = &sealed else {
            panic!("this build seals the externalId with the profile")
        };
        let mut tampered = ciphertext.clone();
        tampered[0] ^= 1;
        let tampered = Sealed::Aes256GcmWithExternalId {
            nonce: *nonce,
            ciphertext: tampered,
        };
        assert_eq!(open(&tenant, alice, &key, &tampered), None);
        let as_profile_alone = Sealed::Aes256Gcm {
            nonce: *nonce,
            ciphertext: ciphertext.clone(),
        };
        assert_eq!(
            open(&tenant, alice, &key, &as_profile_alone),
            None,
            "read as the other shape"
        );
        assert!(
            !contains(sealed.ciphertext(), b"alice"),
            "no plaintext in the ciphertext"
        );
    }

    #[test]
    fn profiles_sealed_by_earlier_builds_still_open() {
        // What builds before AES-GCM wrote (XChaCha20-Poly1305), and builds before sealed
        // externalIds (AES-256-GCM over the profile alone), under the same key and associated
        // data.
        let tenant = TenantId::new("acme").unwrap();
        let alice = UserId(uuid::Uuid::from_u128(1));
        let key = UserKey::generate();
        let payload = postcard::to_allocvec(&profile()).unwrap();
        let aad = associated_data(AAD_CONTEXT, &tenant, alice);
        let nonce = [7u8; 24];
        let ciphertext = XChaCha20Poly1305::new(&key.0.0.into())
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: &payload,
                    aad: &aad,
                },
            )
            .unwrap();
        let xchacha = Sealed::XChaCha20Poly1305 {
            nonce: Box::new(nonce),
            ciphertext: ciphertext.clone(),
        };
        let profile_alone = PersonalFields {
            external_id: None,
            profile: profile(),
        };
        assert_eq!(open(&tenant, alice, &key, &xchacha), Some(profile_alone.clone()));
        assert_eq!(
            open(&tenant, alice, &UserKey::generate(), &xchacha),
            None,
            "another key"
        );
        let as_gcm = Sealed::Aes256Gcm {
            nonce: nonce[..12].try_into().unwrap(),
            ciphertext,
        };
        assert_eq!(
            open(&tenant, alice, &key, &as_gcm),
            None,
            "opened with the cipher it was sealed with"
        );
        let nonce = [8u8; 12];
        let gcm = Sealed::Aes256Gcm {
            nonce,
            ciphertext: Aes256Gcm::new(&key.0.0.into())
                .encrypt(
                    &nonce.into(),
                    Payload {
                        msg: &payload,
                        aad: &aad,
                    },
                )
                .unwrap(),
        };
        assert_eq!(open(&tenant, alice, &key, &gcm), Some(profile_alone));
    }

    #[test]
    fn a_forgotten_key_leaves_the_fields_unreadable() {
        let tenant = TenantId::new("acme").unwrap();
        let alice = UserId(uuid::Uuid::from_u128(1));
        let key = UserKey::generate();
        let keyring = Keyring::new(tenant.clone(), vec![(secret_id(alice), key.0.0.to_vec())]);
        let personal = Personal::Sealed(seal(&tenant, alice, &key, &fields()));
        assert_eq!(keyring.open(alice, &personal), Some(fields()));
        keyring.forget(alice);
        assert_eq!(keyring.open(alice, &personal), None);
        assert_eq!(
            WithoutKeys.open(alice, &Personal::Plain(Box::new(profile()))),
            Some(PersonalFields {
                external_id: None,
                profile: profile(),
            })
        );
    }

    #[test]
    fn the_lookup_key_is_the_tenants_and_hashes_an_external_id_the_same_way_each_time() {
        let tenant = TenantId::new("acme").unwrap();
        let alice = UserId(uuid::Uuid::from_u128(1));
        let lookup = LookupKey::generate();
        let keyring = Keyring::new(
            tenant,
            vec![
                (secret_id(alice), UserKey::generate().0.0.to_vec()),
                (LOOKUP_KEY_ID, lookup.to_secret().material),
            ],
        );
        assert!(keyring.has_key(alice));
        assert!(!keyring.has_key(UserId::MAX), "the lookup key is no user's key");
        let kept = keyring.lookup_key().expect("the lookup key is loaded");
        assert_eq!(kept.hash("00u-alice"), lookup.hash("00u-alice"));
        assert_ne!(lookup.hash("00u-alice"), lookup.hash("00u-bob"));
        assert_ne!(
            lookup.hash("00u-alice"),
            LookupKey::generate().hash("00u-alice"),
            "another tenant's key hashes it differently"
        );
        assert!(!contains(&*lookup.hash("00u-alice").0, b"alice"));
    }
}
