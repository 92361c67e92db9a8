//! Which MCP session an API request goes to.
//!
//! With the `x-mcp-session-id` header: the session with that public handle, or whose client's
//! own secret id it is (whoever holds the secret holds the session anyway), or 404. Without it: the session that can
//! take the request now. A session that can sample and has its event stream open (stdio: always)
//! is *live*; one that can sample but has no stream open (a client between reconnects, or one
//! that vanished without `DELETE`) is *waiting*.
//! - One live session: it is chosen, whatever the waiting ones.
//! - Several live sessions: 400 naming the header.
//! - No live session: the waiting ones count instead (one: chosen, and the request waits for its
//!   stream as long as the stream wait allows; several: 400).
//! - None that can sample: 503.
//!
//! So a client that vanished never captures or blocks requests while another client is ready,
//! and a lone client that is reconnecting still gets them.

use subtle::ConstantTimeEq;

use crate::api_error::ApiError;

pub const SESSION_HEADER: &str = "x-mcp-session-id";

/// A session as routing sees it.
#[derive(Debug, Clone)]
pub struct Candidate<'a, T> {
    /// Its public handle (`mcps_…`), which `/sessions` lists.
    pub id: &'a str,
    /// Its `Mcp-Session-Id`, which only its client knows; compared in constant time.
    pub secret: &'a str,
    /// Why API requests cannot go to this session now; `None` when it can sample.
    pub unavailable: Option<ApiError>,
    /// Its event stream to the client is open (stdio: always).
    pub stream_open: bool,
    pub item: T,
}

pub fn choose_session<'a, T>(
    requested: Option<&str>,
    candidates: impl IntoIterator<Item = Candidate<'a, T>>,
) -> Result<T, ApiError> {
    if let Some(wanted) = requested {
        return candidates
            .into_iter()
            .find(|candidate| {
                candidate.id == wanted
                    || bool::from(candidate.secret.as_bytes().ct_eq(wanted.as_bytes()))
            })
            .map(|candidate| candidate.item)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no MCP session with id `{}` is connected ({SESSION_HEADER})",
                    printable(wanted)
                ))
            });
    }
    let mut connected = 0usize;
    let mut live = Vec::new();
    let mut waiting = Vec::new();
    let mut last_reason = None;
    for candidate in candidates {
        connected += 1;
        match (candidate.unavailable, candidate.stream_open) {
            (None, true) => live.push(candidate.item),
            (None, false) => waiting.push(candidate.item),
            (Some(reason), _) => last_reason = Some(reason),
        }
    }
    let mut able = if live.is_empty() { waiting } else { live };
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
            secret: "secret",
            unavailable,
            stream_open: true,
            item,
        }
    }

    fn streamless(id: &'static str, item: u32) -> Candidate<'static, u32> {
        Candidate {
            stream_open: false,
            ..candidate(id, None, item)
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
    fn a_clients_own_secret_names_its_session_like_its_handle() {
        let named = |wanted| {
            choose_session(
                Some(wanted),
                vec![
                    Candidate {
                        secret: "s-one",
                        ..candidate("a", None, 1)
                    },
                    Candidate {
                        secret: "s-two",
                        ..streamless("b", 2)
                    },
                ],
            )
        };
        assert_eq!(named("s-two").unwrap(), 2);
        assert_eq!(named("b").unwrap(), 2);
        assert_eq!(named("s-one").unwrap(), 1);
        // A prefix of a secret names nothing, and the secret is not echoed.
        let err = named("s-tw").unwrap_err();
        assert_eq!(err.status(), 404);
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

    #[test]
    fn a_session_without_a_stream_neither_wins_nor_blocks_when_another_is_live() {
        // A client that vanished without DELETE next to a ready one: the ready one, both ways.
        assert_eq!(
            choose_session(None, vec![streamless("gone", 1), candidate("b", None, 2)]).unwrap(),
            2
        );
        assert_eq!(
            choose_session(None, vec![candidate("b", None, 2), streamless("gone", 1)]).unwrap(),
            2
        );
        // Several live ones stay ambiguous, whatever the stream-less ones.
        let err = choose_session(
            None,
            vec![
                candidate("a", None, 1),
                streamless("gone", 3),
                candidate("b", None, 2),
            ],
        )
        .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message.starts_with("2 MCP clients"), "{}", err.message);
    }

    #[test]
    fn without_a_live_session_the_stream_less_ones_count() {
        // A lone client between reconnects still gets the request (it waits for the stream).
        assert_eq!(choose_session(None, vec![streamless("a", 1)]).unwrap(), 1);
        assert_eq!(
            choose_session(None, vec![streamless("a", 1), candidate("b", unable(), 2)]).unwrap(),
            1
        );
        let err = choose_session(None, vec![streamless("a", 1), streamless("b", 2)]).unwrap_err();
        assert_eq!(err.status(), 400);
        // The header reaches a stream-less session too.
        assert_eq!(
            choose_session(
                Some("gone"),
                vec![streamless("gone", 1), candidate("b", None, 2)]
            )
            .unwrap(),
            1
        );
    }
}
