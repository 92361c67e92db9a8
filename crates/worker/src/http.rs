//! Response helpers and calls to Durable Objects.

use sampling2api_core::ApiError;
use sampling2api_core::http::flavor::Flavor;
use serde::de::DeserializeOwned;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures;
use worker::worker_sys::web_sys;
use worker::{Env, Headers, Method, Request, Response, Stub};

pub fn internal(err: worker::Error) -> ApiError {
    ApiError::api(format!("worker runtime error: {err}"))
}

pub fn json(status: u16, body: String) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers
        .set("content-type", "application/json")
        .map_err(internal)?;
    Ok(Response::ok(body)
        .map_err(internal)?
        .with_status(status)
        .with_headers(headers))
}

/// The status page with its Content-Security-Policy (the same page and headers as natively).
pub fn status_page() -> Result<Response, ApiError> {
    let headers = Headers::new();
    for (name, value) in sampling2api_core::ops::status::page_headers() {
        headers.set(name, value).map_err(internal)?;
    }
    Ok(Response::ok(sampling2api_core::ops::status::PAGE)
        .map_err(internal)?
        .with_headers(headers))
}

/// A streamed `text/event-stream` response.
pub fn event_stream(
    body: futures::channel::mpsc::Receiver<Result<Vec<u8>, worker::Error>>,
) -> Result<Response, ApiError> {
    let headers = Headers::new();
    headers
        .set("content-type", "text/event-stream")
        .map_err(internal)?;
    headers.set("cache-control", "no-cache").map_err(internal)?;
    Ok(Response::from_stream(body)
        .map_err(internal)?
        .with_headers(headers))
}

/// The error response in the request's API flavor.
pub fn error(flavor: Flavor, err: &ApiError, request_id: &str) -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    for (name, value) in flavor.error_headers(err) {
        headers.set(name, &value)?;
    }
    Ok(Response::ok(flavor.error_body(err, request_id))?
        .with_status(err.status())
        .with_headers(headers))
}

/// A Durable Object of `binding` (`SESSIONS`, `REGISTRY`), by name.
pub fn stub(env: &Env, binding: &str, name: &str) -> Result<Stub, ApiError> {
    let objects = env.durable_object(binding).map_err(internal)?;
    let id = objects.id_from_name(name).map_err(internal)?;
    id.get_stub().map_err(internal)
}

/// The URL of a Durable Object's internal route (the host is never resolved).
pub fn object_url(path: &str) -> String {
    format!("https://do{path}")
}

/// A request to a Durable Object over its internal routes (only its typed client calls
/// this). Aborting `signal` cancels the call at the object too: dropping the Rust future alone
/// would leave the JavaScript fetch running.
pub async fn call(
    stub: &Stub,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
    signal: Option<&web_sys::AbortSignal>,
) -> Result<Response, ApiError> {
    let init = web_sys::RequestInit::new();
    init.set_method(method.as_ref());
    if let Some(body) = body {
        init.set_body(&JsValue::from(Uint8Array::from(body)));
    }
    if let Some(signal) = signal {
        init.set_signal(Some(signal));
    }
    let request = web_sys::Request::new_with_str_and_init(&object_url(path), &init)
        .map_err(|err| internal(err.into()))?;
    stub.fetch_with_request(Request::from(request))
        .await
        .map_err(internal)
}

/// A Durable Object's JSON answer, parsed from its bytes (not through a JavaScript object).
pub async fn read_json<T: DeserializeOwned>(response: &mut Response) -> Result<T, ApiError> {
    let body = response.bytes().await.map_err(internal)?;
    serde_json::from_slice(&body).map_err(|err| {
        ApiError::api(format!(
            "a Durable Object answered with unreadable JSON: {err}"
        ))
    })
}

/// A JSON body sent to a Durable Object, parsed from its bytes (`Request::json` would go
/// through a JavaScript object).
pub async fn request_json<T: DeserializeOwned>(req: &mut Request) -> worker::Result<T> {
    let body = req.bytes().await?;
    Ok(serde_json::from_slice(&body)?)
}

pub async fn read_limited(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let declared: Option<usize> = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|value| value.parse().ok());
    let too_large = || ApiError::body_too_large(limit);
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let body = req.bytes().await.map_err(|err| {
        ApiError::invalid_request(format!("could not read the request body: {err}"))
    })?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

/// Completes when `signal` aborts. With the `enable_request_signal` compatibility flag, an
/// incoming request's signal aborts when workerd cancels the request: its caller disconnected
/// (for the Worker's API requests), or the Worker's call to a Durable Object ended early (for the
/// object's). It takes the signal's `onabort`: one waiter per signal.
pub fn aborted(signal: &web_sys::AbortSignal) -> wasm_bindgen_futures::JsFuture {
    let promise = worker::js_sys::Promise::new(&mut |resolve, _reject| {
        if signal.aborted() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        } else {
            signal.set_onabort(Some(&resolve));
        }
    });
    wasm_bindgen_futures::JsFuture::from(promise)
}
