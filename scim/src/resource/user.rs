//! Users on the wire: the engine's `User` rendered as a SCIM User (core + enterprise
//! extension + read-only `groups`), and a canonical User body decoded into a `UserProfile`.

use idpsync_engine::State;
use idpsync_engine::ids::{Member, UserId};
use idpsync_engine::model::{
    Address, EnterpriseUser, Group, Manager, MultiValue, Name, ProfileDetails, User, UserProfile,
};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::json::{Each, entry, flag, objects, text, to_object};
use super::meta::{BaseUrl, Location, MetaView};
use crate::error::Error;
use crate::schema::{ENTERPRISE_USER_URN, GROUP_TYPE, USER_TYPE, USER_URN};

/// What a User body asks for, ready for a `ProvisionUser` or `ReplaceUser` command.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct UserWrite {
    /// The client's id.
    pub(crate) external_id: Option<String>,
    /// `active`, if the body has it.
    pub(crate) active: Option<bool>,
    /// Everything else.
    pub(crate) profile: UserProfile,
}

/// A user as a SCIM User document (core, enterprise extension, read-only `groups`, `meta`),
/// serialised straight from the engine's state.
pub(crate) struct UserDocument<'a> {
    /// The state the user and its groups are read from.
    pub(crate) state: &'a State,
    /// The user.
    pub(crate) user: &'a User,
    /// For `meta.location` and `$ref`.
    pub(crate) base: &'a BaseUrl,
}

/// Renders `user` in full as a JSON object (projection is the caller's).
pub(crate) fn render(state: &State, user: &User, base: &BaseUrl) -> Map<String, Value> {
    to_object(&UserDocument { state, user, base })
}

impl Serialize for UserDocument<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (user, profile, base) = (self.user, &self.user.profile, self.base);
        let mut map = serializer.serialize_map(None)?;
        let schemas: &[&str] = match profile.enterprise {
            Some(_) => &[USER_URN, ENTERPRISE_USER_URN],
            None => &[USER_URN],
        };
        map.serialize_entry("schemas", schemas)?;
        map.serialize_entry("id", &user.id)?;
        entry(&mut map, "externalId", &user.external_id)?;
        map.serialize_entry("userName", &profile.user_name)?;
        if let Some(name) = profile.name.as_deref().filter(|name| **name != Name::default()) {
            map.serialize_entry("name", &NameView(name))?;
        }
        for (key, value) in profile.text_fields() {
            entry(&mut map, key, value)?;
        }
        map.serialize_entry("active", &user.active)?;
        for (key, values) in profile.multi_valued_fields() {
            if !values.is_empty() {
                map.serialize_entry(key, &Each(|| values.iter().map(ValueView)))?;
            }
        }
        let addresses = &profile.details().addresses;
        if !addresses.is_empty() {
            map.serialize_entry("addresses", &Each(|| addresses.iter().map(AddressView)))?;
        }
        let member = Member::User(user.id);
        if self.state.groups_of(member).next().is_some() {
            let groups = || {
                self.state
                    .groups_of(member)
                    .filter_map(|group| self.state.group(group))
                    .map(|group| GroupReference { group, base })
            };
            map.serialize_entry("groups", &Each(groups))?;
        }
        if let Some(enterprise) = &profile.enterprise {
            map.serialize_entry(
                ENTERPRISE_USER_URN,
                &EnterpriseView {
                    state: self.state,
                    enterprise,
                    base,
                },
            )?;
        }
        let meta = MetaView {
            location: Location {
                base,
                resource: &USER_TYPE,
                id: user.id,
            },
            created: user.created,
            last_modified: user.last_modified,
            version: user.version,
        };
        map.serialize_entry("meta", &meta)?;
        map.end()
    }
}

struct NameView<'a>(&'a Name);

impl Serialize for NameView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let name = self.0;
        let mut map = serializer.serialize_map(None)?;
        entry(&mut map, "formatted", &name.formatted)?;
        entry(&mut map, "familyName", &name.family_name)?;
        entry(&mut map, "givenName", &name.given_name)?;
        entry(&mut map, "middleName", &name.middle_name)?;
        entry(&mut map, "honorificPrefix", &name.honorific_prefix)?;
        entry(&mut map, "honorificSuffix", &name.honorific_suffix)?;
        map.end()
    }
}

struct ValueView<'a>(&'a MultiValue);

impl Serialize for ValueView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", &value.value)?;
        entry(&mut map, "display", &value.display)?;
        entry(&mut map, "type", &value.kind)?;
        map.serialize_entry("primary", &value.primary)?;
        map.end()
    }
}

struct AddressView<'a>(&'a Address);

impl Serialize for AddressView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let address = self.0;
        let mut map = serializer.serialize_map(None)?;
        entry(&mut map, "formatted", &address.formatted)?;
        entry(&mut map, "streetAddress", &address.street_address)?;
        entry(&mut map, "locality", &address.locality)?;
        entry(&mut map, "region", &address.region)?;
        entry(&mut map, "postalCode", &address.postal_code)?;
        entry(&mut map, "country", &address.country)?;
        entry(&mut map, "type", &address.kind)?;
        map.serialize_entry("primary", &address.primary)?;
        map.end()
    }
}

/// One entry of a user's `groups`.
struct GroupReference<'a> {
    group: &'a Group,
    base: &'a BaseUrl,
}

impl Serialize for GroupReference<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("value", &self.group.id)?;
        let location = Location {
            base: self.base,
            resource: &GROUP_TYPE,
            id: self.group.id,
        };
        map.serialize_entry("$ref", &location)?;
        map.serialize_entry("display", &self.group.display_name)?;
        map.serialize_entry("type", "direct")?;
        map.end()
    }
}

struct EnterpriseView<'a> {
    state: &'a State,
    enterprise: &'a EnterpriseUser,
    base: &'a BaseUrl,
}

impl Serialize for EnterpriseView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let enterprise = self.enterprise;
        let mut map = serializer.serialize_map(None)?;
        entry(&mut map, "employeeNumber", &enterprise.employee_number)?;
        entry(&mut map, "costCenter", &enterprise.cost_center)?;
        entry(&mut map, "organization", &enterprise.organization)?;
        entry(&mut map, "division", &enterprise.division)?;
        entry(&mut map, "department", &enterprise.department)?;
        if let Some(manager) = &enterprise.manager {
            // `$ref` and `displayName` are read-only: they describe the manager when it is a
            // user of this tenant, and are absent when the client's value names someone else.
            let boss = manager.value.parse::<UserId>().ok().and_then(|id| self.state.user(id));
            map.serialize_entry(
                "manager",
                &ManagerView {
                    value: &manager.value,
                    boss: boss.map(|boss| &**boss),
                    base: self.base,
                },
            )?;
        }
        map.end()
    }
}

struct ManagerView<'a> {
    value: &'a str,
    boss: Option<&'a User>,
    base: &'a BaseUrl,
}

impl Serialize for ManagerView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("value", self.value)?;
        if let Some(boss) = self.boss {
            let location = Location {
                base: self.base,
                resource: &USER_TYPE,
                id: boss.id,
            };
            map.serialize_entry("$ref", &location)?;
            let display = boss.profile.display_name.as_ref().unwrap_or(&boss.profile.user_name);
            map.serialize_entry("displayName", display)?;
        }
        map.end()
    }
}

/// Decodes a canonical User body (see `crate::normalise`).
pub(crate) fn decode(body: &Map<String, Value>) -> Result<UserWrite, Error> {
    let Some(user_name) = text(body, "userName") else {
        return Err(Error::invalid_value("userName is required"));
    };
    let name = body.get("name").and_then(Value::as_object).map(|name| Name {
        formatted: text(name, "formatted"),
        family_name: text(name, "familyName"),
        given_name: text(name, "givenName"),
        middle_name: text(name, "middleName"),
        honorific_prefix: text(name, "honorificPrefix"),
        honorific_suffix: text(name, "honorificSuffix"),
    });
    let name = name.filter(|name| *name != Name::default()).map(Box::new);
    let enterprise = body
        .get(ENTERPRISE_USER_URN)
        .and_then(Value::as_object)
        .map(decode_enterprise)
        .filter(|enterprise| *enterprise != EnterpriseUser::default())
        .map(Box::new);
    // In the order of the schema: where several attributes are wrong, the first is reported.
    let display_name = text(body, "displayName");
    let emails = decode_values(body, "emails")?;
    let details = ProfileDetails {
        nick_name: text(body, "nickName"),
        profile_url: text(body, "profileUrl"),
        title: text(body, "title"),
        user_type: text(body, "userType"),
        preferred_language: text(body, "preferredLanguage"),
        locale: text(body, "locale"),
        timezone: text(body, "timezone"),
        phone_numbers: decode_values(body, "phoneNumbers")?,
        ims: decode_values(body, "ims")?,
        photos: decode_values(body, "photos")?,
        addresses: objects(body, "addresses").map(decode_address).collect(),
        entitlements: decode_values(body, "entitlements")?,
        roles: decode_values(body, "roles")?,
        x509_certificates: decode_values(body, "x509Certificates")?,
        extra: Default::default(),
    };
    let profile = UserProfile {
        user_name,
        name,
        display_name,
        emails,
        enterprise,
        details: details.boxed(),
    };
    Ok(UserWrite {
        external_id: text(body, "externalId"),
        active: flag(body, "active"),
        profile,
    })
}

fn decode_values(body: &Map<String, Value>, key: &str) -> Result<Vec<MultiValue>, Error> {
    objects(body, key)
        .map(|object| {
            Ok(MultiValue {
                value: text(object, "value")
                    .ok_or_else(|| Error::invalid_value(format!("each of {key} needs a value")))?,
                display: text(object, "display"),
                kind: text(object, "type"),
                primary: flag(object, "primary").unwrap_or(false),
            })
        })
        .collect()
}

fn decode_address(object: &Map<String, Value>) -> Address {
    Address {
        formatted: text(object, "formatted"),
        street_address: text(object, "streetAddress"),
        locality: text(object, "locality"),
        region: text(object, "region"),
        postal_code: text(object, "postalCode"),
        country: text(object, "country"),
        kind: text(object, "type"),
        primary: flag(object, "primary").unwrap_or(false),
    }
}

fn decode_enterprise(object: &Map<String, Value>) -> EnterpriseUser {
    EnterpriseUser {
        employee_number: text(object, "employeeNumber"),
        cost_center: text(object, "costCenter"),
        organization: text(object, "organization"),
        division: text(object, "division"),
        department: text(object, "department"),
        manager: object
            .get("manager")
            .and_then(Value::as_object)
            .and_then(|manager| text(manager, "value"))
            .map(|value| Manager {
                value,
                display_name: None,
            }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::normalise::normalise_resource;

    #[test]
    fn decode_then_render_keeps_every_stored_attribute() {
        let body = json!({
            "userName": "bjensen@example.com", "externalId": "701984", "active": false,
            "name": {"formatted": "Ms. Barbara J Jensen III", "familyName": "Jensen", "givenName": "Barbara",
                     "middleName": "Jane", "honorificPrefix": "Ms.", "honorificSuffix": "III"},
            "displayName": "Babs Jensen", "nickName": "Babs", "profileUrl": "https://login.example.com/bjensen",
            "title": "Tour Guide", "userType": "Employee", "preferredLanguage": "en-US", "locale": "en-US",
            "timezone": "America/Los_Angeles",
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true, "display": "work mail"}],
            "phoneNumbers": [{"value": "555-555-5555", "type": "work"}],
            "ims": [{"value": "someaimhandle", "type": "aim"}],
            "photos": [{"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"}],
            "addresses": [{"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
                           "region": "CA", "postalCode": "91608", "country": "US", "formatted": "100 Universal City Plaza", "primary": true}],
            "entitlements": [{"value": "vpn"}], "roles": [{"value": "admin"}], "x509Certificates": [{"value": "MIIDQzCC"}],
            ENTERPRISE_USER_URN: {"employeeNumber": "701984", "costCenter": "4130", "organization": "Universal Studios",
                                  "division": "Theme Park", "department": "Tour Operations", "manager": {"value": "26118915"}}
        });
        let canonical = normalise_resource(&USER_TYPE, &body).unwrap();
        let write = decode(&canonical).unwrap();
        let user = User {
            id: UserId::new(),
            owner: idpsync_engine::model::Owner::Scim,
            external_id: write.external_id.clone(),
            external_id_hash: None,
            active: false,
            profile: write.profile.clone(),
            sealed: None,
            erased: false,
            readable: true,
            created: Default::default(),
            last_modified: Default::default(),
            version: Default::default(),
        };
        let rendered = render(&State::new(), &user, &BaseUrl::new("http://localhost/scim/v2"));
        let again = decode(&normalise_resource(&USER_TYPE, &Value::Object(rendered)).unwrap()).unwrap();
        assert_eq!(again, write);
    }

    #[test]
    fn user_name_is_required() {
        assert_eq!(
            decode(&Map::new()).unwrap_err().scim_type(),
            Some(crate::error::ScimType::InvalidValue)
        );
    }
}
