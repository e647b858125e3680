//! Listing and searching (RFC 7644 §3.4.2, §3.4.3): parameters read case-insensitively (Entra
//! sends `startindex`), filters planned onto the engine's indexes, sorting, 1-based index
//! pagination with integer counts, and the `ListResponse`.
//!
//! Planning: `userName eq`, `userName sw`, `externalId eq`, `id eq`, group `displayName eq`
//! and `members.value eq` (also as `members[value eq …]`) are index look-ups, as are `and`s
//! with such a part and `or`s made only of them. Every other filter scans the resources in id
//! order; a filter matching more than `filter.maxResults` resources answers 400 `tooMany`.
//! Order is stable: by id (creation order), or by `sortBy` with ties broken by id.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use idpsync_engine::State;
use idpsync_engine::ids::{GroupId, Member, UserId};
use idpsync_engine::model::{Group, User};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::grammar::{CompareOp, parse_attr_path, parse_filter};
use crate::matcher::{Matcher, Node, Operand, Target, values_at};
use crate::projection::{Projection, ProjectionParams};
use crate::resource::group::{Members, existing_member};
use crate::resource::{BaseUrl, Rendered, group, user};
use crate::schema::{AttrType, Container, GROUP_TYPE, Resolved, ResourceType, USER_TYPE};

/// The URN of a list response.
pub(crate) const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Bounds on what one list request returns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ListLimits {
    /// `filter.maxResults`: the most resources a filter may match, and the largest page.
    pub(crate) results_max: usize,
    /// The page size when the client gives no `count`.
    pub(crate) page_size_default: usize,
}

/// The parameters of a list or search request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ListParams {
    /// `filter`.
    pub(crate) filter: Option<String>,
    /// `startIndex` (1-based; smaller values mean 1).
    pub(crate) start_index: Option<i64>,
    /// `count` (negative values mean 0).
    pub(crate) count: Option<i64>,
    /// `sortBy`.
    pub(crate) sort_by: Option<String>,
    /// `sortOrder`: `ascending` (default) or `descending`.
    pub(crate) sort_order: Option<String>,
    /// `attributes`.
    pub(crate) attributes: Option<String>,
    /// `excludedAttributes`.
    pub(crate) excluded_attributes: Option<String>,
}

impl ListParams {
    /// Reads query parameters, their names in any case.
    pub(crate) fn from_query(pairs: &[(String, String)]) -> Result<ListParams, Error> {
        let mut params = ListParams::default();
        for (name, value) in pairs {
            let value = value.clone();
            match name.to_ascii_lowercase().as_str() {
                "filter" => params.filter = Some(value),
                "startindex" => params.start_index = Some(integer("startIndex", &value)?),
                "count" => params.count = Some(integer("count", &value)?),
                "sortby" => params.sort_by = Some(value),
                "sortorder" => params.sort_order = Some(value),
                "attributes" => params.attributes = Some(value),
                "excludedattributes" => params.excluded_attributes = Some(value),
                _ => {}
            }
        }
        Ok(params)
    }

    /// Reads a `SearchRequest` body (`POST …/.search`).
    pub(crate) fn from_search_body(body: &Value) -> Result<ListParams, Error> {
        let Value::Object(object) = body else {
            return Err(Error::invalid_syntax("a search request must be a JSON object"));
        };
        let mut params = ListParams::default();
        for (name, value) in object {
            let text = || -> Result<String, Error> {
                match value {
                    Value::String(text) => Ok(text.clone()),
                    Value::Number(number) => Ok(number.to_string()),
                    Value::Array(items) => Ok(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")),
                    _ => Err(Error::invalid_value(format!("{name} has the wrong type"))),
                }
            };
            match name.to_ascii_lowercase().as_str() {
                "filter" => params.filter = Some(text()?),
                "startindex" => params.start_index = Some(integer("startIndex", &text()?)?),
                "count" => params.count = Some(integer("count", &text()?)?),
                "sortby" => params.sort_by = Some(text()?),
                "sortorder" => params.sort_order = Some(text()?),
                "attributes" => params.attributes = Some(text()?),
                "excludedattributes" => params.excluded_attributes = Some(text()?),
                _ => {}
            }
        }
        Ok(params)
    }

    /// The projection parameters.
    pub(crate) fn projection(&self) -> ProjectionParams<'_> {
        ProjectionParams {
            attributes: self.attributes.as_deref(),
            excluded_attributes: self.excluded_attributes.as_deref(),
        }
    }
}

fn integer(name: &str, value: &str) -> Result<i64, Error> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| Error::invalid_value(format!("{name} must be an integer, not {value:?}")))
}

/// A request prepared for one resource type.
struct Query {
    filter: Option<Matcher>,
    sort: Option<(Resolved, bool)>,
    projection: Projection,
}

fn prepare(resource: &ResourceType, params: &ListParams) -> Result<Query, Error> {
    let filter = match params.filter.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            let parsed =
                parse_filter(text).map_err(|error| Error::invalid_filter(format!("filter {text:?}: {error}")))?;
            Some(Matcher::new(resource, &parsed)?)
        }
        _ => None,
    };
    let sort = match params.sort_by.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => {
            let path =
                parse_attr_path(text).map_err(|error| Error::invalid_path(format!("sortBy {text:?}: {error}")))?;
            let mut resolved = resource.require(&path, Error::invalid_path)?;
            if resolved.sub.is_none() && resolved.attribute.is_complex() {
                resolved.sub = resolved
                    .attribute
                    .sub_attribute("value")
                    .filter(|_| resolved.attribute.multi_valued);
                if resolved.sub.is_none() {
                    return Err(Error::invalid_path(format!("sortBy {text:?}: name a sub-attribute")));
                }
            }
            let descending = match params.sort_order.as_deref().map(str::trim) {
                None | Some("") => false,
                Some(order) if order.eq_ignore_ascii_case("ascending") => false,
                Some(order) if order.eq_ignore_ascii_case("descending") => true,
                Some(order) => {
                    return Err(Error::invalid_value(format!(
                        "sortOrder must be ascending or descending, not {order:?}"
                    )));
                }
            };
            Some((resolved, descending))
        }
        _ => None,
    };
    Ok(Query {
        filter,
        sort,
        projection: Projection::new(resource, params.projection())?,
    })
}

/// A list response (`ListResponse`), serialised straight from the state.
pub(crate) struct ListResponse<'a> {
    total: usize,
    start_index: usize,
    resources: Vec<Rendered<'a>>,
}

impl Serialize for ListResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("schemas", &[LIST_RESPONSE_URN])?;
        map.serialize_entry("totalResults", &self.total)?;
        map.serialize_entry("itemsPerPage", &self.resources.len())?;
        map.serialize_entry("startIndex", &self.start_index)?;
        map.serialize_entry("Resources", &self.resources)?;
        map.end()
    }
}

/// A resource found by a query, and its sort key.
enum Found<'a> {
    User(&'a User),
    Group(&'a Group),
}

type Matches<'a> = Vec<(Found<'a>, Option<Value>)>;

/// Lists users.
pub(crate) fn list_users<'a>(
    state: &'a State,
    params: &ListParams,
    base: &'a BaseUrl,
    limits: ListLimits,
) -> Result<ListResponse<'a>, Error> {
    let query = prepare(&USER_TYPE, params)?;
    let window = Window::new(params, limits);
    if query.filter.is_none() && query.sort.is_none() {
        let resources = state
            .users()
            .skip(window.skip())
            .take(window.count)
            .map(|found| Rendered::user(state, found, base, &query.projection))
            .collect();
        return Ok(window.response(state.user_count(), resources));
    }
    let matches = match_users(state, &query, base, limits)?;
    Ok(page(state, matches, &query, &query, window, base))
}

/// Lists groups.
pub(crate) fn list_groups<'a>(
    state: &'a State,
    params: &ListParams,
    base: &'a BaseUrl,
    limits: ListLimits,
) -> Result<ListResponse<'a>, Error> {
    let query = prepare(&GROUP_TYPE, params)?;
    let window = Window::new(params, limits);
    if query.filter.is_none() && query.sort.is_none() {
        let resources = state
            .groups()
            .skip(window.skip())
            .take(window.count)
            .map(|found| Rendered::group(state, found, base, &query.projection))
            .collect();
        return Ok(window.response(state.group_count(), resources));
    }
    let matches = match_groups(state, &query, base, limits)?;
    Ok(page(state, matches, &query, &query, window, base))
}

/// Searches users and groups together (`POST /.search`): users first, then groups, each in
/// its own order unless `sortBy` orders them all. A filter naming an attribute that only one
/// type has simply matches nothing of the other.
pub(crate) fn search_all<'a>(
    state: &'a State,
    params: &ListParams,
    base: &'a BaseUrl,
    limits: ListLimits,
) -> Result<ListResponse<'a>, Error> {
    let window = Window::new(params, limits);
    let users = prepare(&USER_TYPE, params);
    let groups = prepare(&GROUP_TYPE, params);
    let (users, groups) = match (users, groups) {
        (Err(error), Err(_)) => return Err(error),
        (users, groups) => (users.ok(), groups.ok()),
    };
    let mut found = Vec::new();
    if let Some(query) = &users {
        found.extend(match_users(state, query, base, limits)?);
    }
    if let Some(query) = &groups {
        found.extend(match_groups(state, query, base, limits)?);
    }
    if found.len() > limits.results_max && params.filter.is_some() {
        return Err(too_many(limits));
    }
    let sorting = users.as_ref().or(groups.as_ref()).and_then(|query| query.sort);
    if let Some((resolved, descending)) = sorting {
        sort(&mut found, resolved.leaf().case_exact, resolved.leaf().kind, descending);
    }
    let everything = Query {
        filter: None,
        sort: None,
        projection: Projection::default(),
    };
    Ok(page(
        state,
        found,
        users.as_ref().unwrap_or(&everything),
        groups.as_ref().unwrap_or(&everything),
        window,
        base,
    ))
}

fn too_many(limits: ListLimits) -> Error {
    Error::bad(
        crate::error::ScimType::TooMany,
        format!(
            "the filter matches more than {} resources; narrow it",
            limits.results_max
        ),
    )
}

/// Whether a planned look-up returns exactly what the filter matches (a single indexed
/// comparison), so that candidates need no evaluation.
fn is_exact(root: &Node) -> bool {
    matches!(root, Node::Compare { .. } | Node::ValuePath { .. })
}

/// Filters and keys `candidates`. A resource is rendered only if the filter must be
/// evaluated on it or the sort reads it.
fn select<'a, T: 'a>(
    candidates: impl Iterator<Item = &'a T>,
    query: &Query,
    exact: bool,
    limits: ListLimits,
    render: impl Fn(&T) -> Map<String, Value>,
    found: impl Fn(&'a T) -> Found<'a>,
) -> Result<Matches<'a>, Error> {
    let mut matches = Vec::new();
    let evaluate = query.filter.as_ref().filter(|_| !exact);
    for candidate in candidates {
        let document = (evaluate.is_some() || query.sort.is_some()).then(|| render(candidate));
        if let (Some(filter), Some(document)) = (evaluate, &document)
            && !filter.matches(document)
        {
            continue;
        }
        if query.filter.is_some() && matches.len() >= limits.results_max {
            return Err(too_many(limits));
        }
        let key = document.as_ref().and_then(|document| sort_key(query, document));
        matches.push((found(candidate), key));
    }
    if let Some((resolved, descending)) = query.sort {
        sort(
            &mut matches,
            resolved.leaf().case_exact,
            resolved.leaf().kind,
            descending,
        );
    }
    Ok(matches)
}

/// The index plan of `query`'s filter, and whether it is exact (see [`is_exact`]).
fn plan<T>(query: &Query, planner: impl Fn(&Node) -> Option<T>) -> (Option<T>, bool) {
    let root = query.filter.as_ref().map(Matcher::root);
    let planned = root.and_then(planner);
    let exact = planned.is_some() && root.is_some_and(is_exact);
    (planned, exact)
}

fn match_users<'a>(state: &'a State, query: &Query, base: &BaseUrl, limits: ListLimits) -> Result<Matches<'a>, Error> {
    let (planned, exact) = plan(query, |root| plan_users(state, root));
    let candidates: Box<dyn Iterator<Item = &'a User> + 'a> = match planned {
        Some(ids) => Box::new(ids.into_iter().filter_map(|id| state.user(id)).map(|user| &**user)),
        None => Box::new(state.users().map(|user| &**user)),
    };
    select(
        candidates,
        query,
        exact,
        limits,
        |candidate| user::render(state, candidate, base),
        Found::User,
    )
}

fn match_groups<'a>(state: &'a State, query: &Query, base: &BaseUrl, limits: ListLimits) -> Result<Matches<'a>, Error> {
    let (planned, exact) = plan(query, |root| plan_groups(state, root));
    let candidates: Box<dyn Iterator<Item = &'a Group> + 'a> = match planned {
        Some(ids) => Box::new(ids.into_iter().filter_map(|id| state.group(id)).map(|group| &**group)),
        None => Box::new(state.groups().map(|group| &**group)),
    };
    // Members are rendered for matching only when the filter or the sort reads them.
    let members = if query.filter.as_ref().is_some_and(|filter| filter.reads("members"))
        || query
            .sort
            .is_some_and(|(resolved, _)| resolved.attribute.name == "members")
    {
        Members::WithDisplay
    } else {
        Members::Omitted
    };
    let render = |candidate: &Group| group::render(state, candidate, base, members);
    select(candidates, query, exact, limits, render, Found::Group)
}

fn sort_key(query: &Query, document: &Map<String, Value>) -> Option<Value> {
    let (resolved, _) = query.sort?;
    let values = values_at(&resolved, document);
    // A multi-valued attribute sorts by its primary value, else its first.
    let primary = resolved
        .attribute
        .multi_valued
        .then(|| {
            let container = match resolved.container {
                Container::Core => Some(document),
                Container::Extension(schema) => document.get(schema.id).and_then(Value::as_object),
            }?;
            container
                .get(resolved.attribute.name)?
                .as_array()?
                .iter()
                .find(|item| item.get("primary") == Some(&Value::Bool(true)))
                .and_then(|item| resolved.sub.and_then(|sub| item.get(sub.name)))
                .cloned()
        })
        .flatten();
    primary.or_else(|| values.first().map(|value| (*value).clone()))
}

/// Sorts by key (stable, so ties keep id order); absent values go last either way.
fn sort(found: &mut Matches<'_>, case_exact: bool, kind: AttrType, descending: bool) {
    found.sort_by(|(_, left), (_, right)| match (left, right) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(left), Some(right)) => {
            let ordering = compare_values(left, right, case_exact, kind);
            if descending { ordering.reverse() } else { ordering }
        }
    });
}

fn compare_values(left: &Value, right: &Value, case_exact: bool, kind: AttrType) -> Ordering {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => {
            left.as_f64().partial_cmp(&right.as_f64()).unwrap_or(Ordering::Equal)
        }
        (Value::Bool(left), Value::Bool(right)) => left.cmp(right),
        (Value::String(left), Value::String(right)) if kind == AttrType::DateTime => {
            let parse = |text: &str| idpsync_engine::ids::Timestamp::parse_rfc3339(text).ok();
            parse(left).cmp(&parse(right))
        }
        (Value::String(left), Value::String(right)) if !case_exact => left.to_lowercase().cmp(&right.to_lowercase()),
        (Value::String(left), Value::String(right)) => left.cmp(right),
        _ => Ordering::Equal,
    }
}

fn page<'a>(
    state: &'a State,
    matches: Matches<'a>,
    users: &Query,
    groups: &Query,
    window: Window,
    base: &'a BaseUrl,
) -> ListResponse<'a> {
    let total = matches.len();
    let resources = matches
        .into_iter()
        .skip(window.skip())
        .take(window.count)
        .map(|(found, _)| match found {
            Found::User(found) => Rendered::user(state, found, base, &users.projection),
            Found::Group(found) => Rendered::group(state, found, base, &groups.projection),
        })
        .collect();
    window.response(total, resources)
}

/// Which slice of the results a request asks for.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// 1-based.
    start_index: usize,
    count: usize,
}

impl Window {
    fn new(params: &ListParams, limits: ListLimits) -> Window {
        let start_index = usize::try_from(params.start_index.unwrap_or(1).max(1)).unwrap_or(usize::MAX);
        let count = match params.count {
            None => limits.page_size_default,
            Some(count) => usize::try_from(count.max(0)).unwrap_or(usize::MAX),
        }
        .min(limits.results_max);
        Window { start_index, count }
    }

    fn skip(&self) -> usize {
        self.start_index - 1
    }

    fn response(self, total: usize, resources: Vec<Rendered<'_>>) -> ListResponse<'_> {
        ListResponse {
            total,
            start_index: self.start_index,
            resources,
        }
    }
}

/// The users an indexed filter can only match, in id order; `None` if it needs a scan.
fn plan_users(state: &State, node: &Node) -> Option<BTreeSet<UserId>> {
    match node {
        Node::Compare {
            target: Target::Document(resolved),
            op,
            operand: Operand::Text(text),
        } if resolved.container == Container::Core && resolved.sub.is_none() => match (resolved.attribute.name, op) {
            ("userName", CompareOp::Eq) => Some(state.user_by_name(text).map(|found| found.id).into_iter().collect()),
            ("userName", CompareOp::Sw) => Some(state.users_by_name_prefix(text).map(|found| found.id).collect()),
            ("externalId", CompareOp::Eq) => Some(state.users_by_external_id(text).map(|found| found.id).collect()),
            ("id", CompareOp::Eq) => Some(
                text.parse::<UserId>()
                    .ok()
                    .filter(|id| state.user(*id).is_some())
                    .into_iter()
                    .collect(),
            ),
            _ => None,
        },
        Node::And(parts) => parts
            .iter()
            .filter_map(|part| plan_users(state, part))
            .min_by_key(BTreeSet::len),
        Node::Or(parts) => union(parts.iter().map(|part| plan_users(state, part))),
        _ => None,
    }
}

/// The groups an indexed filter can only match, in id order; `None` if it needs a scan.
fn plan_groups(state: &State, node: &Node) -> Option<BTreeSet<GroupId>> {
    let of_member = |text: &str| -> BTreeSet<GroupId> {
        existing_member(state, text, None)
            .map(|member: Member| state.groups_of(member).collect())
            .unwrap_or_default()
    };
    match node {
        Node::Compare {
            target: Target::Document(resolved),
            op: CompareOp::Eq,
            operand: Operand::Text(text),
        } if resolved.container == Container::Core => {
            match (resolved.attribute.name, resolved.sub.map(|sub| sub.name)) {
                ("displayName", None) => Some(state.groups_by_name(text).map(|found| found.id).collect()),
                ("externalId", None) => Some(state.groups_by_external_id(text).map(|found| found.id).collect()),
                ("id", None) => Some(
                    text.parse::<GroupId>()
                        .ok()
                        .filter(|id| state.group(*id).is_some())
                        .into_iter()
                        .collect(),
                ),
                ("members", Some("value")) => Some(of_member(text)),
                _ => None,
            }
        }
        Node::ValuePath { at, filter } if at.attribute.name == "members" => match filter.as_ref() {
            Node::Compare {
                target: Target::Element(sub),
                op: CompareOp::Eq,
                operand: Operand::Text(text),
            } if sub.name == "value" => Some(of_member(text)),
            _ => None,
        },
        Node::And(parts) => parts
            .iter()
            .filter_map(|part| plan_groups(state, part))
            .min_by_key(BTreeSet::len),
        Node::Or(parts) => union(parts.iter().map(|part| plan_groups(state, part))),
        _ => None,
    }
}

fn union<T: Ord>(sets: impl Iterator<Item = Option<BTreeSet<T>>>) -> Option<BTreeSet<T>> {
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(set?);
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parameter_names_in_any_case() {
        let pairs = vec![
            ("startindex".to_owned(), "0".to_owned()),
            ("COUNT".to_owned(), "5".to_owned()),
            ("Filter".to_owned(), "userName eq \"a\"".to_owned()),
            ("excludedattributes".to_owned(), "members".to_owned()),
        ];
        let params = ListParams::from_query(&pairs).unwrap();
        assert_eq!(params.start_index, Some(0));
        assert_eq!(params.count, Some(5));
        assert!(params.filter.is_some());
        assert_eq!(params.excluded_attributes.as_deref(), Some("members"));
    }

    #[test]
    fn windows_clamp_start_index_and_count() {
        let limits = ListLimits {
            results_max: 1000,
            page_size_default: 100,
        };
        let window = |start_index, count| {
            let window = Window::new(
                &ListParams {
                    start_index,
                    count,
                    ..Default::default()
                },
                limits,
            );
            (window.start_index, window.count)
        };
        assert_eq!(window(Some(0), None), (1, 100));
        assert_eq!(window(Some(-5), Some(-1)), (1, 0));
        assert_eq!(window(Some(11), Some(5)), (11, 5));
        assert_eq!(window(None, Some(1_000_000)), (1, 1000));
    }

    #[test]
    fn search_bodies_take_attribute_lists() {
        let params = ListParams::from_search_body(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": ["userName", "emails"], "filter": "userName sw \"a\"",
            "startIndex": 1, "count": 10, "sortBy": "userName", "sortOrder": "descending"
        }))
        .unwrap();
        assert_eq!(params.attributes.as_deref(), Some("userName,emails"));
        assert_eq!(params.count, Some(10));
        assert_eq!(params.sort_order.as_deref(), Some("descending"));
    }

    #[test]
    fn malformed_numbers_are_invalid_values() {
        let pairs = vec![("count".to_owned(), "ten".to_owned())];
        assert!(ListParams::from_query(&pairs).is_err());
    }
}
