//! The Worker's typed client of a session's Durable Object: one method per route of the
//! object's protocol (`session_protocol`).

use sampling2api_core::ApiError;
use sampling2api_core::mcp::sampling::CreateMessageParams;
use sampling2api_core::mcp::streamable_http::{EventId, LAST_EVENT_ID_HEADER};
use worker::worker_sys::web_sys;
use worker::{Env, Headers, Request, RequestInit, Response, Stub, WebSocket};

use crate::http::{call, internal, object_url, read_json};
use crate::session_protocol::{
    SampleRequest, SampleResponse, SessionLoad, SessionRoute, frame_sample, object_name,
};
use crate::tenancy::Namespace;

/// Calls one session's object.
pub struct SessionObjectClient {
    stub: Stub,
}

/// The object's answer to `initialize`.
pub struct InitReply {
    /// False: the object refused it (`body` is the JSON-RPC error).
    pub started: bool,
    pub body: String,
}

/// What the object made of a client's message.
pub enum MessageReply {
    /// No such session (never started, ended, or dropped idle).
    UnknownSession,
    /// A notification or response: nothing to reply.
    Accepted,
    /// The JSON-RPC reply and its status.
    Reply { status: u16, body: String },
}

/// `/sample` admitted the request: its outcome is the body still to come. Only the call's
/// signal ends the call (dropping this does not).
pub struct PendingOutcome {
    response: Response,
}

impl PendingOutcome {
    pub async fn outcome(mut self) -> Result<SampleResponse, ApiError> {
        read_json(&mut self.response).await
    }
}

impl SessionObjectClient {
    pub fn new(env: &Env, namespace: &Namespace, id: &str) -> Result<Self, ApiError> {
        Ok(SessionObjectClient {
            stub: crate::http::stub(env, "SESSIONS", &object_name(namespace, id))?,
        })
    }

    async fn call(
        &self,
        route: SessionRoute,
        body: Option<&[u8]>,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Response, ApiError> {
        call(&self.stub, route.method(), &route.path(), body, signal).await
    }

    /// Starts the session with the client's `initialize`.
    pub async fn init(
        &self,
        namespace: &Namespace,
        id: &str,
        initialize: &[u8],
    ) -> Result<InitReply, ApiError> {
        let route = SessionRoute::Init {
            namespace: namespace.0.clone(),
            id: id.to_string(),
        };
        let mut response = self.call(route, Some(initialize), None).await?;
        Ok(InitReply {
            started: response.status_code() == 200,
            body: response.text().await.map_err(internal)?,
        })
    }

    pub async fn message(&self, body: &[u8]) -> Result<MessageReply, ApiError> {
        let mut response = self.call(SessionRoute::Message, Some(body), None).await?;
        Ok(match response.status_code() {
            404 => MessageReply::UnknownSession,
            202 => MessageReply::Accepted,
            status => MessageReply::Reply {
                status,
                body: response.text().await.map_err(internal)?,
            },
        })
    }

    /// The client's new event stream (replacing any older one); `None`: no such session.
    /// Opens the session's stream socket; `resume_after`: the client's `Last-Event-ID`, passed
    /// on to the object. `None`: no such session.
    pub async fn connect(
        &self,
        resume_after: Option<EventId>,
    ) -> Result<Option<WebSocket>, ApiError> {
        let headers = Headers::new();
        headers.set("upgrade", "websocket").map_err(internal)?;
        if let Some(id) = resume_after {
            headers
                .set(LAST_EVENT_ID_HEADER, &id.to_string())
                .map_err(internal)?;
        }
        let mut init = RequestInit::new();
        init.with_method(SessionRoute::Connect.method())
            .with_headers(headers);
        let url = object_url(&SessionRoute::Connect.path());
        let request = Request::new_with_init(&url, &init).map_err(internal)?;
        let response = self
            .stub
            .fetch_with_request(request)
            .await
            .map_err(internal)?;
        if response.status_code() == 404 {
            return Ok(None);
        }
        response
            .websocket()
            .map(Some)
            .ok_or_else(|| ApiError::api("the session object did not open its stream"))
    }

    /// Has the object admit `request`: a refusal (429 over the limits, 404 for a session
    /// gone) is the error, before any byte goes to the API caller. `signal` ends the call,
    /// and with it the request at the object.
    pub async fn sample(
        &self,
        request: &SampleRequest,
        params: &CreateMessageParams,
        signal: &web_sys::AbortSignal,
    ) -> Result<PendingOutcome, ApiError> {
        let body = frame_sample(request, params)?;
        let mut response = self
            .call(SessionRoute::Sample, Some(&body), Some(signal))
            .await?;
        drop(body);
        if response.status_code() != 200 {
            let refused: SampleResponse = read_json(&mut response).await?;
            return Err(refused
                .into_result()
                .err()
                .unwrap_or_else(|| ApiError::api("the session object refused without a reason")));
        }
        Ok(PendingOutcome { response })
    }

    /// `None` when the object could not be asked.
    pub async fn load(&self) -> Option<SessionLoad> {
        let mut response = self.call(SessionRoute::Load, None, None).await.ok()?;
        read_json(&mut response).await.ok()
    }

    /// Ends the session; false: there was none.
    pub async fn end(&self) -> Result<bool, ApiError> {
        let response = self.call(SessionRoute::End, None, None).await?;
        Ok(response.status_code() != 404)
    }
}
