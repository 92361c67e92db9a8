//! A sampling request on the Worker, driving the core's `flow`: accept (route to a session
//! through the registry's list, `flow::prepare`), admit at the session object, then answer
//! (`flow::answer`) as JSON or as a stream kept alive while the client works.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt};
use sampling2api_core::api::anthropic::{ImageSource, MessagesRequest, MessagesResponse};
use sampling2api_core::api::models;
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::convert::image_url::{refused, url_image_sources};
use sampling2api_core::flow::answer::{answer, json_body};
use sampling2api_core::flow::prepare::{Answering, Conversion, prepare};
use sampling2api_core::lifecycle::session_choice::{Candidate, SESSION_HEADER, choose_session};
use sampling2api_core::mcp::sampling::CreateMessageParams;
use sampling2api_core::ops::metrics::{OutcomeLabel, SamplingRecord};
use sampling2api_core::ops::status::{self, InFlightRequest, Stage};
use sampling2api_core::{ApiError, ids};
use worker::worker_sys::web_sys;
use worker::{Delay, Env, Request, Response};

use super::{catalog, sessions, unavailable_reason};
use crate::config::Settings;
use crate::http;
use crate::http::internal;
use crate::journal::{Journal, Usage};
use crate::random::random_u128;
use crate::registry_client::{RegistryClient, ReportedModel};
use crate::session_client::{PendingOutcome, SessionObjectClient};
use crate::session_protocol::{SampleRequest, SampleResponse};
use crate::tenancy::Namespace;

thread_local! {
    /// Models this isolate already reported to its namespaces' registries.
    static REPORTED: RefCell<HashSet<(String, String)>> = RefCell::new(HashSet::new());
}

/// Reports remembered per isolate; beyond, the memory starts over (it only saves repeated
/// posts), so clients answering with ever new names cannot grow it.
const MAX_REMEMBERED_REPORTS: usize = 1024;

pub(crate) struct Accepted {
    session_id: String,
    params: CreateMessageParams,
    /// What the answer needs (the core's `flow::prepare`).
    answering: Answering,
    /// What the status page shows while the request is in flight.
    status: Option<InFlightRequest>,
}

async fn accept(
    headers: &worker::Headers,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    mut request: MessagesRequest,
) -> Result<Accepted, ApiError> {
    // The native binary downloads `url` images after vetting every address the name resolves
    // to; a Worker cannot resolve names first, so it refuses them rather than fetch blind.
    if let Some(ImageSource::Url { url }) = url_image_sources(&mut request).into_iter().next() {
        return Err(refused(
            url,
            "the worker does not download image URLs; send the image as base64",
        ));
    }
    let wanted = headers.get(SESSION_HEADER).ok().flatten();
    let listed = sessions(env, namespace).await?;
    let handles: Vec<String> = listed
        .iter()
        .map(|entry| ids::session_handle(&entry.id))
        .collect();
    let entry = choose_session(
        wanted.as_deref(),
        listed
            .iter()
            .zip(&handles)
            .map(|(entry, handle)| Candidate {
                id: handle.as_str(),
                secret: entry.id.as_str(),
                unavailable: unavailable_reason(entry),
                stream_open: entry.stream_open,
                item: entry,
            }),
    )?;
    let support = entry.sampling.ok_or_else(|| {
        ApiError::unavailable("the MCP client did not declare the `sampling` capability")
            .not_retryable()
    })?;
    let hints = catalog(settings, Vec::new()).hints_for(&request.model);
    let conversion = Conversion {
        tool_mode: settings.tool_mode,
        max_emulated_tool_calls: settings.max_emulated_tool_calls,
    };
    let prepared = prepare(
        request,
        support,
        hints,
        conversion,
        ids::message_id(random_u128()),
    )?;
    Ok(Accepted {
        session_id: entry.id.clone(),
        params: prepared.params,
        answering: prepared.answering,
        status: None,
    })
}

/// A sampling round trip's response and what it adds to the metrics.
struct Answered {
    response: Result<MessagesResponse, ApiError>,
    usage: Usage,
}

async fn complete(
    env: &Env,
    namespace: &Namespace,
    accepted: Accepted,
    admitted: Admitted,
) -> Answered {
    let outcome = match admitted.outcome().await {
        Ok(outcome) => outcome,
        Err(error) => {
            return Answered {
                usage: Usage {
                    error_status: Some(error.status()),
                    ..Usage::default()
                },
                response: Err(error),
            };
        }
    };
    let sampling = outcome.sampling_seconds.map(|seconds| SamplingRecord {
        outcome: OutcomeLabel::of_error(outcome.error()),
        seconds,
    });
    let response = respond(env, namespace, accepted, outcome).await;
    let usage = Usage {
        sampling,
        input_tokens: response.as_ref().map_or(0, |r| r.usage.input_tokens),
        output_tokens: response.as_ref().map_or(0, |r| r.usage.output_tokens),
        error_status: response.as_ref().err().map(ApiError::status),
    };
    Answered { response, usage }
}

/// A request the session object admitted (it holds a slot or waits in its queue); its
/// response's body is the outcome. Dropped before the outcome is read (its caller left), it
/// aborts the call, and the session object cancels the request at the client.
struct Admitted {
    pending: Option<PendingOutcome>,
    abort: web_sys::AbortController,
    done: bool,
}

impl Admitted {
    async fn outcome(mut self) -> Result<SampleResponse, ApiError> {
        let pending = self
            .pending
            .take()
            .ok_or_else(|| ApiError::api("the outcome was already taken"))?;
        let outcome = pending.outcome().await;
        self.done = true;
        outcome
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if !self.done {
            self.abort.abort();
        }
    }
}

/// Asks the session object to admit the request and start it; a refusal (429 over the
/// in-flight and queue limits, 404 for a session gone) comes back before any byte is sent
/// to the caller, streamed or not.
async fn admit(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    accepted: &Accepted,
    caller: &web_sys::AbortSignal,
) -> Result<Admitted, ApiError> {
    let request = SampleRequest {
        timeout_ms: settings.request_timeout.as_millis() as u64,
        status: accepted.status.clone(),
    };
    let abort = web_sys::AbortController::new().map_err(|err| internal(err.into()))?;

    // Ends the call when the caller disconnects (workerd aborts its request's signal) or when
    // this side lets go of it (`Admitted` dropped): the session object sees its `/sample`
    // call's signal abort and cancels at the client.
    let signal = web_sys::AbortSignal::any(&worker::js_sys::Array::of2(caller, &abort.signal()));
    let session = SessionObjectClient::new(env, namespace, &accepted.session_id)?;
    let pending = session.sample(&request, &accepted.params, &signal).await?;
    Ok(Admitted {
        pending: Some(pending),
        abort,
        done: false,
    })
}

/// The Anthropic response for the session object's outcome.
async fn respond(
    env: &Env,
    namespace: &Namespace,
    accepted: Accepted,
    outcome: SampleResponse,
) -> Result<MessagesResponse, ApiError> {
    let result = outcome.into_result()?;
    if let Some(model) = result.model.clone() {
        report_model(env, namespace, model).await;
    }
    answer(accepted.answering, result, || {
        ids::tool_use_id(random_u128())
    })
}

async fn report_model(env: &Env, namespace: &Namespace, model: String) {
    if !models::is_keepable_model_name(&model) {
        return;
    }
    let key = (namespace.0.clone(), model.clone());
    if REPORTED.with(|seen| seen.borrow().contains(&key)) {
        return;
    }
    let unix = (worker::js_sys::Date::now() / 1000.0) as u64;
    if let Ok(registry) = RegistryClient::new(env, namespace)
        && registry
            .report_model(&ReportedModel { model, unix })
            .await
            .is_ok()
    {
        REPORTED.with(|seen| {
            let mut seen = seen.borrow_mut();
            if seen.len() >= MAX_REMEMBERED_REPORTS {
                seen.clear();
            }
            seen.insert(key)
        });
    }
}

/// How often a streamed answer writes to its caller while it waits. workerd's HTTP server takes
/// a caller for gone only when its connection reports a hang-up or an error, not when the
/// caller closes it the ordinary way (a FIN, which every client that read what it was sent
/// ends with): then only a write reveals it (the closed peer answers with a reset). The ping
/// interval (10 s by default) is too rare for the cancel to reach the MCP client within a
/// second or two.
const CALLER_CHECK: Duration = Duration::from_millis(250);
/// What those writes carry between pings: an SSE comment, which every SSE reader skips.
const LIVENESS_COMMENT: &[u8] = b":\n\n";

/// The opening at once, keep-alives while the client works, then the ending. A caller that
/// leaves is noticed at the next write (within `CALLER_CHECK`), and workerd aborts its request's
/// signal: that ends the call to the session object, which cancels at the client, and ends this
/// task. (workerd abandons the body's stream of a request whose caller left without cancelling
/// it, so the body's channel never reports the caller gone.)
fn stream(
    env: Env,
    namespace: Namespace,
    accepted: Accepted,
    admitted: Admitted,
    framing: StreamFraming,
    caller: &web_sys::AbortSignal,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let (usage_sender, usage) = oneshot::channel();
    journal.stream_usage = Some(usage);
    let (frames, body) = mpsc::channel::<Result<Vec<u8>, worker::Error>>(8);
    let gone = http::aborted(caller);
    worker::wasm_bindgen_futures::spawn_local(async move {
        let answer = write_answer(
            env,
            namespace,
            accepted,
            admitted,
            framing,
            frames,
            usage_sender,
        )
        .fuse();
        futures::pin_mut!(answer);
        // Gone: dropping the answer drops `Admitted`, whose abort reaches the session object
        // at once (the signal's own abort reaches it too).
        futures::select! {
            () = answer => {}
            _ = gone.fuse() => {}
        }
    });
    http::event_stream(body)
}

async fn write_answer(
    env: Env,
    namespace: Namespace,
    accepted: Accepted,
    admitted: Admitted,
    framing: StreamFraming,
    mut frames: mpsc::Sender<Result<Vec<u8>, worker::Error>>,
    usage_sender: oneshot::Sender<Usage>,
) {
    let settings = Settings::from_env(&env);
    if frames
        .send(Ok(framing
            .opening(
                &accepted.answering.message_id,
                &accepted.answering.model,
                accepted.answering.input_tokens,
            )
            .into_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let model = accepted.answering.model.clone();
    let completion = complete(&env, &namespace, accepted, admitted).fuse();
    futures::pin_mut!(completion);
    let mut since_ping = Duration::ZERO;
    let completion = loop {
        let tick = CALLER_CHECK.min(settings.ping_interval);
        let mut check = Delay::from(tick).fuse();
        futures::select! {
            completion = completion => break completion,
            () = check => {
                since_ping += tick;
                let frame = if since_ping >= settings.ping_interval {
                    since_ping = Duration::ZERO;
                    framing.keepalive().as_bytes().to_vec()
                } else {
                    LIVENESS_COMMENT.to_vec()
                };
                // A full buffer (a slow reader) skips this one; a closed one means gone.
                if frames.try_send(Ok(frame)).is_err_and(|err| err.is_disconnected()) {
                    return;
                }
            }
        }
    };
    let _ = usage_sender.send(completion.usage);
    let _ = frames
        .send(Ok(framing.ending(completion.response, &model).into_bytes()))
        .await;
}

/// Reads the body under the size cap, logging it when prompts are to be logged.
pub(crate) async fn read_body(
    req: &mut Request,
    settings: &Settings,
    journal: &Journal,
) -> Result<Vec<u8>, ApiError> {
    let body = http::read_limited(req, settings.max_body_bytes).await?;
    journal.body_read(&body);
    Ok(body)
}

/// Routes and converts the request, noting its model hint and session in the journal.
/// Accepts a parsed request and has its session admit it, before any byte of the answer goes
/// out (so a refusal is the response's status, streamed or not).
async fn accept_and_admit(
    req: &Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    request: MessagesRequest,
    journal: &mut Journal,
) -> Result<(Accepted, Admitted), ApiError> {
    let accepted = accept_into(req.headers(), env, namespace, settings, request, journal).await?;
    let admitted = admit(env, namespace, settings, &accepted, &req.inner().signal()).await?;
    Ok((accepted, admitted))
}

async fn accept_into(
    headers: &worker::Headers,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    request: MessagesRequest,
    journal: &mut Journal,
) -> Result<Accepted, ApiError> {
    journal.model = Some(request.model.clone());
    if settings.log_prompts {
        journal.prompt = status::prompt_preview(&request);
    }
    let mut accepted = accept(headers, env, namespace, settings, request).await?;
    let session = ids::session_handle(&accepted.session_id);
    accepted.status = Some(
        InFlightRequest {
            request_id: journal.request_id.clone(),
            route: journal.route().to_string(),
            model: Some(accepted.answering.model.clone()),
            session: Some(session.clone()),
            started_unix_ms: journal.started_unix_ms(),
            stage: Stage::Queued,
        }
        .bounded(),
    );
    journal.session = Some(session);
    Ok(accepted)
}

/// The non-streamed outcome, with its usage noted in the journal.
async fn complete_into(
    env: &Env,
    namespace: &Namespace,
    accepted: Accepted,
    admitted: Admitted,
    journal: &mut Journal,
) -> Result<MessagesResponse, ApiError> {
    let completion = complete(env, namespace, accepted, admitted).await;
    journal.usage = completion.usage;
    completion.response
}

/// A parsed sampling request, from its session's admission to its answer: JSON, or a stream in
/// `framing` when `stream` is set (`/v1/messages` and `/v1/chat/completions` alike).
pub(crate) async fn sample(
    req: &Request,
    (env, namespace, settings): (&Env, &Namespace, &Settings),
    request: MessagesRequest,
    (stream_wanted, framing): (bool, StreamFraming),
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let (accepted, admitted) =
        accept_and_admit(req, env, namespace, settings, request, journal).await?;
    if stream_wanted {
        return stream(
            env.clone(),
            Namespace(namespace.0.clone()),
            accepted,
            admitted,
            framing,
            &req.inner().signal(),
            journal,
        );
    }
    let response = complete_into(env, namespace, accepted, admitted, journal).await?;
    http::json(200, json_body(framing, &response)?)
}
