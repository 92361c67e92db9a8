//! The wire protocol between the Worker and a session's Durable Object (`McpSessionObject`):
//! the object's routes ([`SessionRoute`], which the client builds and the object matches) and
//! the messages they carry. Both sides import it; neither imports the other.
//!
//! A sampling request's params cross as JSON text: the Worker serializes its
//! `CreateMessageParams` straight into `/sample`'s body ([`frame_sample`]), and the object copies
//! that text unparsed into the `sampling/createMessage` it sends (no JSON tree of a request that
//! may carry megabytes of images). The outcome comes back typed both ways.

use sampling2api_core::ApiError;
use sampling2api_core::mcp::sampling::CreateMessageParams;
use sampling2api_core::mcp::sampling::{
    CreateMessageResult, ReportedUsage, SamplingContent, SamplingRole,
};
use sampling2api_core::ops::status::InFlightRequest;
use serde::{Deserialize, Serialize};
use worker::Method;

use crate::tenancy::Namespace;

/// What the object sends on the stream socket while requests wait: the Worker writes it to the
/// client as an SSE comment, so a client that vanished is noticed (the write fails).
pub const LIVENESS_PING: &str = ":ping";

/// The session object's routes, as the client builds them and the object matches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRoute {
    /// `POST /init/{namespace}/{id}`: a new session from the client's `initialize` (the body).
    /// The object keeps who it is, to report to its namespace's registry.
    Init { namespace: String, id: String },
    /// `POST /message`: a message from the client (the body); the reply is the response's.
    Message,
    /// `GET /connect`: the client's event stream, as a hibernatable WebSocket.
    Connect,
    /// `POST /sample`: a [`SampleRequest`]; answered by its admission (a refusal's status, or
    /// a 200 whose body, a [`SampleResponse`], follows when the client answers). The call
    /// aborted before then: the request's caller left.
    Sample,
    /// `GET /load`: the object's [`SessionLoad`].
    Load,
    /// `DELETE /session`: the client ended its session.
    End,
}

const INIT_PREFIX: &str = "/init/";

impl SessionRoute {
    pub fn parse(method: &Method, path: &str) -> Option<SessionRoute> {
        Some(match (method, path) {
            (Method::Post, "/message") => SessionRoute::Message,
            (Method::Get, "/connect") => SessionRoute::Connect,
            (Method::Post, "/sample") => SessionRoute::Sample,
            (Method::Get, "/load") => SessionRoute::Load,
            (Method::Delete, "/session") => SessionRoute::End,
            (Method::Post, path) => {
                let (namespace, id) = path.strip_prefix(INIT_PREFIX)?.split_once('/')?;
                if namespace.is_empty() || id.is_empty() || id.contains('/') {
                    return None;
                }
                SessionRoute::Init {
                    namespace: namespace.to_string(),
                    id: id.to_string(),
                }
            }
            _ => return None,
        })
    }

    pub fn method(&self) -> Method {
        match self {
            SessionRoute::Init { .. } | SessionRoute::Message | SessionRoute::Sample => {
                Method::Post
            }
            SessionRoute::Connect | SessionRoute::Load => Method::Get,
            SessionRoute::End => Method::Delete,
        }
    }

    pub fn path(&self) -> String {
        match self {
            SessionRoute::Init { namespace, id } => format!("{INIT_PREFIX}{namespace}/{id}"),
            SessionRoute::Message => "/message".into(),
            SessionRoute::Connect => "/connect".into(),
            SessionRoute::Sample => "/sample".into(),
            SessionRoute::Load => "/load".into(),
            SessionRoute::End => "/session".into(),
        }
    }
}

/// A sampling request for the session object, without its params (see [`frame_sample`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct SampleRequest {
    /// Its whole deadline, from its arrival at the object. (The session's limits and stream
    /// wait are the object's own settings.)
    pub timeout_ms: u64,
    /// What the status page shows of this request while the session object holds it.
    #[serde(default)]
    pub status: Option<InFlightRequest>,
}

/// `/sample`'s body: the [`SampleRequest`] as JSON, a newline, then the params as JSON.
/// Compact JSON holds no raw newline (one in a string is escaped), so the first newline ends
/// the request, and the object never parses the params.
pub fn frame_sample(
    request: &SampleRequest,
    params: &CreateMessageParams,
) -> Result<Vec<u8>, ApiError> {
    let encode_error = |err: serde_json::Error| {
        ApiError::api(format!("could not encode the sampling request: {err}"))
    };
    let mut body = Vec::with_capacity(params.size_hint().saturating_add(512));
    serde_json::to_writer(&mut body, request).map_err(encode_error)?;
    body.push(b'\n');
    serde_json::to_writer(&mut body, params).map_err(encode_error)?;
    Ok(body)
}

/// The object's side of [`frame_sample`]: the request, and its params' JSON text.
pub fn unframe_sample(mut body: Vec<u8>) -> Result<(SampleRequest, String), ApiError> {
    let malformed = |detail: String| ApiError::api(format!("a malformed /sample body: {detail}"));
    let end = body
        .iter()
        .position(|&byte| byte == b'\n')
        .ok_or_else(|| malformed("no params".into()))?;
    let request = serde_json::from_slice(body.get(..end).unwrap_or_default())
        .map_err(|err| malformed(err.to_string()))?;
    // The params stay where they are: only the request before them is removed.
    body.drain(..=end);
    let params = String::from_utf8(body).map_err(|err| malformed(err.to_string()))?;
    Ok((request, params))
}

/// A session object's admission counts, read at each `/metrics` scrape.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionLoad {
    pub in_flight: u64,
    pub queued: u64,
    /// The requests it holds now, for the status page.
    #[serde(default)]
    pub requests: Vec<InFlightRequest>,
    /// Sampling requests sent to the client and not answered yet.
    #[serde(default)]
    pub pending: u64,
    /// The client asks a person first (VS Code) and has answered nothing yet.
    #[serde(default)]
    pub consent_may_be_pending: bool,
}

/// A sampling request's outcome, `/sample`'s body.
#[derive(Debug, Serialize, Deserialize)]
pub struct SampleResponse {
    #[serde(default)]
    result: Option<SampledMessage>,
    #[serde(default)]
    error: Option<ApiError>,
    /// Seconds from taking a slot under the in-flight limit to the outcome, as the native
    /// binary measures them; `None` when the request never got a slot.
    #[serde(default)]
    pub sampling_seconds: Option<f64>,
}

impl SampleResponse {
    pub fn new(
        outcome: Result<CreateMessageResult, ApiError>,
        sampling_seconds: Option<f64>,
    ) -> Self {
        let (result, error) = match outcome {
            Ok(result) => (Some(SampledMessage::from(result)), None),
            Err(error) => (None, Some(error)),
        };
        SampleResponse {
            result,
            error,
            sampling_seconds,
        }
    }

    pub fn error(&self) -> Option<&ApiError> {
        self.error.as_ref()
    }

    pub fn into_result(self) -> Result<CreateMessageResult, ApiError> {
        match (self.error, self.result) {
            (Some(error), _) => Err(error),
            (None, Some(result)) => Ok(result.into()),
            (None, None) => Err(ApiError::api(
                "the session object returned neither a result nor an error",
            )),
        }
    }
}

/// A `CreateMessageResult` between the object and the Worker: the client's answer, already
/// validated by the session, with the usage it reported flattened (the MCP form keeps it in
/// `_meta`, which would take a JSON tree to read back).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SampledMessage {
    role: SamplingRole,
    content: Vec<SamplingContent>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl From<CreateMessageResult> for SampledMessage {
    fn from(result: CreateMessageResult) -> Self {
        SampledMessage {
            role: result.role,
            content: result.content,
            model: result.model,
            stop_reason: result.stop_reason,
            input_tokens: result.usage.and_then(|usage| usage.input_tokens),
            output_tokens: result.usage.and_then(|usage| usage.output_tokens),
        }
    }
}

impl From<SampledMessage> for CreateMessageResult {
    fn from(message: SampledMessage) -> Self {
        let usage = (message.input_tokens.is_some() || message.output_tokens.is_some()).then_some(
            ReportedUsage {
                input_tokens: message.input_tokens,
                output_tokens: message.output_tokens,
            },
        );
        CreateMessageResult {
            role: message.role,
            content: message.content,
            model: message.model,
            stop_reason: message.stop_reason,
            usage,
        }
    }
}

/// The session object's name: namespace and id together, so a session id used with another
/// token's namespace names an object that holds nothing.
pub fn object_name(namespace: &Namespace, id: &str) -> String {
    format!("{}:{id}", namespace.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampling2api_core::ErrorKind;
    use sampling2api_core::mcp::sampling::SamplingMessage;
    use sampling2api_core::mcp::session::{encode_sampling_request, encode_sampling_request_json};
    use sampling2api_core::ops::status::Stage;

    fn every_route() -> Vec<SessionRoute> {
        vec![
            SessionRoute::Init {
                namespace: "ab".repeat(32),
                id: "0123456789abcdef0123456789abcdef".into(),
            },
            SessionRoute::Message,
            SessionRoute::Connect,
            SessionRoute::Sample,
            SessionRoute::Load,
            SessionRoute::End,
        ]
    }

    #[test]
    fn every_route_parses_back_from_its_method_and_path() {
        for route in every_route() {
            assert_eq!(
                SessionRoute::parse(&route.method(), &route.path()),
                Some(route.clone()),
                "{route:?}"
            );
        }
    }

    #[test]
    fn other_methods_and_paths_are_no_route() {
        for (method, path) in [
            (Method::Get, "/sample"),
            (Method::Post, "/load"),
            (Method::Get, "/init/ns/id"),
            (Method::Post, "/init/ns"),
            (Method::Post, "/init//id"),
            (Method::Post, "/init/ns/"),
            (Method::Post, "/init/ns/id/more"),
            (Method::Post, "/sessions"),
            (Method::Delete, "/sessions/x"),
            (Method::Post, "/"),
        ] {
            assert_eq!(
                SessionRoute::parse(&method, path),
                None,
                "{method:?} {path}"
            );
        }
    }

    #[test]
    fn init_carries_who_the_object_is() {
        assert_eq!(
            SessionRoute::parse(&Method::Post, "/init/ns1/id1"),
            Some(SessionRoute::Init {
                namespace: "ns1".into(),
                id: "id1".into()
            })
        );
    }

    #[test]
    fn object_names_differ_per_namespace() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(object_name(&Namespace("aa".into()), id), format!("aa:{id}"));
        assert_ne!(
            object_name(&Namespace("aa".into()), id),
            object_name(&Namespace("bb".into()), id)
        );
    }

    fn params() -> CreateMessageParams {
        CreateMessageParams {
            messages: vec![SamplingMessage {
                role: SamplingRole::User,
                content: vec![
                    SamplingContent::Text {
                        text: "héllo \"quoted\" \u{1F600} \\ end".into(),
                    },
                    SamplingContent::Image {
                        data: "aGVsbG8=".into(),
                        mime_type: "image/png".into(),
                    },
                ],
            }],
            system_prompt: Some("be brief".into()),
            temperature: Some(0.25),
            ..CreateMessageParams::user_text("", 64)
        }
    }

    #[test]
    fn params_cross_as_json_text_and_encode_as_if_never_sent() {
        let params = params();
        let sent = SampleRequest {
            timeout_ms: 600_000,
            status: Some(InFlightRequest {
                request_id: "req_1".into(),
                route: "messages".into(),
                model: Some("m".into()),
                session: Some("mcps_x".into()),
                started_unix_ms: 5,
                stage: Stage::Queued,
            }),
        };
        let body = frame_sample(&sent, &params).unwrap();
        let (received, params_json) = unframe_sample(body).unwrap();
        assert_eq!(received.timeout_ms, 600_000);
        assert_eq!(
            received.status.as_ref().map(|s| s.stage),
            Some(Stage::Queued)
        );
        // The object's `sampling/createMessage` is byte for byte what the Worker's params
        // would have encoded to.
        let direct = encode_sampling_request(7, &params, 0).unwrap();
        assert_eq!(encode_sampling_request_json(7, &params_json), direct);
    }

    #[test]
    fn a_newline_in_the_request_or_params_does_not_move_the_split() {
        let mut params = params();
        params.system_prompt = Some("line one\nline two\r\n".into());
        let sent = SampleRequest {
            timeout_ms: 1,
            status: Some(InFlightRequest {
                request_id: "req_\n2".into(),
                route: "messages".into(),
                model: Some("line\nbreak".into()),
                session: None,
                started_unix_ms: 5,
                stage: Stage::Queued,
            }),
        };
        let (received, params_json) =
            unframe_sample(frame_sample(&sent, &params).unwrap()).unwrap();
        let status = received.status.unwrap();
        assert_eq!(status.request_id, "req_\n2");
        assert_eq!(status.model.as_deref(), Some("line\nbreak"));
        assert_eq!(params_json, serde_json::to_string(&params).unwrap());
    }

    #[test]
    fn a_malformed_body_is_an_error() {
        for body in [
            &b""[..],
            b"{\"timeout_ms\":1}",
            b"{\"status\":null}\n{}",
            b"not json\n{}",
        ] {
            let err = unframe_sample(body.to_vec()).unwrap_err();
            assert_eq!(err.status(), 500, "{}", String::from_utf8_lossy(body));
            assert!(err.message.contains("malformed /sample body"));
        }
        let request = br#"{"timeout_ms":1}"#;
        let mut body = request.to_vec();
        body.extend_from_slice(b"\n\xff\xfe");
        assert!(unframe_sample(body).is_err(), "params must be UTF-8");
    }

    fn result(usage: Option<ReportedUsage>) -> CreateMessageResult {
        CreateMessageResult {
            role: SamplingRole::Assistant,
            content: vec![
                SamplingContent::Text { text: "hi".into() },
                SamplingContent::ToolUse {
                    id: "call_1".into(),
                    name: "lookup".into(),
                    input: serde_json::json!({"q": [1, 2]}),
                },
            ],
            model: Some("claude-x".into()),
            stop_reason: Some("toolUse".into()),
            usage,
        }
    }

    fn round_trip(outcome: SampleResponse) -> SampleResponse {
        serde_json::from_slice(&serde_json::to_vec(&outcome).unwrap()).unwrap()
    }

    #[test]
    fn results_round_trip_with_their_usage() {
        for usage in [
            None,
            Some(ReportedUsage {
                input_tokens: Some(10),
                output_tokens: None,
            }),
            Some(ReportedUsage {
                input_tokens: None,
                output_tokens: Some(3),
            }),
            Some(ReportedUsage {
                input_tokens: Some(10),
                output_tokens: Some(3),
            }),
        ] {
            let back = round_trip(SampleResponse::new(Ok(result(usage)), Some(1.5)));
            assert_eq!(back.sampling_seconds, Some(1.5));
            assert!(back.error().is_none());
            assert_eq!(back.into_result().unwrap(), result(usage));
        }
    }

    #[test]
    fn errors_round_trip_with_their_status_and_retry_hint() {
        let mut refused = ApiError::new(ErrorKind::RateLimit, "too busy");
        refused.retry_after_secs = Some(1);
        let back = round_trip(SampleResponse::new(Err(refused.clone()), None));
        assert_eq!(back.sampling_seconds, None);
        let error = back.into_result().unwrap_err();
        assert_eq!(error.status(), 429);
        assert_eq!(error, refused);
    }

    #[test]
    fn an_empty_outcome_is_an_error_not_a_panic() {
        let back: SampleResponse = serde_json::from_str("{}").unwrap();
        assert_eq!(back.into_result().unwrap_err().status(), 500);
    }

    #[test]
    fn load_reads_older_bodies_with_defaults() {
        let load: SessionLoad = serde_json::from_str(r#"{"in_flight":2,"queued":1}"#).unwrap();
        assert_eq!((load.in_flight, load.queued, load.pending), (2, 1, 0));
        assert!(load.requests.is_empty());
    }
}
