//! The console's pages, one module each.

pub(super) mod audit;
pub(super) mod held;
pub(super) mod integrations;
pub(super) mod log;
pub(super) mod sign_in;
pub(super) mod tenant;

use axum::response::Redirect;

use super::layout::at;
use super::signed_in::{Refused, SignedIn};

/// `GET /admin/`: the tenant page when signed in, sign-in otherwise.
pub(super) async fn home(signed_in: Result<SignedIn, Refused>) -> Redirect {
    match signed_in {
        Ok(_) => Redirect::to(&at("/tenant")),
        Err(_) => Redirect::to(&at("/sign-in")),
    }
}
