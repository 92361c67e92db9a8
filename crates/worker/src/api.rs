//! The API routes, served by the Worker with the core; sampling round trips go through the
//! session's Durable Object.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::{FutureExt, SinkExt};
use sampling2api_core::api::anthropic::{
    ImageSource, MessagesRequest, MessagesResponse, parse_messages_request,
};
use sampling2api_core::api::models::{self, ModelCatalog, PageQuery};
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::convert::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::convert::image_url::{refused, url_image_sources};
use sampling2api_core::convert::to_sampling::{AnswerPlan, into_create_message_params};
use sampling2api_core::lifecycle::session_choice::{Candidate, SESSION_HEADER, choose_session};
use sampling2api_core::mcp::sampling::CreateMessageParams;
use sampling2api_core::ops::health::{Health, SessionInfo, health_body, sessions_body};
use sampling2api_core::ops::metrics::{Gauges, OutcomeLabel, SamplingRecord};
use sampling2api_core::ops::status::{self, ClientStatus, InFlightRequest, Stage, StatusSnapshot};
use sampling2api_core::{ApiError, api::openai, convert::tokens, ids};
use serde_json::json;
use worker::worker_sys::web_sys;
use worker::{Delay, Env, Request, Response};

use crate::config::Settings;
use crate::http::{self, internal};
use crate::journal::{Journal, Usage};
use crate::random::random_u128;
use crate::registry_client::{RegistryClient, ReportedModel, SessionEntry};
use crate::session_client::{
    PendingOutcome, SampleRequest, SampleResponse, SessionLoad, SessionObjectClient,
};
use crate::tenancy::Namespace;

thread_local! {
    /// Models this isolate already reported to its namespaces' registries.
    static REPORTED: RefCell<HashSet<(String, String)>> = RefCell::new(HashSet::new());
}

/// Reports remembered per isolate; beyond, the memory starts over (it only saves repeated
/// posts), so clients answering with ever new names cannot grow it.
const MAX_REMEMBERED_REPORTS: usize = 1024;

struct Accepted {
    /// The model the caller asked for, echoed in the response.
    model: String,
    stream: bool,
    session_id: String,
    params: CreateMessageParams,
    /// What the answer needs (emulated tool calls to parse, a structured value to extract).
    plan: AnswerPlan,
    input_tokens: u64,
    message_id: String,
    /// What the status page shows while the request is in flight.
    status: Option<InFlightRequest>,
}

async fn sessions(env: &Env, namespace: &Namespace) -> Result<Vec<SessionEntry>, ApiError> {
    RegistryClient::new(env, namespace)?.sessions().await
}

fn catalog(settings: &Settings, reported: Vec<(String, u64)>) -> ModelCatalog {
    let mut catalog = ModelCatalog::new(
        settings.model_aliases.clone(),
        settings.default_model_hint.clone(),
        0,
    )
    .with_max_reported(settings.max_reported_models);
    for (model, unix) in reported {
        catalog.record_reported(&model, unix);
    }
    catalog
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
    // A client's own secret id routes as well as its public handle, as natively.
    let own = wanted
        .as_deref()
        .and_then(|wanted| listed.iter().position(|entry| entry.id == wanted));
    let wanted = match own {
        Some(index) => handles.get(index).cloned(),
        None => wanted,
    };
    let entry = choose_session(
        wanted.as_deref(),
        listed
            .iter()
            .zip(&handles)
            .map(|(entry, handle)| Candidate {
                id: handle.as_str(),
                unavailable: unavailable_reason(entry),
                stream_open: entry.stream_open,
                item: entry,
            }),
    )?;
    let support = entry.sampling.ok_or_else(|| {
        ApiError::unavailable("the MCP client did not declare the `sampling` capability")
            .not_retryable()
    })?;
    let input_tokens = tokens::estimate_request(&request).max(1);
    let model = request.model.clone();
    let stream = request.wants_stream();
    let hints = catalog(settings, Vec::new()).hints_for(&model);
    // The request's content moves into the params: a large request is held once.
    let (params, mut plan) =
        into_create_message_params(request, support, settings.tool_mode, hints)?;
    plan.set_max_tool_calls(settings.max_emulated_tool_calls);
    Ok(Accepted {
        input_tokens,
        message_id: ids::message_id(random_u128()),
        session_id: entry.id.clone(),
        model,
        stream,
        params,
        plan,
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
    to_messages_response(
        result,
        ResponseContext {
            message_id: accepted.message_id,
            requested_model: &accepted.model,
            estimated_input_tokens: accepted.input_tokens,
            plan: accepted.plan,
        },
        || ids::tool_use_id(random_u128()),
    )
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
            .opening(&accepted.message_id, &accepted.model, accepted.input_tokens)
            .into_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let model = accepted.model.clone();
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
async fn read_body(
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
            model: Some(accepted.model.clone()),
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

pub async fn messages(
    mut req: Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let body = read_body(&mut req, settings, journal).await?;
    let request = parse_messages_request(&body, true)?;
    drop(body);
    let (accepted, admitted) =
        accept_and_admit(&req, env, namespace, settings, request, journal).await?;
    if accepted.stream {
        return stream(
            env.clone(),
            Namespace(namespace.0.clone()),
            accepted,
            admitted,
            StreamFraming::Anthropic,
            &req.inner().signal(),
            journal,
        );
    }
    let response = complete_into(env, namespace, accepted, admitted, journal).await?;
    http::json(
        200,
        serde_json::to_string(&response).map_err(|err| ApiError::api(err.to_string()))?,
    )
}

/// Tools count as the prompt that emulation renders for them (no client is involved).
pub async fn count_tokens(
    mut req: Request,
    settings: &Settings,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let body = read_body(&mut req, settings, journal).await?;
    let request = parse_messages_request(&body, false)?;
    journal.model = Some(request.model.clone());
    http::json(
        200,
        json!({"input_tokens": tokens::estimate_request(&request).max(1)}).to_string(),
    )
}

pub async fn chat_completions(
    mut req: Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let body = read_body(&mut req, settings, journal).await?;
    let chat = openai::parse_chat_request(&body)?;
    let stream_wanted = chat.wants_stream();
    let include_usage = chat.wants_stream_usage();
    let request = openai::to_messages_request(chat)?;
    let (accepted, admitted) =
        accept_and_admit(&req, env, namespace, settings, request, journal).await?;
    let created = (worker::js_sys::Date::now() / 1000.0) as u64;
    if stream_wanted {
        return stream(
            env.clone(),
            Namespace(namespace.0.clone()),
            accepted,
            admitted,
            StreamFraming::OpenAi {
                created,
                include_usage,
            },
            &req.inner().signal(),
            journal,
        );
    }
    let response = complete_into(env, namespace, accepted, admitted, journal).await?;
    http::json(
        200,
        openai::to_chat_completion(&response, created).to_string(),
    )
}

/// `anthropic-version` or `x-api-key`: every Anthropic SDK sends both.
pub fn speaks_anthropic(req: &Request) -> bool {
    let headers = req.headers();
    headers.has("anthropic-version").unwrap_or(false) || headers.has("x-api-key").unwrap_or(false)
}

async fn reported_models(env: &Env, namespace: &Namespace) -> Result<Vec<(String, u64)>, ApiError> {
    RegistryClient::new(env, namespace)?.models().await
}

pub async fn list_models(
    req: Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let entries = catalog(settings, reported_models(env, namespace).await?).entries();
    let body = if speaks_anthropic(&req) {
        let query = req.url().map_err(internal)?.query().map(str::to_string);
        models::anthropic_list(&entries, &PageQuery::parse(query.as_deref())?)
    } else {
        models::openai_list(&entries)
    };
    http::json(200, body.to_string())
}

pub async fn get_model(
    req: &Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    id: &str,
) -> Result<Response, ApiError> {
    // The path arrives percent-encoded (`%5B1m%5D` for `[1m]`).
    let id = models::percent_decode(id);
    let entry = catalog(settings, reported_models(env, namespace).await?).entry(&id);
    let body = if speaks_anthropic(req) {
        models::anthropic_model(&entry)
    } else {
        models::openai_model(&entry)
    };
    http::json(200, body.to_string())
}

/// Why API requests cannot go to a listed session, as natively (`Session::unavailable_reason`).
fn unavailable_reason(entry: &SessionEntry) -> Option<ApiError> {
    if entry.sampling.is_none() {
        return Some(
            ApiError::unavailable(format!(
                "the connected MCP client{} did not declare the `sampling` capability, so it cannot answer API requests",
                entry.client_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ))
            .not_retryable(),
        );
    }
    (!entry.ready).then(|| {
        ApiError::unavailable(
            "the MCP client has not finished initializing (notifications/initialized)",
        )
    })
}

/// Each listed session object's admission and pending counts, asked at call time (`None`
/// where an object could not be asked), in the listing's order.
async fn loads(
    env: &Env,
    namespace: &Namespace,
    listed: &[SessionEntry],
) -> Vec<Option<SessionLoad>> {
    futures::future::join_all(listed.iter().map(|entry| async move {
        SessionObjectClient::new(env, namespace, &entry.id)
            .ok()?
            .load()
            .await
    }))
    .await
}

/// `/health` with a token: liveness plus that namespace's sessions (without one, the same
/// fields with the session figures `null`: see `lib.rs`).
pub async fn namespace_health(env: &Env, namespace: &Namespace) -> Result<Response, ApiError> {
    let listed = sessions(env, namespace).await?;
    let loads: Vec<SessionLoad> = loads(env, namespace, &listed)
        .await
        .into_iter()
        .flatten()
        .collect();
    let health = Health::with_sessions(
        "worker",
        listed.len() as u64,
        listed
            .iter()
            .filter(|entry| unavailable_reason(entry).is_none())
            .count() as u64,
        loads.iter().map(|load| load.in_flight).sum(),
        loads.iter().map(|load| load.pending).sum(),
    );
    http::json(200, health_body(&health))
}

/// `/sessions`: the same fields as natively; `pending` is `null` (it would cost a call to
/// every session object per listing).
pub async fn list_sessions(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let listed = sessions(env, namespace).await?;
    let data = listed
        .iter()
        .map(|entry| SessionInfo {
            id: ids::session_handle(&entry.id),
            client_name: entry.client_name.clone(),
            client_version: entry.client_version.clone(),
            protocol_version: Some(entry.protocol_version.clone()),
            sampling: entry.sampling.is_some(),
            sampling_tools: entry.sampling.is_some_and(|s| s.tools),
            tools: entry
                .sampling
                .map(|support| settings.tool_mode.delivery(support).as_str()),
            ready: unavailable_reason(entry).is_none(),
            event_stream_open: entry.stream_open,
            pending: None,
        })
        .collect();
    http::json(200, sessions_body(data))
}

/// `/metrics` for the caller's namespace: the registry's totals, plus in-flight and queued
/// counts asked of each of its sessions at scrape time.
pub async fn metrics(env: &Env, namespace: &Namespace) -> Result<Response, ApiError> {
    let registry = RegistryClient::new(env, namespace)?;
    let totals = registry.metrics().await?;
    let listed = registry.sessions().await?;
    let loads: Vec<SessionLoad> = loads(env, namespace, &listed)
        .await
        .into_iter()
        .flatten()
        .collect();
    let gauges = Gauges {
        in_flight: loads.iter().map(|load| load.in_flight).sum(),
        queued: loads.iter().map(|load| load.queued).sum(),
        sessions: listed.len() as u64,
        sampling_sessions: listed
            .iter()
            .filter(|entry| unavailable_reason(entry).is_none())
            .count() as u64,
    };
    let headers = worker::Headers::new();
    headers
        .set("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .map_err(internal)?;
    Ok(Response::ok(totals.render(gauges))
        .map_err(internal)?
        .with_headers(headers))
}

/// `/status` for the caller's namespace: its sessions, the requests their objects hold now,
/// and the registry's recent requests and totals per model.
pub async fn status(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let registry = RegistryClient::new(env, namespace)?;
    let history = registry.history().await?;
    let listed = registry.sessions().await?;
    let loads = loads(env, namespace, &listed).await;
    let clients = listed
        .iter()
        .zip(&loads)
        .map(|(entry, load)| ClientStatus {
            session: ids::session_handle(&entry.id),
            client_name: entry.client_name.clone(),
            client_version: None,
            protocol_version: Some(entry.protocol_version.clone()),
            sampling: entry.sampling.is_some(),
            tools: entry
                .sampling
                .map(|support| settings.tool_mode.delivery(support).as_str().to_string()),
            event_stream_open: None,
            in_flight: load.as_ref().map_or(0, |load| load.in_flight),
            queued: load.as_ref().map_or(0, |load| load.queued),
            consent_may_be_pending: load
                .as_ref()
                .is_some_and(|load| load.consent_may_be_pending),
        })
        .collect();
    let in_flight: Vec<InFlightRequest> = loads
        .into_iter()
        .flatten()
        .flat_map(|load| load.requests)
        .collect();
    let mut snapshot = StatusSnapshot::new(
        "worker",
        worker::Date::now().as_millis(),
        settings.log_prompts,
        clients,
        &in_flight,
        &history,
    );
    snapshot.notes.push(
        "On the worker, a client's version and whether its event stream is open are not shown \
         (the session objects do not report them)."
            .to_string(),
    );
    http::json(200, snapshot.to_json())
}
