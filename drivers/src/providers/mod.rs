//! One module per IdP, each holding all of its vendor: the `provider` name, the keys of its
//! settings (a `#[derive(Deserialize)]` struct that denies unknown keys), their defaults and
//! alternatives, how it authenticates, and how it lists and maps. What the vendors share sits
//! beside them: the profile every vendor's user becomes ([`person`]) and the cursors and time
//! format of incremental filters ([`since`]), and how a deletion feed joins an incremental
//! listing ([`feed`]).
//!
//! # Registry
//! [`VENDORS`] names every vendor once. It is a table, not a `match`: the configuration finds a
//! vendor by its `provider` value in it, and the same table gives the list of names an unknown
//! `provider` is answered with, so nothing else has to learn of a new vendor. Adding one is its
//! module, with its `VENDOR` (its name and its settings type), plus the `mod` line and one
//! entry here; a module left out of the table fails the build, as its `VENDOR` and everything
//! behind it are then dead code.

mod auth0;
mod authentik;
mod entra;
mod feed;
mod google;
mod jumpcloud;
mod keycloak;
mod okta;
mod person;
mod since;
mod zitadel;

use crate::provider::Vendor;

/// Every vendor, in the order the documentation lists them.
pub(crate) static VENDORS: &[Vendor] = &[
    entra::VENDOR,
    okta::VENDOR,
    google::VENDOR,
    jumpcloud::VENDOR,
    keycloak::VENDOR,
    auth0::VENDOR,
    authentik::VENDOR,
    zitadel::VENDOR,
];

/// The vendor a `provider` value names.
pub(crate) fn vendor(name: &str) -> Option<&'static Vendor> {
    VENDORS.iter().find(|vendor| vendor.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_vendor_is_named_once() {
        let mut names: Vec<&str> = VENDORS.iter().map(|vendor| vendor.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VENDORS.len(), "{names:?}");
    }
}
