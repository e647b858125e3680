//! `idpsync token create | list | revoke`. Works while `serve` runs: tokens live in their own
//! file, which the server re-reads when it changes; on a store replicas share (PostgreSQL),
//! they live in the store, which every replica re-reads every second.

use clap::{Args, Subcommand};
use idpsync::shared_tokens::SharedTokens;
use idpsync::storage::TenantId;
use idpsync::tokens::{TokenError, TokenKind, TokenRecord, TokenStore};

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

/// Where the tokens are: the data directory's file, or the shared store.
enum Tokens {
    File(TokenStore),
    Shared(SharedTokens),
}

impl Tokens {
    async fn of(context: &Context) -> anyhow::Result<Tokens> {
        Ok(match context.storage.is_shared() {
            true => Tokens::Shared(SharedTokens::new(context.open_store().await?)),
            false => Tokens::File(TokenStore::new(&context.data_dir)),
        })
    }

    async fn create(
        &self,
        tenant: &TenantId,
        name: &str,
        kind: TokenKind,
    ) -> Result<(TokenRecord, String), TokenError> {
        match self {
            Tokens::File(store) => store.create(tenant, name, kind),
            Tokens::Shared(shared) => shared.create(tenant, name, kind).await,
        }
    }

    async fn list(&self) -> Result<Vec<TokenRecord>, TokenError> {
        match self {
            Tokens::File(store) => store.list(),
            Tokens::Shared(shared) => shared.list().await,
        }
    }

    async fn revoke(&self, id_or_name: &str) -> Result<TokenRecord, TokenError> {
        match self {
            Tokens::File(store) => store.revoke(id_or_name),
            Tokens::Shared(shared) => shared.revoke(id_or_name).await,
        }
    }
}

pub(crate) async fn run(context: &Context, command: TokenCommand) -> anyhow::Result<()> {
    let store = Tokens::of(context).await?;
    match command {
        TokenCommand::Create(args) => {
            let (kind, label) = if args.admin {
                (TokenKind::Admin, "admin")
            } else {
                (TokenKind::Scim, "SCIM")
            };
            let (record, secret) = store.create(&args.tenant, &args.name, kind).await?;
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
            for token in store.list().await? {
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
