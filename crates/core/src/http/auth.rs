//! API keys: which key a request presents, and a constant-time check against the configured
//! ones (so response timing does not reveal how much of a guess was right).

use subtle::ConstantTimeEq;

/// `x-api-key: K` or `Authorization: Bearer K` (clients sometimes send both; either may match).
pub fn presented_keys<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Vec<&'a str> {
    let bearer = authorization.and_then(|value| {
        let (scheme, token) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    [x_api_key.map(str::trim), bearer]
        .into_iter()
        .flatten()
        .filter(|key| !key.is_empty())
        .collect()
}

/// Whether any presented key equals any configured key. Every pair is compared in full.
pub fn authorized(presented: &[&str], configured: &[String]) -> bool {
    first_authorized(presented, configured).is_some()
}

/// The first presented key that equals a configured one. A caller that sends two keys (both
/// headers, as the Anthropic SDKs do when given an API key and an auth token) is let in by
/// either, and what it owns (the worker's namespace) follows the key that let it in, not
/// whichever header happens to come first. Every pair is compared in full, so the timing
/// tells at most which of the caller's own keys matched.
pub fn first_authorized<'a>(presented: &[&'a str], configured: &[String]) -> Option<&'a str> {
    let mut first = None;
    for key in presented {
        let mut matched = subtle::Choice::from(0);
        for expected in configured {
            matched |= key.as_bytes().ct_eq(expected.as_bytes());
        }
        if first.is_none() && bool::from(matched) {
            first = Some(*key);
        }
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_either_header() {
        assert_eq!(presented_keys(Some("k1"), None), vec!["k1"]);
        assert_eq!(presented_keys(None, Some("Bearer k2")), vec!["k2"]);
        assert_eq!(presented_keys(None, Some("bearer   k2 ")), vec!["k2"]);
        assert_eq!(presented_keys(Some("a"), Some("Bearer b")), vec!["a", "b"]);
        assert!(presented_keys(None, Some("Basic abc")).is_empty());
        assert!(presented_keys(Some(" "), None).is_empty());
    }

    #[test]
    fn matching() {
        let keys = vec!["secret-one".to_string(), "secret-two".to_string()];
        assert!(authorized(&["secret-two"], &keys));
        assert!(authorized(&["wrong", "secret-one"], &keys));
        assert!(!authorized(&["secret-on"], &keys));
        assert!(!authorized(&["secret-one!"], &keys));
        assert!(!authorized(&[], &keys));
        assert!(!authorized(&["x"], &[]));
    }

    #[test]
    fn the_first_key_that_matches_is_the_one_that_counts() {
        let keys = vec!["one".to_string(), "two".to_string()];
        assert_eq!(first_authorized(&["stranger", "two"], &keys), Some("two"));
        assert_eq!(first_authorized(&["two", "one"], &keys), Some("two"));
        assert_eq!(first_authorized(&["one", "stranger"], &keys), Some("one"));
        assert_eq!(first_authorized(&["stranger", "other"], &keys), None);
        assert_eq!(first_authorized(&[], &keys), None);
    }
}
