//! `idpsync user erase`: erase a user's personal fields by destroying its key.

use anyhow::anyhow;
use clap::Subcommand;
use idpsync::engine::ids::UserId;
use idpsync::engine::{Cause, Command, Origin, Source};
use idpsync::storage::TenantId;

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Erase a user's personal fields (names, emails, attributes) by destroying its key. The log,
    /// its chain, the user's memberships and history stay; the fields read as erased everywhere,
    /// in the past too. This cannot be undone.
    Erase {
        /// The tenant
        #[arg(long, default_value = "default")]
        tenant: TenantId,
        /// The user, by id or userName
        #[arg(long, value_name = "USERNAME|ID")]
        user: String,
        /// Erase without asking (needed when standard input is not a terminal)
        #[arg(long)]
        yes: bool,
    },
}

/// Asks the person at the terminal to type the user's name (or id) back; refuses when nobody
/// is there to ask.
fn confirm(tenant: &TenantId, id: UserId, user_name: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "erasing cannot be undone: pass --yes to erase user {id} ({user_name}) of tenant {tenant} without a prompt"
        );
    }
    eprint!(
        "Erase user {id} ({user_name}) of tenant {tenant}? Its personal fields become unreadable everywhere, in the past too; this cannot be undone.\nType its userName to confirm: "
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let answer = answer.trim();
    if answer != user_name && answer != id.to_string() {
        anyhow::bail!("not confirmed: nothing was erased");
    }
    Ok(())
}

pub(crate) async fn run(context: &Context, command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Erase { tenant, user, yes } = command;
    let engine = context.open_engine().await?;
    let handle = engine.existing_tenant(&tenant).await?;
    let state = handle.state();
    let found = user
        .parse::<UserId>()
        .ok()
        .and_then(|id| state.user(id))
        .or_else(|| state.user_by_name(&user))
        .cloned()
        .ok_or_else(|| anyhow!("no user with id or userName {user:?} in tenant {tenant}"))?;
    let logged_plain = found.logged_in_the_clear();
    if !yes
        && !found.erased
        && let Err(refused) = confirm(&tenant, found.id, &found.profile.user_name)
    {
        engine.close().await;
        return Err(refused);
    }
    let result = handle
        .execute(
            Command::EraseUser { user: found.id },
            Origin {
                source: Source::Operator,
                cause: Cause::Unspecified,
            },
        )
        .await;
    engine.close().await;
    let committed = result?;
    if committed.events == 0 {
        outln!("user {} was already erased", found.id);
    } else {
        outln!("erased user {} of tenant {tenant} at seq {}", found.id, committed.head);
    }
    if logged_plain {
        eprintln!(
            "warning: some of this user's fields (its profile, or its externalId) were logged in the clear by an earlier build; they now read as erased, but the log still holds them"
        );
    }
    Ok(())
}
