//! Rights a link grants and path scopes: what a capability allows, and where.

use serde::{Deserialize, Serialize};

use super::error::{TResult, TrustError};
use super::signed::MAX_TEXT;

/// Most path prefixes in a scope.
pub const MAX_SCOPE: usize = 16;

/// Rights a link grants, as bit flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rights(pub u8);

impl Rights {
    /// Fetch and host ciphertext (mirrors).
    pub const RELAY: Rights = Rights(1);
    /// Fetch and read.
    pub const READ: Rights = Rights(2);
    /// Push new heads.
    pub const WRITE: Rights = Rights(4);
    /// Delegate (narrower) links.
    pub const GRANT: Rights = Rights(8);
    /// Revoke links below this one.
    pub const REVOKE: Rights = Rights(16);
    const NAMES: [(&'static str, Rights); 5] = [
        ("relay", Rights::RELAY),
        ("read", Rights::READ),
        ("write", Rights::WRITE),
        ("grant", Rights::GRANT),
        ("revoke", Rights::REVOKE),
    ];
    pub(crate) const ALL: u8 = 31;

    /// True when every right of `other` is in `self`.
    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub fn with(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Names, e.g. `read,grant`.
    pub fn names(self) -> String {
        let v: Vec<&str> = Rights::NAMES
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(n, _)| *n)
            .collect();
        v.join(",")
    }
}

/// Checks that `p` is a normalized path prefix: relative, `/`-separated valid names.
pub fn valid_prefix(p: &str) -> bool {
    p.len() <= MAX_TEXT && p.split('/').all(crate::object::valid_name)
}

/// True when `path` is `prefix` or below it.
pub fn path_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// True when `path` is inside `scope` (empty scope: everything).
pub fn in_scope(scope: &[String], path: &str) -> bool {
    scope.is_empty() || scope.iter().any(|p| path_under(path, p))
}

/// True when `path` is inside the scope or is a directory on the way to it.
pub fn on_scope_path(scope: &[String], path: &str) -> bool {
    path.is_empty() || in_scope(scope, path) || scope.iter().any(|p| path_under(p, path))
}

/// Sorts, de-duplicates and checks path prefixes given by a user (`a/b/`, `./a` accepted).
pub fn normalize_scope(prefixes: &[String]) -> TResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in prefixes {
        let t = p.trim_start_matches("./").trim_matches('/').to_string();
        if !valid_prefix(&t) {
            return Err(TrustError::Malformed(
                "scope",
                format!("bad path prefix {p:?}"),
            ));
        }
        out.push(t);
    }
    out.sort();
    out.dedup();
    if out.len() > MAX_SCOPE {
        return Err(TrustError::TooLarge("scope"));
    }
    Ok(out)
}

/// True when `child` is inside `parent` (an empty scope is the whole dataset).
pub(crate) fn scope_within(child: &[String], parent: &[String]) -> bool {
    if parent.is_empty() {
        return true;
    }
    !child.is_empty() && child.iter().all(|c| in_scope(parent, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert!(path_under("a/b", "a"));
        assert!(!path_under("ab", "a"));
        assert!(scope_within(&["a/b".into()], &["a".into()]));
        assert!(!scope_within(&[], &["a".into()]));
        assert!(on_scope_path(&["a/b".into()], "a"));
        assert!(!on_scope_path(&["a/b".into()], "c"));
        assert_eq!(
            normalize_scope(&["./a/".into(), "a".into()]).unwrap(),
            vec!["a".to_string()]
        );
        assert!(normalize_scope(&["../x".into()]).is_err());
    }
}
