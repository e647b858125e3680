//! Users on the wire: the engine's `User` rendered as a SCIM User (core + enterprise
//! extension + read-only `groups`), and a canonical User body decoded into a `UserProfile`.

use idpsync_engine::State;
use idpsync_engine::ids::{Member, UserId};
use idpsync_engine::model::{Address, EnterpriseUser, Manager, MultiValue, Name, User, UserProfile};
use serde_json::{Map, Value, json};

use super::{BaseUrl, Meta, document, flag, objects, put_text, text};
use crate::error::Error;
use crate::schema::{ENTERPRISE_USER_URN, GROUP_TYPE, USER_TYPE, USER_URN};

/// What a User body asks for, ready for a `ProvisionUser` or `ReplaceUser` command.
#[derive(Clone, Debug, PartialEq)]
pub struct UserWrite {
    /// The client's id.
    pub external_id: Option<String>,
    /// `active`, if the body has it.
    pub active: Option<bool>,
    /// Everything else.
    pub profile: UserProfile,
}

/// Renders `user` in full (projection is the caller's).
pub fn render(state: &State, user: &User, base: &BaseUrl) -> Map<String, Value> {
    let profile = &user.profile;
    let mut schemas = vec![USER_URN];
    if profile.enterprise.is_some() {
        schemas.push(ENTERPRISE_USER_URN);
    }
    let meta = Meta {
        id: user.id.to_string(),
        created: user.created,
        last_modified: user.last_modified,
        version: user.version,
    };
    let mut doc = document(&USER_TYPE, schemas, meta, base);
    put_text(&mut doc, "externalId", &user.external_id);
    doc.insert("userName".to_owned(), Value::String(profile.user_name.clone()));
    if let Some(name) = &profile.name {
        let mut object = Map::new();
        put_text(&mut object, "formatted", &name.formatted);
        put_text(&mut object, "familyName", &name.family_name);
        put_text(&mut object, "givenName", &name.given_name);
        put_text(&mut object, "middleName", &name.middle_name);
        put_text(&mut object, "honorificPrefix", &name.honorific_prefix);
        put_text(&mut object, "honorificSuffix", &name.honorific_suffix);
        if !object.is_empty() {
            doc.insert("name".to_owned(), Value::Object(object));
        }
    }
    for (key, value) in [
        ("displayName", &profile.display_name),
        ("nickName", &profile.nick_name),
        ("profileUrl", &profile.profile_url),
        ("title", &profile.title),
        ("userType", &profile.user_type),
        ("preferredLanguage", &profile.preferred_language),
        ("locale", &profile.locale),
        ("timezone", &profile.timezone),
    ] {
        put_text(&mut doc, key, value);
    }
    doc.insert("active".to_owned(), Value::Bool(user.active));
    for (key, values) in multi_valued_fields(profile) {
        if !values.is_empty() {
            doc.insert(key.to_owned(), Value::Array(values.iter().map(render_value).collect()));
        }
    }
    if !profile.addresses.is_empty() {
        doc.insert(
            "addresses".to_owned(),
            Value::Array(profile.addresses.iter().map(render_address).collect()),
        );
    }
    let groups: Vec<Value> = state
        .groups_of(Member::User(user.id))
        .filter_map(|group_id| state.group(group_id))
        .map(|group| {
            json!({
                "value": group.id.to_string(),
                "$ref": base.location(&GROUP_TYPE, &group.id.to_string()),
                "display": group.display_name,
                "type": "direct",
            })
        })
        .collect();
    if !groups.is_empty() {
        doc.insert("groups".to_owned(), Value::Array(groups));
    }
    if let Some(enterprise) = &profile.enterprise {
        doc.insert(
            ENTERPRISE_USER_URN.to_owned(),
            Value::Object(render_enterprise(state, enterprise, base)),
        );
    }
    doc
}

fn multi_valued_fields(profile: &UserProfile) -> [(&'static str, &Vec<MultiValue>); 7] {
    [
        ("emails", &profile.emails),
        ("phoneNumbers", &profile.phone_numbers),
        ("ims", &profile.ims),
        ("photos", &profile.photos),
        ("entitlements", &profile.entitlements),
        ("roles", &profile.roles),
        ("x509Certificates", &profile.x509_certificates),
    ]
}

fn render_value(value: &MultiValue) -> Value {
    let mut object = Map::new();
    object.insert("value".to_owned(), Value::String(value.value.clone()));
    put_text(&mut object, "display", &value.display);
    put_text(&mut object, "type", &value.kind);
    object.insert("primary".to_owned(), Value::Bool(value.primary));
    Value::Object(object)
}

fn render_address(address: &Address) -> Value {
    let mut object = Map::new();
    put_text(&mut object, "formatted", &address.formatted);
    put_text(&mut object, "streetAddress", &address.street_address);
    put_text(&mut object, "locality", &address.locality);
    put_text(&mut object, "region", &address.region);
    put_text(&mut object, "postalCode", &address.postal_code);
    put_text(&mut object, "country", &address.country);
    put_text(&mut object, "type", &address.kind);
    object.insert("primary".to_owned(), Value::Bool(address.primary));
    Value::Object(object)
}

fn render_enterprise(state: &State, enterprise: &EnterpriseUser, base: &BaseUrl) -> Map<String, Value> {
    let mut object = Map::new();
    put_text(&mut object, "employeeNumber", &enterprise.employee_number);
    put_text(&mut object, "costCenter", &enterprise.cost_center);
    put_text(&mut object, "organization", &enterprise.organization);
    put_text(&mut object, "division", &enterprise.division);
    put_text(&mut object, "department", &enterprise.department);
    if let Some(manager) = &enterprise.manager {
        let mut reference = Map::new();
        reference.insert("value".to_owned(), Value::String(manager.value.clone()));
        // `$ref` and `displayName` are read-only: they describe the manager when it is a user
        // of this tenant, and are absent when the client's value names someone else.
        if let Some(boss) = manager.value.parse::<UserId>().ok().and_then(|id| state.user(id)) {
            reference.insert(
                "$ref".to_owned(),
                Value::String(base.location(&USER_TYPE, &boss.id.to_string())),
            );
            let display = boss.profile.display_name.as_ref().unwrap_or(&boss.profile.user_name);
            reference.insert("displayName".to_owned(), Value::String(display.clone()));
        }
        object.insert("manager".to_owned(), Value::Object(reference));
    }
    object
}

/// Decodes a canonical User body (see `crate::normalise`).
pub fn decode(body: &Map<String, Value>) -> Result<UserWrite, Error> {
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
    let profile = UserProfile {
        user_name,
        name,
        display_name: text(body, "displayName"),
        nick_name: text(body, "nickName"),
        profile_url: text(body, "profileUrl"),
        title: text(body, "title"),
        user_type: text(body, "userType"),
        preferred_language: text(body, "preferredLanguage"),
        locale: text(body, "locale"),
        timezone: text(body, "timezone"),
        emails: decode_values(body, "emails")?,
        phone_numbers: decode_values(body, "phoneNumbers")?,
        ims: decode_values(body, "ims")?,
        photos: decode_values(body, "photos")?,
        addresses: objects(body, "addresses").map(decode_address).collect(),
        entitlements: decode_values(body, "entitlements")?,
        roles: decode_values(body, "roles")?,
        x509_certificates: decode_values(body, "x509Certificates")?,
        enterprise,
        extra: Default::default(),
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
            active: false,
            profile: write.profile.clone(),
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
