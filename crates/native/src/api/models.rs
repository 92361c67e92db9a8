//! `GET /v1/models` and `GET /v1/models/{id}`, in Anthropic's or OpenAI's shape (the route's
//! flavor, by whether the caller speaks Anthropic).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use sampling2api_core::ApiError;
use sampling2api_core::api::models::{self, PageQuery};
use sampling2api_core::http::flavor::Flavor;

use super::context::RequestId;
use super::error::{HttpError, json_response};
use crate::bridge::Bridge;

pub async fn list_models(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    uri: Uri,
) -> Result<Response, HttpError> {
    let entries = bridge.catalog().entries();
    let body = match request_id.flavor() {
        Flavor::OpenAi => models::openai_list(&entries),
        Flavor::Anthropic | Flavor::Mcp => {
            let query = PageQuery::parse(uri.query()).map_err(|err| request_id.error(err))?;
            models::anthropic_list(&entries, &query)
        }
    };
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// Any id is a model the bridge accepts, so this answers for every id.
pub async fn get_model(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, HttpError> {
    let Path(id) =
        id.map_err(|err| request_id.error(ApiError::invalid_request(err.body_text())))?;
    let entry = bridge.catalog().entry(&id);
    let body = match request_id.flavor() {
        Flavor::OpenAi => models::openai_model(&entry),
        Flavor::Anthropic | Flavor::Mcp => models::anthropic_model(&entry),
    };
    Ok(json_response(StatusCode::OK, body.to_string()))
}
