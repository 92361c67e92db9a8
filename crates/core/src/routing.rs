//! Which MCP session an API request goes to.
//!
//! With the `x-mcp-session-id` header: that session, or 404. Without it: the only session
//! that can sample; 503 if there is none, 400 naming the header if there are several.

use crate::api_error::ApiError;

pub const SESSION_HEADER: &str = "x-mcp-session-id";

/// A session as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a, T> {
    pub id: &'a str,
    /// Initialized and declared `sampling`.
    pub can_sample: bool,
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
    for candidate in candidates {
        connected += 1;
        if candidate.can_sample {
            able.push(candidate.item);
        }
    }
    match able.len() {
        1 => Ok(able.swap_remove(0)),
        0 if connected == 0 => Err(ApiError::unavailable(
            "no MCP client is connected to sampling2api; connect one (for example VS Code) and retry",
        )),
        0 => Err(ApiError::unavailable(format!(
            "{connected} MCP client(s) connected, but none has finished initializing with the `sampling` capability"
        ))),
        several => Err(ApiError::invalid_request(format!(
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

    fn candidates() -> Vec<Candidate<'static, u32>> {
        vec![
            Candidate {
                id: "a",
                can_sample: true,
                item: 1,
            },
            Candidate {
                id: "b",
                can_sample: false,
                item: 2,
            },
        ]
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
        let err = choose_session(
            None,
            vec![Candidate {
                id: "b",
                can_sample: false,
                item: 2,
            }],
        )
        .unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(err.message.contains("none has finished"));
        let mut two = candidates();
        two[1].can_sample = true;
        let err = choose_session(None, two).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.contains(SESSION_HEADER));
    }
}
