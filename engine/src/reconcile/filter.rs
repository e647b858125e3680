//! [`GroupFilter`]: which IdP groups an integration syncs, by name, with include and exclude
//! patterns. A pattern is a glob (`*` any run of characters, `?` one character); a pattern
//! without wildcards matches names that start with it, so `vpn-` and `vpn-*` mean the same.
//! Matching needs nothing but the name, so it can be asked anywhere a group's name is known.

/// Include and exclude patterns over group names. A group is synced when it matches an
/// include pattern (or there are none) and no exclude pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl GroupFilter {
    /// A filter from the configuration's `include_groups` and `exclude_groups`.
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> GroupFilter {
        GroupFilter { include, exclude }
    }

    /// Whether a group of this name is synced.
    pub fn allows(&self, name: &str) -> bool {
        let included = self.include.is_empty() || self.include.iter().any(|pattern| matches(pattern, name));
        included && !self.exclude.iter().any(|pattern| matches(pattern, name))
    }

    /// Whether every group is synced.
    pub fn is_everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name.starts_with(pattern);
    }
    glob(pattern.as_bytes(), name.as_bytes())
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

    fn check(include: &[&str], exclude: &[&str], name: &str, expected: bool) {
        let filter = GroupFilter::new(
            include.iter().map(|s| s.to_string()).collect(),
            exclude.iter().map(|s| s.to_string()).collect(),
        );
        assert_eq!(filter.allows(name), expected, "{include:?} - {exclude:?} on {name:?}");
    }

    #[test]
    fn prefixes_and_globs() {
        check(&[], &[], "anything", true);
        check(&["vpn-"], &[], "vpn-eng", true);
        check(&["vpn-"], &[], "eng-vpn", false);
        check(&["vpn-*"], &[], "vpn-eng", true);
        check(&["*-admins"], &[], "net-admins", true);
        check(&["*-admins"], &[], "net-admins-old", false);
        check(&["team-?"], &[], "team-a", true);
        check(&["team-?"], &[], "team-ab", false);
        check(&["a*b*c"], &[], "axxbyyc", true);
        check(&["a*b*c"], &[], "axxbyy", false);
        check(&["vpn-*"], &["vpn-test*"], "vpn-testing", false);
        check(&[], &["*"], "x", false);
    }
}
