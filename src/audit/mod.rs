//! The offboarding audit: for a user, the chain from the IdP's deactivation or deletion through
//! the events it caused to every access it revoked, with times, latencies and the log
//! positions (`seq` and chain link) that prove each step; and a report over all leavers of a
//! period.
//!
//! # How a user's chain is found without replaying the log
//! A user's grants depend only on its own events (active or not), the groups it is in,
//! directly or through nesting, and the bindings of those groups. The history index names the
//! events that touched the user and each group ([`idpsync_engine::Tenant::timeline`]); the
//! binding changes come from [`scan::BindingLog`]. Folding just those events into an empty
//! state and running the engine's projector on each gives exactly the access changes the
//! writer computed for this user, at the same `seq`s: the fold ignores what the events say
//! about anything else, and the projector is a function of the state before and after.
//!
//! # Latency
//! Each step caused by the IdP says when the IdP's change reached IdP-Sync: the SCIM request's
//! id and a sync run's id are UUID v7, stamped when the request arrived and when the run
//! started. A revocation's latency is from that moment to the record that revoked the access.
//!
//! # Layout
//! - this file: [`UserAudit`] and [`audit_user`];
//! - [`report`]: the leavers of a period; [`scan`]: reading stretches of the log;
//! - [`text`], [`html`]: the renderings (JSON is `serde`'s).

pub mod html;
pub mod report;
pub mod scan;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use idpsync_engine::event::{Cause, Event, LoggedEvent, Source};
use idpsync_engine::ids::{GroupId, Member, RequestId, SyncRunId, TokenId, UserId};
use idpsync_engine::model::BindingRole;
use idpsync_engine::{AccessDirection, EngineError, State, Tenant, projector};
use idpsync_storage::{Hash32, LogStore, Seq, TenantId, Timestamp};
use serde::Serialize;

pub use scan::{BindingLog, BindingLogs};

/// How an audit is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text for a terminal.
    Text,
    /// JSON for machines.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// Which door a step came through, and what exactly caused it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "door", rename_all = "lowercase", rename_all_fields = "camelCase")]
pub enum Door {
    /// A SCIM request.
    Scim {
        /// The token's id.
        token: TokenId,
        /// The token's name, when the token store still has it.
        #[serde(skip_serializing_if = "Option::is_none")]
        token_name: Option<String>,
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<RequestId>,
    },
    /// A sync run of an integration.
    Integration {
        /// The integration.
        integration: String,
        /// The run.
        run: SyncRunId,
        /// The IdP's id of the object the step is about.
        #[serde(skip_serializing_if = "Option::is_none")]
        idp_object: Option<String>,
    },
    /// The management API.
    Admin {
        /// The admin token's id.
        token: TokenId,
        /// The token's name.
        #[serde(skip_serializing_if = "Option::is_none")]
        token_name: Option<String>,
        /// The request's id.
        #[serde(skip_serializing_if = "Option::is_none")]
        request: Option<RequestId>,
    },
    /// An operator on the command line.
    Operator,
    /// The synthetic workload.
    Workload,
}

impl Door {
    fn of(event: &LoggedEvent, token_names: &BTreeMap<TokenId, String>) -> Door {
        let request = match &event.envelope.cause {
            Cause::Request(id) => Some(*id),
            _ => None,
        };
        match &event.envelope.source {
            Source::Scim { token } => Door::Scim {
                token: *token,
                token_name: token_names.get(token).cloned(),
                request,
            },
            Source::Integration { integration, run } => Door::Integration {
                integration: integration.to_string(),
                run: *run,
                idp_object: match &event.envelope.cause {
                    Cause::IdpObject(id) => Some(id.clone()),
                    _ => None,
                },
            },
            Source::Admin { token } => Door::Admin {
                token: *token,
                token_name: token_names.get(token).cloned(),
                request,
            },
            Source::Operator => Door::Operator,
            Source::Workload => Door::Workload,
        }
    }

    /// When the change reached IdP-Sync: the time in the UUID v7 of the SCIM or API request,
    /// or of the sync run (which started reading the IdP then).
    pub fn received_at(&self) -> Option<Timestamp> {
        let uuid = match self {
            Door::Scim { request: Some(id), .. } | Door::Admin { request: Some(id), .. } => id.0,
            Door::Integration { run, .. } => run.0,
            _ => return None,
        };
        let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
        Some(Timestamp(seconds as i64 * 1_000_000 + i64::from(nanos / 1_000)))
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Door::Scim {
                token,
                token_name,
                request,
            } => format!(
                "SCIM, token {}{}",
                named(token, token_name.as_deref()),
                request.map(|r| format!(", request {r}")).unwrap_or_default()
            ),
            Door::Integration {
                integration,
                run,
                idp_object,
            } => format!(
                "integration {integration}, sync run {run}{}",
                idp_object
                    .as_deref()
                    .map(|o| format!(", IdP object {o}"))
                    .unwrap_or_default()
            ),
            Door::Admin {
                token,
                token_name,
                request,
            } => format!(
                "management API, admin token {}{}",
                named(token, token_name.as_deref()),
                request.map(|r| format!(", request {r}")).unwrap_or_default()
            ),
            Door::Operator => "operator (command line)".to_owned(),
            Door::Workload => "synthetic workload".to_owned(),
        }
    }
}

fn named(token: &TokenId, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} ({token})"),
        None => token.to_string(),
    }
}

/// What happened at one step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum StepKind {
    /// The user was provisioned.
    Provisioned,
    /// The user was deactivated (the IdP's leave, usually).
    Deactivated,
    /// The user was activated again.
    Reactivated,
    /// The user was deleted.
    Deleted,
    /// The user's personal fields were erased.
    Erased,
    /// The user joined a group directly.
    Joined {
        /// The group.
        group: GroupId,
        /// Its name then.
        group_name: String,
    },
    /// The user's direct membership ended.
    Left {
        /// The group.
        group: GroupId,
        /// Its name then.
        group_name: String,
        /// Why: `removed`, `group deleted`, `user deleted`.
        how: &'static str,
    },
    /// Access began or ended.
    Access {
        /// Granted or revoked.
        direction: AccessDirection,
        /// The resource's kind.
        resource_kind: &'static str,
        /// The resource's id.
        resource_id: String,
        /// The group's role in the resource.
        role: &'static str,
        /// The bound group the access came through.
        via: GroupId,
        /// Its name then.
        via_name: String,
    },
}

/// One step of a user's chain, with the proof of its place in the log.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The record.
    pub seq: Seq,
    /// When it was recorded.
    #[serde(serialize_with = "as_rfc3339")]
    pub recorded_at: Timestamp,
    /// Its chain link.
    #[serde(serialize_with = "as_hex")]
    pub chain: Hash32,
    /// What happened.
    #[serde(flatten)]
    pub kind: StepKind,
    /// Where it came from.
    pub door: Door,
    /// For access steps: microseconds from the change reaching IdP-Sync to this record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<i64>,
}

/// The user's current state, as the audit closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Active: not a leaver (or returned).
    Active,
    /// Deactivated, memberships kept, no access.
    Inactive,
    /// Deleted.
    Deleted,
}

/// A grant the user holds now.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    /// The resource's kind.
    pub resource_kind: &'static str,
    /// The resource's id.
    pub resource_id: String,
    /// The role.
    pub role: &'static str,
    /// Through which group.
    pub via: GroupId,
    /// Its name.
    pub via_name: String,
}

/// A user's offboarding audit.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAudit {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// Its userName as last known (`erased-<id>` once erased).
    pub user_name: String,
    /// Whether its personal fields are erased.
    pub erased: bool,
    /// Where it stands now.
    pub standing: Standing,
    /// The log position the audit is as of.
    pub head: Seq,
    /// When the audit was made.
    #[serde(serialize_with = "as_rfc3339")]
    pub generated_at: Timestamp,
    /// The step that took the user out: its last deactivation or deletion (none while it has
    /// never left, or came back).
    pub leave: Option<Step>,
    /// Every step, in log order.
    pub steps: Vec<Step>,
    /// Grants the user holds now. Empty for a leaver; anything here after a leave is an alarm.
    pub still_holds: Vec<Held>,
    /// Microseconds from the leave reaching IdP-Sync to the last access it took away (0 when
    /// the access was gone before); absent while the user is not a leaver or still holds
    /// access.
    pub time_to_revoke_us: Option<i64>,
}

impl UserAudit {
    /// Access steps revoked at or after the leave.
    pub fn revocations(&self) -> impl Iterator<Item = &Step> {
        let from = self.leave.as_ref().map_or(Seq(u64::MAX), |leave| leave.seq);
        self.steps.iter().filter(move |step| {
            step.seq >= from
                && matches!(
                    step.kind,
                    StepKind::Access {
                        direction: AccessDirection::Revoked,
                        ..
                    }
                )
        })
    }
}

/// Why an audit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The engine or the log failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The log has never had this user.
    #[error("tenant {tenant} has no user {user}")]
    UnknownUser {
        /// The tenant.
        tenant: TenantId,
        /// What was asked for.
        user: String,
    },
}

/// What an audit reads besides the tenant.
pub struct AuditSources<'a> {
    /// The tenant's log store.
    pub store: &'a Arc<dyn LogStore>,
    /// The tenant's binding changes, caught up with its head.
    pub bindings: &'a BindingLog,
    /// Token names by id, to name doors.
    pub token_names: &'a BTreeMap<TokenId, String>,
}

/// Every group that was ever an ancestor of `user` (directly or through nesting), and the
/// events of the user and of those groups, in log order, without repeats.
async fn relevant_events(tenant: &Tenant, user: UserId) -> Result<Vec<(LoggedEvent, Hash32)>, EngineError> {
    let mut events: BTreeMap<Seq, (LoggedEvent, Hash32)> = BTreeMap::new();
    let mut seen: BTreeSet<GroupId> = BTreeSet::new();
    let mut pending: Vec<Member> = vec![Member::User(user)];
    while let Some(member) = pending.pop() {
        for entry in tenant.timeline(member).await? {
            if let Event::MembersAdded { group, members } = &entry.event.envelope.event
                && members.contains(&member)
                && seen.insert(*group)
            {
                pending.push(Member::Group(*group));
            }
            events.entry(entry.event.seq).or_insert((entry.event, entry.chain));
        }
    }
    Ok(events.into_values().collect())
}

/// The audit of `user` in `tenant`, as of its published head.
pub async fn audit_user(tenant: &Tenant, user: UserId, sources: &AuditSources<'_>) -> Result<UserAudit, AuditError> {
    let present = tenant.state();
    let head = present.seq();
    let mut events = relevant_events(tenant, user).await?;
    if events.is_empty() {
        return Err(AuditError::UnknownUser {
            tenant: tenant.id().clone(),
            user: user.to_string(),
        });
    }
    events.extend(
        sources
            .bindings
            .events()
            .iter()
            .filter(|(event, _)| event.seq <= head)
            .cloned(),
    );
    events.sort_by_key(|(event, _)| event.seq);
    events.dedup_by_key(|(event, _)| event.seq);

    let mut state = State::new();
    let mut steps = Vec::new();
    let mut last_known: Option<Arc<idpsync_engine::model::User>> = None;
    let keyring = tenant.keyring();
    for (event, chain) in &events {
        let names_before = state.clone();
        let (effects, access) = projector::fold_and_project(&mut state, event, &**keyring);
        let door = Door::of(event, sources.token_names);
        let received = door.received_at();
        let step = |kind: StepKind, latency_us: Option<i64>| Step {
            seq: event.seq,
            recorded_at: event.recorded_at,
            chain: *chain,
            kind,
            door: door.clone(),
            latency_us,
        };
        if let Some(found) = state.user(user) {
            last_known = Some(Arc::clone(found));
        }
        let lifecycle = match &event.envelope.event {
            Event::UserProvisioned { user: who, .. } if *who == user => Some(StepKind::Provisioned),
            Event::UserDeactivated { user: who } if *who == user => Some(StepKind::Deactivated),
            Event::UserReactivated { user: who } if *who == user => Some(StepKind::Reactivated),
            Event::UserDeleted { user: who } if *who == user => Some(StepKind::Deleted),
            Event::UserErased { user: who } if *who == user => Some(StepKind::Erased),
            _ => None,
        };
        if let Some(kind) = lifecycle {
            steps.push(step(kind, None));
        }
        for (group, member, joined) in &effects.memberships {
            if *member != Member::User(user) {
                continue;
            }
            let group_name = group_name(&names_before, &state, *group);
            let kind = if *joined {
                StepKind::Joined {
                    group: *group,
                    group_name,
                }
            } else {
                let how = match &event.envelope.event {
                    Event::GroupDeleted { .. } => "group deleted",
                    Event::UserDeleted { .. } => "user deleted",
                    _ => "removed",
                };
                StepKind::Left {
                    group: *group,
                    group_name,
                    how,
                }
            };
            steps.push(step(kind, None));
        }
        for change in access.iter().filter(|change| change.user == user) {
            let latency_us = received.map(|at| (change.recorded_at.0 - at.0).max(0));
            steps.push(step(
                StepKind::Access {
                    direction: change.direction,
                    resource_kind: change.resource.kind.as_str(),
                    resource_id: change.resource.id.to_string(),
                    role: role_name(change.role),
                    via: change.via,
                    via_name: group_name(&names_before, &state, change.via),
                },
                latency_us,
            ));
        }
    }

    let current = present.user(user);
    let standing = match current {
        Some(found) if found.active => Standing::Active,
        Some(_) => Standing::Inactive,
        None => Standing::Deleted,
    };
    let known = current.or(last_known.as_ref());
    let erased = known.is_some_and(|u| u.is_erased());
    let user_name = known.map_or_else(|| user.to_string(), |u| u.profile.user_name.clone());
    let still_holds: Vec<Held> = idpsync_engine::access::grants(&present, user)
        .into_iter()
        .map(|grant| Held {
            resource_kind: grant.resource.kind.as_str(),
            resource_id: grant.resource.id.to_string(),
            role: role_name(grant.role),
            via: grant.via,
            via_name: present
                .group(grant.via)
                .map_or_else(|| grant.via.to_string(), |g| g.display_name.clone()),
        })
        .collect();
    let leave = last_leave(&steps, standing);
    let mut audit = UserAudit {
        tenant: tenant.id().clone(),
        user,
        user_name,
        erased,
        standing,
        head,
        generated_at: Timestamp::now(),
        leave,
        steps,
        still_holds,
        time_to_revoke_us: None,
    };
    audit.time_to_revoke_us = time_to_revoke(&audit);
    Ok(audit)
}

/// The last deactivation or deletion, unless the user is active again.
fn last_leave(steps: &[Step], standing: Standing) -> Option<Step> {
    if standing == Standing::Active {
        return None;
    }
    steps
        .iter()
        .rev()
        .find(|step| matches!(step.kind, StepKind::Deactivated | StepKind::Deleted))
        .cloned()
}

fn time_to_revoke(audit: &UserAudit) -> Option<i64> {
    let leave = audit.leave.as_ref()?;
    if !audit.still_holds.is_empty() {
        return None;
    }
    let received = leave.door.received_at().unwrap_or(leave.recorded_at);
    Some(
        audit
            .revocations()
            .map(|step| (step.recorded_at.0 - received.0).max(0))
            .max()
            .unwrap_or(0),
    )
}

fn role_name(role: BindingRole) -> &'static str {
    role.as_str()
}

/// A group's name at a step: after the event if it still exists, else before it.
fn group_name(before: &State, after: &State, group: GroupId) -> String {
    after
        .group(group)
        .or_else(|| before.group(group))
        .map_or_else(|| group.to_string(), |g| g.display_name.clone())
}

/// Serialises a chain link or hash as hex.
pub(crate) fn as_hex<S: serde::Serializer>(hash: &Hash32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hash.to_hex())
}

/// Serialises a timestamp as RFC 3339.
pub(crate) fn as_rfc3339<S: serde::Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339())
}

/// Formats microseconds for people: `850 µs`, `12.4 ms`, `3.2 s`, `4 min 10 s`.
pub fn duration_text(micros: i64) -> String {
    match micros {
        m if m < 1_000 => format!("{m} µs"),
        m if m < 1_000_000 => format!("{:.1} ms", m as f64 / 1_000.0),
        m if m < 60_000_000 => format!("{:.1} s", m as f64 / 1_000_000.0),
        m => format!("{} min {} s", m / 60_000_000, (m % 60_000_000) / 1_000_000),
    }
}

/// A user by id (present or past), by present userName, or, failing both, by a userName it
/// had before it was deleted: found by reading the log, the one slow path (name a deleted user
/// by its id to avoid it).
pub async fn resolve_user(tenant: &Tenant, store: &Arc<dyn LogStore>, key: &str) -> Result<UserId, AuditError> {
    if let Ok(id) = key.parse::<UserId>()
        && tenant.with_history(|history, head| !history.member_events(Member::User(id), head).is_empty())
    {
        return Ok(id);
    }
    if let Some(user) = tenant.state().user_by_name(key) {
        return Ok(user.id);
    }
    let wanted = idpsync_engine::state::fold_case(key);
    let keyring = Arc::clone(tenant.keyring());
    let named = scan::events_matching(store, tenant.id(), Seq(1), tenant.state().seq(), |event| {
        let (user, personal) = match event {
            Event::UserProvisioned { user, personal, .. } | Event::UserUpdated { user, personal, .. } => {
                (user, personal)
            }
            _ => return false,
        };
        use idpsync_engine::seal::Opener as _;
        keyring
            .open(*user, personal)
            .is_some_and(|profile| idpsync_engine::state::fold_case(&profile.user_name) == wanted)
    })
    .await?;
    match named.last().map(|(event, _)| &event.envelope.event) {
        Some(Event::UserProvisioned { user, .. } | Event::UserUpdated { user, .. }) => Ok(*user),
        _ => Err(AuditError::UnknownUser {
            tenant: tenant.id().clone(),
            user: key.to_owned(),
        }),
    }
}
