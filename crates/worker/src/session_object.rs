//! `McpSessionObject`: one Durable Object per MCP session, named `<namespace>:<session id>`.
//!
//! A driver of the core's `SessionLifecycle`, which owns everything about the session's
//! requests (admission, queue, deadlines, the stream wait, cancellation): this file only feeds
//! it inputs and carries out what it asks.
//! - inputs: the client's messages (`/message`), its event stream opening (`/connect`) and
//!   closing (the socket's close), API requests (`/sample`), their callers leaving (the
//!   `/sample` call ending early: its request's signal aborts), the session's end (`DELETE`),
//!   and the time, from one `Delay` loop armed at `poll_timeout` while requests are held, and
//!   from the DO alarm for idle expiry (set while nothing is held and no stream is open, so a
//!   sleeping object still expires).
//! - outputs: transmits go to the client's stream, a hibernatable WebSocket to the Worker
//!   (which holds the client's SSE connection); events encode a request (its params arrive as
//!   JSON text, copied unparsed), answer a `/sample`, or drop the session.
//!
//! `/sample` answers its admission as its status before any byte: a refusal is the response
//! itself, anything else is a 200 whose body, the outcome, follows when the request ends. So
//! the Worker learns of a 429 before it sends a streaming caller any byte. A call that ends
//! before its outcome (the Worker aborts it when its caller leaves, or when it lets go of the
//! request) aborts the `/sample` request's signal, and the request is cancelled at the client.
//! The body's dropping is no such sign: workerd leaves the stream of a cancelled call alone.
//!
//! An idle session costs nothing: the object sleeps, and its facts (negotiated version,
//! capabilities, readiness, next request id) wait in storage; a wake resumes the lifecycle
//! from them, with the stream that survived hibernation. The object tells its namespace's
//! registry when the session becomes ready and when its stream opens or closes (routing prefers
//! sessions with a stream), and removes it there when the session expires.
//!
//! The object frames the stream's SSE events itself (core `streamable_http::push_event`, with
//! the lifecycle's event ids); the Worker writes them out as they come. Event ids must never
//! repeat within a session, also across eviction: the facts hold an id above every one written
//! out, stored ahead in steps of [`EVENT_ID_RESERVE`], and a resumed lifecycle counts on from it.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt, StreamExt};
use sampling2api_core::ApiError;
use sampling2api_core::lifecycle::refusals::{self, LargeEvents};
use sampling2api_core::lifecycle::{
    Event, LifecycleLimits, Millis, RequestKey, ResumedFacts, SessionLifecycle, StreamGeneration,
    Transmit,
};
use sampling2api_core::mcp::session::{
    ClientFacts, McpSession, ServerInfo, encode_sampling_request_json,
};
use sampling2api_core::mcp::streamable_http::EventId;
use sampling2api_core::mcp::streamable_http::{self, LAST_EVENT_ID_HEADER};
use sampling2api_core::ops::status::{InFlightRequest, Stage};
use serde::{Deserialize, Serialize};
use worker::{
    Delay, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::config::Settings;
use crate::random::random_u128;
use crate::registry_client::{RegistryClient, SessionStatus};
use crate::session_protocol::{
    LIVENESS_PING, SampleResponse, SessionLoad, SessionRoute, unframe_sample,
};
use crate::tenancy::Namespace;

/// How often the client's stream is written to while requests wait for its answer, so a client
/// that died is noticed (a write fails, the stream closes, they fail) well within a second: the
/// first write after its death may still succeed, the next one fails.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

const FACTS: &str = "facts";

const MAX_TIMER_MS: u64 = 24 * 60 * 60 * 1000;

/// How far ahead of the ids handed out the stored event-id floor is set: one storage write per
/// this many events (and one after each resume), rather than one per event.
const EVENT_ID_RESERVE: u64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFacts {
    client: ClientFacts,
    ready: bool,
    next_request_id: u64,
    /// Above every event id written to the client's stream: a resumed lifecycle counts on
    /// from here, so that no id repeats (0 in facts stored before ids existed).
    #[serde(default)]
    next_event_id: u64,
    /// The events the client's stream closed under (core `refusals::LargeEvents`): kept
    /// across hibernation and eviction, as natively for the session's life.
    #[serde(default)]
    large_events: LargeEvents,
    /// The client has answered a sampling request (core `McpSession::answered`): kept, so that
    /// a session that woke from hibernation does not point at a consent prompt long answered.
    #[serde(default)]
    answered: bool,
    /// Who this object is, to report to its registry (from `SessionRoute::Init`).
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    id: String,
}

#[durable_object]
pub struct McpSessionObject {
    inner: Rc<Inner>,
}

struct Inner {
    state: State,
    env: Env,
    settings: Settings,
    /// `None`: not in memory (never started, ended, or not resumed since a wake).
    lifecycle: RefCell<Option<SessionLifecycle>>,
    /// Namespace and session id, from storage.
    identity: RefCell<Option<(String, String)>>,
    /// The client's current event stream.
    stream: RefCell<Option<ClientStream>>,
    /// The API requests the lifecycle holds, by its key.
    requests: RefCell<HashMap<RequestKey, Held>>,
    /// The next request id in storage: ids must survive eviction, so that a late answer never
    /// matches a newer request.
    saved_next_id: Cell<u64>,
    /// The event-id floor in storage (see [`StoredFacts::next_event_id`]).
    saved_event_floor: Cell<u64>,
    /// The [`LargeEvents`] last stored.
    saved_large_events: Cell<LargeEvents>,
    /// Whether the client had answered, as last stored.
    saved_answered: Cell<bool>,
    /// The idle alarm this instance set (`None`: none set, or not known since a wake).
    alarm_at: Cell<Option<Millis>>,
    timer: RefCell<Timer>,
}

/// The socket the lifecycle knows as its open stream. The token, kept in the socket's
/// attachment (which survives hibernation), tells its close from that of a replaced one.
struct ClientStream {
    socket: WebSocket,
    token: u32,
    generation: StreamGeneration,
}

/// One `/sample` while the lifecycle holds it.
struct Held {
    /// The params' JSON text, until the lifecycle asks for the request to be encoded.
    params: Option<String>,
    /// Where the outcome goes (the `/sample` response's task).
    waiter: Option<oneshot::Sender<SampleResponse>>,
    /// What the status page shows of it.
    status: Option<InFlightRequest>,
    /// When it got a slot: its sampling time runs from there, as natively.
    slot_at: Option<Millis>,
}

/// How a socket becomes the session's stream.
enum Opening {
    /// A client's new `GET`, with its `Last-Event-ID` (see `SessionLifecycle::stream_opened`).
    New { resume_after: Option<EventId> },
    /// A socket that survived the object's hibernation.
    Reattached,
}

/// The timer loop: running while `wake` is set; `armed` is when it will next call
/// `handle_timeout`. Waking it makes it look at `poll_timeout` again.
#[derive(Default)]
struct Timer {
    armed: Option<Millis>,
    wake: Option<mpsc::UnboundedSender<()>>,
}

fn now() -> Millis {
    Millis(worker::Date::now().as_millis())
}

/// The refusal `/sample` answers with: the error's status, the error as the outcome.
fn refusal(error: ApiError) -> Result<Response> {
    let status = error.status();
    Ok(Response::from_json(&SampleResponse::new(Err(error), None))?.with_status(status))
}

impl DurableObject for McpSessionObject {
    fn new(state: State, env: Env) -> Self {
        let settings = Settings::from_env(&env);
        McpSessionObject {
            inner: Rc::new(Inner {
                state,
                env,
                settings,
                lifecycle: RefCell::new(None),
                identity: RefCell::new(None),
                stream: RefCell::new(None),
                requests: RefCell::new(HashMap::new()),
                saved_next_id: Cell::new(0),
                saved_event_floor: Cell::new(0),
                saved_large_events: Cell::new(LargeEvents::default()),
                saved_answered: Cell::new(false),
                alarm_at: Cell::new(None),
                timer: RefCell::new(Timer::default()),
            }),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let inner = &self.inner;
        let Some(route) = SessionRoute::parse(&req.method(), &req.path()) else {
            return Response::error("not found", 404);
        };
        match route {
            SessionRoute::Init { namespace, id } => {
                let body = req.bytes().await?;
                let mut session = McpSession::new(ServerInfo::sampling2api());
                let handled = session.handle_incoming(&body);
                let reply = handled.reply_body().unwrap_or_default();
                let Some(client) = session.client().cloned().filter(|_| handled.initialized) else {
                    return Ok(Response::ok(reply)?.with_status(400));
                };
                let lifecycle = SessionLifecycle::new(session, inner.limits(), now());
                let facts = StoredFacts {
                    client,
                    ready: false,
                    next_request_id: lifecycle.next_request_id(),
                    next_event_id: event_floor(&lifecycle),
                    large_events: lifecycle.large_events(),
                    answered: false,
                    namespace: namespace.clone(),
                    id: id.clone(),
                };
                inner.state.storage().put(FACTS, &facts).await?;
                inner.saved_next_id.set(facts.next_request_id);
                inner.saved_event_floor.set(facts.next_event_id);
                *inner.identity.borrow_mut() = Some((namespace, id));
                *inner.lifecycle.borrow_mut() = Some(lifecycle);
                // No stream yet: the idle alarm drops the session unless one opens in time.
                inner.drive().await;
                Response::ok(reply)
            }
            SessionRoute::Message => {
                let body = req.bytes().await?;
                if !inner.load().await? {
                    return Response::error("unknown session", 404);
                }
                let was_ready = inner.is_ready();
                let reply = inner
                    .with(|lifecycle, now| lifecycle.client_message(now, &body))
                    .flatten();
                drop(body);
                inner.drive().await;
                if !was_ready && inner.is_ready() {
                    inner.save().await?;
                    inner.report().await;
                }
                match reply {
                    Some(reply) => Response::ok(reply),
                    None => Ok(Response::empty()?.with_status(202)),
                }
            }
            SessionRoute::Connect => {
                if !inner.load().await? {
                    return Response::error("unknown session", 404);
                }
                // The client's `Last-Event-ID`, as the Worker parsed it.
                let resume_after = req
                    .headers()
                    .get(LAST_EVENT_ID_HEADER)?
                    .as_deref()
                    .and_then(EventId::parse);
                // A reconnecting client's new stream replaces the old one.
                for old in inner.state.get_websockets() {
                    let _ = old.close(Some(1000), Some("replaced by a newer stream"));
                }
                let pair = WebSocketPair::new()?;
                inner.state.accept_web_socket(&pair.server);
                inner.adopt(pair.server, Opening::New { resume_after })?;
                inner.drive().await;
                inner.report().await;
                Response::from_websocket(pair.client)
            }
            SessionRoute::Sample => {
                // Aborts when the Worker's call ends before the outcome (its caller left).
                let call_ended = crate::http::aborted(&req.inner().signal());
                let (request, params) = match unframe_sample(req.bytes().await?) {
                    Ok(framed) => framed,
                    Err(error) => return refusal(error),
                };
                if !inner.load().await? {
                    return refusal(ApiError::not_found("the MCP session no longer exists"));
                }
                let timeout = Duration::from_millis(request.timeout_ms);
                let submitted = inner
                    .with(|lifecycle, now| lifecycle.submit(now, now.after(timeout)))
                    .unwrap_or_else(|| {
                        Err(ApiError::not_found("the MCP session no longer exists"))
                    });
                let key = match submitted {
                    Ok(key) => key,
                    Err(error) => return refusal(error),
                };
                let (waiter, outcome) = oneshot::channel();
                inner.requests.borrow_mut().insert(
                    key,
                    Held {
                        params: Some(params),
                        waiter: Some(waiter),
                        status: request.status,
                        slot_at: None,
                    },
                );
                let (mut body_out, body) = mpsc::channel::<Result<Vec<u8>>>(1);
                let inner = inner.clone();
                worker::wasm_bindgen_futures::spawn_local(async move {
                    // Admitted: the 200 need not wait for the request to be stored and sent.
                    inner.drive().await;
                    let outcome = futures::select! {
                        outcome = outcome.fuse() => outcome.unwrap_or_else(|_| {
                            SampleResponse::new(
                                Err(ApiError::unavailable("the MCP session ended before the request did")),
                                None,
                            )
                        }),
                        _ = call_ended.fuse() => {
                            inner.with(|lifecycle, now| lifecycle.caller_gone(now, key));
                            inner.drive().await;
                            return;
                        }
                    };
                    let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
                    let _ = body_out.send(Ok(bytes)).await;
                });
                Response::from_stream(body)
            }
            SessionRoute::Load => {
                let mut load = inner
                    .with(|lifecycle, _| SessionLoad {
                        in_flight: lifecycle.in_flight() as u64,
                        queued: lifecycle.queued() as u64,
                        pending: lifecycle.pending_count() as u64,
                        requests: Vec::new(),
                        consent_may_be_pending: lifecycle.consent_may_be_pending(),
                    })
                    .unwrap_or_default();
                load.requests = inner
                    .requests
                    .borrow()
                    .values()
                    .filter_map(|held| held.status.clone())
                    .collect();
                Response::from_json(&load)
            }
            SessionRoute::End => {
                let existed = inner.load().await?;
                inner.end(refusals::ENDED_BY_CLIENT).await?;
                if existed {
                    Response::empty()
                } else {
                    Response::error("unknown session", 404)
                }
            }
        }
    }

    /// The idle alarm. A session in memory asks its lifecycle (activity since the alarm was set
    /// moved the expiry); one resumed for the alarm had none since it slept (any would have
    /// woken it and set a later alarm), so it expires unless its stream survived.
    async fn alarm(&self) -> Result<Response> {
        let inner = &self.inner;
        let resident = inner.lifecycle.borrow().is_some();
        inner.alarm_at.set(None);
        if !inner.load().await? {
            return Response::empty();
        }
        if resident {
            inner.with(|lifecycle, now| lifecycle.handle_timeout(now));
            inner.drive().await;
        } else if !inner.has_stream() {
            inner.expire().await?;
        }
        Response::empty()
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> Result<()> {
        // The stream only carries messages to the client; answers arrive as POSTs.
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.inner.stream_closed(&ws).await
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.inner.stream_closed(&ws).await
    }
}

impl Inner {
    fn limits(&self) -> LifecycleLimits {
        LifecycleLimits {
            max_in_flight: self.settings.max_in_flight_per_session,
            max_queued: self.settings.max_queued_per_session,
            stream_wait: self.settings.stream_wait,
            session_idle: self.settings.session_idle,
            liveness_interval: Some(LIVENESS_INTERVAL),
            mcp_path: "/mcp".into(),
            max_resend_bytes: self.settings.max_resend_bytes,
        }
    }

    /// Feeds the lifecycle one input (`None`: no session in memory). Never held across an
    /// await.
    fn with<T>(&self, input: impl FnOnce(&mut SessionLifecycle, Millis) -> T) -> Option<T> {
        self.lifecycle
            .borrow_mut()
            .as_mut()
            .map(|lifecycle| input(lifecycle, now()))
    }

    fn is_ready(&self) -> bool {
        self.lifecycle
            .borrow()
            .as_ref()
            .is_some_and(|lifecycle| lifecycle.session().is_ready())
    }

    fn has_stream(&self) -> bool {
        self.stream.borrow().is_some()
    }

    /// Makes sure the lifecycle is in memory, resuming it from storage after hibernation or
    /// eviction (with the stream that survived hibernation, if any). False: no such session.
    async fn load(&self) -> Result<bool> {
        if self.lifecycle.borrow().is_some() {
            return Ok(true);
        }
        let Some(stored) = self.state.storage().get::<StoredFacts>(FACTS).await? else {
            return Ok(false);
        };
        if self.lifecycle.borrow().is_some() {
            return Ok(true);
        }
        if !stored.id.is_empty() {
            *self.identity.borrow_mut() = Some((stored.namespace, stored.id));
        }
        self.saved_next_id.set(stored.next_request_id);
        self.saved_event_floor.set(stored.next_event_id);
        self.saved_large_events.set(stored.large_events);
        self.saved_answered.set(stored.answered);
        *self.lifecycle.borrow_mut() = Some(SessionLifecycle::resume(
            ServerInfo::sampling2api(),
            ResumedFacts {
                client: stored.client,
                ready: stored.ready,
                next_request_id: stored.next_request_id,
                next_event_id: stored.next_event_id,
                large_events: stored.large_events,
                answered: stored.answered,
            },
            self.limits(),
            now(),
        ));
        if let Some(socket) = self.state.get_websockets().pop() {
            // The stream survived hibernation, not its requests: nothing to send again, and no
            // second priming event.
            self.adopt(socket, Opening::Reattached)?;
        }
        Ok(true)
    }

    /// `socket` becomes the lifecycle's open stream.
    fn adopt(&self, socket: WebSocket, opening: Opening) -> Result<()> {
        let token = match socket.deserialize_attachment::<u32>() {
            Ok(Some(token)) => token,
            _ => {
                let token = random_u128() as u32;
                socket.serialize_attachment(token)?;
                token
            }
        };
        if let Some(generation) = self.with(|lifecycle, now| match opening {
            Opening::New { resume_after } => lifecycle.stream_opened(now, resume_after),
            Opening::Reattached => lifecycle.stream_reattached(now),
        }) {
            *self.stream.borrow_mut() = Some(ClientStream {
                socket,
                token,
                generation,
            });
        }
        Ok(())
    }

    /// A socket closed: if it is the current stream, the lifecycle learns the stream is gone
    /// (requests sent on it fail), and so does the registry.
    async fn stream_closed(self: &Rc<Self>, socket: &WebSocket) -> Result<()> {
        if !self.load().await? {
            return Ok(());
        }
        let token = socket.deserialize_attachment::<u32>().ok().flatten();
        let current = {
            let mut stream = self.stream.borrow_mut();
            match stream.as_ref() {
                Some(current) if Some(current.token) == token => {
                    stream.take().map(|current| current.generation)
                }
                _ => None,
            }
        };
        let Some(generation) = current else {
            // A replaced stream: the newer one carries on.
            return Ok(());
        };
        self.with(|lifecycle, now| lifecycle.stream_closed(now, generation));
        self.drive().await;
        self.report().await;
        Ok(())
    }

    /// Saves the current facts (readiness, the next request id, the event-id floor).
    async fn save(&self) -> Result<()> {
        let identity = self.identity.borrow().clone().unwrap_or_default();
        let facts = self.lifecycle.borrow().as_ref().and_then(|lifecycle| {
            Some(StoredFacts {
                client: lifecycle.client()?.clone(),
                ready: lifecycle.session().is_ready(),
                next_request_id: lifecycle.next_request_id(),
                next_event_id: event_floor(lifecycle),
                large_events: lifecycle.large_events(),
                answered: lifecycle.session().answered(),
                namespace: identity.0,
                id: identity.1,
            })
        });
        if let Some(facts) = facts {
            self.state.storage().put(FACTS, &facts).await?;
            self.saved_next_id.set(facts.next_request_id);
            self.saved_event_floor.set(facts.next_event_id);
            self.saved_large_events.set(facts.large_events);
            self.saved_answered.set(facts.answered);
        }
        Ok(())
    }

    /// Tells the registry whether the session is ready and its stream open, for routing and
    /// `/sessions`. Best effort: a failed report leaves the registry as it was.
    async fn report(&self) {
        let identity = self.identity.borrow().clone();
        let Some((namespace, id)) = identity else {
            return;
        };
        let status = SessionStatus {
            id,
            ready: self.is_ready(),
            stream_open: self.has_stream(),
        };
        if let Ok(registry) = RegistryClient::new(&self.env, &Namespace(namespace)) {
            let _ = registry.report_status(&status).await;
        }
    }

    /// Carries out what the lifecycle asks after an input: encodes requests that got a slot,
    /// answers requests that ended, stores the id counters before a request or an event id
    /// past the stored ones goes out, writes transmits to the stream, and arms the timers.
    async fn drive(self: &Rc<Self>) {
        loop {
            if self.handle_events() {
                if let Err(err) = self.expire().await {
                    worker::console_error!("expiring the session failed: {err}");
                }
                return;
            }
            let unsaved = self.with(|lifecycle, _| {
                must_save(
                    lifecycle,
                    self.saved_next_id.get(),
                    self.saved_event_floor.get(),
                ) || lifecycle.large_events() != self.saved_large_events.get()
                    || lifecycle.session().answered() != self.saved_answered.get()
            });
            if unsaved == Some(true)
                && let Err(err) = self.save().await
            {
                worker::console_error!("saving the session's facts failed: {err}");
            }
            if !self.write_transmits() {
                break;
            }
        }
        self.arm_timers().await;
    }

    /// Handles the lifecycle's events; true when the session expired.
    fn handle_events(&self) -> bool {
        let mut expired = false;
        while let Some(event) = self.with(|lifecycle, _| lifecycle.poll_event()).flatten() {
            match event {
                Event::Encode { key, id } => {
                    let params = self.requests.borrow_mut().get_mut(&key).and_then(|held| {
                        held.slot_at = Some(now());
                        if let Some(status) = &mut held.status {
                            status.stage = Stage::WaitingForClient;
                        }
                        held.params.take()
                    });
                    self.with(|lifecycle, now| match params {
                        Some(params) => {
                            lifecycle.encoded(now, key, encode_sampling_request_json(id, &params))
                        }
                        None => lifecycle.encode_failed(
                            now,
                            key,
                            ApiError::api("the request's params were lost before it was sent"),
                        ),
                    });
                }
                Event::Sent { .. } => {}
                Event::Done { key, outcome, .. } => {
                    if let Err(ApiError {
                        detail: Some(detail),
                        ..
                    }) = &outcome
                    {
                        worker::console_debug!("the MCP client's failure in full: {detail}");
                    }
                    let held = self.requests.borrow_mut().remove(&key);
                    if let Some(held) = held {
                        let seconds = held.slot_at.map(|at| now().since(at) as f64 / 1000.0);
                        if let Some(waiter) = held.waiter {
                            let _ = waiter.send(SampleResponse::new(outcome, seconds));
                        }
                    }
                }
                Event::Expired => expired = true,
            }
        }
        expired
    }

    /// Writes the lifecycle's transmits to the current stream. True when a request could not
    /// be handed on (its socket is closing): the lifecycle then has events to handle.
    fn write_transmits(&self) -> bool {
        let mut undelivered = false;
        while let Some(transmit) = self
            .with(|lifecycle, _| lifecycle.poll_transmit())
            .flatten()
        {
            let request = match &transmit {
                Transmit::Message { request, .. } => *request,
                Transmit::Priming { .. } | Transmit::Ping => None,
            };
            let written = self
                .stream
                .borrow()
                .as_ref()
                .is_some_and(|stream| stream.socket.send_with_str(frame(&transmit)).is_ok());
            if !written && let Some(key) = request {
                self.with(|lifecycle, now| {
                    lifecycle.undeliverable(now, key, refusals::stream_closed())
                });
                undelivered = true;
            }
        }
        undelivered
    }

    /// While requests are held, the timer loop runs to `poll_timeout`; while none are and no
    /// stream is open, the DO alarm is set at the idle expiry instead (a timer would keep the
    /// object awake, an alarm wakes a sleeping one).
    async fn arm_timers(self: &Rc<Self>) {
        let Some(Wakeups { timer, alarm }) = self.with(|lifecycle, _| wakeups(lifecycle)) else {
            return;
        };
        if let Some(at) = timer {
            self.arm_timer(at);
        }
        if alarm == self.alarm_at.get() {
            return;
        }
        self.alarm_at.set(alarm);
        let storage = self.state.storage();
        let armed = match alarm {
            Some(at) => {
                let wait = Duration::from_millis(at.since(now()).max(1));
                storage.set_alarm(wait).await
            }
            None => storage.delete_alarm().await,
        };
        if let Err(err) = armed {
            worker::console_error!("arming the idle alarm failed: {err}");
        }
    }

    /// Makes the timer loop call `handle_timeout` by `at`.
    fn arm_timer(self: &Rc<Self>, at: Millis) {
        let mut timer = self.timer.borrow_mut();
        match &timer.wake {
            Some(wake) => {
                if timer.armed.is_none_or(|armed| at < armed) {
                    let _ = wake.unbounded_send(());
                }
            }
            None => {
                let (wake, woken) = mpsc::unbounded();
                timer.wake = Some(wake);
                timer.armed = Some(at);
                worker::wasm_bindgen_futures::spawn_local(timer_loop(self.clone(), woken));
            }
        }
    }

    /// The instant the timer loop waits for.
    fn next_timer(&self) -> Option<Millis> {
        self.with(|lifecycle, _| wakeups(lifecycle).timer).flatten()
    }

    /// Idle for the whole idle period: dropped, from the registry too, so it neither lists nor
    /// routes any more.
    async fn expire(&self) -> Result<()> {
        let identity = self.identity.borrow().clone();
        if let Some((namespace, id)) = identity
            && let Ok(registry) = RegistryClient::new(&self.env, &Namespace(namespace))
        {
            let _ = registry.remove_session(&id).await;
        }
        worker::console_log!("MCP session idle without a stream; dropped");
        self.end(refusals::EXPIRED_IDLE).await?;
        *self.identity.borrow_mut() = None;
        Ok(())
    }

    /// Ends the session: every request it holds ends saying `why`, its stream closes, and its
    /// facts are deleted.
    async fn end(&self, why: &str) -> Result<()> {
        self.with(|lifecycle, now| lifecycle.close(now, why));
        self.handle_events();
        *self.lifecycle.borrow_mut() = None;
        self.stream.borrow_mut().take();
        for stream in self.state.get_websockets() {
            let _ = stream.close(Some(1000), Some("session ended"));
        }
        self.requests.borrow_mut().clear();
        self.saved_next_id.set(0);
        self.saved_event_floor.set(0);
        self.saved_large_events.set(LargeEvents::default());
        self.saved_answered.set(false);
        let storage = self.state.storage();
        storage.delete_all().await?;
        if self.alarm_at.take().is_some() {
            storage.delete_alarm().await?;
        }
        Ok(())
    }
}

/// What goes on the stream socket for `transmit`: an SSE event as the client gets it (the
/// Worker writes it out unchanged), or the liveness ping the Worker turns into a comment.
fn frame(transmit: &Transmit) -> Cow<'static, str> {
    match transmit {
        Transmit::Message { text, event, .. } => Cow::Owned(streamable_http::event(*event, text)),
        Transmit::Priming { event } => Cow::Owned(streamable_http::event(*event, "")),
        Transmit::Ping => Cow::Borrowed(LIVENESS_PING),
    }
}

/// The event-id floor to store: above every id `lifecycle` handed out, with room for
/// [`EVENT_ID_RESERVE`] more before the next write.
fn event_floor(lifecycle: &SessionLifecycle) -> u64 {
    lifecycle.next_event_id().saturating_add(EVENT_ID_RESERVE)
}

/// Whether the facts must be stored before the lifecycle's transmits go out: a request id or
/// an event id past the stored ones would otherwise be reused after an eviction.
fn must_save(lifecycle: &SessionLifecycle, saved_next_id: u64, saved_event_floor: u64) -> bool {
    lifecycle.next_request_id() > saved_next_id || lifecycle.next_event_id() > saved_event_floor
}

/// When the object must next act on time.
#[derive(Debug, PartialEq, Eq)]
struct Wakeups {
    /// The timer loop's next instant: `poll_timeout` while requests are held.
    timer: Option<Millis>,
    /// The idle alarm: `poll_timeout` (the idle expiry) while no request is held and no stream
    /// is open. An alarm wakes a sleeping object; a pending timer would keep it awake.
    alarm: Option<Millis>,
}

fn wakeups(lifecycle: &SessionLifecycle) -> Wakeups {
    let busy = lifecycle.in_flight() + lifecycle.queued() > 0;
    let timeout = lifecycle.poll_timeout();
    Wakeups {
        timer: timeout.filter(|_| busy),
        alarm: timeout.filter(|_| !busy && !lifecycle.has_stream()),
    }
}

/// Calls `handle_timeout` at `poll_timeout` while requests are held; woken to look again when
/// an input brought the next timeout closer. Ends when nothing is held (no timer keeps a
/// sleeping object awake).
async fn timer_loop(inner: Rc<Inner>, mut woken: mpsc::UnboundedReceiver<()>) {
    while let Some(at) = inner.next_timer() {
        inner.timer.borrow_mut().armed = Some(at);
        // A timer runs at most a day (setTimeout takes 32-bit milliseconds); the loop then
        // looks again.
        let wait = at.since(now()).min(MAX_TIMER_MS);
        if wait > 0 {
            let mut delay = Delay::from(Duration::from_millis(wait)).fuse();
            let rearm = futures::select! {
                () = delay => false,
                _ = woken.next() => true,
            };
            if rearm {
                continue;
            }
        }
        inner.timer.borrow_mut().armed = None;
        inner.with(|lifecycle, now| lifecycle.handle_timeout(now));
        inner.drive().await;
    }
    let mut timer = inner.timer.borrow_mut();
    timer.armed = None;
    timer.wake = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(120);

    fn lifecycle(now: Millis) -> SessionLifecycle {
        let mut session = McpSession::new(ServerInfo::sampling2api());
        let initialize = br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"c","version":"1"}}}"#;
        assert!(session.handle_incoming(initialize).initialized);
        let mut lifecycle = SessionLifecycle::new(session, lifecycle_limits(), now);
        lifecycle.client_message(
            now,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        lifecycle
    }

    fn lifecycle_limits() -> LifecycleLimits {
        LifecycleLimits {
            max_in_flight: 1,
            max_queued: 1,
            stream_wait: Duration::from_millis(300),
            session_idle: IDLE,
            liveness_interval: Some(LIVENESS_INTERVAL),
            mcp_path: "/mcp".into(),
            max_resend_bytes: usize::MAX,
        }
    }

    /// Encodes every request the lifecycle asks for, as the object does.
    fn encode_all(lifecycle: &mut SessionLifecycle, now: Millis) {
        while let Some(event) = lifecycle.poll_event() {
            if let Event::Encode { key, id } = event {
                lifecycle.encoded(now, key, encode_sampling_request_json(id, "{}"));
            }
        }
    }

    #[test]
    fn an_idle_session_without_a_stream_sets_the_alarm_not_a_timer() {
        let start = Millis(1_000_000);
        let lifecycle = lifecycle(start);
        assert_eq!(
            wakeups(&lifecycle),
            Wakeups {
                timer: None,
                alarm: Some(start.after(IDLE))
            }
        );
    }

    #[test]
    fn an_open_stream_needs_no_wakeup_until_a_request_comes() {
        let start = Millis(1_000_000);
        let mut lifecycle = lifecycle(start);
        lifecycle.stream_opened(start, None);
        assert_eq!(
            wakeups(&lifecycle),
            Wakeups {
                timer: None,
                alarm: None
            }
        );
        let key = lifecycle
            .submit(start, start.after(Duration::from_secs(600)))
            .unwrap();
        encode_all(&mut lifecycle, start);
        // Sent: the next liveness ping comes before the deadline.
        assert_eq!(
            wakeups(&lifecycle),
            Wakeups {
                timer: Some(start.after(LIVENESS_INTERVAL)),
                alarm: None
            }
        );
        let later = start.after(Duration::from_secs(1));
        lifecycle.caller_gone(later, key);
        assert_eq!(
            wakeups(&lifecycle).timer,
            None,
            "nothing held: the timer loop ends"
        );
    }

    #[test]
    fn a_request_waiting_for_a_stream_runs_the_timer_and_no_alarm() {
        let start = Millis(1_000_000);
        let mut lifecycle = lifecycle(start);
        let key = lifecycle
            .submit(start, start.after(Duration::from_secs(600)))
            .unwrap();
        // A second request queues behind the first's slot.
        lifecycle
            .submit(start, start.after(Duration::from_secs(600)))
            .unwrap();
        encode_all(&mut lifecycle, start);
        assert_eq!(
            wakeups(&lifecycle),
            Wakeups {
                timer: Some(start.after(Duration::from_millis(300))),
                alarm: None
            }
        );
        // The stream wait passes: the first fails, the second gets the slot and waits in turn.
        let waited = start.after(Duration::from_millis(300));
        lifecycle.handle_timeout(waited);
        let mut done = Vec::new();
        while let Some(event) = lifecycle.poll_event() {
            match event {
                Event::Done { key, outcome, .. } => done.push((key, outcome.unwrap_err().status())),
                Event::Encode { key, id } => {
                    lifecycle.encoded(waited, key, encode_sampling_request_json(id, "{}"))
                }
                _ => {}
            }
        }
        assert_eq!(done, vec![(key, 503)]);
        assert_eq!(
            wakeups(&lifecycle).timer,
            Some(waited.after(Duration::from_millis(300)))
        );
    }

    #[test]
    fn transmits_go_to_the_socket_as_finished_sse_events() {
        let message = Transmit::Message {
            text: std::sync::Arc::new(r#"{"jsonrpc":"2.0","id":3}"#.to_string()),
            request: None,
            cancels: None,
            event: EventId(9),
        };
        assert_eq!(
            frame(&message),
            "id: 9\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3}\n\n"
        );
        assert_eq!(
            frame(&Transmit::Priming { event: EventId(1) }),
            "id: 1\nevent: message\ndata: \n\n"
        );
        assert_eq!(frame(&Transmit::Ping), LIVENESS_PING);
    }

    /// The event ids of what `lifecycle` transmitted (draining it).
    fn written_ids(lifecycle: &mut SessionLifecycle) -> Vec<u64> {
        std::iter::from_fn(|| lifecycle.poll_transmit())
            .filter_map(|transmit| match transmit {
                Transmit::Message { event, .. } | Transmit::Priming { event } => Some(event.0),
                Transmit::Ping => None,
            })
            .collect()
    }

    #[test]
    fn event_ids_never_repeat_across_evictions() {
        let start = Millis(1_000_000);
        let mut lifecycle = lifecycle(start);
        // As the object does: store before writing whenever an id passed the stored floor.
        let mut saved_floor = event_floor(&lifecycle);
        let mut saved_next_id = lifecycle.next_request_id();
        let mut written: Vec<u64> = Vec::new();
        for incarnation in 0..4u64 {
            // Some streams and requests, more events than one reserve holds.
            let rounds = if incarnation == 1 { 700 } else { 3 };
            for round in 0..rounds {
                let at = start.after(Duration::from_millis(round));
                lifecycle.stream_opened(at, None);
                if let Ok(key) = lifecycle.submit(at, at.after(Duration::from_secs(60))) {
                    encode_all(&mut lifecycle, at);
                    lifecycle.caller_gone(at, key);
                    while lifecycle.poll_event().is_some() {}
                }
                if must_save(&lifecycle, saved_next_id, saved_floor) {
                    saved_floor = event_floor(&lifecycle);
                    saved_next_id = lifecycle.next_request_id();
                }
                let ids = written_ids(&mut lifecycle);
                assert!(
                    ids.iter().all(|id| *id < saved_floor),
                    "{ids:?} {saved_floor}"
                );
                written.extend(ids);
            }
            // Evicted: only the stored facts remain.
            lifecycle = SessionLifecycle::resume(
                ServerInfo::sampling2api(),
                ResumedFacts {
                    client: lifecycle.client().cloned().unwrap(),
                    ready: true,
                    next_request_id: saved_next_id,
                    next_event_id: saved_floor,
                    large_events: LargeEvents::default(),
                    answered: false,
                },
                lifecycle_limits(),
                start,
            );
        }
        assert!(written.len() > 2_000, "{}", written.len());
        assert!(written.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn a_closed_stream_with_nothing_held_sets_the_alarm_from_the_close() {
        let start = Millis(1_000_000);
        let mut lifecycle = lifecycle(start);
        let generation = lifecycle.stream_opened(start, None);
        let closed = start.after(Duration::from_secs(30));
        lifecycle.stream_closed(closed, generation);
        assert_eq!(
            wakeups(&lifecycle),
            Wakeups {
                timer: None,
                alarm: Some(closed.after(IDLE))
            }
        );
        // A client that still talks without a stream moves the expiry.
        let talked = closed.after(Duration::from_secs(60));
        lifecycle.client_message(talked, br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
        assert_eq!(wakeups(&lifecycle).alarm, Some(talked.after(IDLE)));
    }
}
