//! `GET /v1/models` and `GET /v1/models/{id}`, in Anthropic's or OpenAI's shape.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use sampling2api_core::models::{self, PageQuery};

use crate::api::{Flavor, flavor_of, flavored_error, json_response};
use crate::bridge::Bridge;
use crate::messages::request_id_of;

pub async fn list_models(State(bridge): State<Arc<Bridge>>, request: Request) -> Response {
    let flavor = flavor_of(&request);
    let request_id = request_id_of(&request);
    let entries = bridge.catalog().entries();
    let body = match flavor {
        Flavor::OpenAi => models::openai_list(&entries),
        Flavor::Anthropic | Flavor::Mcp => match PageQuery::parse(request.uri().query()) {
            Ok(query) => models::anthropic_list(&entries, &query),
            Err(err) => return flavored_error(flavor, &err, &request_id),
        },
    };
    json_response(StatusCode::OK, body.to_string())
}

/// Any id is a model the bridge accepts, so this answers for every id.
pub async fn get_model(
    State(bridge): State<Arc<Bridge>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let entry = bridge.catalog().entry(&id);
    let body = match flavor_of(&request) {
        Flavor::OpenAi => models::openai_model(&entry),
        Flavor::Anthropic | Flavor::Mcp => models::anthropic_model(&entry),
    };
    json_response(StatusCode::OK, body.to_string())
}
