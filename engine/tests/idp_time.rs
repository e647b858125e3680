//! The IdP's own time of a change: a sync whose listing dates its removals (a deletion feed's
//! entries) writes those times into the events it makes, sealed users' included; a leaver's
//! chain starts at the IdP's change, with the latency from it to the run that read it; the
//! leavers' report ranks the slowest offboardings from there; a change the IdP did not date
//! has no such time.

use std::collections::BTreeMap;
use std::sync::Arc;

use idpsync_engine::audit::{AuditSources, BindingLog, StepKind, audit_user, leavers_report};
use idpsync_engine::ids::{IntegrationName, Member, ResourceId, SyncRunId, UserId};
use idpsync_engine::model::{BindingGroups, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::reconcile::{
    ExternalMember, Guard, Listing, ListingScope, Membership, ScopeRules, SnapshotGroup, SnapshotUser, SyncInput,
};
use idpsync_engine::{Cause, ChangeId, Command, Engine, Event, Origin, Source, Tenant, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, TenantId, Timestamp};

fn okta() -> IntegrationName {
    IntegrationName::new("okta").unwrap()
}

fn operator() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "dave"];

/// A complete listing: everyone in group `vpn`.
fn directory() -> Listing {
    let mut listing = Listing::new(ListingScope::Complete);
    listing.add_group(SnapshotGroup {
        external_id: "vpn".into(),
        display_name: "VPN".into(),
    });
    for name in PEOPLE {
        listing.add_user(SnapshotUser {
            external_id: name.into(),
            active: true,
            profile: UserProfile {
                user_name: format!("{name}@example.com"),
                ..UserProfile::default()
            },
        });
        listing.add_member("vpn", ExternalMember::User(name.into()));
    }
    listing
}

async fn sync(tenant: &Tenant, listing: Listing) {
    let input = SyncInput {
        integration: okta(),
        run: SyncRunId::new(),
        listing,
        rules: ScopeRules::default(),
    };
    tenant.reconcile(input, Guard::Confirmed).await.unwrap();
}

async fn open() -> (Engine, Arc<Tenant>) {
    let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
    let engine = Engine::open(store, TenantSettings::default()).await.unwrap();
    let tenant = engine.require_tenant(&TenantId::default_tenant()).unwrap();
    sync(&tenant, directory()).await;
    let vpn = tenant.state().owned_group(&okta(), "vpn").unwrap();
    let command = Command::SetBinding {
        resource: ResourceRef {
            kind: ResourceKind::Route,
            id: ResourceId::new("office").unwrap(),
        },
        groups: BindingGroups::Groups(vec![vpn]),
    };
    tenant.execute(command, operator()).await.unwrap();
    (engine, tenant)
}

fn id(tenant: &Tenant, external_id: &str) -> UserId {
    tenant.state().owned_user(&okta(), external_id).unwrap()
}

fn minutes_ago(minutes: i64) -> Timestamp {
    Timestamp(Timestamp::now().0 - minutes * 60_000_000)
}

/// The audit of `user`, as the CLI makes it.
async fn audit(tenant: &Tenant, user: UserId) -> idpsync_engine::audit::UserAudit {
    let mut bindings = BindingLog::default();
    bindings.catch_up(tenant).await.unwrap();
    let names = BTreeMap::new();
    let sources = AuditSources {
        bindings: &bindings,
        token_names: &names,
    };
    audit_user(tenant, user, &sources).await.unwrap()
}

/// Acknowledges the one revocation of the user's leave.
async fn acknowledge_leave(tenant: &Arc<Tenant>, user: UserId) {
    let leave = audit(tenant, user).await.leave.unwrap();
    let change = ChangeId {
        seq: leave.seq,
        index: 1,
    };
    tenant.acknowledge(change, operator()).await.unwrap();
}

#[tokio::test]
async fn a_feed_dated_deletion_starts_the_leaver_s_chain_at_the_idp_s_change() {
    let (engine, tenant) = open().await;
    let (alice, bob) = (id(&tenant, "alice"), id(&tenant, "bob"));

    // The feed: alice deleted 10 minutes ago, bob taken out of `vpn` 3 minutes ago.
    let deleted_at = minutes_ago(10);
    let left_at = minutes_ago(3);
    let mut feed = Listing::new(ListingScope::Incremental);
    feed.removed_user("alice".into());
    feed.idp_times().user("alice", deleted_at);
    feed.delta_edge("vpn", ExternalMember::User("bob".into()), false);
    feed.idp_times().left(
        Membership {
            group: "vpn".into(),
            member: ExternalMember::User("bob".into()),
        },
        left_at,
    );
    sync(&tenant, feed).await;

    // The log has the IdP's times; the user's event has it without the IdP's id (sealed).
    let causes: Vec<(Event, Cause)> = tenant
        .timeline(Member::User(bob))
        .await
        .unwrap()
        .into_iter()
        .chain(tenant.timeline(Member::User(alice)).await.unwrap())
        .map(|entry| (entry.event.envelope.event, entry.event.envelope.cause))
        .collect();
    assert!(causes.iter().any(
        |(event, cause)| matches!(event, Event::UserDeleted { user } if *user == alice)
            && *cause == Cause::IdpUserChanged { at: deleted_at }
    ));
    assert!(causes.iter().any(
        |(event, cause)| matches!(event, Event::MembersRemoved { members, .. } if members == &[Member::User(bob)])
            && *cause
                == Cause::IdpObjectChanged {
                    object: "vpn".into(),
                    at: left_at
                }
    ));

    acknowledge_leave(&tenant, alice).await;
    let audit_alice = audit(&tenant, alice).await;
    let chain = audit_alice.offboarding.unwrap();
    assert_eq!(chain.idp_changed_at, Some(deleted_at));
    assert_eq!(
        audit_alice.leave.as_ref().unwrap().door.idp_changed_at(),
        Some(deleted_at)
    );
    let received = chain.received_at.unwrap();
    assert_eq!(chain.to_receive_us(), Some(received.0 - deleted_at.0));
    // The run's time is its id's, to the millisecond.
    assert!(chain.to_receive_us().unwrap() >= 10 * 60_000_000 - 1_000, "{chain:?}");
    assert_eq!(
        chain.total_us(),
        Some(chain.acknowledged_at.unwrap().0 - deleted_at.0),
        "the whole offboarding runs from the IdP's change"
    );
    assert_eq!(
        chain.to_receive_us().unwrap()
            + chain.to_record_us().unwrap()
            + chain.to_revoke_us().unwrap()
            + chain.to_acknowledge_us().unwrap(),
        chain.total_us().unwrap()
    );

    // Bob's membership ended at the IdP's time of the removal.
    let audit_bob = audit(&tenant, bob).await;
    let left = audit_bob
        .steps
        .iter()
        .find(|step| matches!(step.kind, StepKind::Left { .. }))
        .unwrap();
    assert_eq!(left.door.idp_changed_at(), Some(left_at));
    engine.shutdown().await;
}

#[tokio::test]
async fn changes_the_idp_did_not_date_have_no_idp_time_and_the_slowest_rank_from_the_idp_s_change() {
    let (engine, tenant) = open().await;
    let (carol, dave) = (id(&tenant, "carol"), id(&tenant, "dave"));

    // Carol leaves first, by a change the IdP does not date (a SCIM-like deactivation).
    tenant
        .execute(
            Command::SetUserActive {
                user: carol,
                active: false,
            },
            operator(),
        )
        .await
        .unwrap();
    // Dave leaves later, by a feed that says he was deleted an hour ago.
    let mut feed = Listing::new(ListingScope::Incremental);
    feed.removed_user("dave".into());
    feed.idp_times().user("dave", minutes_ago(60));
    sync(&tenant, feed).await;
    // Dave's revocation is acknowledged first, carol's last: from when each reached IdP-Sync,
    // carol's offboarding is the longer one; from the IdP's change, dave's is.
    acknowledge_leave(&tenant, dave).await;
    acknowledge_leave(&tenant, carol).await;

    let audit_carol = audit(&tenant, carol).await;
    assert_eq!(audit_carol.offboarding.unwrap().idp_changed_at, None);
    assert_eq!(audit_carol.offboarding.unwrap().to_receive_us(), None);

    let report = leavers_report(&tenant, Timestamp(0), &BTreeMap::new()).await.unwrap();
    let slowest: Vec<UserId> = report.slowest.iter().map(|slow| slow.user).collect();
    assert_eq!(slowest, [dave, carol]);
    assert!(report.slowest[0].offboarding.total_us().unwrap() >= 60 * 60_000_000);
    engine.shutdown().await;
}

#[tokio::test]
async fn removals_from_one_group_keep_each_its_own_idp_time() {
    let (engine, tenant) = open().await;
    let head = tenant.state().seq();
    let (earlier, later) = (minutes_ago(5), minutes_ago(2));
    let mut feed = Listing::new(ListingScope::Incremental);
    for (name, at) in [
        ("alice", Some(earlier)),
        ("bob", Some(later)),
        ("carol", Some(earlier)),
        ("dave", None),
    ] {
        feed.delta_edge("vpn", ExternalMember::User(name.into()), false);
        if let Some(at) = at {
            let edge = Membership {
                group: "vpn".into(),
                member: ExternalMember::User(name.into()),
            };
            feed.idp_times().left(edge, at);
        }
    }
    sync(&tenant, feed).await;
    let mut entries = BTreeMap::new();
    for name in PEOPLE {
        for entry in tenant.timeline(Member::User(id(&tenant, name))).await.unwrap() {
            entries.insert(entry.event.seq, entry);
        }
    }
    let mut removals: Vec<(Option<Timestamp>, Vec<Member>)> = entries
        .into_values()
        .filter(|entry| entry.event.seq > head)
        .map(|entry| match entry.event.envelope.event {
            Event::MembersRemoved { mut members, .. } => {
                members.sort();
                (entry.event.envelope.cause.idp_changed_at(), members)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    removals.sort();
    let mut alice_carol = vec![Member::User(id(&tenant, "alice")), Member::User(id(&tenant, "carol"))];
    alice_carol.sort();
    assert_eq!(
        removals,
        [
            (None, vec![Member::User(id(&tenant, "dave"))]),
            (Some(earlier), alice_carol),
            (Some(later), vec![Member::User(id(&tenant, "bob"))]),
        ]
    );
    engine.shutdown().await;
}
