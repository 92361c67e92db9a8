//! The live status page's data, shared by both runtimes: the last requests (a bounded ring),
//! totals per model, requests in flight, the connected clients, and the JSON snapshot
//! `GET /status` answers with. The page itself (`status_page.html`) and its headers live here
//! too, so both runtimes serve the identical page.

use std::collections::VecDeque;
use std::sync::OnceLock;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::anthropic::{ContentBlock, MessageContent, MessagesRequest, Role};
use crate::api::models::MAX_MODEL_ID_CHARS;
use crate::mcp::session::truncate_on_char_boundary;

/// How many finished requests the page lists.
pub const RECENT_REQUESTS: usize = 50;
/// How many model names get their own totals; the rest add up under [`OTHER_MODELS`]. Model
/// names come from callers, so the list must not grow with them.
pub const MAX_MODELS: usize = 32;
pub const OTHER_MODELS: &str = "(other models)";
/// A prompt preview's length in characters (`--log-prompts` only).
pub const PROMPT_PREVIEW_CHARS: usize = 200;
/// Bytes of any one text the board keeps (ids, routes, models, previews): room for every model
/// id the API accepts ([`MAX_MODEL_ID_CHARS`] characters of up to 4 bytes) and a preview, so
/// that what a caller sends can never grow the board or every `GET /status` beyond it.
pub const MAX_KEPT_TEXT_BYTES: usize = 4 * MAX_MODEL_ID_CHARS;

/// `text`, or its longest prefix within [`MAX_KEPT_TEXT_BYTES`], copied: a cut made in place
/// would keep the capacity of the whole text.
fn kept(text: String) -> String {
    if text.len() <= MAX_KEPT_TEXT_BYTES {
        text
    } else {
        truncate_on_char_boundary(&text, MAX_KEPT_TEXT_BYTES).to_string()
    }
}

/// One finished API request, as the page lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentRequest {
    pub request_id: String,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub route: String,
    #[serde(default)]
    pub model: Option<String>,
    /// The MCP session's public handle.
    #[serde(default)]
    pub session: Option<String>,
    pub status: u16,
    pub latency_ms: u64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// The last user message's start, kept only when the deployment logs prompts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

impl RecentRequest {
    /// The request with every text within [`MAX_KEPT_TEXT_BYTES`].
    pub fn bounded(self) -> Self {
        RecentRequest {
            request_id: kept(self.request_id),
            route: kept(self.route),
            model: self.model.map(kept),
            session: self.session.map(kept),
            prompt: self.prompt.map(kept),
            ..self
        }
    }
}

/// What all requests for one model added up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelTotals {
    pub model: String,
    pub requests: u64,
    /// Requests answered with a status of 400 or above.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub latency_ms_sum: u64,
}

/// The last [`RECENT_REQUESTS`] requests, newest first, and the totals per model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestHistory {
    recent: VecDeque<RecentRequest>,
    models: Vec<ModelTotals>,
}

impl RequestHistory {
    pub fn record(&mut self, request: RecentRequest) {
        let request = request.bounded();
        self.count(&request);
        self.recent.push_front(request);
        self.recent.truncate(RECENT_REQUESTS);
    }

    fn count(&mut self, request: &RecentRequest) {
        let name = request.model.as_deref().unwrap_or("-");
        let index = match self.models.iter().position(|known| known.model == name) {
            Some(index) => index,
            None => {
                let name = if self.models.len() + 1 >= MAX_MODELS {
                    OTHER_MODELS
                } else {
                    name
                };
                match self.models.iter().position(|known| known.model == name) {
                    Some(index) => index,
                    None => {
                        self.models.push(ModelTotals {
                            model: name.to_string(),
                            ..ModelTotals::default()
                        });
                        self.models.len() - 1
                    }
                }
            }
        };
        if let Some(totals) = self.models.get_mut(index) {
            totals.requests += 1;
            totals.errors += u64::from(request.status >= 400);
            totals.input_tokens = totals.input_tokens.saturating_add(request.input_tokens);
            totals.output_tokens = totals.output_tokens.saturating_add(request.output_tokens);
            totals.latency_ms_sum = totals.latency_ms_sum.saturating_add(request.latency_ms);
        }
    }

    /// Newest first.
    pub fn recent(&self) -> impl Iterator<Item = &RecentRequest> {
        self.recent.iter()
    }

    pub fn models(&self) -> &[ModelTotals] {
        &self.models
    }
}

/// Where a request in flight waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Behind the session's in-flight limit.
    Queued,
    /// Sent (or being sent) to the MCP client, which has not answered yet.
    WaitingForClient,
}

/// A request being served, as the runtime tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlightRequest {
    pub request_id: String,
    pub route: String,
    pub model: Option<String>,
    pub session: Option<String>,
    pub started_unix_ms: u64,
    pub stage: Stage,
}

impl InFlightRequest {
    /// The request with every text within [`MAX_KEPT_TEXT_BYTES`].
    pub fn bounded(self) -> Self {
        InFlightRequest {
            request_id: kept(self.request_id),
            route: kept(self.route),
            model: self.model.map(kept),
            session: self.session.map(kept),
            ..self
        }
    }
}

/// A connected MCP client, as the page shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientStatus {
    /// The session's public handle (`mcps_…`), never its secret id.
    pub session: String,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub protocol_version: Option<String>,
    pub sampling: bool,
    /// How tools reach the client: `native` or `emulated` (`None`: it cannot sample).
    pub tools: Option<String>,
    /// `None` where the runtime cannot tell (stdio has no event stream: always open).
    pub event_stream_open: Option<bool>,
    pub in_flight: u64,
    pub queued: u64,
    /// The client asks a person before it samples (VS Code) and has answered nothing in this
    /// session yet: its consent prompt may be holding every request.
    #[serde(default)]
    pub consent_may_be_pending: bool,
}

/// A request in flight, with how long it has waited and what the person may need to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InFlightView {
    pub request_id: String,
    pub route: String,
    pub model: Option<String>,
    pub session: Option<String>,
    pub started_unix_ms: u64,
    pub waited_ms: u64,
    pub stage: Stage,
    pub hint: Option<String>,
}

/// `GET /status`: everything the page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    pub name: String,
    pub version: String,
    /// `stdio`, `http` or `worker`.
    pub mode: String,
    pub now_unix_ms: u64,
    /// Whether prompts are kept (`--log-prompts`); the page says so.
    pub log_prompts: bool,
    pub clients: Vec<ClientStatus>,
    pub in_flight: Vec<InFlightView>,
    pub recent: Vec<RecentRequest>,
    pub models: Vec<ModelTotals>,
    /// Requests to the API routes that the front refused before any route ran (a foreign
    /// `Host` or `Origin`, a missing or wrong key, a body not declared JSON): counted here,
    /// never listed in `recent`, so that whoever can reach the port without a key cannot push
    /// the owner's requests out of the list. `None` where the runtime cannot tell whose they
    /// were (the worker: the token picks the namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at_front: Option<u64>,
    /// What this runtime cannot show (the worker has no per-request view of its sessions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl StatusSnapshot {
    /// A snapshot at `now_unix_ms`; the clients are sorted by handle, the requests in flight
    /// oldest first, each with its hint.
    pub fn new(
        mode: &str,
        now_unix_ms: u64,
        log_prompts: bool,
        mut clients: Vec<ClientStatus>,
        in_flight: &[InFlightRequest],
        history: &RequestHistory,
    ) -> Self {
        clients.sort_by(|a, b| a.session.cmp(&b.session));
        let mut in_flight: Vec<InFlightView> = in_flight
            .iter()
            .map(|request| {
                let client = clients
                    .iter()
                    .find(|client| Some(&client.session) == request.session.as_ref());
                InFlightView {
                    request_id: request.request_id.clone(),
                    route: request.route.clone(),
                    model: request.model.clone(),
                    session: request.session.clone(),
                    started_unix_ms: request.started_unix_ms,
                    waited_ms: now_unix_ms.saturating_sub(request.started_unix_ms),
                    stage: request.stage,
                    hint: waiting_hint(request.stage, client),
                }
            })
            .collect();
        in_flight.sort_by_key(|request| request.started_unix_ms);
        StatusSnapshot {
            name: "sampling2api".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            mode: mode.to_string(),
            now_unix_ms,
            log_prompts,
            clients,
            in_flight,
            recent: history.recent().cloned().collect(),
            models: history.models().to_vec(),
            refused_at_front: None,
            notes: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        // Plain strings and numbers only: encoding cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }
}

/// What the person at the client may need to do for a request waiting there, in plain words.
pub fn waiting_hint(stage: Stage, client: Option<&ClientStatus>) -> Option<String> {
    let client = client?;
    if client.event_stream_open == Some(false) {
        return Some(
            "The client has no open event stream, so the request cannot reach it yet: \
             the client may need to reconnect (in VS Code: restart the MCP server)."
                .to_string(),
        );
    }
    match stage {
        Stage::Queued => Some(format!(
            "Waiting behind {} other request(s) to this client.",
            client.in_flight
        )),
        Stage::WaitingForClient if client.consent_may_be_pending => Some(format!(
            "VS Code has not answered any request of this session yet: a notification in VS Code \
             may be waiting for someone to allow this MCP server to use a model (\"Allow in this \
             Session\" or \"Always\"), and every sampling request waits until it is answered. \
             `{}` allows it ahead of time.",
            crate::mcp::failures::CONNECT_VSCODE
        )),
        Stage::WaitingForClient => {
            let name = client.client_name.as_deref().unwrap_or("the MCP client");
            let lower = name.to_ascii_lowercase();
            if lower.contains("visual studio code") || lower.contains("vscode") {
                Some(
                    "Waiting for VS Code's model to answer (VS Code may also be asking you \
                     something: look for a prompt in VS Code)."
                        .to_string(),
                )
            } else {
                let name: String = name.chars().take(64).collect();
                Some(format!(
                    "Waiting for {name} to answer: it may be asking you to approve the request."
                ))
            }
        }
    }
}

/// The start of the last user message's text, for `--log-prompts`.
pub fn prompt_preview(request: &MessagesRequest) -> Option<String> {
    let message = request
        .messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)?;
    let text = match &message.content {
        MessageContent::Text(text) => text.clone(),
        MessageContent::Blocks(blocks) => blocks
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mut preview: String = text.chars().take(PROMPT_PREVIEW_CHARS).collect();
    if text.chars().nth(PROMPT_PREVIEW_CHARS).is_some() {
        preview.push('…');
    }
    Some(preview)
}

/// The page: one file, its script and style inline.
pub const PAGE: &str = include_str!("status_page.html");

/// Whether an `Accept` header prefers HTML to JSON: a browser's navigation does (it names
/// `text/html`); API clients send `application/json`, `*/*` or nothing.
pub fn wants_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut html = 0;
    let mut json = 0;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|param| {
                let (name, value) = param.split_once('=')?;
                (name.trim() == "q").then(|| quality(value.trim()))
            })
            .next()
            .unwrap_or(1000);
        match media.as_str() {
            "text/html" => html = html.max(q),
            "application/json" | "*/*" | "application/*" => json = json.max(q),
            _ => {}
        }
    }
    html > 0 && html > json
}

/// A `q` value in thousandths (`0`, `0.8`, `1.000`); anything else counts as 0. Integer
/// parsing keeps float parsing out of the worker's wasm.
fn quality(value: &str) -> u16 {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0_u16, |sum, digit| sum * 10 + u16::from(digit - b'0'));
    match whole {
        "1" if thousandths == 0 => 1000,
        "0" => thousandths,
        _ => 0,
    }
}

/// The text between the page's first `<tag>` and `</tag>`.
fn inline(tag: &str) -> &'static str {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    PAGE.split_once(open.as_str())
        .and_then(|(_, rest)| rest.split_once(close.as_str()))
        .map_or("", |(inner, _)| inner)
}

fn sha256_source(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The page's Content-Security-Policy: nothing but its own inline script and style (by hash)
/// and fetches to its own origin.
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            sha256_source(inline("script")),
            sha256_source(inline("style")),
        )
    })
}

/// The headers the page goes out with, in both runtimes.
pub fn page_headers() -> [(&'static str, &'static str); 6] {
    [
        ("content-type", "text/html; charset=utf-8"),
        ("content-security-policy", content_security_policy()),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(n: usize, model: &str, status: u16) -> RecentRequest {
        RecentRequest {
            request_id: format!("req_{n}"),
            unix_ms: n as u64,
            route: "/v1/messages".into(),
            model: Some(model.into()),
            session: None,
            status,
            latency_ms: 10,
            input_tokens: 3,
            output_tokens: 4,
            prompt: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_requests_up_to_its_bound() {
        let mut history = RequestHistory::default();
        for n in 0..RECENT_REQUESTS + 7 {
            history.record(finished(n, "m", 200));
        }
        let ids: Vec<&str> = history.recent().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids.len(), RECENT_REQUESTS);
        assert_eq!(ids[0], format!("req_{}", RECENT_REQUESTS + 6));
        assert_eq!(ids[RECENT_REQUESTS - 1], "req_7");
        // Totals count every request, not only those still listed.
        assert_eq!(history.models()[0].requests, (RECENT_REQUESTS + 7) as u64);
    }

    #[test]
    fn totals_per_model_add_tokens_errors_and_latency() {
        let mut history = RequestHistory::default();
        history.record(finished(1, "a", 200));
        history.record(finished(2, "a", 503));
        history.record(finished(3, "b", 200));
        let a = &history.models()[0];
        assert_eq!(
            (
                a.model.as_str(),
                a.requests,
                a.errors,
                a.input_tokens,
                a.output_tokens
            ),
            ("a", 2, 1, 6, 8)
        );
        assert_eq!(a.latency_ms_sum, 20);
        assert_eq!(history.models()[1].model, "b");
    }

    #[test]
    fn model_names_beyond_the_bound_share_one_entry() {
        let mut history = RequestHistory::default();
        for n in 0..MAX_MODELS * 3 {
            history.record(finished(n, &format!("model-{n}"), 200));
        }
        assert_eq!(history.models().len(), MAX_MODELS);
        let other = history.models().last().unwrap();
        assert_eq!(other.model, OTHER_MODELS);
        let total: u64 = history.models().iter().map(|m| m.requests).sum();
        assert_eq!(total, (MAX_MODELS * 3) as u64);
    }

    #[test]
    fn every_text_the_board_keeps_is_bounded() {
        let mut history = RequestHistory::default();
        // What validation lets through is kept whole: 256 characters of 4 bytes.
        let longest_valid = "\u{1F600}".repeat(MAX_MODEL_ID_CHARS);
        history.record(finished(1, &longest_valid, 200));
        assert_eq!(
            history.recent().next().unwrap().model.as_deref(),
            Some(longest_valid.as_str())
        );
        // Anything longer (a runtime that let it through) is cut, as a fresh copy.
        let huge = format!(
            "{}{}",
            "x".repeat(MAX_KEPT_TEXT_BYTES - 1),
            "\u{e9}".repeat(1 << 20)
        );
        let mut request = finished(2, &huge, 200);
        request.request_id = huge.clone();
        request.session = Some(huge.clone());
        request.prompt = Some(huge.clone());
        history.record(request);
        let listed = history.recent().next().unwrap();
        for text in [
            Some(&listed.request_id),
            listed.model.as_ref(),
            listed.session.as_ref(),
            listed.prompt.as_ref(),
        ] {
            let text = text.unwrap();
            assert_eq!(text.as_str(), "x".repeat(MAX_KEPT_TEXT_BYTES - 1));
            assert_eq!(text.capacity(), MAX_KEPT_TEXT_BYTES - 1);
        }
        assert_eq!(
            history.models()[1].model,
            "x".repeat(MAX_KEPT_TEXT_BYTES - 1)
        );
        let in_flight = InFlightRequest {
            request_id: huge.clone(),
            route: huge.clone(),
            model: Some(huge.clone()),
            session: Some(huge),
            started_unix_ms: 0,
            stage: Stage::Queued,
        }
        .bounded();
        assert!(in_flight.request_id.len() < MAX_KEPT_TEXT_BYTES);
        assert!(in_flight.model.unwrap().len() < MAX_KEPT_TEXT_BYTES);
    }

    #[test]
    fn snapshot_json_has_the_pages_fields_and_hints() {
        let mut history = RequestHistory::default();
        history.record(finished(1, "claude-x", 200));
        let clients = vec![ClientStatus {
            session: "mcps_b".into(),
            client_name: Some("Visual Studio Code".into()),
            sampling: true,
            tools: Some("emulated".into()),
            event_stream_open: Some(true),
            ..ClientStatus::default()
        }];
        let in_flight = [InFlightRequest {
            request_id: "req_9".into(),
            route: "/v1/messages".into(),
            model: Some("claude-x".into()),
            session: Some("mcps_b".into()),
            started_unix_ms: 1_000,
            stage: Stage::WaitingForClient,
        }];
        let snapshot = StatusSnapshot::new("http", 3_500, false, clients, &in_flight, &history);
        let json: serde_json::Value = serde_json::from_str(&snapshot.to_json()).unwrap();
        assert_eq!(json["mode"], "http");
        assert_eq!(json["clients"][0]["session"], "mcps_b");
        assert_eq!(json["clients"][0]["tools"], "emulated");
        assert_eq!(json["in_flight"][0]["waited_ms"], 2_500);
        assert_eq!(json["in_flight"][0]["stage"], "waiting_for_client");
        assert!(
            json["in_flight"][0]["hint"]
                .as_str()
                .unwrap()
                .contains("look for a prompt in VS Code")
        );
        // Before VS Code answered anything, the hint points at its consent notification.
        let waiting = ClientStatus {
            session: "mcps_b".into(),
            client_name: Some("Visual Studio Code".into()),
            event_stream_open: Some(true),
            consent_may_be_pending: true,
            ..ClientStatus::default()
        };
        let hint = waiting_hint(Stage::WaitingForClient, Some(&waiting)).unwrap();
        assert!(hint.contains("a notification in VS Code"), "{hint}");
        assert!(
            hint.contains("sampling2api connect vscode --write"),
            "{hint}"
        );
        assert_eq!(json["clients"][0]["consent_may_be_pending"], false);
        assert_eq!(json["recent"][0]["request_id"], "req_1");
        assert!(json["recent"][0].get("prompt").is_none());
        assert_eq!(json["models"][0]["model"], "claude-x");
        let back: StatusSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, snapshot);
    }

    #[test]
    fn a_closed_event_stream_is_the_hint_whatever_the_stage() {
        let client = ClientStatus {
            session: "mcps_a".into(),
            event_stream_open: Some(false),
            ..ClientStatus::default()
        };
        for stage in [Stage::Queued, Stage::WaitingForClient] {
            let hint = waiting_hint(stage, Some(&client)).unwrap();
            assert!(hint.contains("no open event stream"), "{hint}");
        }
        assert_eq!(waiting_hint(Stage::Queued, None), None);
    }

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,\
                      image/webp,*/*;q=0.8";
        assert!(wants_html(Some(chrome)));
        assert!(wants_html(Some("text/html")));
        assert!(wants_html(Some("text/html;q=0.9, application/json;q=0.85")));
        assert!(wants_html(Some("text/html;q=1.0, */*;q=0.999")));
        for api in [
            None,
            Some("*/*"),
            Some("application/json"),
            Some("application/json, text/html;q=0.5"),
            Some("text/html;q=0"),
            Some("text/html;q=0.5, */*"),
            Some("text/html;q=2"),
            Some("text/html;q=0.1234"),
            Some("text/html;q=x"),
        ] {
            assert!(!wants_html(api), "{api:?}");
        }
    }

    #[test]
    fn the_policy_hashes_the_pages_own_script_and_style() {
        let policy = content_security_policy();
        assert!(!inline("script").trim().is_empty());
        assert!(!inline("style").trim().is_empty());
        assert!(policy.starts_with("default-src 'none'; script-src 'sha256-"));
        assert!(policy.contains(&sha256_source(inline("script"))));
        assert!(policy.contains(&sha256_source(inline("style"))));
        assert!(policy.contains("frame-ancestors 'none'"));
        // One script and one style element only: a second would be blocked by the policy.
        assert_eq!(PAGE.matches("<script").count(), 1);
        assert_eq!(PAGE.matches("<style").count(), 1);
        // No external assets: the page works offline.
        assert!(!PAGE.contains("http://") && !PAGE.contains("https://"));
    }

    #[test]
    fn prompt_previews_are_cut_at_a_character_boundary() {
        let body = serde_json::json!({
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "é".repeat(PROMPT_PREVIEW_CHARS + 5)}]
        });
        let request: MessagesRequest = serde_json::from_value(body).unwrap();
        let preview = prompt_preview(&request).unwrap();
        assert_eq!(preview.chars().count(), PROMPT_PREVIEW_CHARS + 1);
        assert!(preview.ends_with('…'));
    }
}
