//! `POST /v1/chat/completions`: OpenAI's shape around the same flow as `/v1/messages`.

use sampling2api_core::ApiError;
use sampling2api_core::api::openai;
use sampling2api_core::api::stream_framing::StreamFraming;
use worker::{Env, Request, Response};

use super::flow::{read_body, sample};
use crate::config::Settings;
use crate::journal::Journal;
use crate::tenancy::Namespace;

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
    let framing = StreamFraming::OpenAi {
        created: (worker::js_sys::Date::now() / 1000.0) as u64,
        include_usage,
    };
    sample(
        &req,
        (env, namespace, settings),
        request,
        (stream_wanted, framing),
        journal,
    )
    .await
}
