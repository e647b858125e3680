//! The engine's limits on values: what a profile, a group name and an external id may hold.
//! `decide` refuses a command that breaks them; reconcile skips the IdP object that does.
//!
//! A userName is held to more than other text: it names a person to people and to the
//! management server, so it may hold no character that is invisible or that changes how the
//! text around it reads: no control character (Unicode category Cc, tab and line breaks
//! included), no format character (Cf: bidirectional overrides and isolates, zero-width
//! joiners and spaces, the byte-order mark, soft hyphens) and no line or paragraph separator
//! (Zl, Zp). Two names that differ only by such characters would look the same and still be
//! two users.

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

use crate::limits;
use crate::model::{AttrValue, MultiValue, UserProfile};
use crate::rejection::Rejection;

/// Checks a profile against the engine's limits.
pub(crate) fn validate_profile(profile: &UserProfile) -> Result<(), Rejection> {
    if profile.user_name.trim().is_empty() {
        return Err(Rejection::invalid("userName", "must not be empty"));
    }
    check_len("userName", &profile.user_name, limits::USER_NAME_LEN_MAX)?;
    check_user_name_characters(&profile.user_name)?;
    if let Some(name) = &profile.name {
        for part in [
            &name.formatted,
            &name.family_name,
            &name.given_name,
            &name.middle_name,
            &name.honorific_prefix,
            &name.honorific_suffix,
        ] {
            check_optional("name", part)?;
        }
    }
    for (field, value) in profile.text_fields() {
        check_optional(field, value)?;
    }
    for (field, values) in profile.multi_valued_fields() {
        check_values(field, values)?;
    }
    let details = profile.details();
    if details.addresses.len() > limits::MULTI_VALUES_MAX {
        return Err(Rejection::invalid(
            "addresses",
            format!("at most {} values", limits::MULTI_VALUES_MAX),
        ));
    }
    for address in &details.addresses {
        for part in [
            &address.formatted,
            &address.street_address,
            &address.locality,
            &address.region,
            &address.postal_code,
            &address.country,
            &address.kind,
        ] {
            check_optional("addresses", part)?;
        }
    }
    if let Some(enterprise) = &profile.enterprise {
        for part in [
            &enterprise.employee_number,
            &enterprise.cost_center,
            &enterprise.organization,
            &enterprise.division,
            &enterprise.department,
        ] {
            check_optional("enterprise", part)?;
        }
        if let Some(manager) = &enterprise.manager {
            check_len("manager", &manager.value, limits::ATTRIBUTE_LEN_MAX)?;
            check_optional("manager", &manager.display_name)?;
        }
    }
    if details.extra.len() > limits::EXTRA_ATTRIBUTES_MAX {
        return Err(Rejection::invalid(
            "attributes",
            format!("at most {} attributes outside the schema", limits::EXTRA_ATTRIBUTES_MAX),
        ));
    }
    let extra_bytes: usize = details
        .extra
        .iter()
        .map(|(name, value)| name.len() + extra_len(value))
        .sum();
    if extra_bytes > limits::EXTRA_BYTES_MAX {
        return Err(Rejection::invalid(
            "attributes",
            format!("attributes outside the schema exceed {} bytes", limits::EXTRA_BYTES_MAX),
        ));
    }
    Ok(())
}

/// Checks an external id.
pub(crate) fn validate_external_id(external_id: Option<&str>) -> Result<(), Rejection> {
    match external_id {
        Some("") => Err(Rejection::invalid("externalId", "must not be empty")),
        Some(value) => check_len("externalId", value, limits::EXTERNAL_ID_LEN_MAX),
        None => Ok(()),
    }
}

/// Checks a group name.
pub(crate) fn validate_display_name(display_name: &str) -> Result<(), Rejection> {
    if display_name.trim().is_empty() {
        return Err(Rejection::invalid("displayName", "must not be empty"));
    }
    check_len("displayName", display_name, limits::DISPLAY_NAME_LEN_MAX)
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.len() > max {
        return Err(Rejection::invalid(field, format!("longer than {max} bytes")));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Rejection::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// Refuses a userName with a character that is invisible or changes how text reads (see the
/// module's documentation), naming the first one.
fn check_user_name_characters(user_name: &str) -> Result<(), Rejection> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let hidden = user_name.chars().find(|c| {
        matches!(
            categories.get(*c),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
    });
    match hidden {
        Some(c) => Err(Rejection::invalid(
            "userName",
            format!(
                "contains U+{:04X}, a control, format or separator character",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

fn check_optional(field: &str, value: &Option<String>) -> Result<(), Rejection> {
    value
        .as_deref()
        .map_or(Ok(()), |value| check_len(field, value, limits::ATTRIBUTE_LEN_MAX))
}

fn check_values(field: &str, values: &[MultiValue]) -> Result<(), Rejection> {
    if values.len() > limits::MULTI_VALUES_MAX {
        return Err(Rejection::invalid(
            field,
            format!("at most {} values", limits::MULTI_VALUES_MAX),
        ));
    }
    for value in values {
        check_len(field, &value.value, limits::ATTRIBUTE_LEN_MAX)?;
        check_optional(field, &value.display)?;
        check_optional(field, &value.kind)?;
    }
    if values.iter().filter(|value| value.primary).count() > 1 {
        return Err(Rejection::invalid(field, "more than one value is primary"));
    }
    Ok(())
}

fn extra_len(value: &AttrValue) -> usize {
    match value {
        AttrValue::Null | AttrValue::Bool(_) => 1,
        AttrValue::Number(text) | AttrValue::String(text) => text.len(),
        AttrValue::Array(items) => items.iter().map(extra_len).sum::<usize>() + 1,
        AttrValue::Object(members) => {
            members
                .iter()
                .map(|(key, value)| key.len() + extra_len(value))
                .sum::<usize>()
                + 1
        }
    }
}
