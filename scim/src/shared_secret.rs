//! [`SharedSecret`]: the simplest [`Authenticator`], one secret shared with one client.

use subtle::ConstantTimeEq as _;

use crate::service::{Authenticator, Principal};

/// One bearer secret that stands for one [`Principal`], compared in constant time: for an
/// embedding program whose provisioning client holds a secret it configured, and for tests.
/// A program with many tokens implements [`Authenticator`] over its token store instead.
#[derive(Clone, Debug)]
pub struct SharedSecret {
    secret: String,
    principal: Principal,
}

impl SharedSecret {
    /// `secret`, standing for `principal`.
    pub fn new(secret: impl Into<String>, principal: Principal) -> SharedSecret {
        SharedSecret {
            secret: secret.into(),
            principal,
        }
    }
}

#[async_trait::async_trait]
impl Authenticator for SharedSecret {
    async fn authenticate(&self, secret: &str) -> Option<Principal> {
        // Time that depends on the lengths only, not on where the secrets first differ.
        bool::from(self.secret.as_bytes().ct_eq(secret.as_bytes())).then(|| self.principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use idpsync_engine::ids::{TenantId, TokenId};

    use super::*;

    #[tokio::test]
    async fn only_the_secret_itself_stands_for_the_principal() {
        let principal = Principal {
            tenant: TenantId::default_tenant(),
            token: TokenId::MIN,
        };
        let shared = SharedSecret::new("let-me-in", principal.clone());
        assert_eq!(shared.authenticate("let-me-in").await, Some(principal));
        for other in ["", "let-me-i", "let-me-in!", "Let-me-in", "let-me-on"] {
            assert_eq!(shared.authenticate(other).await, None, "{other:?}");
        }
    }
}
