//! Settings from the Worker's environment (`[vars]` in wrangler.toml, or `--var` in dev).

use std::time::Duration;

use sampling2api_core::models::ModelCatalog;
use sampling2api_core::settings::{self, Setting};
use sampling2api_core::tool_emulation::ToolMode;
use worker::Env;

pub struct Settings {
    pub request_timeout: Duration,
    pub ping_interval: Duration,
    pub stream_wait: Duration,
    pub max_body_bytes: usize,
    pub model_aliases: Vec<(String, String)>,
    pub default_model_hint: Option<String>,
    pub max_in_flight_per_session: usize,
    pub max_queued_per_session: usize,
    /// Models clients answered with that the namespace's registry keeps (oldest dropped first).
    pub max_reported_models: usize,
    /// Log request bodies (prompts) too; off unless asked for.
    pub log_prompts: bool,
    /// `TOOLS`: auto (default), native or emulate, like the native `--tools`.
    pub tool_mode: ToolMode,
    /// `SESSION_IDLE_SECS`: a session whose event stream stays closed this long is dropped
    /// (its object's alarm), like the native `--session-idle-secs`.
    pub session_idle: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Settings {
        // A shared number setting under its bare name; unset or unreadable means its default.
        let number = |setting: Setting| {
            env.var(setting.name)
                .ok()
                .and_then(|value| value.to_string().trim().parse().ok())
                .unwrap_or(setting.default)
        };
        let text = |name: &str| {
            env.var(name)
                .ok()
                .map(|value| value.to_string())
                .filter(|value| !value.trim().is_empty())
        };
        Settings {
            request_timeout: settings::REQUEST_TIMEOUT_SECS
                .secs(number(settings::REQUEST_TIMEOUT_SECS)),
            ping_interval: settings::PING_INTERVAL_MS.millis(number(settings::PING_INTERVAL_MS)),
            stream_wait: settings::STREAM_WAIT_MS.millis(number(settings::STREAM_WAIT_MS)),
            max_body_bytes: settings::MAX_BODY_BYTES.count(number(settings::MAX_BODY_BYTES)),
            model_aliases: text("MODEL_ALIASES")
                .map(|aliases| {
                    aliases
                        .split(',')
                        .filter_map(|alias| ModelCatalog::parse_alias(alias).ok())
                        .collect()
                })
                .unwrap_or_default(),
            default_model_hint: text("DEFAULT_MODEL_HINT"),
            max_in_flight_per_session: settings::MAX_IN_FLIGHT_PER_SESSION
                .count(number(settings::MAX_IN_FLIGHT_PER_SESSION)),
            max_queued_per_session: settings::MAX_QUEUED_PER_SESSION
                .count(number(settings::MAX_QUEUED_PER_SESSION)),
            max_reported_models: settings::MAX_REPORTED_MODELS
                .count(number(settings::MAX_REPORTED_MODELS)),
            log_prompts: text("LOG_PROMPTS")
                .is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes")),
            // An unknown value falls back to the default, as the numbers above do.
            tool_mode: text(settings::TOOLS)
                .and_then(|value| ToolMode::parse(&value).ok())
                .unwrap_or(settings::DEFAULT_TOOL_MODE),
            session_idle: settings::SESSION_IDLE_SECS.secs(number(settings::SESSION_IDLE_SECS)),
        }
    }
}
