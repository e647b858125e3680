//! One module per IdP: how it authenticates, lists and maps. What they share lives here: the
//! profile every vendor's user becomes, and the time formats of incremental filters.

pub(crate) mod auth0;
pub(crate) mod authentik;
pub(crate) mod entra;
pub(crate) mod google;
pub(crate) mod jumpcloud;
pub(crate) mod keycloak;
pub(crate) mod okta;
pub(crate) mod zitadel;

use std::time::Duration;

use idpsync_engine::model::{MultiValue, Name, UserProfile};
use idpsync_engine::reconcile::SnapshotUser;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::driver::Cursor;

/// Changes are asked for from this long before the previous run started, so that clock skew
/// and the IdP's own indexing lag cannot hide a change. Seeing a change twice costs nothing.
const SINCE_OVERLAP: Duration = Duration::from_secs(300);

/// The person-describing fields every vendor has, more or less.
#[derive(Default)]
pub(crate) struct Person<'a> {
    pub(crate) user_name: Option<&'a str>,
    pub(crate) email: Option<&'a str>,
    pub(crate) given_name: Option<&'a str>,
    pub(crate) family_name: Option<&'a str>,
    pub(crate) display_name: Option<&'a str>,
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

impl Person<'_> {
    /// The snapshot user: the IdP id as externalId; userName from the vendor's login name,
    /// else the email, else the id.
    pub(crate) fn into_user(self, external_id: String, active: bool) -> SnapshotUser {
        let email = non_empty(self.email);
        let user_name = non_empty(self.user_name).or(email).unwrap_or(&external_id).to_owned();
        let given_name = non_empty(self.given_name).map(str::to_owned);
        let family_name = non_empty(self.family_name).map(str::to_owned);
        let display_name = non_empty(self.display_name).map(str::to_owned);
        let name = (given_name.is_some() || family_name.is_some()).then(|| {
            Box::new(Name {
                formatted: display_name.clone(),
                family_name,
                given_name,
                ..Name::default()
            })
        });
        let emails = email
            .map(|email| MultiValue {
                value: email.to_owned(),
                kind: Some("work".to_owned()),
                primary: true,
                display: None,
            })
            .into_iter()
            .collect();
        SnapshotUser {
            external_id,
            active,
            profile: UserProfile {
                user_name,
                name,
                display_name,
                emails,
                ..UserProfile::default()
            },
        }
    }
}

/// The cursor of a run that starts now: changes since a little before now.
pub(crate) fn since_now() -> Cursor {
    let now = OffsetDateTime::now_utc() - SINCE_OVERLAP;
    Cursor::Since {
        unix_seconds: now.unix_timestamp(),
    }
}

/// A `Since` cursor as RFC 3339 with milliseconds (`2024-01-01T00:00:00.000Z`).
pub(crate) fn rfc3339_millis(unix_seconds: i64) -> String {
    let time = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let text = time.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    // `format` writes whole seconds as `…:00Z`; the vendors document milliseconds.
    match text.strip_suffix('Z') {
        Some(stem) if !stem.contains('.') => format!("{stem}.000Z"),
        _ => text,
    }
}

/// The unix seconds of a `Since` cursor, or an error naming the cursor that does not fit.
pub(crate) fn since_seconds(cursor: &Cursor) -> Result<i64, crate::error::DriverError> {
    match cursor {
        Cursor::Since { unix_seconds } => Ok(*unix_seconds),
        other => Err(crate::error::DriverError::CursorExpired(format!(
            "a {other:?} cursor does not fit this IdP"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_times_use_the_vendor_format() {
        assert_eq!(rfc3339_millis(1_704_067_200), "2024-01-01T00:00:00.000Z");
    }

    #[test]
    fn user_name_falls_back_to_email_then_id() {
        let user = Person {
            email: Some("a@example.com"),
            ..Person::default()
        }
        .into_user("id1".into(), true);
        assert_eq!(user.profile.user_name, "a@example.com");
        assert_eq!(
            Person::default().into_user("id2".into(), false).profile.user_name,
            "id2"
        );
    }
}
