//! `McpSessionObject`: one Durable Object per MCP session, named `<namespace>:<session id>`.
//!
//! It runs the core's MCP session state machine. The client's event stream reaches it as a
//! hibernatable WebSocket from the Worker (which holds the client's SSE connection), so an idle
//! session costs nothing: the object sleeps, and its facts (negotiated version, capabilities,
//! next request id) wait in storage until a message wakes it.
//!
//! `/sample` decides admission before it answers: a refusal is the response itself (its status
//! is the error's), anything else is a 200 whose body, the outcome, follows when the client
//! answers. So the Worker learns of a 429 before it sends a streaming caller any byte, and a
//! caller who leaves cancels the request here: the Worker's call ends, this body is dropped, and
//! the client is sent `notifications/cancelled`, whatever became of the Worker's own context.
//!
//! The object tells its namespace's registry when the session becomes ready and when its stream
//! opens or closes (routing prefers sessions with a stream), and an alarm drops the session when
//! its stream stays closed for `SESSION_IDLE_SECS`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::future::{Fuse, LocalBoxFuture};
use futures::{FutureExt, SinkExt, Stream};
use sampling2api_core::ApiError;
use sampling2api_core::admission::{self, Admission, Decision};
use sampling2api_core::mcp_session::{
    ClientFacts, McpSession, ServerInfo, encode_sampling_request_json,
};
use sampling2api_core::sampling::CreateMessageResult;
use serde::{Deserialize, Serialize};
use worker::{
    Delay, DurableObject, Env, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::config::Settings;
use crate::http::request_json;
use crate::registry_client::{RegistryClient, SessionStatus};
use crate::session_client::{
    CancelRequest, LIVENESS_PING, SampleOutcome, SampleRequest, SessionLoad, SessionRoute,
    unframe_sample,
};
use crate::tenancy::Namespace;
use sampling2api_core::status::{InFlightRequest, Stage};

/// How often a waiting request writes to the client's stream to learn it is still there.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(500);

type Waiter = oneshot::Sender<std::result::Result<CreateMessageResult, ApiError>>;
/// Wakes a queued request when a slot passes to it; keyed by the request's ticket.
type SlotQueue = Admission<String, oneshot::Sender<()>>;
/// Completes when the caller of `/sample` is gone: its call ended (the body was dropped) or the
/// Worker said so (`/cancel`).
type CallerGone = Fuse<LocalBoxFuture<'static, ()>>;

const FACTS: &str = "facts";

fn storage_error(err: worker::Error) -> ApiError {
    ApiError::api(format!("session storage failed: {err}"))
}

fn caller_left() -> ApiError {
    ApiError::unavailable("the API caller disconnected")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFacts {
    client: ClientFacts,
    ready: bool,
    next_request_id: u64,
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
    session: RefCell<Option<McpSession<Waiter>>>,
    /// Namespace and session id, from storage.
    identity: RefCell<Option<(String, String)>>,
    /// The in-flight limit and its queue; made with the first request's limits. Memory only:
    /// requests never outlive the object, so neither do their slots.
    admission: RefCell<Option<SlotQueue>>,
    /// `/cancel` by ticket: ends that request's wait as its caller leaving does.
    cancels: RefCell<HashMap<String, oneshot::Sender<()>>>,
    /// Requests held now, by ticket, as the status page lists them.
    waiting: RefCell<HashMap<String, InFlightRequest>>,
}

impl DurableObject for McpSessionObject {
    fn new(state: State, env: Env) -> Self {
        McpSessionObject {
            inner: Rc::new(Inner {
                state,
                env,
                session: RefCell::new(None),
                identity: RefCell::new(None),
                admission: RefCell::new(None),
                cancels: RefCell::new(HashMap::new()),
                waiting: RefCell::new(HashMap::new()),
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
                inner
                    .persist(&StoredFacts {
                        client,
                        ready: false,
                        next_request_id: 1,
                        namespace: namespace.clone(),
                        id: id.clone(),
                    })
                    .await?;
                *inner.identity.borrow_mut() = Some((namespace, id));
                *inner.session.borrow_mut() = Some(session);
                // No stream yet: the session is dropped unless one opens in time.
                inner.arm_idle_alarm().await?;
                Response::ok(reply)
            }
            SessionRoute::Message => {
                let body = req.bytes().await?;
                if !inner.load().await? {
                    return Response::error("unknown session", 404);
                }
                let (reply, became_ready) = {
                    let mut slot = inner.session.borrow_mut();
                    let Some(session) = slot.as_mut() else {
                        return Response::error("unknown session", 404);
                    };
                    let was_ready = session.is_ready();
                    let handled = session.handle_incoming(&body);
                    let reply = handled.reply_body();
                    for (waiter, outcome) in handled.answers {
                        let _ = waiter.send(outcome.map_err(|failure| failure.to_api_error()));
                    }
                    (reply, !was_ready && session.is_ready())
                };
                if became_ready {
                    inner.save().await?;
                    inner.report().await;
                }
                // A client without a stream that still talks is not idle.
                if inner.state.get_websockets().is_empty() {
                    inner.arm_idle_alarm().await?;
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
                // A reconnecting client's new stream replaces the old one.
                for old in inner.state.get_websockets() {
                    let _ = old.close(Some(1000), Some("replaced by a newer stream"));
                }
                let pair = WebSocketPair::new()?;
                inner.state.accept_web_socket(&pair.server);
                inner.state.storage().delete_alarm().await?;
                inner.report().await;
                Response::from_websocket(pair.client)
            }
            SessionRoute::Sample => {
                let (request, params) = match unframe_sample(req.bytes().await?) {
                    Ok(framed) => framed,
                    Err(error) => {
                        let status = error.status();
                        return Ok(Response::from_json(&SampleOutcome::new(Err(error), None))?
                            .with_status(status));
                    }
                };
                let arrived = now_ms();
                let place = match inner.admit(&request).await {
                    Ok(place) => place,
                    Err(error) => {
                        let status = error.status();
                        return Ok(Response::from_json(&SampleOutcome::new(Err(error), None))?
                            .with_status(status));
                    }
                };
                let (mut outcome_out, outcome) = mpsc::channel::<Result<Vec<u8>>>(1);
                let (watch, body_dropped) = oneshot::channel::<()>();
                let (cancel, cancelled) = oneshot::channel::<()>();
                inner
                    .cancels
                    .borrow_mut()
                    .insert(request.ticket.clone(), cancel);
                let gone = futures::future::select(body_dropped, cancelled)
                    .map(|_| ())
                    .boxed_local()
                    .fuse();
                if let Some(status) = &request.status {
                    inner
                        .waiting
                        .borrow_mut()
                        .insert(request.ticket.clone(), status.clone());
                }
                let inner = inner.clone();
                worker::wasm_bindgen_futures::spawn_local(async move {
                    let ticket = request.ticket.clone();
                    let outcome = inner.sample(place, request, params, arrived, gone).await;
                    inner.cancels.borrow_mut().remove(&ticket);
                    inner.waiting.borrow_mut().remove(&ticket);
                    let bytes = serde_json::to_vec(&outcome).unwrap_or_default();
                    let _ = outcome_out.send(Ok(bytes)).await;
                });
                Response::from_stream(WatchedBody {
                    body: outcome,
                    _watch: watch,
                })
            }
            SessionRoute::Cancel => {
                let request: CancelRequest = request_json(&mut req).await?;
                let cancel = inner.cancels.borrow_mut().remove(&request.ticket);
                if let Some(cancel) = cancel {
                    let _ = cancel.send(());
                }
                Response::empty()
            }
            SessionRoute::Load => {
                let mut load = inner
                    .admission
                    .borrow()
                    .as_ref()
                    .map(|admission| SessionLoad {
                        in_flight: admission.in_flight() as u64,
                        queued: admission.queued() as u64,
                        pending: 0,
                        requests: Vec::new(),
                    })
                    .unwrap_or_default();
                load.requests = inner.waiting.borrow().values().cloned().collect();
                load.pending = inner
                    .session
                    .borrow()
                    .as_ref()
                    .map_or(0, |session| session.pending_count() as u64);
                Response::from_json(&load)
            }
            SessionRoute::End => {
                let existed = inner.load().await?;
                inner.close("the MCP client ended its session");
                inner.state.storage().delete_all().await?;
                if existed {
                    Response::empty()
                } else {
                    Response::error("unknown session", 404)
                }
            }
        }
    }

    /// The stream stayed closed for the idle period: the session is dropped, from the registry
    /// too, so it neither lists nor routes any more.
    async fn alarm(&self) -> Result<Response> {
        let inner = &self.inner;
        if !inner.load().await? || !inner.state.get_websockets().is_empty() {
            return Response::empty();
        }
        let identity = inner.identity.borrow().clone();
        if let Some((namespace, id)) = identity
            && let Ok(registry) = RegistryClient::new(&inner.env, &Namespace(namespace))
        {
            let _ = registry.remove_session(&id).await;
        }
        worker::console_log!("MCP session idle without a stream; dropped");
        inner.close("the MCP session timed out (no stream, no requests)");
        inner.state.storage().delete_all().await?;
        *inner.identity.borrow_mut() = None;
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
        _ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        self.inner.stream_closed().await
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.inner.stream_closed().await
    }
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}

/// `/sample`'s response body; dropped (the caller's call ended) before the outcome is taken,
/// it drops `_watch`, which tells the waiting request that its caller left.
struct WatchedBody {
    body: mpsc::Receiver<Result<Vec<u8>>>,
    _watch: oneshot::Sender<()>,
}

impl Stream for WatchedBody {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// Where an admitted request stands.
enum Place {
    Go(Slot),
    Wait(oneshot::Receiver<()>),
}

impl Inner {
    /// Makes sure the state machine is in memory, rebuilding it from storage after hibernation
    /// or eviction. False: no such session.
    async fn load(&self) -> Result<bool> {
        if self.session.borrow().is_some() {
            return Ok(true);
        }
        let Some(stored) = self.state.storage().get::<StoredFacts>(FACTS).await? else {
            return Ok(false);
        };
        if !stored.id.is_empty() {
            *self.identity.borrow_mut() = Some((stored.namespace, stored.id));
        }
        let mut slot = self.session.borrow_mut();
        if slot.is_none() {
            *slot = Some(McpSession::resume(
                ServerInfo::sampling2api(),
                stored.client,
                stored.ready,
                stored.next_request_id,
            ));
        }
        Ok(true)
    }

    async fn persist(&self, facts: &StoredFacts) -> Result<()> {
        self.state.storage().put(FACTS, facts).await
    }

    /// Saves the current facts (readiness and the next request id).
    async fn save(&self) -> Result<()> {
        let identity = self.identity.borrow().clone().unwrap_or_default();
        let facts = {
            let slot = self.session.borrow();
            slot.as_ref().and_then(|session| {
                Some(StoredFacts {
                    client: session.client()?.clone(),
                    ready: session.is_ready(),
                    next_request_id: session.next_request_id(),
                    namespace: identity.0,
                    id: identity.1,
                })
            })
        };
        match facts {
            Some(facts) => self.persist(&facts).await,
            None => Ok(()),
        }
    }

    /// Tells the registry whether the session is ready and its stream open, for routing and
    /// `/sessions`. Best effort: a failed report leaves the registry as it was.
    async fn report(&self) {
        self.report_stream(!self.state.get_websockets().is_empty())
            .await;
    }

    /// `report` with the stream's state given (a closing socket is still listed while its
    /// close is handled).
    async fn report_stream(&self, stream_open: bool) {
        let identity = self.identity.borrow().clone();
        let Some((namespace, id)) = identity else {
            return;
        };
        let status = SessionStatus {
            id,
            ready: self
                .session
                .borrow()
                .as_ref()
                .is_some_and(McpSession::is_ready),
            stream_open,
        };
        if let Ok(registry) = RegistryClient::new(&self.env, &Namespace(namespace)) {
            let _ = registry.report_status(&status).await;
        }
    }

    async fn arm_idle_alarm(&self) -> Result<()> {
        let idle = Settings::from_env(&self.env).session_idle;
        self.state.storage().set_alarm(idle).await
    }

    /// The session must exist; then the request gets a slot now, a place in the queue, or 429.
    async fn admit(
        self: &Rc<Self>,
        request: &SampleRequest,
    ) -> std::result::Result<Place, ApiError> {
        if !self.load().await.map_err(storage_error)? {
            return Err(ApiError::not_found("the MCP session no longer exists"));
        }
        let (wake, woken) = oneshot::channel();
        let decision = self
            .admission
            .borrow_mut()
            .get_or_insert_with(|| Admission::new(request.max_in_flight, request.max_queued))
            .request(request.ticket.clone(), wake);
        match decision {
            Decision::Go => Ok(Place::Go(Slot {
                object: self.clone(),
            })),
            Decision::Refuse(err) => Err(err),
            Decision::Wait => Ok(Place::Wait(woken)),
        }
    }

    /// Waits for a slot if queued, then sends the request to the client and waits for the
    /// outcome, timed from the moment it holds a slot.
    async fn sample(
        self: &Rc<Self>,
        place: Place,
        request: SampleRequest,
        params: String,
        arrived: u64,
        mut gone: CallerGone,
    ) -> SampleOutcome {
        let slot = match place {
            Place::Go(slot) => slot,
            Place::Wait(woken) => match self.wait_for_slot(&request, woken, &mut gone).await {
                Ok(slot) => slot,
                Err(error) => return SampleOutcome::new(Err(error), None),
            },
        };
        if let Some(status) = self.waiting.borrow_mut().get_mut(&request.ticket) {
            status.stage = Stage::WaitingForClient;
        }
        let started = now_ms();
        let request = SampleRequest {
            timeout_ms: request
                .timeout_ms
                .saturating_sub(started.saturating_sub(arrived))
                .max(1),
            ..request
        };
        let outcome = self.sample_in_slot(request, params, &mut gone).await;
        drop(slot);
        let sampling_seconds = now_ms().saturating_sub(started) as f64 / 1000.0;
        SampleOutcome::new(outcome, Some(sampling_seconds))
    }

    /// A queued request waits for its slot, its deadline, or its caller leaving.
    async fn wait_for_slot(
        self: &Rc<Self>,
        request: &SampleRequest,
        woken: oneshot::Receiver<()>,
        mut gone: &mut CallerGone,
    ) -> std::result::Result<Slot, ApiError> {
        let mut woken = woken.fuse();
        let mut deadline = Delay::from(Duration::from_millis(request.timeout_ms)).fuse();
        let failure = futures::select! {
            granted = woken => return match granted {
                Ok(()) => Ok(Slot { object: self.clone() }),
                Err(_) => Err(ApiError::unavailable(
                    "the session ended while the request waited for the in-flight limit",
                )),
            },
            () = deadline => admission::queue_timeout(request.timeout_ms),
            _ = gone => caller_left(),
        };
        if !self.withdraw_queued(&request.ticket) {
            // The slot passed to this request just as it gave up: give it on.
            drop(Slot {
                object: self.clone(),
            });
        }
        Err(failure)
    }

    async fn sample_in_slot(
        &self,
        request: SampleRequest,
        params: String,
        gone: &mut CallerGone,
    ) -> std::result::Result<CreateMessageResult, ApiError> {
        let (waiter, answer) = oneshot::channel();
        let (id, json) = {
            let mut slot = self.session.borrow_mut();
            let session = slot
                .as_mut()
                .ok_or_else(|| ApiError::not_found("the MCP session no longer exists"))?;
            let id = session.reserve_sampling_id()?;
            let json = encode_sampling_request_json(id, &params);
            session.expect_answer(id, waiter)?;
            (id, json)
        };
        drop(params);
        // The id counter must survive eviction, so a late answer never matches a new request.
        self.save().await.map_err(storage_error)?;
        self.deliver_and_wait(&request, id, &json, answer, gone)
            .await
    }

    /// Takes the request out of the queue, if it waits there; its waker is dropped.
    fn withdraw_queued(&self, ticket: &String) -> bool {
        self.admission
            .borrow_mut()
            .as_mut()
            .and_then(|admission| admission.withdraw(ticket))
            .is_some()
    }

    fn release_slot(&self) {
        if let Some(admission) = self.admission.borrow_mut().as_mut() {
            admission.release(|wake| wake.send(()).is_ok());
        }
    }

    async fn deliver_and_wait(
        &self,
        request: &SampleRequest,
        id: u64,
        json: &str,
        answer: oneshot::Receiver<std::result::Result<CreateMessageResult, ApiError>>,
        mut gone: &mut CallerGone,
    ) -> std::result::Result<CreateMessageResult, ApiError> {
        let mut waited = 0u64;
        loop {
            if let Some(stream) = self.state.get_websockets().into_iter().next()
                && stream.send_with_str(json).is_ok()
            {
                break;
            }
            if waited >= request.stream_wait_ms {
                self.forget(id);
                return Err(admission::no_event_stream("/mcp", request.stream_wait_ms));
            }
            let mut pause = Delay::from(Duration::from_millis(50)).fuse();
            futures::select! {
                () = pause => waited += 50,
                _ = gone => {
                    self.forget(id);
                    return Err(caller_left());
                }
            }
        }
        let mut answer = answer.fuse();
        let mut deadline = Delay::from(Duration::from_millis(request.timeout_ms)).fuse();
        loop {
            let mut liveness = Delay::from(LIVENESS_INTERVAL).fuse();
            futures::select! {
                outcome = answer => return match outcome {
                    Ok(outcome) => outcome,
                    Err(_) => Err(ApiError::unavailable("the request was cancelled or the session ended before the client answered")),
                },
                () = deadline => {
                    self.cancel_id(id, "sampling2api: the API request's deadline passed");
                    return Err(ApiError::deadline_passed(request.timeout_ms));
                }
                _ = gone => {
                    worker::console_log!("caller went away; cancelled at the client request={id}");
                    self.cancel_id(id, "sampling2api: the API caller disconnected");
                    return Err(caller_left());
                }
                () = liveness => {
                    // While a request waits, the client's stream is written to, so a client that
                    // died is noticed (its write fails, the stream closes) within about a second.
                    for stream in self.state.get_websockets() {
                        let _ = stream.send_with_str(LIVENESS_PING);
                    }
                }
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Some(session) = self.session.borrow_mut().as_mut() {
            session.cancel(id, "undelivered");
        }
    }

    fn cancel_id(&self, id: u64, reason: &str) {
        let notice = self
            .session
            .borrow_mut()
            .as_mut()
            .and_then(|session| session.cancel(id, reason));
        if let Some((_waiter, notice)) = notice
            && let Some(stream) = self.state.get_websockets().into_iter().next()
        {
            let _ = stream.send_with_str(notice);
        }
    }

    /// The client's stream ended: requests it carried cannot be trusted to be answered; the
    /// registry learns the stream is closed, and the idle alarm starts.
    async fn stream_closed(&self) -> Result<()> {
        // The closing socket is still listed while its close handler runs; more than one means
        // a newer stream replaced it and carries on.
        if self.state.get_websockets().len() > 1 {
            return Ok(());
        }
        let waiters = self
            .session
            .borrow_mut()
            .as_mut()
            .map(McpSession::take_pending)
            .unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.send(Err(ApiError::unavailable(
                "the MCP client's event stream closed before it answered",
            )));
        }
        if !self.load().await? {
            return Ok(());
        }
        self.report_stream(false).await;
        self.arm_idle_alarm().await
    }

    fn close(&self, why: &str) {
        // Queued requests end when their wakers drop.
        let queued = self
            .admission
            .borrow_mut()
            .as_mut()
            .map(Admission::drain_queue)
            .unwrap_or_default();
        drop(queued);
        let waiters = self
            .session
            .borrow_mut()
            .take()
            .map(|mut session| session.close())
            .unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.send(Err(ApiError::unavailable(why.to_string())));
        }
        for stream in self.state.get_websockets() {
            let _ = stream.close(Some(1000), Some("session ended"));
        }
    }
}

/// A request's place under the in-flight limit; dropping it passes the place on.
struct Slot {
    object: Rc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.object.release_slot();
    }
}
