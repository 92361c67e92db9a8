//! One MCP session, as a sans-I/O state machine: the bridge is a handshake-era server whose
//! only job is to send `sampling/createMessage` requests to the client and route the answers.
//!
//! The runtime feeds every message the client sends into [`McpSession::handle_incoming`] and
//! writes out whatever it is told to; it calls [`McpSession::begin_sampling`] to start a
//! request and [`McpSession::cancel`] when nobody waits for the answer any more. `W` is the
//! runtime's waiter (a oneshot sender), handed back with the answer it waits for.
//!
//! Dual-era clients probe with `server/discover` (or another modern request) before
//! `initialize`; those get a JSON-RPC error, which makes them fall back to the handshake, and
//! the session stays open for it.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::api_error::ApiError;
pub use crate::mcp::failures::SamplingFailure;
use crate::mcp::jsonrpc::{
    Envelope, ErrorObject, INVALID_PARAMS, INVALID_REQUEST, Incoming, Lenient, METHOD_NOT_FOUND,
    PARSE_ERROR, Shape, lenient_object,
};
use crate::mcp::sampling::ClientSupport;
use crate::mcp::sampling::CreateMessageResult;

pub const LATEST_PROTOCOL_VERSION: &str = "2025-11-25";
/// Handshake-era versions, newest first. Modern (2026-07-28+) has no server-to-client requests.
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub instructions: Option<String>,
}

impl ServerInfo {
    /// How the bridge introduces itself to MCP clients, in every runtime.
    pub fn sampling2api() -> Self {
        ServerInfo {
            name: "sampling2api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            instructions: Some(
                "sampling2api forwards Anthropic Messages API requests to this client as sampling/createMessage requests."
                    .into(),
            ),
        }
    }
}

/// What the client told us in `initialize`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientFacts {
    pub protocol_version: String,
    /// `None` when the client did not declare `sampling`.
    pub sampling: Option<ClientSupport>,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingInitialize,
    /// `initialize` answered, `notifications/initialized` not yet seen.
    Initializing,
    Ready,
}

/// What the client answered to one sampling request: its result, or its failure (an error
/// response or an invalid result). The lifecycle turns it into a
/// [`crate::lifecycle::SamplingOutcome`].
pub type ClientAnswer = Result<CreateMessageResult, SamplingFailure>;

/// The effects of one incoming message (or batch).
#[derive(Debug)]
pub struct Handled<W> {
    /// JSON-RPC responses to the client's requests, in order.
    pub replies: Vec<Value>,
    /// Sampling requests this message answered, with their waiters.
    pub answers: Vec<(W, ClientAnswer)>,
    /// The message was a JSON array (a 2025-03-26 batch).
    pub batch: bool,
    /// The message held a successful `initialize`.
    pub initialized: bool,
}

impl<W> Handled<W> {
    fn new(batch: bool) -> Self {
        Handled {
            replies: Vec::new(),
            answers: Vec::new(),
            batch,
            initialized: false,
        }
    }

    /// The text to send back, if any: one object, or an array for a batch.
    pub fn reply_body(&self) -> Option<String> {
        match (self.batch, self.replies.as_slice()) {
            (_, []) => None,
            (false, [single]) => Some(single.to_string()),
            _ => Some(Value::Array(self.replies.clone()).to_string()),
        }
    }
}

/// A `sampling/createMessage` request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    pub id: u64,
    pub json: String,
}

/// A request to the client, serialised without an intermediate `Value` tree.
#[derive(serde::Serialize)]
struct OutgoingEnvelope<'a, P: serde::Serialize> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: &'a P,
}

/// The `sampling/createMessage` request `id` carrying `params`, as JSON text.
pub fn encode_sampling_request<P: serde::Serialize>(
    id: u64,
    params: &P,
    size_hint: usize,
) -> Result<String, ApiError> {
    // Sized up front: a request carrying megabytes of image is serialized without the
    // buffer doubling (and copying) its way there.
    let mut json = Vec::with_capacity(size_hint.saturating_add(256));
    serde_json::to_writer(
        &mut json,
        &OutgoingEnvelope {
            jsonrpc: "2.0",
            id,
            method: "sampling/createMessage",
            params,
        },
    )
    .map_err(|err| ApiError::api(format!("could not encode the sampling request: {err}")))?;
    // serde_json writes only valid UTF-8.
    String::from_utf8(json)
        .map_err(|err| ApiError::api(format!("could not encode the sampling request: {err}")))
}

/// [`encode_sampling_request`] for params that are JSON text already (the worker's session
/// object gets them from the Worker encoded): the same bytes, without parsing them.
pub fn encode_sampling_request_json(id: u64, params_json: &str) -> String {
    let mut json = String::with_capacity(params_json.len().saturating_add(96));
    json.push_str(r#"{"jsonrpc":"2.0","id":"#);
    json.push_str(&id.to_string());
    json.push_str(r#","method":"sampling/createMessage","params":"#);
    json.push_str(params_json);
    json.push('}');
    json
}

pub struct McpSession<W> {
    server: ServerInfo,
    phase: Phase,
    client: Option<ClientFacts>,
    next_request_id: u64,
    pending: HashMap<u64, W>,
    /// The client has answered a sampling request (with a result or an error). Until then a
    /// client that asks a person first may be holding every request behind its prompt.
    answered: bool,
}

impl<W> McpSession<W> {
    pub fn new(server: ServerInfo) -> Self {
        McpSession {
            server,
            phase: Phase::AwaitingInitialize,
            client: None,
            next_request_id: 1,
            pending: HashMap::new(),
            answered: false,
        }
    }

    /// A session rebuilt from stored facts after its process was evicted (the worker's Durable
    /// Objects). Pending requests died with the process; ids continue from `next_request_id`
    /// so that a late answer to an old request cannot match a new one.
    pub fn resume(
        server: ServerInfo,
        client: ClientFacts,
        ready: bool,
        next_request_id: u64,
        answered: bool,
    ) -> Self {
        McpSession {
            server,
            phase: if ready {
                Phase::Ready
            } else {
                Phase::Initializing
            },
            client: Some(client),
            next_request_id: next_request_id.max(1),
            pending: HashMap::new(),
            answered,
        }
    }

    /// Whether the client has answered any sampling request of this session (see
    /// [`crate::mcp::failures::prompts_for_consent`]).
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// The id the next sampling request will get (to persist across evictions).
    pub fn next_request_id(&self) -> u64 {
        self.next_request_id
    }

    pub fn client(&self) -> Option<&ClientFacts> {
        self.client.as_ref()
    }

    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Ready, and declared `sampling`: a session that API requests may be routed to.
    pub fn can_sample(&self) -> bool {
        self.is_ready() && self.client.as_ref().is_some_and(|c| c.sampling.is_some())
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// What the client can take, or why no request may be sent to it now.
    pub fn support(&self) -> Result<ClientSupport, ApiError> {
        match (&self.client, self.phase) {
            (Some(client), Phase::Ready) => client.sampling.ok_or_else(|| {
                ApiError::unavailable(format!(
                    "the connected MCP client{} did not declare the `sampling` capability, so it cannot answer API requests",
                    client
                        .client_name
                        .as_deref()
                        .map(|name| format!(" ({name})"))
                        .unwrap_or_default()
                ))
                .not_retryable()
            }),
            _ => Err(ApiError::unavailable(
                "the MCP client has not finished initializing; no client can sample yet",
            )),
        }
    }

    /// Registers `waiter` and returns the request to send to the client. `params` is a
    /// [`crate::mcp::sampling::CreateMessageParams`], or its JSON when it crossed a process boundary.
    pub fn begin_sampling<P: serde::Serialize>(
        &mut self,
        params: &P,
        size_hint: usize,
        waiter: W,
    ) -> Result<OutgoingRequest, ApiError> {
        let id = self.reserve_sampling_id()?;
        let json = encode_sampling_request(id, params, size_hint)?;
        self.pending.insert(id, waiter);
        Ok(OutgoingRequest { id, json })
    }

    /// The first half of [`McpSession::begin_sampling`], for a runtime that encodes the request
    /// (megabytes, for a request with images) without holding the session: the id to encode
    /// with [`encode_sampling_request`], then register with [`McpSession::expect_answer`].
    pub fn reserve_sampling_id(&mut self) -> Result<u64, ApiError> {
        self.support()?;
        let id = self.next_request_id;
        self.next_request_id += 1;
        Ok(id)
    }

    /// Registers `waiter` for the answer to `id` (from [`McpSession::reserve_sampling_id`]),
    /// unless the session stopped being able to sample in between.
    pub fn expect_answer(&mut self, id: u64, waiter: W) -> Result<(), ApiError> {
        self.support()?;
        self.pending.insert(id, waiter);
        Ok(())
    }

    /// Forgets request `id`. If it was still pending, returns its waiter and the
    /// `notifications/cancelled` message that tells the client to stop working on it.
    pub fn cancel(&mut self, id: u64, reason: &str) -> Option<(W, String)> {
        let waiter = self.pending.remove(&id)?;
        let notification = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": id, "reason": reason},
        });
        Some((waiter, notification.to_string()))
    }

    /// Every pending waiter, for the runtime to fail, while the session itself goes on (its
    /// transport dropped requests it had already carried).
    pub fn take_pending(&mut self) -> Vec<W> {
        self.pending.drain().map(|(_, waiter)| waiter).collect()
    }

    /// Ends the session: every pending waiter is returned for the runtime to fail.
    pub fn close(&mut self) -> Vec<W> {
        self.phase = Phase::AwaitingInitialize;
        self.pending.drain().map(|(_, waiter)| waiter).collect()
    }

    /// Handles one message from the client: a JSON-RPC object or a batch array.
    pub fn handle_incoming(&mut self, raw: &[u8]) -> Handled<W> {
        match Incoming::parse(raw) {
            Err(err) => {
                let mut handled = Handled::new(false);
                handled.replies.push(error_reply(
                    Value::Null,
                    PARSE_ERROR,
                    &format!("parse error: {err}"),
                ));
                handled
            }
            Ok(Incoming::Batch(items)) => {
                let mut handled = Handled::new(true);
                if items.is_empty() {
                    handled
                        .replies
                        .push(error_reply(Value::Null, INVALID_REQUEST, "empty batch"));
                }
                for item in items {
                    self.handle_one(item, &mut handled);
                }
                handled
            }
            Ok(Incoming::Single(item)) => {
                let mut handled = Handled::new(false);
                self.handle_one(item, &mut handled);
                handled
            }
        }
    }

    fn handle_one(
        &mut self,
        message: Result<Envelope<'_>, serde_json::Error>,
        handled: &mut Handled<W>,
    ) {
        let Ok(message) = message else {
            handled.replies.push(error_reply(
                Value::Null,
                INVALID_REQUEST,
                "a JSON-RPC message must be an object",
            ));
            return;
        };
        match (message.method.into_option(), message.id) {
            (Some(method), Some(id)) => {
                let reply = self.handle_request(&method, id, message.params, handled);
                handled.replies.push(reply);
            }
            (Some(method), None) => self.handle_notification(&method),
            (None, Some(id)) => self.handle_response(&id, message.result, message.error, handled),
            (None, None) => handled.replies.push(error_reply(
                Value::Null,
                INVALID_REQUEST,
                "not a JSON-RPC request, notification or response",
            )),
        }
    }

    fn handle_request(
        &mut self,
        method: &str,
        id: Value,
        params: Option<&RawValue>,
        handled: &mut Handled<W>,
    ) -> Value {
        match method {
            "initialize" => {
                if self.phase != Phase::AwaitingInitialize {
                    return error_reply(id, INVALID_REQUEST, "the session is already initialized");
                }
                let params = params
                    .and_then(|raw| {
                        serde_json::from_str::<Lenient<InitializeParams>>(raw.get()).ok()
                    })
                    .and_then(Lenient::into_option)
                    .unwrap_or_default();
                let Some(requested) = params.protocol_version.0.as_deref() else {
                    return error_reply(
                        id,
                        INVALID_PARAMS,
                        "initialize: protocolVersion is required",
                    );
                };
                let version = SUPPORTED_PROTOCOL_VERSIONS
                    .into_iter()
                    .find(|supported| *supported == requested)
                    .unwrap_or(LATEST_PROTOCOL_VERSION);
                self.client = Some(client_facts(version, params));
                self.phase = Phase::Initializing;
                handled.initialized = true;
                let mut result = json!({
                    "protocolVersion": version,
                    "capabilities": {},
                    "serverInfo": {"name": self.server.name, "version": self.server.version},
                });
                if let Some(instructions) = &self.server.instructions {
                    result["instructions"] = Value::String(instructions.clone());
                }
                success_reply(id, result)
            }
            "ping" => success_reply(id, json!({})),
            "server/discover" => error_reply(
                id,
                METHOD_NOT_FOUND,
                "server/discover is not supported: this is a handshake-era MCP server (protocol 2025-11-25 and older); send initialize",
            ),
            _ if self.phase == Phase::AwaitingInitialize => error_reply(
                id,
                METHOD_NOT_FOUND,
                &format!(
                    "{method}: not available before initialize; this server needs the initialize handshake"
                ),
            ),
            _ => error_reply(
                id,
                METHOD_NOT_FOUND,
                &format!("method not found: {method} (this server offers sampling only)"),
            ),
        }
    }

    fn handle_notification(&mut self, method: &str) {
        if method == "notifications/initialized" && self.phase == Phase::Initializing {
            self.phase = Phase::Ready;
        }
        // Other notifications (cancelled, progress, roots changed) need no action: the
        // client never has a long-running request of ours to cancel.
    }

    fn handle_response(
        &mut self,
        id: &Value,
        result: Option<&RawValue>,
        error: Option<Lenient<ErrorObject>>,
        handled: &mut Handled<W>,
    ) {
        let numeric_id = match id {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        };
        // Any answer to one of our requests shows the client is not stuck behind a prompt.
        if numeric_id.is_some_and(|id| id < self.next_request_id) {
            self.answered = true;
        }
        // An answer to a request nobody waits for any more (cancelled, timed out, or never
        // sent) is dropped: it must never reach another request's caller.
        let Some(waiter) = numeric_id.and_then(|id| self.pending.remove(&id)) else {
            return;
        };
        let outcome = if let Some(result) = result {
            CreateMessageResult::from_json(result.get()).map_err(|err| {
                SamplingFailure::InvalidResult {
                    detail: err.to_string(),
                }
            })
        } else if let Some(error) = error {
            Err(failure_from_error(error.into_option().unwrap_or_default()))
        } else {
            Err(SamplingFailure::InvalidResult {
                detail: "a response with neither result nor error".into(),
            })
        };
        handled.answers.push((waiter, outcome));
    }
}

/// `initialize` params, each member read leniently: a client that sends a mistyped field is
/// treated as one that left it out.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InitializeParams {
    #[serde(default)]
    protocol_version: Lenient<String>,
    #[serde(default)]
    capabilities: Lenient<ClientCapabilities>,
    #[serde(default)]
    client_info: Lenient<Implementation>,
}

#[derive(Debug, Deserialize)]
struct ClientCapabilities {
    #[serde(default)]
    sampling: Lenient<SamplingCapability>,
}

#[derive(Debug, Deserialize)]
struct SamplingCapability {
    /// Declared (as an object): tools and tool choice may be sent.
    #[serde(default)]
    tools: Lenient<serde::de::IgnoredAny>,
}

/// `clientInfo`: who the client says it is.
#[derive(Debug, Deserialize)]
struct Implementation {
    #[serde(default)]
    name: Lenient<ClientInfoText>,
    #[serde(default)]
    version: Lenient<ClientInfoText>,
}

/// A `clientInfo` text, at most [`MAX_CLIENT_INFO_BYTES`] of it. Only that prefix is ever
/// copied out of the message: a `String` cut down after the copy would keep the capacity of
/// the whole text (30 MB names held 30 MB each for as long as their sessions lived).
#[derive(Debug)]
struct ClientInfoText(String);

impl<'de> crate::mcp::jsonrpc::Shape<'de> for ClientInfoText {
    fn from_text(text: &str) -> Option<Self> {
        Some(ClientInfoText(
            truncate_on_char_boundary(text, MAX_CLIENT_INFO_BYTES).to_string(),
        ))
    }
}

lenient_object!(
    InitializeParams,
    ClientCapabilities,
    SamplingCapability,
    Implementation
);

impl<'de> Shape<'de> for serde::de::IgnoredAny {
    fn from_map<A: serde::de::MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Some(serde::de::IgnoredAny))
    }
}

fn client_facts(version: &str, params: InitializeParams) -> ClientFacts {
    let sampling = params
        .capabilities
        .into_option()
        .and_then(|capabilities| capabilities.sampling.into_option());
    let client_info = params.client_info.into_option();
    let (client_name, client_version) = match client_info {
        Some(info) => (info.name.into_option(), info.version.into_option()),
        None => (None, None),
    };
    ClientFacts {
        protocol_version: version.to_string(),
        sampling: sampling.map(|sampling| ClientSupport {
            tools: sampling.tools.0.is_some(),
            // Versions are dates, so they order as strings.
            multi_block_messages: version >= "2025-11-25",
        }),
        client_name: client_name.map(|ClientInfoText(text)| text),
        client_version: client_version.map(|ClientInfoText(text)| text),
    }
}

/// Bytes of a `clientInfo` text kept per session (and copied into `/sessions` and logs); a
/// client may send megabytes there, no real name or version needs more.
pub const MAX_CLIENT_INFO_BYTES: usize = 256;

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate_on_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn failure_from_error(error: ErrorObject) -> SamplingFailure {
    SamplingFailure::from_error(
        error.code.0.unwrap_or(0),
        error.message.0.unwrap_or_else(|| "no message".to_string()),
    )
}

fn success_reply(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn error_reply(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::sampling::CreateMessageParams;

    fn server() -> McpSession<&'static str> {
        McpSession::new(ServerInfo {
            name: "sampling2api".into(),
            version: "0.1.0".into(),
            instructions: None,
        })
    }

    fn initialize(session: &mut McpSession<&'static str>, version: &str, sampling: Value) -> Value {
        let handled = session.handle_incoming(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":version,"capabilities":{"sampling":sampling},
                "clientInfo":{"name":"test-client","version":"1"}}})
            .to_string()
            .as_bytes(),
        );
        assert!(handled.initialized);
        session.handle_incoming(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        serde_json::from_str(&handled.reply_body().unwrap()).unwrap()
    }

    fn params() -> CreateMessageParams {
        CreateMessageParams::user_text("hi", 5)
    }

    #[test]
    fn client_info_is_kept_bounded_on_a_character_boundary() {
        let mut session = server();
        // 255 ASCII bytes, then two-byte characters: the cut falls inside one.
        let name = format!("{}{}", "n".repeat(255), "\u{e9}".repeat(1_000_000));
        let version = "v".repeat(10_000);
        session.handle_incoming(
            json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{},
                "clientInfo":{"name":name,"version":version}}})
            .to_string()
            .as_bytes(),
        );
        let client = session.client().unwrap();
        assert_eq!(
            client.client_name.as_deref(),
            Some("n".repeat(255).as_str())
        );
        assert_eq!(
            client.client_version.as_deref().map(str::len),
            Some(MAX_CLIENT_INFO_BYTES)
        );
        // Only the kept bytes are held, not the capacity of the text they were cut from.
        assert_eq!(client.client_name.as_ref().map(String::capacity), Some(255));
        assert_eq!(
            client.client_version.as_ref().map(String::capacity),
            Some(MAX_CLIENT_INFO_BYTES)
        );
        assert_eq!(truncate_on_char_boundary("a\u{e9}b", 2), "a");
        assert_eq!(truncate_on_char_boundary("a\u{e9}b", 3), "a\u{e9}");
        assert_eq!(truncate_on_char_boundary("ab", 9), "ab");
    }

    #[test]
    fn discover_probe_gets_an_error_and_the_session_stays_usable() {
        let mut session = server();
        let probe = session.handle_incoming(
            br#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        let reply: Value = serde_json::from_str(&probe.reply_body().unwrap()).unwrap();
        assert_eq!(reply["id"], 1);
        assert_eq!(reply["error"]["code"], METHOD_NOT_FOUND);
        // A modern request sent first is refused the same way.
        let modern = session.handle_incoming(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
        assert!(modern.replies[0]["error"].is_object());
        let init = initialize(&mut session, "2025-11-25", json!({"tools":{}}));
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(init["result"]["serverInfo"]["name"], "sampling2api");
        assert!(session.can_sample());
        assert_eq!(session.support().unwrap(), ClientSupport::FULL);
    }

    #[test]
    fn older_versions_are_accepted_and_unknown_ones_get_ours() {
        let mut old = server();
        let init = initialize(&mut old, "2024-11-05", json!({}));
        assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
        assert_eq!(
            old.support().unwrap(),
            ClientSupport {
                tools: false,
                multi_block_messages: false
            }
        );
        let mut future = server();
        let init = initialize(&mut future, "2026-07-28", json!({}));
        assert_eq!(init["result"]["protocolVersion"], LATEST_PROTOCOL_VERSION);
    }

    #[test]
    fn sampling_waits_for_initialized_and_needs_the_capability() {
        let mut session = server();
        assert_eq!(session.support().unwrap_err().status(), 503);
        session.handle_incoming(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
        );
        assert_eq!(
            session
                .begin_sampling(&params(), 0, "w")
                .unwrap_err()
                .status(),
            503
        );
        session.handle_incoming(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        let err = session.support().unwrap_err();
        assert_eq!(err.status(), 503);
        assert!(
            err.message
                .contains("did not declare the `sampling` capability")
        );
        assert!(!session.can_sample());
    }

    #[test]
    fn params_encoded_elsewhere_make_the_same_request() {
        let params_json = serde_json::to_string(&params()).unwrap();
        for id in [1, 42, u64::MAX] {
            assert_eq!(
                encode_sampling_request_json(id, &params_json),
                encode_sampling_request(id, &params(), 0).unwrap()
            );
        }
    }

    #[test]
    fn a_request_encoded_outside_the_session_is_answered_like_any_other() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        let id = session.reserve_sampling_id().unwrap();
        let json = encode_sampling_request(id, &params(), 0).unwrap();
        let sent: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(sent["id"], id);
        assert_eq!(sent["method"], "sampling/createMessage");
        // Ids stay unique whichever way a request starts.
        assert_ne!(
            session.begin_sampling(&params(), 0, "other").unwrap().id,
            id
        );
        session.expect_answer(id, "reserved").unwrap();
        let handled = session.handle_incoming(
            json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","content":{"type":"text","text":"hi"},"model":"m"}})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(handled.answers.len(), 1);
        assert_eq!(handled.answers[0].0, "reserved");
        // A session that ended in between takes no waiter.
        let next = session.reserve_sampling_id().unwrap();
        session.close();
        assert_eq!(
            session.expect_answer(next, "late").unwrap_err().status(),
            503
        );
        assert_eq!(session.pending_count(), 0);
    }

    #[test]
    fn answers_reach_their_own_waiter_only() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        let first = session.begin_sampling(&params(), 0, "first").unwrap();
        let second = session.begin_sampling(&params(), 0, "second").unwrap();
        assert_ne!(first.id, second.id);
        let sent: Value = serde_json::from_str(&second.json).unwrap();
        assert_eq!(sent["method"], "sampling/createMessage");
        assert_eq!(sent["params"]["maxTokens"], 5);

        let handled = session.handle_incoming(
            json!({"jsonrpc":"2.0","id":second.id,"result":{"role":"assistant","content":{"type":"text","text":"two"},"model":"m"}})
                .to_string()
                .as_bytes(),
        );
        assert!(handled.replies.is_empty());
        let (waiter, outcome) = &handled.answers[0];
        assert_eq!(*waiter, "second");
        assert!(outcome.is_ok());
        // A second answer with the same id, or a wrong id, reaches nobody.
        for id in [json!(second.id), json!(999), json!("x")] {
            let handled = session.handle_incoming(
                json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","content":{"type":"text","text":"?"},"model":"m"}})
                    .to_string()
                    .as_bytes(),
            );
            assert!(handled.answers.is_empty());
        }
        assert_eq!(session.pending_count(), 1);
    }

    #[test]
    fn errors_and_garbage_become_typed_failures() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        let cases = [
            (
                json!({"error":{"code":-1,"message":"User rejected sampling request"}}),
                403,
            ),
            (
                json!({"error":{"code":-32603,"message":"model crashed"}}),
                500,
            ),
            // The Python SDK answers in-flight requests this way when it shuts down.
            (
                json!({"error":{"code":-32000,"message":"Connection closed"}}),
                503,
            ),
            (
                json!({"error":{"code":-32800,"message":"Request cancelled"}}),
                503,
            ),
            (json!({"result":{"content":{"type":"text"}}}), 500),
            (json!({}), 500),
        ];
        for (body, status) in cases {
            let request = session.begin_sampling(&params(), 0, "w").unwrap();
            let mut message = body;
            message["jsonrpc"] = json!("2.0");
            message["id"] = json!(request.id.to_string());
            let handled = session.handle_incoming(message.to_string().as_bytes());
            let (_, outcome) = &handled.answers[0];
            assert_eq!(
                outcome.as_ref().unwrap_err().to_api_error(None).status(),
                status
            );
        }
        let declined = SamplingFailure::Declined {
            message: "no".into(),
        }
        .to_api_error(None);
        assert!(!declined.retryable);
    }

    #[test]
    fn cancel_frees_the_request_and_tells_the_client() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        let request = session.begin_sampling(&params(), 0, "w").unwrap();
        let (waiter, notification) = session.cancel(request.id, "caller went away").unwrap();
        assert_eq!(waiter, "w");
        let notification: Value = serde_json::from_str(&notification).unwrap();
        assert_eq!(notification["method"], "notifications/cancelled");
        assert_eq!(notification["params"]["requestId"], request.id);
        assert!(session.cancel(request.id, "again").is_none());
        assert_eq!(session.pending_count(), 0);
    }

    #[test]
    fn resumed_sessions_sample_without_a_new_handshake() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({"tools":{}}));
        let facts = session.client().cloned().unwrap();
        let mut resumed: McpSession<&str> = McpSession::resume(
            ServerInfo {
                name: "s".into(),
                version: "1".into(),
                instructions: None,
            },
            facts,
            true,
            41,
            true,
        );
        assert!(resumed.answered(), "the stored fact carries over");
        assert_eq!(resumed.support().unwrap(), ClientSupport::FULL);
        assert_eq!(resumed.begin_sampling(&params(), 0, "w").unwrap().id, 41);
        assert_eq!(resumed.next_request_id(), 42);
        let not_ready: McpSession<&str> = McpSession::resume(
            ServerInfo {
                name: "s".into(),
                version: "1".into(),
                instructions: None,
            },
            session.client().cloned().unwrap(),
            false,
            1,
            false,
        );
        assert!(!not_ready.can_sample());
    }

    #[test]
    fn close_returns_every_waiter() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        session.begin_sampling(&params(), 0, "a").unwrap();
        session.begin_sampling(&params(), 0, "b").unwrap();
        let mut waiters = session.close();
        waiters.sort();
        assert_eq!(waiters, vec!["a", "b"]);
        assert!(!session.can_sample());
    }

    #[test]
    fn mistyped_initialize_fields_read_as_absent() {
        let init = |params: Value| {
            let mut session = server();
            let handled = session.handle_incoming(
                json!({"jsonrpc":"2.0","id":"i","method":"initialize","params":params})
                    .to_string()
                    .as_bytes(),
            );
            (session, handled.replies[0].clone())
        };
        for params in [
            json!(null),
            json!(["2025-11-25"]),
            json!({"protocolVersion": 20251125}),
        ] {
            let (session, reply) = init(params.clone());
            assert_eq!(reply["error"]["code"], INVALID_PARAMS, "{params}");
            assert_eq!(reply["id"], "i");
            assert!(session.client().is_none());
        }
        let cases = [
            (json!({"sampling": {"tools": {}}}), Some(true)),
            (json!({"sampling": {"tools": true}}), Some(false)),
            (json!({"sampling": {}}), Some(false)),
            (json!({"sampling": []}), None),
            (json!({"sampling": true}), None),
            (json!(["sampling"]), None),
            (json!("sampling"), None),
        ];
        for (capabilities, tools) in cases {
            let (session, reply) = init(json!({
                "protocolVersion": "2025-06-18", "capabilities": capabilities,
                "clientInfo": {"name": 7, "version": "1.2"}
            }));
            assert_eq!(reply["result"]["protocolVersion"], "2025-06-18");
            let client = session.client().unwrap();
            assert_eq!(client.sampling.map(|s| s.tools), tools, "{capabilities}");
            assert_eq!(client.client_name, None);
            assert_eq!(client.client_version.as_deref(), Some("1.2"));
        }
        let (session, _) = init(json!({"protocolVersion": "2025-11-25", "clientInfo": "me"}));
        assert_eq!(session.client().unwrap().client_name, None);
    }

    #[test]
    fn odd_responses_are_read_as_leniently_as_before() {
        let mut session = server();
        initialize(&mut session, "2025-11-25", json!({}));
        let cases = [
            // A method that is not a string is no method: this is a response.
            (
                json!({"method": 5, "result": {"content": {"type":"text","text":"a"}}}),
                200,
            ),
            (json!({"result": null}), 500),
            (json!({"error": "boom"}), 500),
            (json!({"error": {"code": "x", "message": 3}}), 500),
            (
                json!({"error": {"code": 1.5, "message": "user declined"}}),
                403,
            ),
        ];
        for (body, status) in cases {
            let request = session.begin_sampling(&params(), 0, "w").unwrap();
            let mut message = body.clone();
            message["id"] = json!(request.id);
            let handled = session.handle_incoming(message.to_string().as_bytes());
            assert!(handled.replies.is_empty(), "{body}");
            let (_, outcome) = &handled.answers[0];
            let got = match outcome {
                Ok(_) => 200,
                Err(failure) => failure.to_api_error(None).status(),
            };
            assert_eq!(got, status, "{body}");
        }
        // A null id answers nothing; its request stays pending.
        let request = session.begin_sampling(&params(), 0, "w").unwrap();
        let handled = session.handle_incoming(br#"{"jsonrpc":"2.0","id":null,"result":{}}"#);
        assert!(handled.answers.is_empty() && handled.replies.is_empty());
        assert!(session.cancel(request.id, "done").is_some());
        // A request with a null id is answered with that id.
        let handled = session.handle_incoming(br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#);
        assert_eq!(
            handled.replies[0],
            json!({"jsonrpc":"2.0","id":null,"result":{}})
        );
        let neither = session.handle_incoming(br#"{"jsonrpc":"2.0"}"#);
        assert_eq!(neither.replies[0]["error"]["code"], INVALID_REQUEST);
        let batch = session.handle_incoming(b"[]");
        assert_eq!(
            batch.reply_body().unwrap(),
            r#"[{"error":{"code":-32600,"message":"empty batch"},"id":null,"jsonrpc":"2.0"}]"#
        );
        let mixed = session.handle_incoming(br#"[7, {"jsonrpc":"2.0","id":2,"method":"ping"}]"#);
        assert!(mixed.batch);
        assert_eq!(mixed.replies[0]["error"]["code"], INVALID_REQUEST);
        assert_eq!(mixed.replies[1]["id"], 2);
    }

    #[test]
    fn malformed_messages_get_json_rpc_errors() {
        let mut session = server();
        let parse = session.handle_incoming(b"{not json");
        assert_eq!(parse.replies[0]["error"]["code"], PARSE_ERROR);
        let not_object = session.handle_incoming(b"42");
        assert_eq!(not_object.replies[0]["error"]["code"], INVALID_REQUEST);
        let batch = session.handle_incoming(
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"}]"#,
        );
        let body: Value = serde_json::from_str(&batch.reply_body().unwrap()).unwrap();
        assert_eq!(body, json!([{"jsonrpc":"2.0","id":1,"result":{}}]));
        let missing_version = session
            .handle_incoming(br#"{"jsonrpc":"2.0","id":3,"method":"initialize","params":{}}"#);
        assert_eq!(missing_version.replies[0]["error"]["code"], INVALID_PARAMS);
        assert!(!missing_version.initialized);
    }
}
