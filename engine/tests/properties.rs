//! Property tests through the real writer (on an in-memory log): for random command sequences,
//! (a) folding the stored log from scratch gives the live state;
//! (b) `state_at(n)` equals folding the first n records;
//! (d) the access changes of the whole log add up to the difference in effective access between
//!     the first and the last state, and the change stream replays them exactly;
//! (e) the leavers' report, read from the log alone, names every user who left in its period and
//!     gives each the chain that user's own audit (through the history index) gives.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use idpsync_engine::access::{Grant, effective_users, grants};
use idpsync_engine::audit::{AuditSources, BindingLog, audit_user, leavers_report};
use idpsync_engine::ids::{GroupId, Member, ResourceId, UserId};
use idpsync_engine::model::{BindingGroups, Owner, ResourceKind, ResourceRef, UserProfile};
use idpsync_engine::replay::replay;
use idpsync_engine::replay::replay_recording;
use idpsync_engine::seal::Keyring;
use idpsync_engine::state::encode_snapshot;
use idpsync_engine::{AccessDirection, Cause, Command, Engine, Event, History, Origin, Source, State, TenantSettings};
use idpsync_storage::{LogStore, MemoryStore, Seq, TenantId, Timestamp};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Provision(u8),
    SetActive(u8, bool),
    DeleteUser(u8),
    CreateGroup(u8),
    Rename(u8, u8),
    DeleteGroup(u8),
    AddUser(u8, u8),
    AddGroup(u8, u8),
    Remove(u8, u8),
    Bind(u8, Vec<u8>),
    Unbind(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<u8>().prop_map(Op::Provision),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(u, a)| Op::SetActive(u, a)),
        1 => any::<u8>().prop_map(Op::DeleteUser),
        2 => any::<u8>().prop_map(Op::CreateGroup),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(g, n)| Op::Rename(g, n)),
        1 => any::<u8>().prop_map(Op::DeleteGroup),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(g, u)| Op::AddUser(g, u)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(g, h)| Op::AddGroup(g, h)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(g, m)| Op::Remove(g, m)),
        2 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 1..3)).prop_map(|(r, g)| Op::Bind(r, g)),
        1 => any::<u8>().prop_map(Op::Unbind),
    ]
}

fn pick<T: Copy>(items: &[T], index: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[index as usize % items.len()])
}

fn resource(index: u8) -> ResourceRef {
    let kind = ResourceKind::ALL[index as usize % ResourceKind::ALL.len()];
    ResourceRef {
        kind,
        id: ResourceId::new(&format!("r{}", index % 4)).unwrap(),
    }
}

/// Turns an op into a command against the current state; `None` if it names nothing.
fn command(state: &State, op: &Op) -> Option<Command> {
    let users: Vec<UserId> = state.users().map(|u| u.id).collect();
    let groups: Vec<GroupId> = state.groups().map(|g| g.id).collect();
    Some(match op {
        Op::Provision(n) => Command::ProvisionUser {
            owner: Owner::Scim,
            external_id: None,
            active: true,
            profile: UserProfile {
                user_name: format!("user{}", n % 16),
                ..UserProfile::default()
            },
        },
        Op::SetActive(u, active) => Command::SetUserActive {
            user: pick(&users, *u)?,
            active: *active,
        },
        Op::DeleteUser(u) => Command::DeleteUser {
            user: pick(&users, *u)?,
            expected_version: None,
        },
        Op::CreateGroup(n) => Command::CreateGroup {
            owner: Owner::Scim,
            external_id: None,
            display_name: format!("group{n}"),
            members: vec![],
        },
        Op::Rename(g, n) => Command::UpdateGroup {
            group: pick(&groups, *g)?,
            expected_version: None,
            display_name: format!("renamed{n}"),
            external_id: None,
        },
        Op::DeleteGroup(g) => Command::DeleteGroup {
            group: pick(&groups, *g)?,
            expected_version: None,
        },
        Op::AddUser(g, u) => Command::AddMembers {
            group: pick(&groups, *g)?,
            members: vec![Member::User(pick(&users, *u)?)],
        },
        Op::AddGroup(g, h) => Command::AddMembers {
            group: pick(&groups, *g)?,
            members: vec![Member::Group(pick(&groups, *h)?)],
        },
        Op::Remove(g, m) => {
            let group = pick(&groups, *g)?;
            let members: Vec<Member> = state.direct_members(group).collect();
            Command::RemoveMembers {
                group,
                members: vec![pick(&members, *m)?],
            }
        }
        Op::Bind(r, gs) => {
            let resource = resource(*r);
            let chosen: Vec<GroupId> = gs.iter().filter_map(|g| pick(&groups, *g)).collect();
            let groups = if resource.kind == ResourceKind::Policy {
                BindingGroups::Policy {
                    sources: chosen.clone(),
                    destinations: chosen.into_iter().take(1).collect(),
                }
            } else {
                BindingGroups::Groups(chosen)
            };
            Command::SetBinding { resource, groups }
        }
        Op::Unbind(r) => Command::RemoveBinding { resource: resource(*r) },
    })
}

fn all_grants(state: &State) -> BTreeSet<(UserId, Grant)> {
    state
        .users()
        .flat_map(|user| grants(state, user.id).into_iter().map(move |grant| (user.id, grant)))
        .collect()
}

async fn fold_prefix(store: &Arc<dyn LogStore>, tenant: &TenantId, to: Seq) -> State {
    let keyring = Keyring::load(&**store, tenant).await.unwrap();
    let mut state = State::new();
    replay(store, tenant, &keyring, &mut state, to).await.unwrap();
    state
}

/// The member-to-groups index agrees with the groups' member sets, for every user and group.
fn assert_groups_of_agrees(state: &State) {
    let mut expected: std::collections::BTreeMap<Member, Vec<GroupId>> = Default::default();
    for group in state.groups() {
        for member in state.direct_members(group.id) {
            expected.entry(member).or_default().push(group.id);
        }
    }
    let members = state
        .users()
        .map(|user| Member::User(user.id))
        .chain(state.groups().map(|group| Member::Group(group.id)));
    for member in members {
        let found: Vec<GroupId> = state.groups_of(member).collect();
        assert_eq!(
            found,
            expected.remove(&member).unwrap_or_default(),
            "groups of {member:?}"
        );
    }
    assert!(expected.is_empty(), "members that do not exist: {expected:?}");
}

fn canonical(state: &State) -> Vec<u8> {
    encode_snapshot(state, &History::new())
}

fn settings() -> TenantSettings {
    TenantSettings {
        snapshot_every: 7,
        checkpoint_every: 5,
        checkpoints_max: 2,
        recent_max: 3,
        ..TenantSettings::default()
    }
}

fn run(ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store: Arc<dyn LogStore> = Arc::new(MemoryStore::new());
        let engine = Engine::open(Arc::clone(&store), settings()).await.unwrap();
        let id = TenantId::default_tenant();
        let tenant = engine.require_tenant(&id).unwrap();
        let mut live = tenant.subscribe(Seq(1));
        let origin = Origin {
            source: Source::Operator,
            cause: Cause::Unspecified,
        };
        for op in &ops {
            if let Some(command) = command(&tenant.state(), op) {
                // Rejections are part of the game: they must write nothing.
                let head = tenant.state().seq();
                if tenant.execute(command, origin.clone()).await.is_err() {
                    assert_eq!(tenant.state().seq(), head);
                }
            }
        }
        let state = tenant.state();
        let head = state.seq();

        // (a) folding the log from scratch gives the live state and history index.
        let mut refolded = State::new();
        let mut reindexed = History::new();
        replay_recording(
            &store,
            &id,
            tenant.keyring().as_ref(),
            &mut refolded,
            &mut reindexed,
            head,
        )
        .await
        .unwrap();
        let live_bytes = tenant.with_history(|history, _| encode_snapshot(&state, history)).await;
        assert_eq!(
            encode_snapshot(&refolded, &reindexed),
            live_bytes,
            "refold differs from the live state"
        );

        // (b) state_at(n) equals folding the first n records, and the history index answers
        // as that state does.
        for n in 0..=head.0 {
            let at = tenant.state_at(Seq(n)).await.unwrap();
            let folded = fold_prefix(&store, &id, Seq(n)).await;
            assert_eq!(canonical(&at), canonical(&folded), "state_at({n}) differs");
            assert_groups_of_agrees(&at);
            tenant
                .with_history(|history, _| {
                    for group in at.groups() {
                        let from_state: BTreeSet<Member> = at.direct_members(group.id).collect();
                        assert_eq!(
                            history.direct_members_at(group.id, Seq(n)),
                            from_state,
                            "members of {} at {n}",
                            group.id
                        );
                        assert_eq!(
                            history.effective_users_at(group.id, Seq(n)),
                            effective_users(&at, group.id)
                        );
                    }
                })
                .await;
        }

        // (d) access changes add up; the live stream and a replay from the log agree.
        let mut held: BTreeSet<(UserId, Grant)> = BTreeSet::new();
        let mut live_changes = Vec::new();
        for _ in 0..head.0 {
            let applied = live.next().await.unwrap();
            for change in &applied.access {
                let key = (
                    change.user,
                    Grant {
                        resource: change.resource.clone(),
                        role: change.role,
                        via: change.via,
                    },
                );
                match change.direction {
                    AccessDirection::Granted => assert!(held.insert(key), "granted twice: {change:?}"),
                    AccessDirection::Revoked => assert!(held.remove(&key), "revoked without a grant: {change:?}"),
                }
            }
            live_changes.extend(applied.access.clone());
        }
        assert_eq!(held, all_grants(&state));
        let mut replayed = tenant.subscribe(Seq(1));
        let mut replayed_changes = Vec::new();
        for expected in 1..=head.0 {
            let applied = replayed.next().await.unwrap();
            assert_eq!(applied.event.seq, Seq(expected));
            replayed_changes.extend(applied.access.clone());
        }
        assert_eq!(replayed_changes, live_changes);

        // (e) the leavers' report against each leaver's own audit, over the whole log and over
        // its second half.
        let mut bindings = BindingLog::default();
        bindings.catch_up(&tenant).await.unwrap();
        let names = BTreeMap::new();
        let sources = AuditSources {
            bindings: &bindings,
            token_names: &names,
        };
        let mut records = Vec::new();
        let mut pages = tenant.events(Seq(1)..=head);
        while let Some(page) = pages.next_page().await.unwrap() {
            records.extend(page.into_iter().map(|(event, _)| event));
        }
        let middle = records
            .get(records.len() / 2)
            .map_or(Timestamp(0), |event| event.recorded_at);
        for since in [Timestamp(0), middle] {
            let report = leavers_report(&tenant, since, &names).await.unwrap();
            let mut expected = Vec::new();
            for event in records.iter().filter(|event| event.recorded_at >= since) {
                if let Event::UserDeactivated { user } | Event::UserDeleted { user } = event.envelope.event
                    && !expected.contains(&user)
                {
                    expected.push(user);
                }
            }
            let reported: Vec<UserId> = report.leavers.iter().map(|leaver| leaver.user).collect();
            assert_eq!(reported, expected, "the leavers since {since:?}");
            for leaver in &report.leavers {
                let audit = audit_user(&tenant, leaver.user, &sources).await.unwrap();
                assert_eq!(leaver.user_name, audit.user_name);
                assert_eq!(leaver.standing, audit.standing);
                assert_eq!(leaver.revoked, audit.revocations().count());
                assert_eq!(leaver.time_to_revoke_us, audit.time_to_revoke_us);
                assert_eq!(leaver.offboarding, audit.offboarding);
                assert_eq!(format!("{:?}", leaver.still_holds), format!("{:?}", audit.still_holds));
                let step = audit
                    .steps
                    .iter()
                    .find(|step| step.seq == leaver.seq)
                    .expect("the leave is a step");
                assert_eq!(leaver.door, step.door);
            }
        }

        // Reopening (latest snapshot + tail) gives the same state and index again.
        engine.shutdown().await;
        let reopened = Engine::open(Arc::clone(&store), settings()).await.unwrap();
        let again = reopened.require_tenant(&id).unwrap();
        assert_groups_of_agrees(&again.state());
        assert_eq!(
            again
                .with_history(|history, _| encode_snapshot(&again.state(), history))
                .await,
            live_bytes
        );
        reopened.shutdown().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_the_state_and_the_access_stream_agree(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
