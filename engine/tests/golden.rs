//! Golden bytes: the encoding of every event variant (and every source and cause) is pinned in
//! `tests/golden/events.txt` and must decode forever. A failing test here means a change broke
//! the wire format of events already in someone's log: add a new variant instead.
//!
//! To add the golden line of a new variant, run with `IDPSYNC_BLESS=1`; existing lines are
//! never rewritten.

use std::collections::BTreeMap;
use std::path::PathBuf;

use idpsync_engine::absence::Absent;
use idpsync_engine::event::{ENVELOPE_VERSION, HoldSummary, Personal, decode, encode};
use idpsync_engine::ids::{GroupId, IntegrationName, Member, RequestId, ResourceId, SyncRunId, TokenId, UserId};
use idpsync_engine::model::{
    Address, AttrValue, BindingGroups, BindingRole, EnterpriseUser, Manager, MultiValue, Name, Owner, ProfileDetails,
    ResourceKind, ResourceRef, UserProfile,
};
use idpsync_engine::{Cause, Envelope, Event, Source};
use idpsync_engine::{ExternalIdHash, Sealed};
use idpsync_storage::Timestamp;
use uuid::Uuid;

fn user() -> UserId {
    UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001))
}

fn group() -> GroupId {
    GroupId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002))
}

fn integration() -> IntegrationName {
    IntegrationName::new("entra").unwrap()
}

fn full_profile() -> UserProfile {
    let mut extra = BTreeMap::new();
    extra.insert(
        "urn:example:params:scim:schemas:extension:vpn:2.0:User:shell".to_owned(),
        AttrValue::Object(vec![
            ("enabled".to_owned(), AttrValue::Bool(true)),
            ("limit".to_owned(), AttrValue::Number("12.5".to_owned())),
            (
                "tags".to_owned(),
                AttrValue::Array(vec![AttrValue::String("a".to_owned()), AttrValue::Null]),
            ),
        ]),
    );
    let value = |v: &str| MultiValue {
        value: v.to_owned(),
        display: Some("Display".to_owned()),
        kind: Some("work".to_owned()),
        primary: true,
    };
    UserProfile {
        user_name: "alice@example.com".to_owned(),
        name: Some(Box::new(Name {
            formatted: Some("Ms. Alice B. Smith III".to_owned()),
            family_name: Some("Smith".to_owned()),
            given_name: Some("Alice".to_owned()),
            middle_name: Some("B".to_owned()),
            honorific_prefix: Some("Ms.".to_owned()),
            honorific_suffix: Some("III".to_owned()),
        })),
        display_name: Some("Alice Smith".to_owned()),
        emails: vec![value("alice@example.com")],
        enterprise: Some(Box::new(EnterpriseUser {
            employee_number: Some("42".to_owned()),
            cost_center: Some("cc".to_owned()),
            organization: Some("org".to_owned()),
            division: Some("div".to_owned()),
            department: Some("dept".to_owned()),
            manager: Some(Manager {
                value: "boss".to_owned(),
                display_name: Some("Boss".to_owned()),
            }),
        })),
        details: Some(Box::new(ProfileDetails {
            nick_name: Some("Al".to_owned()),
            profile_url: Some("https://example.com/alice".to_owned()),
            title: Some("Engineer".to_owned()),
            user_type: Some("Employee".to_owned()),
            preferred_language: Some("en-US".to_owned()),
            locale: Some("en-US".to_owned()),
            timezone: Some("Europe/Berlin".to_owned()),
            phone_numbers: vec![value("+1 555 0100")],
            ims: vec![value("alice")],
            photos: vec![value("https://example.com/alice.png")],
            addresses: vec![Address {
                formatted: Some("1 Main St".to_owned()),
                street_address: Some("1 Main St".to_owned()),
                locality: Some("Springfield".to_owned()),
                region: Some("IL".to_owned()),
                postal_code: Some("62701".to_owned()),
                country: Some("US".to_owned()),
                kind: Some("work".to_owned()),
                primary: true,
            }],
            entitlements: vec![value("vpn")],
            roles: vec![value("admin")],
            x509_certificates: vec![value("MIIB")],
            extra,
        })),
    }
}

fn policy() -> ResourceRef {
    ResourceRef {
        kind: ResourceKind::Policy,
        id: ResourceId::new("policy-1").unwrap(),
    }
}

/// One sample per variant; the match in `variant_index` makes a new variant a compile error
/// here until it has a sample.
fn samples() -> Vec<(&'static str, Envelope)> {
    let operator = |event| Envelope {
        source: Source::Operator,
        cause: Cause::Unspecified,
        event,
    };
    let run = SyncRunId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003));
    vec![
        (
            "UserProvisioned",
            Envelope {
                source: Source::Scim {
                    token: TokenId(Uuid::from_u128(7)),
                },
                cause: Cause::Request(RequestId(Uuid::from_u128(8))),
                event: Event::UserProvisioned {
                    user: user(),
                    owner: Owner::Scim,
                    external_id: Some("ext-1".to_owned()),
                    active: true,
                    personal: Personal::Plain(Box::new(full_profile())),
                },
            },
        ),
        (
            "UserUpdated",
            Envelope {
                source: Source::Integration {
                    integration: integration(),
                    run,
                },
                cause: Cause::IdpObject("00u1".to_owned()),
                event: Event::UserUpdated {
                    user: user(),
                    external_id: None,
                    personal: Personal::Plain(Box::new(UserProfile {
                        user_name: "alice".to_owned(),
                        ..UserProfile::default()
                    })),
                },
            },
        ),
        (
            "UserDeactivated",
            Envelope {
                source: Source::Admin {
                    token: TokenId(Uuid::from_u128(9)),
                },
                cause: Cause::Unspecified,
                event: Event::UserDeactivated { user: user() },
            },
        ),
        (
            "UserReactivated",
            Envelope {
                source: Source::Workload,
                cause: Cause::Unspecified,
                event: Event::UserReactivated { user: user() },
            },
        ),
        ("UserDeleted", operator(Event::UserDeleted { user: user() })),
        (
            "GroupCreated",
            operator(Event::GroupCreated {
                group: group(),
                owner: Owner::Integration(integration()),
                external_id: Some("g-ext".to_owned()),
                display_name: "VPN users".to_owned(),
            }),
        ),
        (
            "GroupRenamed",
            operator(Event::GroupRenamed {
                group: group(),
                display_name: "vpn".to_owned(),
            }),
        ),
        (
            "GroupExternalIdChanged",
            operator(Event::GroupExternalIdChanged {
                group: group(),
                external_id: Some("g2".to_owned()),
            }),
        ),
        ("GroupDeleted", operator(Event::GroupDeleted { group: group() })),
        (
            "MembersAdded",
            operator(Event::MembersAdded {
                group: group(),
                members: vec![Member::User(user()), Member::Group(group())],
            }),
        ),
        (
            "MembersRemoved",
            operator(Event::MembersRemoved {
                group: group(),
                members: vec![Member::User(user())],
            }),
        ),
        (
            "BindingSet.Policy",
            operator(Event::BindingSet {
                resource: policy(),
                groups: BindingGroups::Policy {
                    sources: vec![group()],
                    destinations: vec![],
                },
            }),
        ),
        (
            "BindingSet.Groups",
            operator(Event::BindingSet {
                resource: ResourceRef {
                    kind: ResourceKind::SetupKey,
                    id: ResourceId::new("key-1").unwrap(),
                },
                groups: BindingGroups::Groups(vec![group()]),
            }),
        ),
        (
            "BindingSet.Role",
            operator(Event::BindingSet {
                resource: ResourceRef {
                    kind: ResourceKind::Role,
                    id: ResourceId::new("owners").unwrap(),
                },
                groups: BindingGroups::Role {
                    role: "Owner".to_owned(),
                    priority: -3,
                    groups: vec![group()],
                },
            }),
        ),
        ("BindingRemoved", operator(Event::BindingRemoved { resource: policy() })),
        (
            "UserUpdated.Sealed",
            operator(Event::UserUpdated {
                user: user(),
                external_id: Some("ext-1".to_owned()),
                personal: Personal::Sealed(Sealed::XChaCha20Poly1305 {
                    nonce: Box::new([9; 24]),
                    ciphertext: vec![1, 2, 3, 4],
                }),
            }),
        ),
        (
            "UserUpdated.SealedAesGcm",
            operator(Event::UserUpdated {
                user: user(),
                external_id: Some("ext-1".to_owned()),
                personal: Personal::Sealed(Sealed::Aes256Gcm {
                    nonce: [9; 12],
                    ciphertext: vec![1, 2, 3, 4],
                }),
            }),
        ),
        ("UserErased", operator(Event::UserErased { user: user() })),
        (
            "UserProvisioned.SealedWithExternalId",
            Envelope {
                source: Source::Integration {
                    integration: integration(),
                    run,
                },
                cause: Cause::IdpUser,
                event: Event::UserProvisioned {
                    user: user(),
                    owner: Owner::Integration(integration()),
                    external_id: None,
                    active: true,
                    personal: Personal::Sealed(Sealed::Aes256GcmWithExternalId {
                        nonce: [9; 12],
                        ciphertext: vec![1, 2, 3, 4],
                    }),
                },
            },
        ),
        (
            "UserErasedWithLookup",
            operator(Event::UserErasedWithLookup {
                user: user(),
                external_id_hash: Some(ExternalIdHash(Box::new([5; 32]))),
            }),
        ),
        (
            "UserErasedWithLookup.NoExternalId",
            operator(Event::UserErasedWithLookup {
                user: user(),
                external_id_hash: None,
            }),
        ),
        (
            "ReconcileHeld",
            operator(Event::ReconcileHeld {
                integration: integration(),
                run,
                summary: HoldSummary {
                    owned_users: 100,
                    deactivations: 5,
                    deletions: 50,
                    limit_permille: 100,
                },
            }),
        ),
        (
            "AbsencesObserved",
            operator(Event::AbsencesObserved {
                integration: integration(),
                run,
                absent: vec![
                    Absent::User(user()),
                    Absent::Group(group()),
                    Absent::Membership {
                        group: group(),
                        member: Member::User(user()),
                    },
                ],
            }),
        ),
        (
            "UserDeactivated.IdpUserChanged",
            Envelope {
                source: Source::Integration {
                    integration: integration(),
                    run,
                },
                cause: Cause::IdpUserChanged {
                    at: Timestamp(1_772_441_999_123_000),
                },
                event: Event::UserDeactivated { user: user() },
            },
        ),
        (
            "MembersRemoved.IdpObjectChanged",
            Envelope {
                source: Source::Integration {
                    integration: integration(),
                    run,
                },
                cause: Cause::IdpObjectChanged {
                    object: "00g1".to_owned(),
                    at: Timestamp(1_772_441_999_123_000),
                },
                event: Event::MembersRemoved {
                    group: group(),
                    members: vec![Member::User(user())],
                },
            },
        ),
        (
            "RevocationAcknowledged",
            operator(Event::RevocationAcknowledged {
                user: user(),
                seq: idpsync_storage::Seq(42),
                index: 3,
                resource: ResourceRef {
                    kind: ResourceKind::Route,
                    id: ResourceId::new("route-1").unwrap(),
                },
                role: BindingRole::Member,
                via: group(),
            }),
        ),
    ]
}

fn variant_index(event: &Event) -> usize {
    match event {
        Event::UserProvisioned { .. } => 0,
        Event::UserUpdated { .. } => 1,
        Event::UserDeactivated { .. } => 2,
        Event::UserReactivated { .. } => 3,
        Event::UserDeleted { .. } => 4,
        Event::GroupCreated { .. } => 5,
        Event::GroupRenamed { .. } => 6,
        Event::GroupExternalIdChanged { .. } => 7,
        Event::GroupDeleted { .. } => 8,
        Event::MembersAdded { .. } => 9,
        Event::MembersRemoved { .. } => 10,
        Event::BindingSet { .. } => 11,
        Event::BindingRemoved { .. } => 12,
        Event::ReconcileHeld { .. } => 13,
        Event::UserErased { .. } => 14,
        Event::UserErasedWithLookup { .. } => 15,
        Event::AbsencesObserved { .. } => 16,
        Event::RevocationAcknowledged { .. } => 17,
    }
}

const VARIANT_COUNT: usize = 18;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/events.txt")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn read_golden() -> BTreeMap<String, String> {
    std::fs::read_to_string(golden_path())
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (name, bytes) = line.split_once(' ').expect("`name hex` lines");
            (name.to_owned(), bytes.trim().to_owned())
        })
        .collect()
}

#[test]
fn every_variant_has_a_sample() {
    let covered: std::collections::BTreeSet<usize> = samples().iter().map(|(_, e)| variant_index(&e.event)).collect();
    assert_eq!(covered.len(), VARIANT_COUNT);
}

#[test]
fn golden_bytes_decode_forever() {
    let mut golden = read_golden();
    let bless = std::env::var_os("IDPSYNC_BLESS").is_some();
    let mut missing = Vec::new();
    for (name, envelope) in samples() {
        let encoded = encode(&envelope);
        match golden.get(name) {
            Some(stored) => {
                let stored_bytes = unhex(stored);
                assert_eq!(
                    decode(ENVELOPE_VERSION, &stored_bytes).unwrap(),
                    envelope,
                    "{name}: golden bytes decode differently"
                );
                assert_eq!(
                    hex(&encoded),
                    *stored,
                    "{name}: the encoding changed; existing events would not round-trip"
                );
            }
            None if bless => {
                golden.insert(name.to_owned(), hex(&encoded));
            }
            None => missing.push(name),
        }
    }
    assert!(
        missing.is_empty(),
        "no golden bytes for {missing:?}: run with IDPSYNC_BLESS=1 and commit the file"
    );
    if bless {
        let mut text = String::from("# Golden bytes of every event variant, envelope version 1. Never edit a line.\n");
        for (name, bytes) in &golden {
            text.push_str(&format!("{name} {bytes}\n"));
        }
        std::fs::write(golden_path(), text).unwrap();
    }
}

#[test]
fn unknown_versions_and_garbage_are_errors() {
    let (_, envelope) = &samples()[0];
    let bytes = encode(envelope);
    assert!(decode(idpsync_storage::SchemaVersion(2), &bytes).is_err());
    assert!(decode(ENVELOPE_VERSION, &bytes[..bytes.len() / 2]).is_err());
    assert!(decode(ENVELOPE_VERSION, &[0xff; 16]).is_err());
}
