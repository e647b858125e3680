//! How a [`UserProfile`] is encoded: one flat struct of its twenty attributes in a fixed
//! order, as it was before the rarer ones moved into [`ProfileDetails`]. Events and sealed
//! profiles hold these bytes, and the hash chain covers them, so the order never changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Address, AttrValue, EnterpriseUser, MultiValue, Name, ProfileDetails, UserProfile};

/// The encoded layout, borrowed from a profile.
#[derive(Serialize)]
struct FlatRef<'a> {
    user_name: &'a String,
    name: &'a Option<Box<Name>>,
    display_name: &'a Option<String>,
    nick_name: &'a Option<String>,
    profile_url: &'a Option<String>,
    title: &'a Option<String>,
    user_type: &'a Option<String>,
    preferred_language: &'a Option<String>,
    locale: &'a Option<String>,
    timezone: &'a Option<String>,
    emails: &'a Vec<MultiValue>,
    phone_numbers: &'a Vec<MultiValue>,
    ims: &'a Vec<MultiValue>,
    photos: &'a Vec<MultiValue>,
    addresses: &'a Vec<Address>,
    entitlements: &'a Vec<MultiValue>,
    roles: &'a Vec<MultiValue>,
    x509_certificates: &'a Vec<MultiValue>,
    enterprise: &'a Option<Box<EnterpriseUser>>,
    extra: &'a BTreeMap<String, AttrValue>,
}

/// The encoded layout, owned.
#[derive(Deserialize)]
struct Flat {
    user_name: String,
    name: Option<Box<Name>>,
    display_name: Option<String>,
    nick_name: Option<String>,
    profile_url: Option<String>,
    title: Option<String>,
    user_type: Option<String>,
    preferred_language: Option<String>,
    locale: Option<String>,
    timezone: Option<String>,
    emails: Vec<MultiValue>,
    phone_numbers: Vec<MultiValue>,
    ims: Vec<MultiValue>,
    photos: Vec<MultiValue>,
    addresses: Vec<Address>,
    entitlements: Vec<MultiValue>,
    roles: Vec<MultiValue>,
    x509_certificates: Vec<MultiValue>,
    enterprise: Option<Box<EnterpriseUser>>,
    extra: BTreeMap<String, AttrValue>,
}

impl Serialize for UserProfile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let details = self.details();
        FlatRef {
            user_name: &self.user_name,
            name: &self.name,
            display_name: &self.display_name,
            nick_name: &details.nick_name,
            profile_url: &details.profile_url,
            title: &details.title,
            user_type: &details.user_type,
            preferred_language: &details.preferred_language,
            locale: &details.locale,
            timezone: &details.timezone,
            emails: &self.emails,
            phone_numbers: &details.phone_numbers,
            ims: &details.ims,
            photos: &details.photos,
            addresses: &details.addresses,
            entitlements: &details.entitlements,
            roles: &details.roles,
            x509_certificates: &details.x509_certificates,
            enterprise: &self.enterprise,
            extra: &details.extra,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UserProfile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<UserProfile, D::Error> {
        let flat = Flat::deserialize(deserializer)?;
        let details = ProfileDetails {
            nick_name: flat.nick_name,
            profile_url: flat.profile_url,
            title: flat.title,
            user_type: flat.user_type,
            preferred_language: flat.preferred_language,
            locale: flat.locale,
            timezone: flat.timezone,
            phone_numbers: flat.phone_numbers,
            ims: flat.ims,
            photos: flat.photos,
            addresses: flat.addresses,
            entitlements: flat.entitlements,
            roles: flat.roles,
            x509_certificates: flat.x509_certificates,
            extra: flat.extra,
        };
        Ok(UserProfile {
            user_name: flat.user_name,
            name: flat.name,
            display_name: flat.display_name,
            emails: flat.emails,
            enterprise: flat.enterprise,
            details: details.boxed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_without_details_decodes_without_their_box_and_empty_details_equal_none() {
        let plain = UserProfile {
            user_name: "alice".into(),
            details: Some(Box::default()),
            ..UserProfile::default()
        };
        let bytes = postcard::to_allocvec(&plain).unwrap();
        let decoded: UserProfile = postcard::from_bytes(&bytes).unwrap();
        assert!(decoded.details.is_none());
        assert_eq!(decoded, plain);

        let mut titled = plain.clone();
        titled.details_mut().title = Some("Engineer".into());
        assert_ne!(titled, plain);
        let decoded: UserProfile = postcard::from_bytes(&postcard::to_allocvec(&titled).unwrap()).unwrap();
        assert_eq!(decoded.details().title.as_deref(), Some("Engineer"));
        assert_eq!(decoded, titled);

        titled.details_mut().title = None;
        titled.compact();
        assert!(titled.details.is_none());
    }
}
