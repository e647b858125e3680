//! `idpsync role`: role bindings (which groups give which management role, at which priority)
//! and the tenant's default role, written to the log like every binding change. With the
//! service running, use the management API (`PUT …/bindings/role/{name}`) instead: the command
//! opens the log store itself.

use anyhow::{anyhow, bail};
use clap::Subcommand;
use idpsync::engine::ids::{GroupId, ResourceId};
use idpsync::engine::model::{BindingGroups, ResourceKind, ResourceRef};
use idpsync::engine::roles::{DEFAULT_BINDING, DEFAULT_ROLE};
use idpsync::engine::{Cause, Command, Origin, Source, State};
use idpsync::storage::TenantId;

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum RoleCommand {
    /// Give a role to the effective members (nested groups included) of some groups: creates or
    /// replaces the role binding NAME
    Bind {
        /// The tenant
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        /// The binding's name (its id)
        #[arg(long)]
        name: String,
        /// The role: Owner, Admin, Network Admin, Billing Admin, Auditor, User, or a name of
        /// your own
        #[arg(long)]
        role: String,
        /// Higher wins when several bindings match a user; ties go to the lowest binding name
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// A group that gives the role, by id or displayName (repeat for several)
        #[arg(long = "group", value_name = "NAME|ID", required = true)]
        groups: Vec<String>,
    },
    /// Remove the role binding NAME (`default` removes the default role setting)
    Unbind {
        /// The tenant
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        /// The binding's name
        #[arg(long)]
        name: String,
    },
    /// Set the role of users no binding matches (without it, `User`)
    Default {
        /// The tenant
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        /// The role
        #[arg(long)]
        role: String,
    },
    /// List the role bindings, highest priority first
    List {
        /// The tenant
        #[arg(long, default_value = "default")]
        tenant: TenantId,
    },
}

fn role_binding(name: &str) -> anyhow::Result<ResourceRef> {
    Ok(ResourceRef {
        kind: ResourceKind::Role,
        id: ResourceId::new(name).map_err(|error| anyhow!(error))?,
    })
}

fn find_group(state: &State, key: &str) -> anyhow::Result<GroupId> {
    if let Ok(id) = key.parse::<GroupId>()
        && state.group(id).is_some()
    {
        return Ok(id);
    }
    let found: Vec<GroupId> = state.groups_by_name(key).map(|group| group.id).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no group with id or displayName {key:?}"),
        many => bail!("{} groups are named {key:?}; name one by id", many.len()),
    }
}

fn operator() -> Origin {
    Origin {
        source: Source::Operator,
        cause: Cause::Unspecified,
    }
}

/// The role bindings of `state`, highest priority first (then by name), as lines.
fn listing(state: &State) -> Vec<String> {
    let mut rows: Vec<(i32, String, String)> = state
        .bindings()
        .filter_map(|(resource, groups)| match groups {
            BindingGroups::Role { role, priority, groups } if resource.kind == ResourceKind::Role => {
                let names: Vec<String> = groups
                    .iter()
                    .map(|group| {
                        state
                            .group(*group)
                            .map_or_else(|| group.to_string(), |g| g.display_name.clone())
                    })
                    .collect();
                let line = if resource.id.as_str() == DEFAULT_BINDING {
                    format!("{:<20} {role:<14} (the default role)", resource.id)
                } else {
                    format!(
                        "{:<20} {role:<14} priority {priority:<6} groups: {}",
                        resource.id,
                        names.join(", ")
                    )
                };
                Some((*priority, resource.id.to_string(), line))
            }
            _ => None,
        })
        .collect();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    rows.into_iter().map(|(_, _, line)| line).collect()
}

pub(crate) async fn run(context: &Context, command: RoleCommand) -> anyhow::Result<()> {
    let tenant = match &command {
        RoleCommand::Bind { tenant, .. }
        | RoleCommand::Unbind { tenant, .. }
        | RoleCommand::Default { tenant, .. }
        | RoleCommand::List { tenant } => tenant.clone(),
    };
    let engine = context.open_engine().await?;
    let result: anyhow::Result<()> = async {
        let handle = engine.require_tenant(&tenant)?;
        let state = handle.state();
        let (engine_command, done) = match command {
            RoleCommand::List { .. } => {
                let lines = listing(&state);
                if lines.is_empty() {
                    outln!("tenant {tenant} has no role bindings: no user has a role (the default would be {DEFAULT_ROLE})");
                }
                for line in lines {
                    outln!("{line}");
                }
                return Ok(());
            }
            RoleCommand::Bind {
                name,
                role,
                priority,
                groups,
                ..
            } => {
                if name == DEFAULT_BINDING {
                    bail!("the binding `{DEFAULT_BINDING}` is the default role: set it with `idpsync role default --role …`");
                }
                let groups = groups
                    .iter()
                    .map(|key| find_group(&state, key))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let command = Command::SetBinding {
                    resource: role_binding(&name)?,
                    groups: BindingGroups::Role { role, priority, groups },
                };
                (command, format!("role binding {name} set"))
            }
            RoleCommand::Unbind { name, .. } => (
                Command::RemoveBinding {
                    resource: role_binding(&name)?,
                },
                format!("role binding {name} removed"),
            ),
            RoleCommand::Default { role, .. } => (
                Command::SetBinding {
                    resource: role_binding(DEFAULT_BINDING)?,
                    groups: BindingGroups::Role {
                        role,
                        priority: 0,
                        groups: Vec::new(),
                    },
                },
                "default role set".to_owned(),
            ),
        };
        let committed = handle.execute(engine_command, operator()).await?;
        if committed.events == 0 {
            outln!("{done}: no change (tenant {tenant})");
        } else {
            outln!("{done} (tenant {tenant}, seq {})", committed.head);
        }
        Ok(())
    }
    .await;
    engine.close().await;
    result
}
