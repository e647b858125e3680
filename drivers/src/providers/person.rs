//! [`Person`]: the person-describing fields every vendor has, more or less, and the snapshot
//! user they become.

use idpsync_engine::model::{MultiValue, Name, UserProfile};
use idpsync_engine::reconcile::SnapshotUser;

/// The person-describing fields every vendor has, more or less.
#[derive(Default)]
pub(super) struct Person<'a> {
    pub(super) user_name: Option<&'a str>,
    pub(super) email: Option<&'a str>,
    pub(super) given_name: Option<&'a str>,
    pub(super) family_name: Option<&'a str>,
    pub(super) display_name: Option<&'a str>,
}

fn non_empty(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|value| !value.is_empty())
}

impl Person<'_> {
    /// The snapshot user: the IdP id as externalId; userName from the vendor's login name,
    /// else the email, else the id.
    pub(super) fn into_user(self, external_id: String, active: bool) -> SnapshotUser {
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

#[cfg(test)]
mod tests {
    use super::*;

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
