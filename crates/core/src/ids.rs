//! Identifiers in Anthropic's style (`msg_01…`, `req_01…`, `toolu_01…`).
//!
//! The core takes the randomness as an argument so it stays sans-I/O; each runtime draws it
//! from its own secure source. 128 random bits make collisions across restarts and
//! concurrent requests negligible, unlike a counter.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` + `01` + 22 base62 characters of `random`.
pub fn prefixed_id(prefix: &str, random: u128) -> String {
    // Two 64-bit halves of 11 digits each: 62^11 > 2^64, and u64 division is far cheaper
    // than u128 division.
    let mut digits = [b'0'; 22];
    for (half, chunk) in [(random >> 64) as u64, random as u64]
        .into_iter()
        .zip(digits.chunks_mut(11))
    {
        let mut value = half;
        for slot in chunk.iter_mut().rev() {
            *slot = BASE62[(value % 62) as usize];
            value /= 62;
        }
    }
    let mut id = String::with_capacity(prefix.len() + 24);
    id.push_str(prefix);
    id.push_str("01");
    id.extend(digits.iter().map(|&b| b as char));
    id
}

pub fn message_id(random: u128) -> String {
    prefixed_id("msg_", random)
}

pub fn request_id(random: u128) -> String {
    prefixed_id("req_", random)
}

pub fn tool_use_id(random: u128) -> String {
    prefixed_id("toolu_", random)
}

/// A session id for `Mcp-Session-Id`: 128 random bits in hex. It is the session's only
/// credential, so it is never listed; see [`session_handle`].
pub fn session_id(random: u128) -> String {
    format!("{random:032x}")
}

/// Whether `id` has the form [`session_id`] gives (32 lowercase hex digits): anything else
/// names no session, so both runtimes refuse it before looking it up.
pub fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The public name of a session, derived from its secret `Mcp-Session-Id`: what `/sessions`
/// lists and `x-mcp-session-id` routes by. Knowing it gives no hold on the session, and both
/// runtimes derive it the same way without storing it (`mcps_` + 96 bits of SHA-256).
pub fn session_handle(session_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"sampling2api session handle\0")
        .chain_update(session_id.as_bytes())
        .finalize();
    let mut handle = String::with_capacity(5 + 24);
    handle.push_str("mcps_");
    for byte in digest.iter().take(12) {
        handle.push(char::from(HEX[usize::from(byte >> 4)]));
        handle.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    handle
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_api_shape_and_differ() {
        let a = message_id(1);
        let b = message_id(u128::MAX);
        assert_eq!(a.len(), 28);
        assert_eq!(b.len(), 28);
        assert!(a.starts_with("msg_01") && b.starts_with("msg_01"));
        assert_ne!(a, b);
        assert!(request_id(5).starts_with("req_01"));
        assert!(tool_use_id(5).starts_with("toolu_01"));
        assert_eq!(session_id(0xab).len(), 32);
        assert!(is_session_id(&session_id(0xab)) && is_session_id(&session_id(u128::MAX)));
        for other in [
            "",
            "0",
            &"A".repeat(32),
            &"g".repeat(32),
            &"a".repeat(33),
            "é",
        ] {
            assert!(!is_session_id(other), "{other}");
        }
        assert!(b[6..].bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}

#[cfg(test)]
mod handle_tests {
    use super::*;

    #[test]
    fn handles_are_stable_distinct_and_reveal_nothing_of_the_id() {
        let id = session_id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let handle = session_handle(&id);
        assert_eq!(handle, session_handle(&id));
        assert!(
            handle.starts_with("mcps_") && handle.len() == 29,
            "{handle}"
        );
        assert!(!handle.contains(&id) && !id.contains(&handle[5..]));
        assert_ne!(handle, session_handle(&session_id(1)));
    }
}
