//! Who is calling: the token (`Authorization: Bearer` or `x-api-key`), whether this deployment
//! accepts it, and the namespace it owns. A namespace is the SHA-256 of the token, so sessions
//! of different tokens live in different Durable Objects and can never be named from outside.

use sampling2api_core::auth::{authorized, presented_keys};
use sampling2api_core::{ApiError, ErrorKind};
use sha2::{Digest, Sha256};
use worker::{Env, Request};

/// The caller's namespace (hex SHA-256 of its token).
pub struct Namespace(pub String);

pub fn namespace_of(request: &Request, env: &Env) -> Result<Namespace, ApiError> {
    let headers = request.headers();
    let x_api_key = headers.get("x-api-key").ok().flatten();
    let authorization = headers.get("authorization").ok().flatten();
    let presented = presented_keys(x_api_key.as_deref(), authorization.as_deref());
    let Some(token) = presented.first().copied() else {
        return Err(ApiError::new(
            ErrorKind::Authentication,
            "a token is required: send it as Authorization: Bearer or x-api-key",
        ));
    };
    // Optional allow-list, set with `wrangler secret put ALLOWED_TOKENS` (comma-separated).
    if let Ok(secret) = env.secret("ALLOWED_TOKENS") {
        let allowed: Vec<String> = secret
            .to_string()
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if !authorized(&presented, &allowed) {
            return Err(ApiError::new(
                ErrorKind::Authentication,
                "this token is not allowed on this deployment",
            ));
        }
    }
    let digest = Sha256::digest(token.as_bytes());
    Ok(Namespace(
        digest.iter().map(|byte| format!("{byte:02x}")).collect(),
    ))
}
