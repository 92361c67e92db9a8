//! `McpSessionObject`: one Durable Object per MCP session, named `<namespace>:<session id>`.
//!
//! It runs the core's MCP session state machine. The client's event stream reaches it as a
//! hibernatable WebSocket from the Worker (which holds the client's SSE connection), so an idle
//! session costs nothing: the object sleeps, and its facts (negotiated version, capabilities,
//! next request id) wait in storage until a message wakes it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use futures::FutureExt;
use futures::channel::oneshot;
use sampling2api_core::ApiError;
use sampling2api_core::admission::{self, Admission, Decision};
use sampling2api_core::mcp_session::{ClientFacts, McpSession, ServerInfo};
use sampling2api_core::sampling::CreateMessageResult;
use serde::{Deserialize, Serialize};
use worker::{
    Delay, DurableObject, Env, Method, Request, Response, Result, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair, durable_object,
};

use crate::mcp_endpoint::LIVENESS_PING;
use crate::wire::{CancelRequest, SampleOutcome, SampleRequest, SessionLoad};
use sampling2api_core::status::{InFlightRequest, Stage};

/// How often a waiting request writes to the client's stream to learn it is still there.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(500);

type Waiter = oneshot::Sender<std::result::Result<CreateMessageResult, ApiError>>;
/// Wakes a queued request when a slot passes to it; keyed by the request's ticket.
type SlotQueue = Admission<String, oneshot::Sender<()>>;

const FACTS: &str = "facts";

fn storage_error(err: worker::Error) -> ApiError {
    ApiError::api(format!("session storage failed: {err}"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFacts {
    client: ClientFacts,
    ready: bool,
    next_request_id: u64,
}

#[durable_object]
pub struct McpSessionObject {
    state: State,
    session: RefCell<Option<McpSession<Waiter>>>,
    /// Caller tickets of requests in flight → their JSON-RPC ids, for `/cancel`.
    tickets: RefCell<HashMap<String, u64>>,
    /// The in-flight limit and its queue; made with the first request's limits. Memory only:
    /// requests never outlive the object, so neither do their slots.
    admission: RefCell<Option<SlotQueue>>,
    /// Requests held now, by ticket, as the status page lists them.
    waiting: RefCell<HashMap<String, InFlightRequest>>,
}

impl DurableObject for McpSessionObject {
    fn new(state: State, _env: Env) -> Self {
        McpSessionObject {
            state,
            session: RefCell::new(None),
            tickets: RefCell::new(HashMap::new()),
            admission: RefCell::new(None),
            waiting: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/init") => {
                let body = req.bytes().await?;
                let mut session = McpSession::new(ServerInfo::sampling2api());
                let handled = session.handle_incoming(&body);
                let reply = handled.reply_body().unwrap_or_default();
                let Some(client) = session.client().cloned().filter(|_| handled.initialized) else {
                    return Ok(Response::ok(reply)?.with_status(400));
                };
                self.persist(&StoredFacts {
                    client,
                    ready: false,
                    next_request_id: 1,
                })
                .await?;
                *self.session.borrow_mut() = Some(session);
                Response::ok(reply)
            }
            (Method::Post, "/message") => {
                let body = req.bytes().await?;
                if !self.load().await? {
                    return Response::error("unknown session", 404);
                }
                let (reply, became_ready) = {
                    let mut slot = self.session.borrow_mut();
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
                    self.save().await?;
                }
                match reply {
                    Some(reply) => Response::ok(reply),
                    None => Ok(Response::empty()?.with_status(202)),
                }
            }
            (Method::Get, "/connect") => {
                if !self.load().await? {
                    return Response::error("unknown session", 404);
                }
                // A reconnecting client's new stream replaces the old one.
                for old in self.state.get_websockets() {
                    let _ = old.close(Some(1000), Some("replaced by a newer stream"));
                }
                let pair = WebSocketPair::new()?;
                self.state.accept_web_socket(&pair.server);
                Response::from_websocket(pair.client)
            }
            (Method::Post, "/sample") => {
                let body = req.bytes().await?;
                let size_hint = body.len();
                let request: SampleRequest = serde_json::from_slice(&body)?;
                drop(body);
                Response::from_json(&self.sample(request, size_hint).await)
            }
            (Method::Post, "/cancel") => {
                let request: CancelRequest = req.json().await?;
                self.cancel(&request.ticket, "sampling2api: the API caller disconnected");
                Response::empty()
            }
            (Method::Get, "/load") => {
                let load = self
                    .admission
                    .borrow()
                    .as_ref()
                    .map(|admission| SessionLoad {
                        in_flight: admission.in_flight() as u64,
                        queued: admission.queued() as u64,
                        requests: Vec::new(),
                    })
                    .unwrap_or_default();
                let load = SessionLoad {
                    requests: self.waiting.borrow().values().cloned().collect(),
                    ..load
                };
                Response::from_json(&load)
            }
            (Method::Delete, "/session") => {
                let existed = self.load().await?;
                self.close("the MCP client ended its session");
                self.state.storage().delete_all().await?;
                if existed {
                    Response::empty()
                } else {
                    Response::error("unknown session", 404)
                }
            }
            _ => Response::error("not found", 404),
        }
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
        self.stream_closed();
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.stream_closed();
        Ok(())
    }
}

impl McpSessionObject {
    /// Makes sure the state machine is in memory, rebuilding it from storage after hibernation
    /// or eviction. False: no such session.
    async fn load(&self) -> Result<bool> {
        if self.session.borrow().is_some() {
            return Ok(true);
        }
        let Some(stored) = self.state.storage().get::<StoredFacts>(FACTS).await? else {
            return Ok(false);
        };
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
        let facts = {
            let slot = self.session.borrow();
            slot.as_ref().and_then(|session| {
                Some(StoredFacts {
                    client: session.client()?.clone(),
                    ready: session.is_ready(),
                    next_request_id: session.next_request_id(),
                })
            })
        };
        match facts {
            Some(facts) => self.persist(&facts).await,
            None => Ok(()),
        }
    }

    /// Admits the request, then sends it to the client and waits for the outcome, timed from
    /// the moment it holds a slot.
    async fn sample(&self, request: SampleRequest, size_hint: usize) -> SampleOutcome {
        let ticket = request.ticket.clone();
        if let Some(status) = &request.status {
            self.waiting
                .borrow_mut()
                .insert(ticket.clone(), status.clone());
        }
        let outcome = self.sample_tracked(request, size_hint).await;
        self.waiting.borrow_mut().remove(&ticket);
        outcome
    }

    async fn sample_tracked(&self, request: SampleRequest, size_hint: usize) -> SampleOutcome {
        let arrived = worker::Date::now().as_millis();
        let slot = match self.admit(&request).await {
            Ok(slot) => slot,
            Err(error) => return SampleOutcome::new(Err(error), None),
        };
        if let Some(status) = self.waiting.borrow_mut().get_mut(&request.ticket) {
            status.stage = Stage::WaitingForClient;
        }
        let started = worker::Date::now().as_millis();
        let request = SampleRequest {
            timeout_ms: request
                .timeout_ms
                .saturating_sub(started.saturating_sub(arrived))
                .max(1),
            ..request
        };
        let outcome = self.sample_in_slot(request, size_hint).await;
        drop(slot);
        let sampling_seconds =
            worker::Date::now().as_millis().saturating_sub(started) as f64 / 1000.0;
        SampleOutcome::new(outcome, Some(sampling_seconds))
    }

    /// The session must exist; then the request waits for a slot under its in-flight limit.
    async fn admit(&self, request: &SampleRequest) -> std::result::Result<Slot<'_>, ApiError> {
        if !self.load().await.map_err(storage_error)? {
            return Err(ApiError::not_found("the MCP session no longer exists"));
        }
        self.take_slot(request).await
    }

    async fn sample_in_slot(
        &self,
        request: SampleRequest,
        size_hint: usize,
    ) -> std::result::Result<CreateMessageResult, ApiError> {
        let (waiter, answer) = oneshot::channel();
        let outgoing = {
            let mut slot = self.session.borrow_mut();
            let session = slot
                .as_mut()
                .ok_or_else(|| ApiError::not_found("the MCP session no longer exists"))?;
            session.begin_sampling(&request.params, size_hint, waiter)?
        };
        self.tickets
            .borrow_mut()
            .insert(request.ticket.clone(), outgoing.id);
        // The id counter must survive eviction, so a late answer never matches a new request.
        self.save().await.map_err(storage_error)?;
        let outcome = self
            .deliver_and_wait(&request, outgoing.id, &outgoing.json, answer)
            .await;
        self.tickets.borrow_mut().remove(&request.ticket);
        outcome
    }

    /// Waits for a slot under the session's in-flight limit, or refuses with 429 when the
    /// queue is full too. The slot is given back when the returned guard drops.
    async fn take_slot(&self, request: &SampleRequest) -> std::result::Result<Slot<'_>, ApiError> {
        let (wake, woken) = oneshot::channel();
        let decision = self
            .admission
            .borrow_mut()
            .get_or_insert_with(|| Admission::new(request.max_in_flight, request.max_queued))
            .request(request.ticket.clone(), wake);
        match decision {
            Decision::Go => return Ok(Slot { object: self }),
            Decision::Refuse(err) => return Err(err),
            Decision::Wait => {}
        }
        let mut woken = woken.fuse();
        let mut deadline = Delay::from(Duration::from_millis(request.timeout_ms)).fuse();
        futures::select! {
            granted = woken => match granted {
                Ok(()) => Ok(Slot { object: self }),
                Err(_) => Err(ApiError::unavailable(
                    "the request was cancelled or the session ended while it waited for the in-flight limit",
                )),
            },
            () = deadline => {
                if !self.withdraw_queued(&request.ticket) {
                    // The slot passed to this request just as its deadline fired: give it on.
                    drop(Slot { object: self });
                }
                Err(admission::queue_timeout(&format!("{} ms", request.timeout_ms)))
            }
        }
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
                return Err(ApiError::unavailable(format!(
                    "the MCP client has no open event stream (GET /mcp) to receive sampling requests; waited {} ms",
                    request.stream_wait_ms
                )));
            }
            Delay::from(Duration::from_millis(50)).await;
            waited += 50;
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

    fn cancel(&self, ticket: &str, reason: &str) {
        // Still queued: dropping its waker ends it without ever reaching the client.
        if self.withdraw_queued(&ticket.to_string()) {
            return;
        }
        let id = self.tickets.borrow_mut().remove(ticket);
        if let Some(id) = id {
            self.cancel_id(id, reason);
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

    /// The client's stream ended: requests it carried cannot be trusted to be answered.
    fn stream_closed(&self) {
        // The closing socket is still listed while its close handler runs; more than one means
        // a newer stream replaced it and carries on.
        if self.state.get_websockets().len() > 1 {
            return;
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
struct Slot<'a> {
    object: &'a McpSessionObject,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.object.release_slot();
    }
}
