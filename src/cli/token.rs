//! `idpsync token create | list | revoke`. Works while `serve` runs: tokens live in their own
//! file, which the server re-reads when it changes; on a store replicas share (PostgreSQL),
//! they live in the store, which every replica re-reads every second.

use clap::{Args, Subcommand};
use idpsync::engine::ids::Timestamp;
use idpsync::shared_tokens::SharedTokens;
use idpsync::storage::TenantId;
use idpsync::token_book::TokenBook;
use idpsync::tokens::{TokenKind, TokenRecord, TokenStore, parse_expiry};

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
    /// When the token stops working: a date (2027-01-01, midnight UTC), an RFC 3339 moment, or
    /// a time from now such as 90d or 12h [default: never]
    #[arg(long, value_name = "WHEN")]
    expires: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    /// Only this tenant's tokens
    #[arg(long)]
    tenant: Option<TenantId>,
}

/// Where the tokens are: the data directory's file, or the shared store.
async fn book(context: &Context) -> anyhow::Result<TokenBook> {
    Ok(match context.storage.is_shared() {
        true => TokenBook::Shared(SharedTokens::new(context.open_store().await?)),
        false => TokenBook::File(TokenStore::new(&context.data_dir)),
    })
}

/// A moment for the list, or `-`.
fn moment(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), Timestamp::to_rfc3339)
}

fn list_line(token: &TokenRecord, now: Timestamp) -> String {
    format!(
        "{:<36}  {:<16}  {:<5}  {:<27}  {:<27}  {:<27}  {:<7}  {}",
        token.id.to_string(),
        token.tenant.to_string(),
        token.kind.as_str(),
        token.created.to_rfc3339(),
        moment(token.expires),
        moment(token.last_used),
        token.status(now).as_str(),
        token.name
    )
}

pub(crate) async fn run(context: &Context, command: TokenCommand) -> anyhow::Result<()> {
    let store = book(context).await?;
    match command {
        TokenCommand::Create(args) => {
            let (kind, label) = if args.admin {
                (TokenKind::Admin, "admin")
            } else {
                (TokenKind::Scim, "SCIM")
            };
            let expires = match &args.expires {
                Some(text) => Some(parse_expiry(text, Timestamp::now())?),
                None => None,
            };
            let (record, secret) = store.create(&args.tenant, &args.name, kind, expires).await?;
            let until = record
                .expires
                .map_or_else(String::new, |expires| format!(", valid until {expires}"));
            outln!(
                "created {label} token {} ({}) for tenant {}{until}; it is shown only now:",
                record.id,
                record.name,
                record.tenant
            );
            outln!("{secret}");
        }
        TokenCommand::List(args) => {
            outln!(
                "{:<36}  {:<16}  {:<5}  {:<27}  {:<27}  {:<27}  {:<7}  name",
                "id",
                "tenant",
                "kind",
                "created",
                "expires",
                "last used",
                "status"
            );
            let now = Timestamp::now();
            for token in store.list().await? {
                if args.tenant.as_ref().is_some_and(|tenant| *tenant != token.tenant) {
                    continue;
                }
                outln!("{}", list_line(&token, now));
            }
        }
        TokenCommand::Revoke { token } => {
            let revoked = store.revoke(&token).await?;
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
