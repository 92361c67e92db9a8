//! Messages between the Worker and its Durable Objects (internal JSON over `fetch`).

use sampling2api_core::ApiError;
use sampling2api_core::sampling::CreateMessageResult;
use sampling2api_core::status::InFlightRequest;
use sampling2api_core::to_sampling::ClientSupport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A session as the namespace registry lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionEntry {
    pub id: String,
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_version: Option<String>,
    pub protocol_version: String,
    /// `None`: the client did not declare `sampling`.
    pub sampling: Option<ClientSupport>,
    /// The client sent `notifications/initialized` (reported by its session object).
    #[serde(default)]
    pub ready: bool,
    /// Its event stream is open (reported by its session object). Entries stored before this
    /// field existed read as closed: their streams dropped with that deployment anyway.
    #[serde(default)]
    pub stream_open: bool,
}

/// What a session object reports to its registry when readiness or its stream changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStatus {
    pub id: String,
    pub ready: bool,
    pub stream_open: bool,
}

/// The Worker sends its `CreateMessageParams` by reference (no JSON tree of a large request);
/// the session object reads them as a `Value` and passes them on unchanged.
#[derive(Debug, Serialize, Deserialize)]
pub struct SampleRequest<P = Value> {
    pub params: P,
    /// Names this request in the session's admission queue.
    pub ticket: String,
    pub timeout_ms: u64,
    pub stream_wait_ms: u64,
    /// The session's admission limits (the Worker reads them from its vars).
    pub max_in_flight: usize,
    pub max_queued: usize,
    /// What the status page shows of this request while the session object holds it.
    #[serde(default)]
    pub status: Option<InFlightRequest>,
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
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SampleOutcome {
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<ApiError>,
    /// Seconds from taking a slot under the in-flight limit to the outcome, as the native
    /// binary measures them; `None` when the request never got a slot.
    #[serde(default)]
    pub sampling_seconds: Option<f64>,
}

impl SampleOutcome {
    pub fn new(
        outcome: Result<CreateMessageResult, ApiError>,
        sampling_seconds: Option<f64>,
    ) -> Self {
        let (result, error) = match outcome {
            Ok(result) => (Some(result.to_value()), None),
            Err(error) => (None, Some(error)),
        };
        SampleOutcome {
            result,
            error,
            sampling_seconds,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ReportedModel {
    pub model: String,
    pub unix: u64,
}

/// The API caller of the request `ticket` left (sent from the Worker's `wait_until`).
#[derive(Debug, Serialize, Deserialize)]
pub struct CancelRequest {
    pub ticket: String,
}
