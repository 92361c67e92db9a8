//! Who is calling: the token (`Authorization: Bearer` or `x-api-key`), whether this deployment
//! accepts it, and the namespace it owns. A namespace is the SHA-256 of the token, so sessions
//! of different tokens live in different Durable Objects and can never be named from outside.

use sampling2api_core::http::auth::{first_authorized, presented_keys};
use sampling2api_core::{ApiError, ErrorKind};
use sha2::{Digest, Sha256};
use worker::{Env, Request};

/// The caller's namespace (hex SHA-256 of its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(pub String);

pub fn namespace_of(request: &Request, env: &Env) -> Result<Namespace, ApiError> {
    let headers = request.headers();
    let x_api_key = headers.get("x-api-key").ok().flatten();
    let authorization = headers.get("authorization").ok().flatten();
    // Optional allow-list, set with `wrangler secret put ALLOWED_TOKENS` (comma-separated).
    let allowed = env
        .secret("ALLOWED_TOKENS")
        .ok()
        .map(|secret| secret.to_string());
    namespace_for(
        x_api_key.as_deref(),
        authorization.as_deref(),
        allowed.as_deref(),
    )
}

/// The namespace of the token the headers present, if `allowed` (the deployment's
/// comma-separated allow-list, when it has one) lets it in. A caller that presents two tokens
/// (`x-api-key` and `Authorization: Bearer`) gets the namespace of the first one the list
/// allows, as natively either key lets a caller in; with no list, of the first presented
/// (`x-api-key`).
pub fn namespace_for(
    x_api_key: Option<&str>,
    authorization: Option<&str>,
    allowed: Option<&str>,
) -> Result<Namespace, ApiError> {
    let presented = presented_keys(x_api_key, authorization);
    let Some(first) = presented.first().copied() else {
        return Err(ApiError::new(
            ErrorKind::Authentication,
            "a token is required: send it as Authorization: Bearer or x-api-key",
        ));
    };
    let token = match allowed {
        Some(allowed) => {
            let allowed: Vec<String> = allowed
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            first_authorized(&presented, &allowed).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Authentication,
                    "this token is not allowed on this deployment",
                )
            })?
        }
        None => first,
    };
    let digest = Sha256::digest(token.as_bytes());
    Ok(Namespace(
        digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_is_the_tokens_sha256_whichever_header_carries_it() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(namespace_for(Some("abc"), None, None).unwrap().0, abc);
        assert_eq!(
            namespace_for(None, Some("Bearer abc"), None).unwrap().0,
            abc
        );
        assert_eq!(
            namespace_for(None, Some("bearer  abc "), None).unwrap().0,
            abc
        );
        assert_ne!(namespace_for(Some("abd"), None, None).unwrap().0, abc);
    }

    #[test]
    fn no_token_is_a_401() {
        for (key, authorization) in [
            (None, None),
            (Some(""), None),
            (Some("  "), Some("Basic abc")),
            (None, Some("Bearer ")),
        ] {
            let err = namespace_for(key, authorization, None).unwrap_err();
            assert_eq!(err.status(), 401, "{key:?} {authorization:?}");
            assert!(err.message.contains("a token is required"));
        }
    }

    #[test]
    fn the_allow_list_admits_listed_tokens_only() {
        let allowed = Some(" one , two,,");
        assert!(namespace_for(Some("one"), None, allowed).is_ok());
        assert!(namespace_for(None, Some("Bearer two"), allowed).is_ok());
        let err = namespace_for(Some("three"), None, allowed).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.message.contains("not allowed"));
        // An empty entry allows no empty token; an empty list allows nobody.
        assert!(namespace_for(Some("one"), None, Some(",")).is_err());
    }

    #[test]
    fn two_tokens_own_the_namespace_of_the_one_the_list_allows() {
        let allowed = Some("two");
        let two = namespace_for(Some("two"), None, None).unwrap();
        let one = namespace_for(Some("one"), None, None).unwrap();
        // Only the second (Bearer) token is allowed: it is the one that counts.
        assert_eq!(
            namespace_for(Some("one"), Some("Bearer two"), allowed).unwrap(),
            two
        );
        assert_eq!(
            namespace_for(Some("two"), Some("Bearer one"), allowed).unwrap(),
            two
        );
        // Both allowed, or no list: the first presented (x-api-key).
        assert_eq!(
            namespace_for(Some("one"), Some("Bearer two"), Some("one,two")).unwrap(),
            one
        );
        assert_eq!(
            namespace_for(Some("one"), Some("Bearer two"), None).unwrap(),
            one
        );
        // Neither allowed.
        let err = namespace_for(Some("one"), Some("Bearer three"), allowed).unwrap_err();
        assert_eq!(err.status(), 401);
    }
}
