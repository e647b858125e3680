//! Reconcile: an integration's [`DirectorySnapshot`] becomes the fewest events that make what
//! the integration owns match it. The same snapshot twice emits nothing the second time.
//!
//! The mass-deactivation guard: if the snapshot would deactivate or delete more than the
//! configured share of the users the integration owns (default 10 %), nothing is applied; a
//! [`Event::ReconcileHeld`] records the hold, and an operator confirms or rejects it. An IdP
//! outage or a permissions change must never look like everyone leaving the company.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::command::Origin;
use crate::decide::{
    DecideContext, Decision, Outcome, Rejection, apply_speculatively, validate_display_name, validate_profile,
};
use crate::event::{Cause, Envelope, Event, HoldSummary, Personal, Source};
use crate::ids::{GroupId, IntegrationName, Member, SyncRunId, UserId};
use crate::model::{Owner, UserProfile};
use crate::state::State;

/// What an IdP holds, as a driver read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectorySnapshot {
    /// The integration that read it.
    pub integration: IntegrationName,
    /// The sync run.
    pub run: SyncRunId,
    /// Users (for a delta: those created or changed).
    pub users: Vec<SnapshotUser>,
    /// Groups (for a delta: those created or changed).
    pub groups: Vec<SnapshotGroup>,
    /// Complete listing or delta, and the memberships.
    pub scope: SnapshotScope,
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

/// Whether the mass-deactivation guard applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Guard {
    /// Hold a snapshot that removes too many users.
    Enforce,
    /// An operator confirmed this snapshot: apply it whatever it removes.
    Confirmed,
}

/// What happens to users the IdP no longer lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MissingUsers {
    /// Delete them (their history stays in the log).
    Delete,
    /// Deactivate them.
    Deactivate,
}

/// A tenant's reconcile settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcilePolicy {
    /// Hold a snapshot that would deactivate or delete more than this many thousandths of the
    /// integration's users (100 = 10 %).
    pub hold_above_permille: u32,
    /// What happens to users the IdP no longer lists.
    pub missing_users: MissingUsers,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        ReconcilePolicy {
            hold_above_permille: 100,
            missing_users: MissingUsers::Delete,
        }
    }
}

/// One planned or applied change, for people to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangeLine {
    /// `user created`, `user deactivated`, `group renamed`, `member added`, …
    pub action: &'static str,
    /// The object, by IdP id and name.
    pub object: String,
}

/// What a reconcile did, or would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Users created.
    pub users_created: u32,
    /// Users whose attributes changed.
    pub users_updated: u32,
    /// Users deactivated.
    pub users_deactivated: u32,
    /// Users reactivated.
    pub users_reactivated: u32,
    /// Users deleted.
    pub users_deleted: u32,
    /// Groups created.
    pub groups_created: u32,
    /// Groups renamed.
    pub groups_renamed: u32,
    /// Groups deleted.
    pub groups_deleted: u32,
    /// Membership edges added.
    pub memberships_added: u32,
    /// Membership edges removed.
    pub memberships_removed: u32,
    /// Membership edges naming an object the snapshot does not have (filtered out, or unknown).
    pub unresolved_members: u32,
    /// Objects skipped, and why (a userName another owner has, a duplicate id, a bad value).
    pub conflicts: Vec<String>,
    /// Every change, in order.
    pub changes: Vec<ChangeLine>,
    /// Set when the guard held the snapshot.
    pub held: Option<HoldSummary>,
}

impl ReconcileReport {
    /// Whether it changes anything.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

struct Planner<'s> {
    scratch: State,
    source: Source,
    events: Vec<Envelope>,
    report: ReconcileReport,
    integration: &'s IntegrationName,
}

impl Planner<'_> {
    fn emit(&mut self, object: &str, label: String, action: &'static str, event: Event) {
        let envelope = Envelope {
            source: self.source.clone(),
            cause: Cause::IdpObject(object.to_owned()),
            event,
        };
        apply_speculatively(&mut self.scratch, &envelope);
        self.events.push(envelope);
        self.report.changes.push(ChangeLine { action, object: label });
    }

    fn conflict(&mut self, message: String) {
        self.report.conflicts.push(message);
    }

    /// Creates or updates a listed user. Returns why it could not take its userName, if
    /// another user holds it: calling again once that user has moved on is safe.
    fn upsert_user(&mut self, listed: &SnapshotUser, new_id: &mut dyn FnMut() -> uuid::Uuid) -> Result<(), String> {
        let label = format!("{} ({})", listed.profile.user_name, listed.external_id);
        if let Err(rejection) = validate_profile(&listed.profile) {
            self.conflict(format!("user {label}: {rejection}"));
            return Ok(());
        }
        let name_holder = self.scratch.user_by_name(&listed.profile.user_name).map(|user| user.id);
        let Some(id) = self.scratch.owned_user(self.integration, &listed.external_id) else {
            if let Some(holder) = name_holder {
                return Err(format!("user {label}: userName is already used by user {holder}"));
            }
            let user = UserId(new_id());
            let event = Event::UserProvisioned {
                user,
                owner: Owner::Integration(self.integration.clone()),
                external_id: Some(listed.external_id.clone()),
                active: listed.active,
                personal: Personal::Plain(Box::new(listed.profile.clone())),
            };
            self.report.users_created += 1;
            self.emit(&listed.external_id, label, "user created", event);
            return Ok(());
        };
        let current = self.scratch.user(id).expect("owned users exist").clone();
        let mut blocked = Ok(());
        // An erased user's personal fields are never restored from the IdP; its state still is.
        if !current.is_erased() && current.profile != listed.profile {
            match name_holder {
                Some(holder) if holder != id => {
                    blocked = Err(format!(
                        "user {label}: cannot rename, userName is already used by user {holder}"
                    ));
                }
                _ => {
                    let event = Event::UserUpdated {
                        user: id,
                        external_id: current.external_id.clone(),
                        personal: Personal::Plain(Box::new(listed.profile.clone())),
                    };
                    self.report.users_updated += 1;
                    self.emit(&listed.external_id, label.clone(), "user updated", event);
                }
            }
        }
        match (current.active, listed.active) {
            (true, false) => {
                self.report.users_deactivated += 1;
                self.emit(
                    &listed.external_id,
                    label,
                    "user deactivated",
                    Event::UserDeactivated { user: id },
                );
            }
            (false, true) => {
                self.report.users_reactivated += 1;
                self.emit(
                    &listed.external_id,
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
        match policy {
            MissingUsers::Delete => {
                self.report.users_deleted += 1;
                self.emit(external_id, label, "user deleted", Event::UserDeleted { user: id });
            }
            MissingUsers::Deactivate if user.active => {
                self.report.users_deactivated += 1;
                self.emit(
                    external_id,
                    label,
                    "user deactivated",
                    Event::UserDeactivated { user: id },
                );
            }
            MissingUsers::Deactivate => {}
        }
    }

    fn upsert_group(&mut self, listed: &SnapshotGroup, new_id: &mut dyn FnMut() -> uuid::Uuid) {
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
        self.report.groups_deleted += 1;
        self.emit(external_id, label, "group deleted", Event::GroupDeleted { group: id });
    }

    fn resolve(&self, member: &ExternalMember) -> Option<Member> {
        match member {
            ExternalMember::User(id) => self.scratch.owned_user(self.integration, id).map(Member::User),
            ExternalMember::Group(id) => self.scratch.owned_group(self.integration, id).map(Member::Group),
        }
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
        if members.is_empty() {
            return;
        }
        self.report.memberships_removed += members.len() as u32;
        let label = self.group_label(group_external_id, group, members.len());
        self.emit(
            group_external_id,
            label,
            "members removed",
            Event::MembersRemoved { group, members },
        );
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

/// Decides a reconcile. Called by [`crate::decide::decide`].
pub(crate) fn decide(
    state: &State,
    snapshot: &DirectorySnapshot,
    guard: Guard,
    context: &mut DecideContext<'_>,
) -> Result<Decision, Rejection> {
    let integration = &snapshot.integration;
    let source = Source::Integration {
        integration: integration.clone(),
        run: snapshot.run,
    };
    let owned_users = state.users_owned_by(integration).count() as u32;
    let mut planner = Planner {
        scratch: state.clone(),
        source: source.clone(),
        events: Vec::new(),
        report: ReconcileReport::default(),
        integration,
    };

    // Removals first: a deleted object's memberships go with it in one event, and a name it
    // frees can be taken by a user of the same snapshot.
    let listed_users: HashSet<&str> = snapshot.users.iter().map(|user| user.external_id.as_str()).collect();
    let listed_groups: HashSet<&str> = snapshot.groups.iter().map(|group| group.external_id.as_str()).collect();
    let (gone_users, gone_groups): (Vec<String>, Vec<String>) = match &snapshot.scope {
        SnapshotScope::Complete { .. } => (
            state
                .users_owned_by(integration)
                .map(|(external_id, _)| external_id)
                .filter(|external_id| !listed_users.contains(external_id))
                .map(str::to_owned)
                .collect(),
            state
                .groups_owned_by(integration)
                .map(|(external_id, _)| external_id)
                .filter(|external_id| !listed_groups.contains(external_id))
                .map(str::to_owned)
                .collect(),
        ),
        SnapshotScope::Delta {
            removed_users,
            removed_groups,
            ..
        } => (removed_users.clone(), removed_groups.clone()),
    };
    for external_id in &gone_users {
        planner.remove_user(external_id, context.policy.missing_users);
    }
    for external_id in &gone_groups {
        planner.remove_group(external_id);
    }

    // A delta that both lists and removes an object is contradictory: the removal wins, so
    // that a confused IdP response can only take access away, never grant it.
    let removed_users: HashSet<&str> = gone_users.iter().map(String::as_str).collect();
    let removed_groups: HashSet<&str> = gone_groups.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut pending: Vec<&SnapshotUser> = Vec::new();
    for user in &snapshot.users {
        if removed_users.contains(user.external_id.as_str()) {
            planner.conflict(format!(
                "user {} is both listed and removed; it is removed",
                user.external_id
            ));
        } else if seen.insert(user.external_id.as_str()) {
            pending.push(user);
        } else {
            planner.conflict(format!(
                "user {} is listed twice; the first listing is used",
                user.external_id
            ));
        }
    }
    // A user may wait for a name another listed user gives up later in the list: go round until
    // nothing moves, so that the outcome does not depend on the listing order.
    loop {
        let mut blocked = Vec::new();
        for user in &pending {
            if let Err(reason) = planner.upsert_user(user, context.new_id) {
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
        planner.upsert_group(group, context.new_id);
    }

    match &snapshot.scope {
        SnapshotScope::Complete { memberships } => {
            let mut wanted = planner.resolve_edges(memberships.iter());
            for listed in &snapshot.groups {
                if let Some(group) = planner.scratch.owned_group(integration, &listed.external_id) {
                    wanted.entry((listed.external_id.clone(), group)).or_default();
                }
            }
            for ((external_id, group), members) in wanted {
                let current: BTreeSet<Member> = planner.scratch.direct_members(group).collect();
                planner.remove_members(&external_id, group, current.difference(&members).copied().collect());
                planner.add_members(&external_id, group, members.difference(&current).copied().collect());
            }
        }
        SnapshotScope::Delta { joined, left, .. } => {
            // An edge both joined and left is contradictory: leaving wins.
            let leaving: HashSet<&Membership> = left.iter().collect();
            let joined: Vec<&Membership> = joined.iter().filter(|edge| !leaving.contains(edge)).collect();
            for ((external_id, group), members) in planner.resolve_edges(left.iter()) {
                let leaving = members
                    .into_iter()
                    .filter(|m| planner.scratch.is_direct_member(group, *m))
                    .collect();
                planner.remove_members(&external_id, group, leaving);
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

    let mut report = planner.report;
    let removals = report.users_deactivated + report.users_deleted;
    let limit_permille = context.policy.hold_above_permille;
    let over_limit = owned_users > 0 && u64::from(removals) * 1000 > u64::from(limit_permille) * u64::from(owned_users);
    if guard == Guard::Enforce && over_limit {
        let summary = HoldSummary {
            owned_users,
            deactivations: report.users_deactivated,
            deletions: report.users_deleted,
            limit_permille,
        };
        report.held = Some(summary.clone());
        let already_recorded = context.holds.get(integration) == Some(&summary);
        let events = if already_recorded {
            Vec::new()
        } else {
            vec![Envelope {
                source,
                cause: Cause::Unspecified,
                event: Event::ReconcileHeld {
                    integration: integration.clone(),
                    run: snapshot.run,
                    summary,
                },
            }]
        };
        return Ok(Decision {
            events,
            outcome: Outcome::Held(report),
        });
    }
    Ok(Decision {
        events: planner.events,
        outcome: Outcome::Reconciled(report),
    })
}

impl Origin {
    /// The origin of a sync run's events.
    pub fn integration(integration: IntegrationName, run: SyncRunId) -> Origin {
        Origin {
            source: Source::Integration { integration, run },
            cause: Cause::Unspecified,
        }
    }
}
