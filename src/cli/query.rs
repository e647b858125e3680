//! `idpsync query`: users, groups, members, a user's groups and access, and every user's role,
//! now or at a past moment (`--at`, RFC 3339 or a date) or log position (`--seq N`).

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use idpsync::api::wire::{MemberRow, UserRow};
use idpsync::engine::State;
use idpsync::engine::access::{ancestors, effective_users, grants};
use idpsync::engine::ids::{GroupId, Member, UserId};
use idpsync::engine::model::{Group, User};
use idpsync::engine::roles::{all_roles, default_role, is_admin, roles_enabled};
use idpsync::engine::seal::Keyring;
use idpsync::engine::tenant::{load_state_at, seq_at_time};
use idpsync::storage::{LogStore, Seq, StoreError, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::Context;

#[derive(Subcommand, Debug, Deserialize, Serialize)]
pub(crate) enum QueryCommand {
    /// List users
    Users(When),
    /// List groups
    Groups(When),
    /// List a group's members (direct, or with --effective every user through nested groups)
    Members {
        #[command(flatten)]
        when: When,
        /// The group, by id or displayName
        #[arg(long, value_name = "NAME|ID")]
        group: String,
        /// Users through nested groups too, instead of direct members
        #[arg(long)]
        effective: bool,
    },
    /// Show one user with its groups and access
    User {
        #[command(flatten)]
        when: When,
        /// The user, by id or userName
        #[arg(long, value_name = "USERNAME|ID")]
        user: String,
    },
    /// List every user's management role (from the role bindings and the user's groups): who
    /// was an admin at a moment, with --at and --admins
    Roles {
        #[command(flatten)]
        when: When,
        /// Only users whose role is not the default one
        #[arg(long)]
        admins: bool,
    },
}

/// Which tenant, at which point, and in which format.
#[derive(Args, Debug, Deserialize, Serialize)]
pub(crate) struct When {
    /// The tenant
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    /// The state at this moment: RFC 3339 (2026-03-01T09:30:00Z) or a date (2026-03-01,
    /// midnight UTC)
    #[arg(long, value_name = "DATE", conflicts_with = "seq")]
    at: Option<String>,
    /// The state just after this log position
    #[arg(long, value_name = "N")]
    seq: Option<u64>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// The state a query looks at, and where in the log it is.
struct View {
    state: State,
    label: String,
}

async fn view(context: &Context, when: &When) -> anyhow::Result<View> {
    let store: Arc<dyn LogStore> = context.open_store().await?;
    let head = match store.head(&when.tenant).await {
        Ok(head) => head,
        Err(StoreError::UnknownTenant(_)) => {
            let known: Vec<String> = store.tenants().await?.iter().map(ToString::to_string).collect();
            bail!("tenant {} does not exist (tenants: {})", when.tenant, known.join(", "));
        }
        Err(error) => return Err(error.into()),
    };
    let seq = match (&when.at, when.seq) {
        (Some(at), _) => {
            let moment = Timestamp::parse_moment(at)?;
            seq_at_time(&store, &when.tenant, moment).await?
        }
        (None, Some(seq)) if seq > head.seq.0 => bail!("--seq {seq} is beyond the end of the log (seq {})", head.seq),
        (None, Some(seq)) => Seq(seq),
        (None, None) => head.seq,
    };
    let keyring = Arc::new(Keyring::load(&*store, &when.tenant).await?);
    let state = load_state_at(&store, &when.tenant, &keyring, seq)
        .await
        .context("loading the state")?;
    let label = match state.recorded_at() {
        time if seq == Seq::ZERO || time == Timestamp::default() => {
            format!("tenant {} at seq {seq} (before the first record)", when.tenant)
        }
        time => format!("tenant {} at seq {seq} ({time})", when.tenant),
    };
    Ok(View { state, label })
}

fn find_group(state: &State, key: &str) -> anyhow::Result<Arc<Group>> {
    if let Ok(id) = key.parse::<GroupId>()
        && let Some(group) = state.group(id)
    {
        return Ok(Arc::clone(group));
    }
    let matches: Vec<&Arc<Group>> = state.groups_by_name(key).collect();
    match matches.as_slice() {
        [one] => Ok(Arc::clone(one)),
        [] => bail!("no group with id or displayName {key:?} at this point"),
        many => bail!(
            "{} groups are named {key:?}; pick one by id: {}",
            many.len(),
            many.iter().map(|g| g.id.to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn find_user(state: &State, key: &str) -> anyhow::Result<Arc<User>> {
    if let Ok(id) = key.parse::<UserId>()
        && let Some(user) = state.user(id)
    {
        return Ok(Arc::clone(user));
    }
    state
        .user_by_name(key)
        .cloned()
        .ok_or_else(|| anyhow!("no user with id or userName {key:?} at this point"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupRow {
    id: GroupId,
    display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id: Option<String>,
    members: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDetail {
    #[serde(flatten)]
    user: UserRow,
    groups: Vec<UserGroup>,
    access: Vec<AccessRow>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserGroup {
    id: GroupId,
    display_name: String,
    direct: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccessRow {
    resource: ResourceRow,
    role: &'static str,
    via: GroupRef,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleRow {
    id: UserId,
    user_name: String,
    role: String,
    binding: Option<String>,
    group: Option<GroupRef>,
}

#[derive(Serialize)]
struct ResourceRow {
    kind: &'static str,
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupRef {
    id: GroupId,
    display_name: String,
}

fn group_name(state: &State, id: GroupId) -> String {
    state
        .group(id)
        .map_or_else(|| "(deleted)".to_owned(), |g| g.display_name.clone())
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) async fn run(context: &Context, command: QueryCommand) -> anyhow::Result<()> {
    match command {
        QueryCommand::Users(when) => {
            let view = view(context, &when).await?;
            let rows: Vec<UserRow> = view.state.users().map(|u| UserRow::from(&**u)).collect();
            if when.json {
                return print_json(&rows);
            }
            outln!("{}: {} users", view.label, rows.len());
            for row in rows {
                outln!(
                    "{}  {}{}",
                    row.id,
                    row.user_name,
                    if row.active { "" } else { "  (inactive)" }
                );
            }
        }
        QueryCommand::Groups(when) => {
            let view = view(context, &when).await?;
            let rows: Vec<GroupRow> = view
                .state
                .groups()
                .map(|g| GroupRow {
                    id: g.id,
                    display_name: g.display_name.clone(),
                    external_id: g.external_id.clone(),
                    members: view.state.direct_member_count(g.id),
                })
                .collect();
            if when.json {
                return print_json(&rows);
            }
            outln!("{}: {} groups", view.label, rows.len());
            for row in rows {
                outln!("{}  {}  ({} members)", row.id, row.display_name, row.members);
            }
        }
        QueryCommand::Members { when, group, effective } => {
            let view = view(context, &when).await?;
            let group = find_group(&view.state, &group)?;
            let members: Vec<Member> = if effective {
                effective_users(&view.state, group.id)
                    .into_iter()
                    .map(Member::User)
                    .collect()
            } else {
                view.state.direct_members(group.id).collect()
            };
            let rows: Vec<MemberRow> = members.into_iter().map(|m| MemberRow::of(&view.state, m)).collect();
            if when.json {
                return print_json(&rows);
            }
            let which = if effective {
                "effective members (users through nested groups)"
            } else {
                "direct members"
            };
            outln!(
                "{}: group {} ({}): {} {which}",
                view.label,
                group.display_name,
                group.id,
                rows.len()
            );
            for row in rows {
                let name = row.user_name.or(row.display_name).unwrap_or_default();
                let inactive = if row.active == Some(false) { "  (inactive)" } else { "" };
                outln!("{}  {:<5}  {name}{inactive}", row.id, row.kind);
            }
        }
        QueryCommand::User { when, user } => {
            let view = view(context, &when).await?;
            let state = &view.state;
            let user = find_user(state, &user)?;
            let direct: BTreeSet<GroupId> = state.groups_of(Member::User(user.id)).collect();
            let groups = ancestors(state, Member::User(user.id))
                .into_iter()
                .map(|id| UserGroup {
                    id,
                    display_name: group_name(state, id),
                    direct: direct.contains(&id),
                })
                .collect();
            let access = grants(state, user.id)
                .into_iter()
                .map(|grant| AccessRow {
                    resource: ResourceRow {
                        kind: grant.resource.kind.as_str(),
                        id: grant.resource.id.to_string(),
                    },
                    role: grant.role.as_str(),
                    via: GroupRef {
                        id: grant.via,
                        display_name: group_name(state, grant.via),
                    },
                })
                .collect();
            let detail = UserDetail {
                user: UserRow::from(&*user),
                groups,
                access,
            };
            if when.json {
                return print_json(&detail);
            }
            outln!(
                "{}: user {} ({}){}",
                view.label,
                detail.user.user_name,
                detail.user.id,
                if detail.user.active { "" } else { ", inactive" }
            );
            outln!("groups ({}):", detail.groups.len());
            for group in &detail.groups {
                outln!(
                    "  {}  {}{}",
                    group.id,
                    group.display_name,
                    if group.direct { "" } else { "  (through a nested group)" }
                );
            }
            outln!("access ({}):", detail.access.len());
            for row in &detail.access {
                outln!(
                    "  {}/{}  as {}  via {} ({})",
                    row.resource.kind,
                    row.resource.id,
                    row.role,
                    row.via.display_name,
                    row.via.id
                );
            }
        }
        QueryCommand::Roles { when, admins } => {
            let view = view(context, &when).await?;
            print_roles(&view, admins, when.json)?;
        }
    }
    Ok(())
}

/// Every user's role in `view` (only the admins' with `admins_only`), as text or JSON.
fn print_roles(view: &View, admins_only: bool, json: bool) -> anyhow::Result<()> {
    let state = &view.state;
    let default = default_role(state);
    let rows: Vec<RoleRow> = all_roles(state)
        .into_iter()
        .filter(|(_, held)| !admins_only || is_admin(&held.role, &default))
        .map(|(user, held)| RoleRow {
            id: user,
            user_name: state
                .user(user)
                .map_or_else(|| user.to_string(), |found| found.profile.user_name.clone()),
            role: held.role,
            binding: held.binding.map(|binding| binding.to_string()),
            group: held.via.map(|via| GroupRef {
                id: via,
                display_name: group_name(state, via),
            }),
        })
        .collect();
    if json {
        return print_json(&rows);
    }
    if !roles_enabled(state) {
        outln!("{}: no role bindings, so no user has a role", view.label);
        return Ok(());
    }
    let which = if admins_only {
        "admins (role other than the default)"
    } else {
        "users with a role"
    };
    outln!("{}: {} {which}; default role {default}", view.label, rows.len());
    for row in rows {
        let why = match (&row.group, &row.binding) {
            (Some(group), Some(binding)) => format!("via {} (binding {binding})", group.display_name),
            (None, Some(binding)) => format!("default (binding {binding})"),
            _ => "built-in default".to_owned(),
        };
        outln!("{}  {:<24}  {:<14}  {why}", row.id, row.user_name, row.role);
    }
    Ok(())
}
