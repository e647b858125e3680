//! [`GroupFilter`]: which IdP groups an integration syncs, by name, with include and exclude
//! patterns. A pattern is one of:
//! - an exact name: `vpn-eu` matches `vpn-eu` and nothing else;
//! - a glob, when it holds `*` (any run of characters) or `?` (one character): `vpn-*`;
//! - a regular expression after `re:`, searched in the name (anchor it with `^…$` to match the
//!   whole name): `re:^vpn-(eu|us)$`.
//!
//! Matching is case-sensitive and needs nothing but the name, so it can be asked anywhere a
//! group's name is known. A pattern that cannot be read (a bad regular expression) is a
//! [`PatternError`] when the filter is built, never a filter that silently matches nothing.

use std::fmt;

use regex::{Regex, RegexBuilder};

/// The most memory one compiled regular expression may take: far more than any group name
/// pattern needs, and a bound against one that would blow up.
const REGEX_SIZE_MAX: usize = 1 << 20;

/// Include and exclude patterns over group names. A group is synced when it matches an
/// include pattern (or there are none) and no exclude pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// One pattern of a filter.
#[derive(Clone, Debug)]
enum Pattern {
    Exact(String),
    Glob(String),
    Regex(Regex),
}

/// Patterns are equal when they are written the same.
impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::Exact(a), Pattern::Exact(b)) | (Pattern::Glob(a), Pattern::Glob(b)) => a == b,
            (Pattern::Regex(a), Pattern::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for Pattern {}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a usable pattern: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, PatternError> {
        let refuse = |reason: String| PatternError {
            pattern: text.to_owned(),
            reason,
        };
        if let Some(expression) = text.strip_prefix("re:") {
            if expression.is_empty() {
                return Err(refuse("the regular expression after `re:` is empty".to_owned()));
            }
            return RegexBuilder::new(expression)
                .size_limit(REGEX_SIZE_MAX)
                .build()
                .map(Pattern::Regex)
                .map_err(|error| refuse(format!("not a regular expression: {error}")));
        }
        if text.is_empty() {
            return Err(refuse("an empty pattern matches no group name".to_owned()));
        }
        Ok(if text.contains(['*', '?']) {
            Pattern::Glob(text.to_owned())
        } else {
            Pattern::Exact(text.to_owned())
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => exact == name,
            Pattern::Glob(pattern) => glob(pattern.as_bytes(), name.as_bytes()),
            Pattern::Regex(regex) => regex.is_match(name),
        }
    }
}

impl GroupFilter {
    /// A filter from the configuration's `include_groups` and `exclude_groups`; a pattern that
    /// cannot be read is refused.
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Result<GroupFilter, PatternError> {
        let parse = |patterns: Vec<String>| -> Result<Vec<Pattern>, PatternError> {
            patterns.iter().map(|text| Pattern::parse(text)).collect()
        };
        Ok(GroupFilter {
            include: parse(include)?,
            exclude: parse(exclude)?,
        })
    }

    /// Whether a group of this name is synced.
    pub fn allows(&self, name: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|pattern| pattern.matches(name));
        included && !self.exclude.iter().any(|pattern| pattern.matches(name))
    }

    /// Whether every group is synced.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// Iterative glob match with one backtrack point: linear in practice, never exponential.
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> GroupFilter {
        GroupFilter::new(
            include.iter().map(|s| s.to_string()).collect(),
            exclude.iter().map(|s| s.to_string()).collect(),
        )
        .unwrap()
    }

    fn check(include: &[&str], exclude: &[&str], name: &str, expected: bool) {
        assert_eq!(
            filter(include, exclude).allows(name),
            expected,
            "{include:?} - {exclude:?} on {name:?}"
        );
    }

    #[test]
    fn exact_names_globs_and_regular_expressions() {
        check(&[], &[], "anything", true);
        check(&["vpn-*"], &[], "vpn-eng", true);
        check(&["vpn-*"], &[], "eng-vpn", false);
        check(&["*-admins"], &[], "net-admins", true);
        check(&["*-admins"], &[], "net-admins-old", false);
        check(&["team-?"], &[], "team-a", true);
        check(&["team-?"], &[], "team-ab", false);
        check(&["a*b*c"], &[], "axxbyyc", true);
        check(&["a*b*c"], &[], "axxbyy", false);
        check(&["vpn-*"], &["vpn-test*"], "vpn-testing", false);
        check(&[], &["*"], "x", false);
        check(&["re:^vpn-(eu|us)$"], &[], "vpn-eu", true);
        check(&["re:^vpn-(eu|us)$"], &[], "vpn-eu-old", false);
        check(&["re:admins"], &[], "net-admins-old", true);
        check(&["*"], &["re:^Every"], "Everyone", false);
    }

    /// Issue 17: a bare name acted as a prefix, so `include_groups = ["vpn"]` also synced
    /// `vpn-contractors` and `vpnadmins`. A bare name is the exact name.
    #[test]
    fn a_bare_name_is_the_exact_name_not_a_prefix() {
        check(&["vpn"], &[], "vpn", true);
        check(&["vpn"], &[], "vpn-contractors", false);
        check(&["vpn"], &[], "vpnadmins", false);
        check(&["*"], &["Everyone"], "Everyone-else", true);
    }

    #[test]
    fn an_unreadable_pattern_is_refused() {
        let error = GroupFilter::new(vec!["re:^vpn-(eu".to_owned()], vec![]).unwrap_err();
        assert_eq!(error.pattern, "re:^vpn-(eu");
        assert!(error.to_string().contains("not a regular expression"), "{error}");
        let error = GroupFilter::new(vec![], vec!["re:".to_owned()]).unwrap_err();
        assert!(error.reason.contains("empty"), "{error}");
        assert!(GroupFilter::new(vec![String::new()], vec![]).is_err());
    }
}
