//! Grammar tests: each `check` parses a filter and compares its printed form with the expected
//! canonical text, so the tests read as input → meaning. Property tests check that printing
//! and parsing round-trip and that no input panics.

use proptest::prelude::*;

use super::parser::{DEPTH_MAX, FILTER_LEN_MAX};
use super::*;

/// Parses `input` and compares the printed tree with `expected`.
fn check(input: &str, expected: &str) {
    let filter = parse_filter(input).unwrap_or_else(|error| panic!("{input:?}: {error}"));
    assert_eq!(filter.to_string(), expected, "input {input:?}");
}

fn check_error(input: &str, expected_reason: &str) {
    let error = parse_filter(input).expect_err(input);
    assert!(
        error.reason.contains(expected_reason),
        "{input:?}: {error} does not mention {expected_reason:?}"
    );
}

#[test]
fn all_ten_operators() {
    for op in ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"] {
        check(&format!(r#"title {op} "x""#), &format!(r#"title {op} "x""#));
    }
    check("title pr", "title pr");
}

#[test]
fn keywords_and_operators_in_any_case() {
    check(
        r#"userName EQ "a" AND Title Pr OR NOT (active Eq TRUE)"#,
        r#"userName eq "a" and Title pr or not (active eq true)"#,
    );
}

#[test]
fn and_binds_tighter_than_or() {
    let filter = parse_filter(r#"a eq 1 or b eq 2 and c eq 3"#).unwrap();
    let Filter::Or(parts) = filter else {
        panic!("expected or at the top")
    };
    assert!(matches!(parts[1], Filter::And(_)));
    check(r#"(a eq 1 or b eq 2) and c eq 3"#, r#"(a eq 1 or b eq 2) and c eq 3"#);
}

#[test]
fn chains_stay_flat() {
    let filter = parse_filter(r#"a eq 1 and (b eq 2 and c eq 3) and d eq 4"#).unwrap();
    let Filter::And(parts) = filter else {
        panic!("expected and")
    };
    assert_eq!(parts.len(), 4);
}

#[test]
fn value_paths_and_sub_attributes() {
    check(
        r#"emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"]"#,
    );
    check(r#"name.familyName co "O'Malley""#, r#"name.familyName co "O'Malley""#);
    check(
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
    );
}

#[test]
fn entra_value_path_with_sub_attribute_comparison() {
    // Entra's matching filter when emails are the matching attribute.
    check(
        r#"emails[type eq "work"].value eq "alice@example.com""#,
        r#"emails[type eq "work" and value eq "alice@example.com"]"#,
    );
}

#[test]
fn urn_qualified_names() {
    check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
    );
    check(
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#,
    );
}

#[test]
fn unquoted_values_from_entra_documentation_and_tests() {
    check("externalId eq jyoung", r#"externalId eq "jyoung""#);
    check("userName sw O", r#"userName sw "O""#);
    check(
        "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
        r#"name.FamilyName eq "Employee" and (emails.Value co "example.com" or emails.Value co "example.org")"#,
    );
    check(
        "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
        r#"meta.Created gt "2015-10-10T14:38:21.8617979-07:00""#,
    );
}

#[test]
fn typed_literals() {
    assert_eq!(
        parse_filter("active eq TRUE").unwrap(),
        Filter::Compare {
            path: AttrPath::named("active"),
            op: CompareOp::Eq,
            value: Literal::Bool(true)
        }
    );
    check("x eq 12.5e3", "x eq 12.5e3");
    check("x eq -3", "x eq -3");
    check("x eq null", "x eq null");
}

#[test]
fn patch_paths() {
    let path = parse_patch_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
    assert_eq!(path.attr, AttrPath::named("members"));
    assert!(path.filter.is_some());
    let path = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!(path.attr.sub.as_deref(), Some("value"));
    assert_eq!(path.to_string(), r#"emails[type eq "work"].value"#);
    let path = parse_patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager").unwrap();
    assert_eq!(
        path.attr.urn.as_deref(),
        Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
    );
    assert_eq!(path.attr.name, "manager");
    assert!(parse_patch_path("name.givenName.x").is_err());
    assert!(parse_patch_path("emails[type eq \"work\"] junk").is_err());
    assert!(parse_patch_path("").is_err());
}

#[test]
fn malformed_filters_are_refused_with_a_reason() {
    check_error(r#"userName eq"#, "expected a value");
    check_error(r#"userName equals "a""#, "unknown operator");
    check_error(r#"(userName eq "a""#, "expected `)`");
    check_error(r#"userName eq "a" extra"#, "unexpected text");
    check_error(r#"emails[type eq "a"[x eq 1]]"#, "expected `]`");
    check_error(r#"emails[value[x eq 1]]"#, "cannot nest");
    check_error(r#"a.b.c eq 1"#, "nests deeper");
    check_error(r#"1abc eq 1"#, "not an attribute path");
    check_error("", "expected an attribute name");
}

#[test]
fn limits_on_length_and_depth() {
    let deep = format!("{}a eq 1{}", "(".repeat(DEPTH_MAX + 1), ")".repeat(DEPTH_MAX + 1));
    check_error(&deep, "nested deeper");
    let ok = format!("{}a eq 1{}", "(".repeat(DEPTH_MAX), ")".repeat(DEPTH_MAX));
    assert!(parse_filter(&ok).is_ok());
    let long = format!(r#"userName eq "{}""#, "a".repeat(FILTER_LEN_MAX));
    check_error(&long, "longer than");
    let nots = "not (".repeat(1_000);
    check_error(&nots, "nested deeper");
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("not a keyword", |name| {
        !["and", "or", "not", "pr"]
            .iter()
            .any(|keyword| keyword.eq_ignore_ascii_case(name))
    })
}

fn arb_path(with_urn: bool) -> impl Strategy<Value = AttrPath> {
    let urn = if with_urn {
        prop::option::of(Just(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User".to_owned(),
        ))
        .boxed()
    } else {
        Just(None).boxed()
    };
    (urn, arb_name(), prop::option::of(arb_name())).prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
}

fn arb_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<String>().prop_map(Literal::String),
        any::<i64>().prop_map(|n| Literal::Number(n.to_string())),
        any::<bool>().prop_map(Literal::Bool),
        Just(Literal::Null),
    ]
}

fn arb_leaf(scope_value: bool) -> BoxedStrategy<Filter> {
    let path = if scope_value {
        arb_name().prop_map(|name| AttrPath::named(&name)).boxed()
    } else {
        arb_path(true).boxed()
    };
    prop_oneof![
        (
            path.clone(),
            prop::sample::select(CompareOp::ALL.to_vec()),
            arb_literal()
        )
            .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
        path.prop_map(Filter::Present),
    ]
    .boxed()
}

fn combine(inner: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
    prop_oneof![
        prop::collection::vec(inner.clone(), 2..4).prop_map(|parts| flatten_test(parts, true)),
        prop::collection::vec(inner.clone(), 2..4).prop_map(|parts| flatten_test(parts, false)),
        inner.prop_map(|filter| Filter::Not(Box::new(filter))),
    ]
    .boxed()
}

/// Builds the flat `And`/`Or` the parser produces from `parts`.
fn flatten_test(parts: Vec<Filter>, and: bool) -> Filter {
    let mut flat = Vec::new();
    for part in parts {
        match (part, and) {
            (Filter::And(inner), true) | (Filter::Or(inner), false) => flat.extend(inner),
            (other, _) => flat.push(other),
        }
    }
    if and { Filter::And(flat) } else { Filter::Or(flat) }
}

fn arb_filter() -> impl Strategy<Value = Filter> {
    let value_filter = arb_leaf(true).prop_recursive(3, 12, 3, combine);
    let value_path = (arb_name(), value_filter).prop_map(|(name, filter)| Filter::ValuePath {
        path: AttrPath::named(&name),
        filter: Box::new(filter),
    });
    prop_oneof![arb_leaf(false), value_path.boxed()].prop_recursive(4, 24, 3, combine)
}

proptest! {
    #[test]
    fn printing_then_parsing_gives_the_same_tree(filter in arb_filter()) {
        let printed = filter.to_string();
        let parsed = parse_filter(&printed).map_err(|error| TestCaseError::fail(format!("{printed}: {error}")))?;
        prop_assert_eq!(parsed, filter);
    }

    #[test]
    fn patch_paths_round_trip(path in arb_path(true), filter in prop::option::of(arb_leaf(true))) {
        let path = PatchPath { attr: path, filter };
        let printed = path.to_string();
        prop_assert_eq!(parse_patch_path(&printed).map_err(|e| TestCaseError::fail(e.to_string()))?, path);
    }

    #[test]
    fn no_input_panics(input in ".{0,200}") {
        let _ = parse_filter(&input);
        let _ = parse_patch_path(&input);
        let _ = parse_attr_path(&input);
    }

    #[test]
    fn no_grammar_like_input_panics(input in r#"[a-z\.\[\]\(\)" :0-9]{0,120}"#) {
        let _ = parse_filter(&input);
        let _ = parse_patch_path(&input);
    }
}
