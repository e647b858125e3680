//! What each integration has pending as absent ([`crate::absence`]), as the fold keeps it from
//! [`Event::AbsencesObserved`](crate::Event::AbsencesObserved).

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::OrdMap;

use super::State;
use crate::absence::{Absence, Absent};
use crate::ids::{IntegrationName, Member, Timestamp};

/// The pending absences of every integration that has some.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Absences {
    pub(crate) by_integration: OrdMap<IntegrationName, Arc<BTreeMap<Absent, Absence>>>,
}

impl Absences {
    /// Folds in a complete listing of `integration` recorded at `at` that still found `absent`
    /// absent: each counts one more listing (one first seen counts one, since `at`), and what is
    /// not named any more is no longer pending.
    pub(crate) fn observe(&mut self, integration: &IntegrationName, absent: &[Absent], at: Timestamp) {
        let prior = self.by_integration.get(integration);
        let pending: BTreeMap<Absent, Absence> = absent
            .iter()
            .map(|subject| {
                let counted = match prior.and_then(|prior| prior.get(subject)) {
                    Some(absence) => Absence {
                        listings: absence.listings.saturating_add(1),
                        since: absence.since,
                    },
                    None => Absence { listings: 1, since: at },
                };
                (*subject, counted)
            })
            .collect();
        if pending.is_empty() {
            self.by_integration.remove(integration);
        } else {
            self.by_integration.insert(integration.clone(), Arc::new(pending));
        }
    }

    /// `integration`'s pending absences.
    pub(crate) fn of(&self, integration: &IntegrationName) -> Option<&BTreeMap<Absent, Absence>> {
        self.by_integration.get(integration).map(|pending| &**pending)
    }
}

impl State {
    /// What a pending absence is about, for people: its kind (`user`, `group` or
    /// `membership`) and its name in this state (`group: member` for a membership), `?` for
    /// what the state no longer has.
    pub fn absent_label(&self, absent: &Absent) -> (&'static str, String) {
        let user = |id| self.user(id).map_or("?", |user| user.profile.user_name.as_str());
        let group = |id| self.group(id).map_or("?", |group| group.display_name.as_str());
        match *absent {
            Absent::User(id) => ("user", user(id).to_owned()),
            Absent::Group(id) => ("group", group(id).to_owned()),
            Absent::Membership { group: of, member } => {
                let member = match member {
                    Member::User(id) => user(id),
                    Member::Group(id) => group(id),
                };
                ("membership", format!("{}: {member}", group(of)))
            }
        }
    }
}
