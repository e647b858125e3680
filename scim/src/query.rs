//! Listing and searching (RFC 7644 §3.4.2, §3.4.3): parameters read case-insensitively (Entra
//! sends `startindex`), filters planned onto the engine's indexes, sorting, 1-based index
//! pagination with integer counts, and the `ListResponse`.
//!
//! Planning: `userName eq`, `userName sw`, `externalId eq`, `id eq`, group `displayName eq`
//! and `members.value eq` (also as `members[value eq …]`) are index look-ups, as are `and`s
//! with such a part and `or`s made only of them. Every other filter scans the resources in id
//! order, as a `sortBy` does: such a request is one that [`ListRequest::scans`], run on the
//! scan pool within a budget (`crate::scan`). A filter matching, or a `sortBy` ordering, more
//! than `filter.maxResults` resources answers 400 `tooMany`.
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
use crate::scan::ScanBudget;
use crate::schema::{AttrType, Container, GROUP_TYPE, Resolved, ResourceType, USER_TYPE};
use idpsync_engine::state::fold_case;

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

/// What a list request reads: one resource type, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listing {
    /// `/Users`.
    Users,
    /// `/Groups`.
    Groups,
    /// `POST /.search`: users, then groups.
    Everything,
}

/// A list or search request, parsed and planned, ready to run against a tenant's state.
pub(crate) struct ListRequest {
    /// The request for users, if it reads them.
    users: Option<Query>,
    /// The request for groups, if it reads them.
    groups: Option<Query>,
    window: Window,
    limits: ListLimits,
}

impl ListRequest {
    /// Parses `params` for `listing`. A cross-type search (`POST /.search`) may name what
    /// only one type has; it fails only if neither type can take it.
    pub(crate) fn new(listing: Listing, params: &ListParams, limits: ListLimits) -> Result<ListRequest, Error> {
        let users = || prepare(&USER_TYPE, params, |root| UserIndex::of(root).is_some());
        let groups = || prepare(&GROUP_TYPE, params, |root| GroupIndex::of(root).is_some());
        let (users, groups) = match listing {
            Listing::Users => (Some(users()?), None),
            Listing::Groups => (None, Some(groups()?)),
            Listing::Everything => match (users(), groups()) {
                (Err(error), Err(_)) => return Err(error),
                (users, groups) => (users.ok(), groups.ok()),
            },
        };
        Ok(ListRequest {
            users,
            groups,
            window: Window::new(params, limits),
            limits,
        })
    }

    /// Whether running the request renders resources one by one (a filter the indexes cannot
    /// answer exactly, or a `sortBy`), so that it belongs on the scan pool.
    pub(crate) fn scans(&self) -> bool {
        self.queries()
            .any(|query| query.sort.is_some() || (query.filter.is_some() && !query.exact))
    }

    /// Runs the request: every resource it renders to filter or sort passes `budget` first.
    pub(crate) fn run<'a>(
        &self,
        state: &'a State,
        base: &'a BaseUrl,
        budget: &mut ScanBudget,
    ) -> Result<ListResponse<'a>, Error> {
        if self
            .queries()
            .all(|query| query.filter.is_none() && query.sort.is_none())
        {
            return Ok(self.page_in_id_order(state, base));
        }
        let mut found = Vec::new();
        if let Some(query) = &self.users {
            found.extend(match_users(state, query, base, self.limits, budget)?);
        }
        if let Some(query) = &self.groups {
            found.extend(match_groups(state, query, base, self.limits, budget)?);
        }
        if found.len() > self.limits.results_max {
            return Err(too_many(self.limits));
        }
        if let Some((resolved, descending)) = self.queries().find_map(|query| query.sort) {
            sort(&mut found, resolved.leaf().case_exact, resolved.leaf().kind, descending);
        }
        let total = found.len();
        Ok(self.page(state, base, total, found.into_iter().map(|(found, _)| found)))
    }

    fn queries(&self) -> impl Iterator<Item = &Query> {
        self.users.iter().chain(&self.groups)
    }

    /// A page of everything the request reads, users then groups, each in id order.
    fn page_in_id_order<'a>(&self, state: &'a State, base: &'a BaseUrl) -> ListResponse<'a> {
        let users = self
            .users
            .iter()
            .flat_map(|_| state.users().map(|user| Found::User(user)));
        let groups = self
            .groups
            .iter()
            .flat_map(|_| state.groups().map(|group| Found::Group(group)));
        let total = self.users.as_ref().map_or(0, |_| state.user_count())
            + self.groups.as_ref().map_or(0, |_| state.group_count());
        self.page(state, base, total, users.chain(groups))
    }

    /// The window of `found` (of `total` resources); only the resources on it are rendered.
    fn page<'a>(
        &self,
        state: &'a State,
        base: &'a BaseUrl,
        total: usize,
        found: impl Iterator<Item = Found<'a>>,
    ) -> ListResponse<'a> {
        let whole = Projection::default();
        // A user or a group is found only by the request for its type.
        let users = self.users.as_ref().map_or(&whole, |query| &query.projection);
        let groups = self.groups.as_ref().map_or(&whole, |query| &query.projection);
        let resources = found
            .skip(self.window.skip())
            .take(self.window.count)
            .map(|found| match found {
                Found::User(user) => Rendered::user(state, user, base, users),
                Found::Group(group) => Rendered::group(state, group, base, groups),
            })
            .collect();
        self.window.response(total, resources)
    }
}

/// A request prepared for one resource type.
struct Query {
    filter: Option<Matcher>,
    /// Whether an index answers the filter exactly (a single indexed comparison), so that no
    /// resource needs evaluating.
    exact: bool,
    sort: Option<(Resolved, bool)>,
    projection: Projection,
}

/// Prepares `params` for `resource`, whose indexes answer the comparisons `indexed` accepts.
fn prepare(resource: &ResourceType, params: &ListParams, indexed: impl Fn(&Node) -> bool) -> Result<Query, Error> {
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
    let exact = filter
        .as_ref()
        .is_some_and(|filter| is_exact(filter.root()) && indexed(filter.root()));
    Ok(Query {
        filter,
        exact,
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

fn too_many(limits: ListLimits) -> Error {
    Error::bad(
        crate::error::ScimType::TooMany,
        format!(
            "more than {} resources (filter.maxResults) match, too many to filter or sort; narrow the filter",
            limits.results_max
        ),
    )
}

/// Whether a planned look-up returns exactly what the filter matches (a single indexed
/// comparison), so that candidates need no evaluation.
fn is_exact(root: &Node) -> bool {
    matches!(root, Node::Compare { .. } | Node::ValuePath { .. })
}

/// Filters and keys `candidates`: at most `filter.maxResults` of them when the request filters
/// or sorts. A resource is rendered (and counted against `budget`) only if the filter must be
/// evaluated on it or the sort reads it.
fn select<'a, T: 'a>(
    candidates: impl Iterator<Item = &'a T>,
    query: &Query,
    limits: ListLimits,
    budget: &mut ScanBudget,
    render: impl Fn(&T) -> Map<String, Value>,
    found: impl Fn(&'a T) -> Found<'a>,
) -> Result<Matches<'a>, Error> {
    let mut matches = Vec::new();
    let evaluate = query.filter.as_ref().filter(|_| !query.exact);
    let bounded = query.filter.is_some() || query.sort.is_some();
    for candidate in candidates {
        let document = if evaluate.is_some() || query.sort.is_some() {
            budget.examine()?;
            Some(render(candidate))
        } else {
            None
        };
        if let (Some(filter), Some(document)) = (evaluate, &document)
            && !filter.matches(document)
        {
            continue;
        }
        if bounded && matches.len() >= limits.results_max {
            return Err(too_many(limits));
        }
        let key = document.as_ref().and_then(|document| sort_key(query, document));
        matches.push((found(candidate), key));
    }
    Ok(matches)
}

/// The candidates an index gives for `query`'s filter, if one does.
fn plan<T>(query: &Query, planner: impl Fn(&Node) -> Option<T>) -> Option<T> {
    query.filter.as_ref().map(Matcher::root).and_then(planner)
}

fn match_users<'a>(
    state: &'a State,
    query: &Query,
    base: &BaseUrl,
    limits: ListLimits,
    budget: &mut ScanBudget,
) -> Result<Matches<'a>, Error> {
    let planned = plan(query, |root| {
        plan_with(root, &|leaf| UserIndex::of(leaf).map(|index| index.look_up(state)))
    });
    let candidates: Box<dyn Iterator<Item = &'a User> + 'a> = match planned {
        Some(ids) => Box::new(ids.into_iter().filter_map(|id| state.user(id)).map(|user| &**user)),
        None => Box::new(state.users().map(|user| &**user)),
    };
    select(
        candidates,
        query,
        limits,
        budget,
        |candidate| user::render(state, candidate, base),
        Found::User,
    )
}

fn match_groups<'a>(
    state: &'a State,
    query: &Query,
    base: &BaseUrl,
    limits: ListLimits,
    budget: &mut ScanBudget,
) -> Result<Matches<'a>, Error> {
    let planned = plan(query, |root| {
        plan_with(root, &|leaf| GroupIndex::of(leaf).map(|index| index.look_up(state)))
    });
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
    select(candidates, query, limits, budget, render, Found::Group)
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
        (Value::String(left), Value::String(right)) if !case_exact => fold_case(left).cmp(&fold_case(right)),
        (Value::String(left), Value::String(right)) => left.cmp(right),
        _ => Ordering::Equal,
    }
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

/// The candidates an indexed filter can only match, in id order, given the look-up of one
/// comparison; `None` if the filter needs a scan. An `and` takes its smallest indexed part;
/// an `or` is indexed only if all its parts are.
fn plan_with<T: Ord>(node: &Node, leaf: &dyn Fn(&Node) -> Option<BTreeSet<T>>) -> Option<BTreeSet<T>> {
    match node {
        Node::And(parts) => parts
            .iter()
            .filter_map(|part| plan_with(part, leaf))
            .min_by_key(BTreeSet::len),
        Node::Or(parts) => union(parts.iter().map(|part| plan_with(part, leaf))),
        _ => leaf(node),
    }
}

/// A comparison a user index answers.
enum UserIndex<'n> {
    /// `userName eq`.
    Name(&'n str),
    /// `userName sw`.
    NamePrefix(&'n str),
    /// `externalId eq`.
    ExternalId(&'n str),
    /// `id eq`.
    Id(&'n str),
}

impl UserIndex<'_> {
    /// The index that answers `node`, if it is one comparison an index answers.
    fn of(node: &Node) -> Option<UserIndex<'_>> {
        let Node::Compare {
            target: Target::Document(resolved),
            op,
            operand: Operand::Text(text),
        } = node
        else {
            return None;
        };
        if resolved.container != Container::Core || resolved.sub.is_some() {
            return None;
        }
        match (resolved.attribute.name, op) {
            ("userName", CompareOp::Eq) => Some(UserIndex::Name(text)),
            ("userName", CompareOp::Sw) => Some(UserIndex::NamePrefix(text)),
            ("externalId", CompareOp::Eq) => Some(UserIndex::ExternalId(text)),
            ("id", CompareOp::Eq) => Some(UserIndex::Id(text)),
            _ => None,
        }
    }

    fn look_up(self, state: &State) -> BTreeSet<UserId> {
        match self {
            UserIndex::Name(text) => state.user_by_name(text).map(|found| found.id).into_iter().collect(),
            UserIndex::NamePrefix(text) => state.users_by_name_prefix(text).map(|found| found.id).collect(),
            UserIndex::ExternalId(text) => state.users_by_external_id(text).map(|found| found.id).collect(),
            UserIndex::Id(text) => text
                .parse::<UserId>()
                .ok()
                .filter(|id| state.user(*id).is_some())
                .into_iter()
                .collect(),
        }
    }
}

/// A comparison a group index answers.
enum GroupIndex<'n> {
    /// `displayName eq`.
    Name(&'n str),
    /// `externalId eq`.
    ExternalId(&'n str),
    /// `id eq`.
    Id(&'n str),
    /// `members.value eq`, also as `members[value eq …]`.
    Member(&'n str),
}

impl GroupIndex<'_> {
    /// The index that answers `node`, if it is one comparison an index answers.
    fn of(node: &Node) -> Option<GroupIndex<'_>> {
        match node {
            Node::Compare {
                target: Target::Document(resolved),
                op: CompareOp::Eq,
                operand: Operand::Text(text),
            } if resolved.container == Container::Core => {
                match (resolved.attribute.name, resolved.sub.map(|sub| sub.name)) {
                    ("displayName", None) => Some(GroupIndex::Name(text)),
                    ("externalId", None) => Some(GroupIndex::ExternalId(text)),
                    ("id", None) => Some(GroupIndex::Id(text)),
                    ("members", Some("value")) => Some(GroupIndex::Member(text)),
                    _ => None,
                }
            }
            Node::ValuePath { at, filter } if at.attribute.name == "members" => match filter.as_ref() {
                Node::Compare {
                    target: Target::Element(sub),
                    op: CompareOp::Eq,
                    operand: Operand::Text(text),
                } if sub.name == "value" => Some(GroupIndex::Member(text)),
                _ => None,
            },
            _ => None,
        }
    }

    fn look_up(self, state: &State) -> BTreeSet<GroupId> {
        match self {
            GroupIndex::Name(text) => state.groups_by_name(text).map(|found| found.id).collect(),
            GroupIndex::ExternalId(text) => state.groups_by_external_id(text).map(|found| found.id).collect(),
            GroupIndex::Id(text) => text
                .parse::<GroupId>()
                .ok()
                .filter(|id| state.group(*id).is_some())
                .into_iter()
                .collect(),
            GroupIndex::Member(text) => existing_member(state, text, None)
                .map(|member: Member| state.groups_of(member).collect())
                .unwrap_or_default(),
        }
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
