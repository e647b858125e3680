//! The JSON shapes of the tenant's tokens: a token as listed (never its secret's hash), the
//! body that creates one and the answer that shows its secret once.

use idpsync_engine::ids::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::tokens::{TokenKind, TokenRecord};

/// A token of the tenant: everything but its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRow {
    /// Its id, recorded in the events it causes.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// `scim` or `admin`.
    pub kind: String,
    /// When it was created.
    pub created_at: String,
    /// When it stops opening the door; absent: never.
    pub expires_at: Option<String>,
    /// When it last opened the door, written at most once a minute; absent: never used.
    pub last_used_at: Option<String>,
    /// When it was revoked; absent: not revoked.
    pub revoked_at: Option<String>,
    /// `active`, `revoked` or `expired`, as of the answer.
    pub status: String,
}

impl TokenRow {
    /// `token` as of `now`.
    pub fn of(token: &TokenRecord, now: Timestamp) -> TokenRow {
        let moment = |at: Option<Timestamp>| at.map(Timestamp::to_rfc3339);
        TokenRow {
            id: token.id.to_string(),
            name: token.name.clone(),
            kind: token.kind.as_str().to_owned(),
            created_at: token.created.to_rfc3339(),
            expires_at: moment(token.expires),
            last_used_at: moment(token.last_used),
            revoked_at: moment(token.revoked),
            status: token.status(now).as_str().to_owned(),
        }
    }
}

/// `GET /tenants/{tenant}/tokens`: the tenant's tokens, oldest first.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub items: Vec<TokenRow>,
}

/// The body of `POST /tenants/{tenant}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTokenBody {
    /// A name for people (`entra-prod`).
    pub name: String,
    /// What the token may do.
    pub kind: TokenKind,
    /// A moment (RFC 3339 or a date) or a time from now (`90d`); absent: never expires.
    #[schema(example = "90d")]
    pub expires_at: Option<String>,
}

/// The answer to `POST /tenants/{tenant}/tokens`: the new token and its secret, shown this
/// once and never stored.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: TokenRow,
    /// The secret to send as `Authorization: Bearer <secret>`.
    pub secret: String,
}
