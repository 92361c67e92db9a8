//! The bridge's own bound on a request's headers, checked by both runtimes' front so that
//! headers past it get an Anthropic-shaped 431 instead of the HTTP library's bare one.
//!
//! Real callers send a few KB (Claude Code and the SDKs up to ~8 KB). The native HTTP layer
//! (hyper) has a hard limit above this one (native `server/mod.rs`): only headers past that hard limit
//! are refused by hyper itself, without a body, before a handler could see them.

use crate::api_error::{ApiError, ErrorKind};

/// Header names and values together, in bytes. Below workerd's own cut (about 128 KiB for the
/// whole head, measured on `wrangler dev`), so that the worker answers as natively up to there.
pub const MAX_HEADER_BYTES: usize = 96 * 1024;
/// Header fields (lines, in HTTP/1.1).
pub const MAX_HEADER_FIELDS: usize = 100;

/// Refuses headers past [`MAX_HEADER_BYTES`] or [`MAX_HEADER_FIELDS`]; `fields` yields each
/// field's name and value lengths.
pub fn check(fields: impl IntoIterator<Item = (usize, usize)>) -> Result<(), ApiError> {
    let (mut count, mut bytes) = (0usize, 0usize);
    for (name, value) in fields {
        count += 1;
        bytes = bytes.saturating_add(name).saturating_add(value);
    }
    if count > MAX_HEADER_FIELDS {
        return Err(too_large(format!(
            "the request has {count} header fields; at most {MAX_HEADER_FIELDS} are accepted"
        )));
    }
    if bytes > MAX_HEADER_BYTES {
        return Err(too_large(format!(
            "the request's headers are {bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
        )));
    }
    Ok(())
}

fn too_large(message: String) -> ApiError {
    ApiError::new(ErrorKind::HeadersTooLarge, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_up_to_the_limits_pass() {
        assert!(check([]).is_ok());
        assert!(check([(10, MAX_HEADER_BYTES - 10)]).is_ok());
        assert!(check(std::iter::repeat_n((4, 4), MAX_HEADER_FIELDS)).is_ok());
    }

    #[test]
    fn headers_past_the_limits_are_a_431_request_too_large() {
        let err = check([(10, MAX_HEADER_BYTES - 9)]).unwrap_err();
        assert_eq!(err.status(), 431);
        assert_eq!(err.kind.type_name(), "request_too_large");
        assert!(!err.retryable);
        assert!(err.message.contains("98305 bytes"), "{}", err.message);
        let err = check(std::iter::repeat_n((4, 4), MAX_HEADER_FIELDS + 1)).unwrap_err();
        assert_eq!(err.status(), 431);
        assert!(err.message.contains("101 header fields"), "{}", err.message);
        // Lengths that would overflow saturate instead.
        assert!(check([(usize::MAX, usize::MAX)]).is_err());
    }
}
