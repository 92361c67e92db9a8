//! Which MCP session an API request goes to.
//!
//! With the `x-mcp-session-id` header: that session, or 404. Without it: the only session
//! that can sample; 503 if there is none, 400 naming the header if there are several.

use crate::api_error::ApiError;

pub const SESSION_HEADER: &str = "x-mcp-session-id";

/// A session as routing sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a, T> {
    pub id: &'a str,
    /// Why API requests cannot go to this session now; `None` when it can sample.
    pub unavailable: Option<ApiError>,
    pub item: T,
}

pub fn choose_session<'a, T>(
    requested: Option<&str>,
    candidates: impl IntoIterator<Item = Candidate<'a, T>>,
) -> Result<T, ApiError> {
    if let Some(wanted) = requested {
        return candidates
            .into_iter()
            .find(|candidate| candidate.id == wanted)
            .map(|candidate| candidate.item)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no MCP session with id `{}` is connected ({SESSION_HEADER})",
                    printable(wanted)
                ))
            });
    }
    let mut connected = 0usize;
    let mut able = Vec::new();
    let mut last_reason = None;
    for candidate in candidates {
        connected += 1;
        match candidate.unavailable {
            None => able.push(candidate.item),
            Some(reason) => last_reason = Some(reason),
        }
    }
    match (able.len(), last_reason) {
        (1, _) => Ok(able.swap_remove(0)),
        (0, _) if connected == 0 => Err(ApiError::unavailable(
            "no MCP client is connected to sampling2api; connect one (for example VS Code) and retry",
        )),
        // One client, unable: its own reason says the most.
        (0, Some(reason)) if connected == 1 => Err(reason),
        (0, _) => Err(ApiError::unavailable(format!(
            "{connected} MCP client(s) connected, but none has finished initializing with the `sampling` capability"
        ))),
        (several, _) => Err(ApiError::invalid_request(format!(
            "{several} MCP clients can sample; choose one with the `{SESSION_HEADER}` header"
        ))),
    }
}

/// An id echoed in an error message, cut short and stripped of control characters so a
/// hostile header cannot inject into logs or bodies.
fn printable(id: &str) -> String {
    id.chars().filter(|c| !c.is_control()).take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unable() -> Option<ApiError> {
        Some(ApiError::unavailable("no sampling capability").not_retryable())
    }

    fn candidate(
        id: &'static str,
        unavailable: Option<ApiError>,
        item: u32,
    ) -> Candidate<'static, u32> {
        Candidate {
            id,
            unavailable,
            item,
        }
    }

    fn candidates() -> Vec<Candidate<'static, u32>> {
        vec![candidate("a", None, 1), candidate("b", unable(), 2)]
    }

    #[test]
    fn header_picks_a_session_or_404s() {
        assert_eq!(choose_session(Some("b"), candidates()).unwrap(), 2);
        let err = choose_session(Some("zz\r\nx"), candidates()).unwrap_err();
        assert_eq!(err.status(), 404);
        assert!(err.message.contains("`zzx`"));
    }

    #[test]
    fn without_header_the_only_sampler_is_chosen() {
        assert_eq!(choose_session(None, candidates()).unwrap(), 1);
    }

    #[test]
    fn none_or_several() {
        let err = choose_session::<u32>(None, vec![]).unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(err.message.contains("no MCP client is connected"));
        let err = choose_session(None, vec![candidate("b", unable(), 2)]).unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(
            err.message, "no sampling capability",
            "a lone client's own reason"
        );
        let err = choose_session(
            None,
            vec![candidate("a", unable(), 1), candidate("b", unable(), 2)],
        )
        .unwrap_err();
        assert!(err.message.contains("none has finished"));
        let err = choose_session(None, vec![candidate("a", None, 1), candidate("b", None, 2)])
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.contains(SESSION_HEADER));
    }
}
