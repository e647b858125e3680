//! One module per IdP: how it authenticates, lists and maps. What they share sits beside them:
//! the profile every vendor's user becomes ([`person`]) and the cursors and time format of
//! incremental filters ([`since`]).

pub(crate) mod auth0;
pub(crate) mod authentik;
pub(crate) mod entra;
pub(crate) mod google;
pub(crate) mod jumpcloud;
pub(crate) mod keycloak;
pub(crate) mod okta;
mod person;
mod since;
pub(crate) mod zitadel;
