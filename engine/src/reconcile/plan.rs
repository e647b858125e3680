//! The plan: a [`DirectorySnapshot`] against the state becomes the fewest events that make what
//! the integration owns match it, and the report of what they do. The same snapshot twice plans
//! nothing the second time. Pure: the state is read, never changed; ids come from `new_id`.
//!
//! In order: removals (what a complete snapshot no longer lists, or what a delta says is gone),
//! then users, then groups, then memberships; last, the guard judges the whole plan, with what
//! the integration's recent runs removed. What a complete snapshot no longer lists is removed
//! only once its absence takes effect under the snapshot's [`AbsenceRules`]; until then it is
//! pending, reported, and recorded by one [`Event::AbsencesObserved`] (see [`crate::absence`]),
//! and the guard does not count it.
//!
//! A removal the IdP dated (the snapshot's [`IdpTimes`]: a user's deactivation or deletion, a
//! group's deletion, a membership's removal) is caused by [`Cause::IdpObjectChanged`] with
//! that time, so that the chain of a leaver starts at the IdP's change; membership removals
//! of one group go in one event per time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use uuid::Uuid;

use super::guard::{self, Guard, GuardCount, RecentRemovals, Removals};
use super::idp_times::IdpTimes;
use super::policy::{MissingUsers, ReconcilePolicy};
use super::report::{AbsentLine, ChangeLine, ReconcileReport};
use super::snapshot::{DirectorySnapshot, ExternalMember, ListedUser, Membership, SnapshotGroup, SnapshotScope};
use crate::absence::{Absence, AbsenceRules, Absent};
use crate::event::{Cause, Envelope, Event, HoldSummary, Personal, Source};
use crate::ids::{GroupId, IntegrationName, Member, Timestamp, UserId};
use crate::model::Owner;
use crate::roles;
use crate::speculate::apply_speculatively;
use crate::state::State;
use crate::validate::{validate_display_name, validate_profile};

/// What reconciling a snapshot would do.
#[derive(Clone, Debug)]
pub(crate) enum Plan {
    /// Apply these events; the report says what they do.
    Apply {
        /// The events, in order; none when the integration is already in step.
        events: Vec<Envelope>,
        /// What they do.
        report: ReconcileReport,
    },
    /// The guard holds the snapshot: nothing of it may be applied.
    Hold {
        /// Why, as the hold's event records it.
        summary: HoldSummary,
        /// What it would do; its `held` is `summary`.
        report: ReconcileReport,
    },
}

impl Plan {
    /// What the plan does or would do.
    pub(crate) fn into_report(self) -> ReconcileReport {
        match self {
            Plan::Apply { report, .. } | Plan::Hold { report, .. } => report,
        }
    }
}

struct Planner<'s> {
    scratch: State,
    source: Source,
    events: Vec<Envelope>,
    report: ReconcileReport,
    /// Whom the events take access from, for the guard.
    removals: Removals,
    integration: &'s IntegrationName,
    /// When the IdP says the snapshot's changes happened, where it says so.
    times: &'s IdpTimes,
    /// For a complete snapshot, when what it no longer lists takes effect; `None` for a delta,
    /// whose removals are the IdP's own word and take effect at once.
    absence: Option<Witnesses<'s>>,
}

/// What a complete snapshot's absences are judged with.
struct Witnesses<'s> {
    rules: AbsenceRules,
    /// What the integration had pending before this run.
    prior: Option<&'s BTreeMap<Absent, Absence>>,
    now: Timestamp,
    /// What stays pending after it.
    pending: Vec<Absent>,
}

impl Planner<'_> {
    fn emit(&mut self, object: &str, label: String, action: &'static str, event: Event) {
        self.emit_dated(object, None, label, action, event);
    }

    /// [`Planner::emit`] for a change the IdP dated (`at`, where it did).
    fn emit_dated(&mut self, object: &str, at: Option<Timestamp>, label: String, action: &'static str, event: Event) {
        let object = object.to_owned();
        let envelope = Envelope {
            source: self.source.clone(),
            cause: match at {
                Some(at) => Cause::IdpObjectChanged { object, at },
                None => Cause::IdpObject(object),
            },
            event,
        };
        self.removals.before(&self.scratch, &envelope.event);
        apply_speculatively(&mut self.scratch, &envelope);
        self.events.push(envelope);
        self.report.changes.push(ChangeLine { action, object: label });
    }

    fn conflict(&mut self, message: String) {
        self.report.conflicts.push(message);
    }

    /// Whether the absence of `absent` (`label` for people) takes effect in this run. One that
    /// does not yet is kept pending and reported.
    fn witnessed(&mut self, absent: Absent, kind: &'static str, label: String) -> bool {
        let Some(witnesses) = &mut self.absence else {
            return true;
        };
        let prior = witnesses.prior.and_then(|prior| prior.get(&absent));
        if witnesses.rules.takes_effect(prior, witnesses.now) {
            return true;
        }
        witnesses.pending.push(absent);
        let since = prior.map_or(witnesses.now, |absence| absence.since);
        self.report.pending.push(AbsentLine {
            kind,
            object: label,
            listings: prior.map_or(1, |absence| absence.listings.saturating_add(1)),
            needed: witnesses.rules.listings.get(),
            since,
            takes_effect_after: witnesses.rules.after.map(|after| {
                Timestamp(
                    since
                        .0
                        .saturating_add(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
                )
            }),
        });
        false
    }

    /// Creates or updates a listed user. Returns why it could not take its userName, if
    /// another user holds it: calling again once that user has moved on is safe.
    fn upsert_user(&mut self, listed: &ListedUser, new_id: &mut dyn FnMut() -> Uuid) -> Result<(), String> {
        let label = format!("{} ({})", listed.profile().user_name, listed.external_id());
        if let Err(rejection) = validate_profile(listed.profile()) {
            self.conflict(format!("user {label}: {rejection}"));
            return Ok(());
        }
        let Some(id) = self.scratch.owned_user(self.integration, listed.external_id()) else {
            if let Some(holder) = self.scratch.user_by_name(&listed.profile().user_name) {
                return Err(format!("user {label}: userName is already used by user {}", holder.id));
            }
            let user = UserId(new_id());
            let event = Event::UserProvisioned {
                user,
                owner: Owner::Integration(self.integration.clone()),
                external_id: Some(listed.external_id().to_owned()),
                active: listed.active(),
                personal: Personal::Plain(Box::new(listed.profile().clone())),
            };
            self.report.users_created += 1;
            self.emit(listed.external_id(), label, "user created", event);
            return Ok(());
        };
        let current = self.scratch.user(id).expect("owned users exist").clone();
        let mut blocked = Ok(());
        // An erased user's personal fields are never restored from the IdP; its state still is.
        if !current.is_erased() && current.profile != *listed.profile() {
            match self.scratch.user_name_taken_from(&listed.profile().user_name, &current) {
                Some(holder) => {
                    blocked = Err(format!(
                        "user {label}: cannot rename, userName is already used by user {}",
                        holder.id
                    ));
                }
                None => {
                    let event = Event::UserUpdated {
                        user: id,
                        external_id: current.external_id.clone(),
                        personal: Personal::Plain(Box::new(listed.profile().clone())),
                    };
                    self.report.users_updated += 1;
                    self.emit(listed.external_id(), label.clone(), "user updated", event);
                }
            }
        }
        match (current.active, listed.active()) {
            (true, false) => {
                self.report.users_deactivated += 1;
                self.emit_dated(
                    listed.external_id(),
                    self.times.of_user(listed.external_id()),
                    label,
                    "user deactivated",
                    Event::UserDeactivated { user: id },
                );
            }
            (false, true) => {
                self.report.users_reactivated += 1;
                self.emit(
                    listed.external_id(),
                    label,
                    "user reactivated",
                    Event::UserReactivated { user: id },
                );
            }
            _ => {}
        }
        blocked
    }

    fn remove_user(&mut self, external_id: &str, policy: MissingUsers) {
        let Some(id) = self.scratch.owned_user(self.integration, external_id) else {
            return;
        };
        let user = self.scratch.user(id).expect("owned users exist").clone();
        let label = format!("{} ({external_id})", user.profile.user_name);
        // An inactive user a deactivation would leave as it is has nothing pending either.
        let changes = policy == MissingUsers::Delete || user.active;
        if !changes || !self.witnessed(Absent::User(id), "user", label.clone()) {
            return;
        }
        let at = self.times.of_user(external_id);
        match policy {
            MissingUsers::Delete => {
                self.report.users_deleted += 1;
                self.emit_dated(external_id, at, label, "user deleted", Event::UserDeleted { user: id });
            }
            MissingUsers::Deactivate if user.active => {
                self.report.users_deactivated += 1;
                self.emit_dated(
                    external_id,
                    at,
                    label,
                    "user deactivated",
                    Event::UserDeactivated { user: id },
                );
            }
            MissingUsers::Deactivate => {}
        }
    }

    fn upsert_group(&mut self, listed: &SnapshotGroup, new_id: &mut dyn FnMut() -> Uuid) {
        let label = format!("{} ({})", listed.display_name, listed.external_id);
        if let Err(rejection) = validate_display_name(&listed.display_name) {
            return self.conflict(format!("group {label}: {rejection}"));
        }
        match self.scratch.owned_group(self.integration, &listed.external_id) {
            None => {
                let event = Event::GroupCreated {
                    group: GroupId(new_id()),
                    owner: Owner::Integration(self.integration.clone()),
                    external_id: Some(listed.external_id.clone()),
                    display_name: listed.display_name.clone(),
                };
                self.report.groups_created += 1;
                self.emit(&listed.external_id, label, "group created", event);
            }
            Some(id) => {
                let current = self.scratch.group(id).expect("owned groups exist");
                if current.display_name != listed.display_name {
                    let event = Event::GroupRenamed {
                        group: id,
                        display_name: listed.display_name.clone(),
                    };
                    self.report.groups_renamed += 1;
                    self.emit(&listed.external_id, label, "group renamed", event);
                }
            }
        }
    }

    fn remove_group(&mut self, external_id: &str) {
        let Some(id) = self.scratch.owned_group(self.integration, external_id) else {
            return;
        };
        let label = format!(
            "{} ({external_id})",
            self.scratch.group(id).expect("owned groups exist").display_name
        );
        if !self.witnessed(Absent::Group(id), "group", label.clone()) {
            return;
        }
        self.report.groups_deleted += 1;
        let at = self.times.of_group(external_id);
        self.emit_dated(
            external_id,
            at,
            label,
            "group deleted",
            Event::GroupDeleted { group: id },
        );
    }

    fn resolve(&self, member: &ExternalMember) -> Option<Member> {
        match member {
            ExternalMember::User(id) => self.scratch.owned_user(self.integration, id).map(Member::User),
            ExternalMember::Group(id) => self.scratch.owned_group(self.integration, id).map(Member::Group),
        }
    }

    /// The members `edges` (all of `group`'s) name, counting those that name nothing known.
    fn resolve_members(&mut self, group: GroupId, edges: &[&Membership]) -> BTreeSet<Member> {
        let mut members = BTreeSet::new();
        for edge in edges {
            match self.resolve(&edge.member) {
                Some(member) if member != Member::Group(group) => {
                    members.insert(member);
                }
                _ => self.report.unresolved_members += 1,
            }
        }
        members
    }

    /// Makes `group`'s direct members `listed`: adds those missing, removes the others once
    /// their absence takes effect.
    fn reconcile_members(&mut self, external_id: &str, group: GroupId, listed: &BTreeSet<Member>) {
        let current: BTreeSet<Member> = self.scratch.direct_members(group).collect();
        let leaving = current
            .difference(listed)
            .copied()
            .filter(|member| {
                let label = self.membership_label(external_id, group, *member);
                self.witnessed(Absent::Membership { group, member: *member }, "membership", label)
            })
            .collect();
        self.remove_members(external_id, group, leaving);
        self.add_members(external_id, group, listed.difference(&current).copied().collect());
    }

    /// Resolves edges to (group → members), counting the edges that name nothing known.
    fn resolve_edges<'e>(
        &mut self,
        edges: impl Iterator<Item = &'e Membership>,
    ) -> BTreeMap<(String, GroupId), BTreeSet<Member>> {
        let mut resolved: BTreeMap<(String, GroupId), BTreeSet<Member>> = BTreeMap::new();
        for edge in edges {
            let group = self.scratch.owned_group(self.integration, &edge.group);
            match (group, self.resolve(&edge.member)) {
                (Some(group), Some(member)) if member != Member::Group(group) => {
                    resolved.entry((edge.group.clone(), group)).or_default().insert(member);
                }
                _ => self.report.unresolved_members += 1,
            }
        }
        resolved
    }

    fn add_members(&mut self, group_external_id: &str, group: GroupId, members: Vec<Member>) {
        if members.is_empty() {
            return;
        }
        self.report.memberships_added += members.len() as u32;
        let label = self.group_label(group_external_id, group, members.len());
        self.emit(
            group_external_id,
            label,
            "members added",
            Event::MembersAdded { group, members },
        );
    }

    fn remove_members(&mut self, group_external_id: &str, group: GroupId, members: Vec<Member>) {
        self.remove_members_dated(group_external_id, group, None, members);
    }

    /// [`Planner::remove_members`] for removals the IdP dated (`at`, where it did).
    fn remove_members_dated(
        &mut self,
        group_external_id: &str,
        group: GroupId,
        at: Option<Timestamp>,
        members: Vec<Member>,
    ) {
        if members.is_empty() {
            return;
        }
        self.report.memberships_removed += members.len() as u32;
        let label = self.group_label(group_external_id, group, members.len());
        self.emit_dated(
            group_external_id,
            at,
            label,
            "members removed",
            Event::MembersRemoved { group, members },
        );
    }

    /// When the IdP removed each of `left`'s edges that it dated, by the engine's ids.
    fn left_times(&self, left: &[Membership]) -> HashMap<(GroupId, Member), Timestamp> {
        left.iter()
            .filter_map(|edge| {
                let at = self.times.of_left(edge)?;
                let group = self.scratch.owned_group(self.integration, &edge.group)?;
                Some(((group, self.resolve(&edge.member)?), at))
            })
            .collect()
    }

    /// `group (external id): member`, for a membership.
    fn membership_label(&self, external_id: &str, group: GroupId, member: Member) -> String {
        let group_name = self.scratch.group(group).map_or("?", |g| g.display_name.as_str());
        let member_name = match member {
            Member::User(user) => self.scratch.user(user).map_or("?", |u| u.profile.user_name.as_str()),
            Member::Group(group) => self.scratch.group(group).map_or("?", |g| g.display_name.as_str()),
        };
        format!("{group_name} ({external_id}): {member_name}")
    }

    fn group_label(&self, external_id: &str, group: GroupId, count: usize) -> String {
        let name = self
            .scratch
            .group(group)
            .map_or("?", |g| g.display_name.as_str())
            .to_owned();
        format!("{name} ({external_id}): {count}")
    }
}

/// Plans reconciling `snapshot` with `state` at `now`: the events and their report, or the
/// guard's hold, judged with what the integration's `recent` runs removed. Ids of new users and
/// groups come from `new_id`.
pub(crate) fn plan(
    state: &State,
    snapshot: &DirectorySnapshot,
    guard: Guard,
    policy: &ReconcilePolicy,
    recent: RecentRemovals,
    now: Timestamp,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Plan {
    let integration = &snapshot.integration;
    let owned_users = state.users_owned_by(integration).count() as u32;
    let mut planner = Planner {
        scratch: state.clone(),
        source: Source::Integration {
            integration: integration.clone(),
            run: snapshot.run,
        },
        events: Vec::new(),
        report: ReconcileReport::default(),
        removals: Removals::default(),
        integration,
        times: &snapshot.idp_times,
        absence: match snapshot.scope {
            SnapshotScope::Complete { .. } => Some(Witnesses {
                rules: snapshot.absence,
                prior: state.absences.of(integration),
                now,
                pending: Vec::new(),
            }),
            SnapshotScope::Delta { .. } => None,
        },
    };

    // Removals first: a deleted object's memberships go with it in one event, and a name it
    // frees can be taken by a user of the same snapshot.
    let Gone {
        users: gone_users,
        groups: gone_groups,
    } = gone(state, snapshot);
    for external_id in &gone_users {
        planner.remove_user(external_id, policy.missing_users);
    }
    for external_id in &gone_groups {
        planner.remove_group(external_id);
    }

    // A delta that both lists and removes an object is contradictory: the removal wins, so
    // that a confused IdP response can only take access away, never grant it.
    let removed_users: HashSet<&str> = gone_users.iter().map(String::as_str).collect();
    let removed_groups: HashSet<&str> = gone_groups.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut pending: Vec<&ListedUser> = Vec::new();
    for user in &snapshot.users {
        if removed_users.contains(user.external_id()) {
            planner.conflict(format!(
                "user {} is both listed and removed; it is removed",
                user.external_id()
            ));
        } else if seen.insert(user.external_id()) {
            pending.push(user);
        } else {
            planner.conflict(format!(
                "user {} is listed twice; the first listing is used",
                user.external_id()
            ));
        }
    }
    // A user may wait for a name another listed user gives up later in the list: go round until
    // nothing moves, so that the outcome does not depend on the listing order.
    loop {
        let mut blocked = Vec::new();
        for user in &pending {
            if let Err(reason) = planner.upsert_user(user, new_id) {
                blocked.push((*user, reason));
            }
        }
        if blocked.len() == pending.len() {
            for (_, reason) in blocked {
                planner.conflict(reason);
            }
            break;
        }
        pending = blocked.into_iter().map(|(user, _)| user).collect();
    }
    let mut seen = HashSet::new();
    for group in &snapshot.groups {
        if removed_groups.contains(group.external_id.as_str()) {
            planner.conflict(format!(
                "group {} is both listed and removed; it is removed",
                group.external_id
            ));
            continue;
        }
        if !seen.insert(group.external_id.as_str()) {
            planner.conflict(format!(
                "group {} is listed twice; the first listing is used",
                group.external_id
            ));
            continue;
        }
        planner.upsert_group(group, new_id);
    }

    match &snapshot.scope {
        SnapshotScope::Complete { memberships } => {
            // A group at a time, in the order of the IdP's ids: only one group's members are
            // resolved at once, never the whole listing's edges.
            let mut edges: Vec<&Membership> = memberships.iter().collect();
            edges.sort_unstable_by(|a, b| a.group.cmp(&b.group));
            // The listed groups, and those only edges name: a listed group without edges has
            // no members.
            let keys: BTreeSet<&str> = snapshot
                .groups
                .iter()
                .map(|group| group.external_id.as_str())
                .chain(edges.iter().map(|edge| edge.group.as_str()))
                .collect();
            let mut rest = edges.as_slice();
            for external_id in keys {
                let split = rest.partition_point(|edge| edge.group.as_str() == external_id);
                let (group_edges, after) = rest.split_at(split);
                rest = after;
                if let Some(group) = planner.scratch.owned_group(integration, external_id) {
                    let members = planner.resolve_members(group, group_edges);
                    planner.reconcile_members(external_id, group, &members);
                } else {
                    planner.report.unresolved_members += group_edges.len() as u32;
                }
            }
        }
        SnapshotScope::Delta { joined, left, .. } => {
            // An edge both joined and left is contradictory: leaving wins.
            let leaving: HashSet<&Membership> = left.iter().collect();
            let joined: Vec<&Membership> = joined.iter().filter(|edge| !leaving.contains(edge)).collect();
            // Removals the IdP dated go in one event per time, so that each keeps its own.
            let times = planner.left_times(left);
            for ((external_id, group), members) in planner.resolve_edges(left.iter()) {
                let mut leaving: BTreeMap<Option<Timestamp>, Vec<Member>> = BTreeMap::new();
                for member in members
                    .into_iter()
                    .filter(|m| planner.scratch.is_direct_member(group, *m))
                {
                    let at = times.get(&(group, member)).copied();
                    leaving.entry(at).or_default().push(member);
                }
                for (at, members) in leaving {
                    planner.remove_members_dated(&external_id, group, at, members);
                }
            }
            for ((external_id, group), members) in planner.resolve_edges(joined.into_iter()) {
                let joining = members
                    .into_iter()
                    .filter(|m| !planner.scratch.is_direct_member(group, *m))
                    .collect();
                planner.add_members(&external_id, group, joining);
            }
        }
    }

    let (removals, deletions) = planner.removals.count(&planner.scratch);
    let observed = planner.absence.and_then(|witnesses| {
        // Recorded when something is pending, or to clear what was.
        (!witnesses.pending.is_empty() || witnesses.prior.is_some()).then(|| Envelope {
            source: planner.source.clone(),
            cause: Cause::Unspecified,
            event: Event::AbsencesObserved {
                integration: integration.clone(),
                run: snapshot.run,
                absent: witnesses.pending,
            },
        })
    });
    let mut events = planner.events;
    events.extend(observed);
    let mut report = planner.report;
    report.guard = GuardCount {
        removals,
        deletions,
        owned_users,
        earlier: recent,
        limit_permille: policy.hold_above_permille,
    };
    report.removes_last_owner = !events.is_empty() && roles::removes_last_owner(state, &planner.scratch);
    match guard::hold(guard, &report.guard, &report) {
        Some(summary) => {
            report.held = Some(summary.clone());
            Plan::Hold { summary, report }
        }
        None => Plan::Apply { events, report },
    }
}

/// The integration's objects a snapshot says are gone, by IdP id.
struct Gone {
    users: Vec<String>,
    groups: Vec<String>,
}

/// What `snapshot` removes: for a complete snapshot, every object the integration owns that it
/// does not list; for a delta, what it says the IdP deleted.
fn gone(state: &State, snapshot: &DirectorySnapshot) -> Gone {
    let integration = &snapshot.integration;
    match &snapshot.scope {
        SnapshotScope::Complete { .. } => {
            let listed_users: HashSet<&str> = snapshot.users.iter().map(|user| user.external_id()).collect();
            let listed_groups: HashSet<&str> = snapshot.groups.iter().map(|group| group.external_id.as_str()).collect();
            Gone {
                users: state
                    .users_owned_by(integration)
                    .map(|(external_id, _)| external_id)
                    .filter(|external_id| !listed_users.contains(external_id))
                    .map(str::to_owned)
                    .collect(),
                groups: state
                    .groups_owned_by(integration)
                    .map(|(external_id, _)| external_id)
                    .filter(|external_id| !listed_groups.contains(external_id))
                    .map(str::to_owned)
                    .collect(),
            }
        }
        SnapshotScope::Delta {
            removed_users,
            removed_groups,
            ..
        } => Gone {
            users: removed_users.clone(),
            groups: removed_groups.clone(),
        },
    }
}
