//! `idpsync token create | list | revoke`. Works while `serve` runs: tokens live in their own
//! file, which the server re-reads when it changes.

use clap::{Args, Subcommand};
use idpsync::storage::TenantId;
use idpsync::tokens::{TokenKind, TokenStore};

use super::Context;

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Create a SCIM bearer token (or with --admin a management API token) for a tenant; the
    /// token is printed once, alone on the last line of standard output
    Create(CreateArgs),
    /// List tokens (never their secrets)
    List(ListArgs),
    /// Revoke a token by id (or by name, if only one token has it)
    Revoke {
        /// The token's id or name
        #[arg(value_name = "ID|NAME")]
        token: String,
    },
}

#[derive(Args, Debug)]
pub(crate) struct CreateArgs {
    /// The tenant the token gives access to (created on its first request)
    #[arg(long, default_value = "default")]
    tenant: TenantId,
    /// A name for people, such as `entra-prod`
    #[arg(long)]
    name: String,
    /// A token for the management API (`/api/v1`) of the tenant instead of SCIM
    #[arg(long)]
    admin: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only this tenant's tokens
    #[arg(long)]
    tenant: Option<TenantId>,
}

pub(crate) fn run(context: &Context, command: TokenCommand) -> anyhow::Result<()> {
    let store = TokenStore::new(&context.data_dir);
    match command {
        TokenCommand::Create(args) => {
            let (kind, label) = if args.admin {
                (TokenKind::Admin, "admin")
            } else {
                (TokenKind::Scim, "SCIM")
            };
            let (record, secret) = store.create(&args.tenant, &args.name, kind)?;
            outln!(
                "created {label} token {} ({}) for tenant {}; it is shown only now:",
                record.id,
                record.name,
                record.tenant
            );
            outln!("{secret}");
        }
        TokenCommand::List(args) => {
            outln!(
                "{:<36}  {:<16}  {:<5}  {:<28}  {:<8}  name",
                "id",
                "tenant",
                "kind",
                "created",
                "status"
            );
            for token in store.list()? {
                if args.tenant.as_ref().is_some_and(|tenant| *tenant != token.tenant) {
                    continue;
                }
                let status = match token.revoked {
                    Some(_) => "revoked",
                    None => "active",
                };
                outln!(
                    "{:<36}  {:<16}  {:<5}  {:<28}  {:<8}  {}",
                    token.id.to_string(),
                    token.tenant.to_string(),
                    token.kind.as_str(),
                    token.created.to_rfc3339(),
                    status,
                    token.name
                );
            }
        }
        TokenCommand::Revoke { token } => {
            let revoked = store.revoke(&token)?;
            outln!(
                "revoked token {} ({}) of tenant {}",
                revoked.id,
                revoked.name,
                revoked.tenant
            );
        }
    }
    Ok(())
}
