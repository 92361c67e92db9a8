//! State shared by the API and the MCP side: the connected sessions, and the flow of one
//! sampling request (send, wait with a deadline, cancel when nobody waits any more).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sampling2api_core::ApiError;
use sampling2api_core::api::models::ModelCatalog;
use sampling2api_core::lifecycle::LifecycleLimits;
use sampling2api_core::lifecycle::session_choice::{Candidate, choose_session};
use sampling2api_core::mcp::sampling::{CreateMessageParams, CreateMessageResult};
use sampling2api_core::mcp::session::{ClientFacts, encode_sampling_request};
use sampling2api_core::ops::metrics::{Gauges, OutcomeLabel};

use crate::config::ApiSettings;
use crate::cpu_work;
use crate::image_fetch::ImageFetcher;
use crate::metrics::Metrics;
use crate::request_body::{BodyLimits, ReceivingBudget};
use crate::session::{Session, SessionLimits, Submitted};
use crate::status::{StatusBoard, StatusTicket};
use sampling2api_core::http::browser_guard::HostPolicy;
use sampling2api_core::ops::status::Stage;

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

pub struct Bridge {
    pub settings: ApiSettings,
    pub mode: &'static str,
    /// http mode: how long a sampling request waits for a client's event stream to open.
    pub stream_wait: Duration,
    /// http mode: the MCP endpoint's path (`--mcp-path`), named in errors.
    pub mcp_path: Arc<str>,
    /// http mode: a session with no open stream and no requests for this long ends.
    pub session_idle: Duration,
    /// http mode: MCP sessions open at once (stdio mode has exactly one).
    pub max_sessions: usize,
    pub images: ImageFetcher,
    pub metrics: Metrics,
    /// What the status page shows: requests in flight, the last ones, totals per model.
    pub status: StatusBoard,
    /// How request bodies are read (size, time, and the budget shared by all of them).
    pub body_limits: BodyLimits,
    /// Which `Host` names may reach the bridge; its port is set once the listener is bound.
    pub host_policy: HostPolicy,
    catalog: Mutex<ModelCatalog>,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    in_flight: AtomicU64,
}

impl Bridge {
    pub fn new(settings: ApiSettings, mode: &'static str) -> Self {
        let images = ImageFetcher::new(
            settings.allow_private_image_urls,
            settings.url_images.clone(),
        );
        let catalog = ModelCatalog::new(
            settings.model_aliases.clone(),
            settings.default_model_hint.clone(),
            unix_now(),
        )
        .with_max_reported(settings.max_reported_models);
        let body_limits = BodyLimits {
            max_bytes: settings.max_body_bytes,
            timeout: settings.body_read_timeout,
            budget: ReceivingBudget::new(settings.max_receiving_bytes),
        };
        let host_policy = HostPolicy {
            allowed: settings.allow_hosts.clone(),
        };
        Bridge {
            body_limits,
            host_policy,
            settings,
            mode,
            stream_wait: Duration::ZERO,
            mcp_path: Arc::from("/mcp"),
            session_idle: Duration::MAX,
            max_sessions: usize::MAX,
            images,
            metrics: Metrics::new(),
            status: StatusBoard::default(),
            catalog: Mutex::new(catalog),
            sessions: RwLock::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
        }
    }

    /// What each MCP session may hold, from the settings.
    pub fn session_limits(&self) -> SessionLimits {
        SessionLimits {
            lifecycle: LifecycleLimits {
                max_in_flight: self.settings.max_in_flight_per_session,
                max_queued: self.settings.max_queued_per_session,
                stream_wait: self.stream_wait,
                session_idle: self.session_idle,
                // The native event stream keeps itself alive with SSE comments.
                liveness_interval: None,
                mcp_path: self.mcp_path.to_string(),
                max_resend_bytes: self.settings.max_resend_bytes,
            },
            max_queued_bytes: self.settings.max_client_queue_bytes,
        }
    }

    /// The connect log line: who connected, and how its requests carry tools.
    pub fn log_client_connected(&self, session_handle: &str, client: &ClientFacts) {
        tracing::info!(
            session = %session_handle,
            client = client.client_name.as_deref().unwrap_or("unknown"),
            protocol = %client.protocol_version,
            sampling = client.sampling.is_some(),
            sampling_tools = client.sampling.is_some_and(|s| s.tools),
            tools = client
                .sampling
                .map_or("-", |support| self.settings.tool_mode.delivery(support).as_str()),
            "MCP client connected"
        );
    }

    pub fn add_session(&self, session: Arc<Session>) {
        self.write_sessions().insert(session.id.clone(), session);
    }

    /// Adds a session unless `max` are open already; checked and added under one lock, so
    /// concurrent `initialize`s cannot pass the bound together.
    pub fn add_session_within(&self, session: Arc<Session>, max: usize) -> bool {
        let mut sessions = self.write_sessions();
        if sessions.len() >= max {
            return false;
        }
        sessions.insert(session.id.clone(), session);
        true
    }

    /// Removes and closes a session; its pending API requests fail at once with `why`.
    pub fn end_session(&self, id: &str, why: &str) -> bool {
        let removed = self.write_sessions().remove(id);
        match removed {
            Some(session) => {
                session.close(why);
                true
            }
            None => false,
        }
    }

    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.read_sessions().get(id).cloned()
    }

    pub fn sessions(&self) -> Vec<Arc<Session>> {
        self.read_sessions().values().cloned().collect()
    }

    /// The session an API request goes to (see `lifecycle::session_choice` in the core).
    pub fn route(&self, requested: Option<&str>) -> Result<Arc<Session>, ApiError> {
        let sessions = self.read_sessions();
        choose_session(
            requested,
            sessions.values().map(|session| Candidate {
                id: session.handle.as_str(),
                secret: session.id.as_str(),
                unavailable: session.unavailable_reason(),
                stream_open: session.has_stream(),
                item: session,
            }),
        )
        .cloned()
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn catalog(&self) -> std::sync::MutexGuard<'_, ModelCatalog> {
        self.catalog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn metrics_text(&self) -> String {
        let sessions = self.sessions();
        self.metrics.render(Gauges {
            in_flight: self.in_flight(),
            queued: sessions.iter().map(|s| s.queued() as u64).sum(),
            sessions: sessions.len() as u64,
            sampling_sessions: sessions.iter().filter(|s| s.can_sample()).count() as u64,
        })
    }

    /// Waits for a slot at the session, sends `params` to the client and waits for its
    /// result; queueing and sampling together get at most the request deadline (set when the
    /// request was submitted). Dropping the returned future (the API caller went away) cancels
    /// the request at the client. `params` come boxed so that this future, which a request
    /// keeps while it waits for its answer, holds a pointer to them rather than the struct
    /// (they are dropped once encoded).
    pub async fn sample(
        &self,
        params: Box<CreateMessageParams>,
        mut submitted: Submitted,
        ticket: &StatusTicket<'_>,
    ) -> Result<CreateMessageResult, ApiError> {
        let Ok(id) = submitted.slot().await else {
            return submitted.outcome().await;
        };
        ticket.set_stage(Stage::WaitingForClient);
        let started = std::time::Instant::now();
        // Encoded without holding the session, which other requests and the client's answers
        // need meanwhile. The params are dropped there too: a large request's content need not
        // wait for the answer in memory.
        let size_hint = params.size_hint();
        let json = cpu_work::run(size_hint, move || {
            encode_sampling_request(id, &params, size_hint)
        })
        .await;
        let _in_flight = InFlight::start(self);
        submitted.encoded(json);
        let outcome = submitted.outcome().await;
        self.metrics
            .record_sampling(started.elapsed(), OutcomeLabel::of(&outcome));
        if let Ok(result) = &outcome
            && let Some(model) = &result.model
        {
            self.catalog().record_reported(model, unix_now());
        }
        outcome
    }

    fn read_sessions(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_sessions(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a request in flight (encoded, until its outcome or its caller's departure).
struct InFlight<'a> {
    bridge: &'a Bridge,
}

impl<'a> InFlight<'a> {
    fn start(bridge: &'a Bridge) -> Self {
        bridge.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { bridge }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.bridge.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
