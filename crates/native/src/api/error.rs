//! The one error type of the HTTP layer: an [`ApiError`] with the request's id and its route's
//! flavor, which renders itself as Anthropic's, OpenAI's or a JSON-RPC error.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sampling2api_core::ApiError;
use sampling2api_core::http::flavor::Flavor;

#[derive(Debug)]
pub struct HttpError {
    pub flavor: Flavor,
    pub request_id: std::sync::Arc<str>,
    pub error: ApiError,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(
            status,
            self.flavor.error_body(&self.error, &self.request_id),
        );
        for (name, value) in self.flavor.error_headers(&self.error) {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// A JSON body with its content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
