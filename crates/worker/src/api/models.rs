//! `GET /v1/models` and `GET /v1/models/{id}`: the catalog with what this namespace's clients
//! reported.

use sampling2api_core::ApiError;
use sampling2api_core::api::models::{self, PageQuery};
use worker::{Env, Request, Response};

use super::{catalog, speaks_anthropic};
use crate::config::Settings;
use crate::http::{self, internal};
use crate::registry_client::RegistryClient;
use crate::tenancy::Namespace;

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
