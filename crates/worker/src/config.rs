//! Settings from the Worker's environment (`[vars]` in wrangler.toml, or `--var` in dev).

use std::time::Duration;

use sampling2api_core::models::ModelCatalog;
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
        let number = |name: &str, default: u64| {
            env.var(name)
                .ok()
                .and_then(|value| value.to_string().trim().parse().ok())
                .unwrap_or(default)
        };
        let text = |name: &str| {
            env.var(name)
                .ok()
                .map(|value| value.to_string())
                .filter(|value| !value.trim().is_empty())
        };
        Settings {
            request_timeout: Duration::from_secs(number("REQUEST_TIMEOUT_SECS", 600).max(1)),
            ping_interval: Duration::from_millis(number("PING_INTERVAL_MS", 10_000).max(10)),
            stream_wait: Duration::from_millis(number("STREAM_WAIT_MS", 3_000)),
            max_body_bytes: number("MAX_BODY_BYTES", 32 * 1024 * 1024) as usize,
            model_aliases: text("MODEL_ALIASES")
                .map(|aliases| {
                    aliases
                        .split(',')
                        .filter_map(|alias| ModelCatalog::parse_alias(alias).ok())
                        .collect()
                })
                .unwrap_or_default(),
            default_model_hint: text("DEFAULT_MODEL_HINT"),
            max_in_flight_per_session: number("MAX_IN_FLIGHT_PER_SESSION", 256).max(1) as usize,
            max_queued_per_session: number("MAX_QUEUED_PER_SESSION", 4096) as usize,
            max_reported_models: number(
                "MAX_REPORTED_MODELS",
                sampling2api_core::models::DEFAULT_MAX_REPORTED_MODELS as u64,
            ) as usize,
            log_prompts: text("LOG_PROMPTS")
                .is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes")),
            // An unknown value falls back to the default, as the numbers above do.
            tool_mode: text("TOOLS")
                .and_then(|value| ToolMode::parse(&value).ok())
                .unwrap_or_default(),
            session_idle: Duration::from_secs(number("SESSION_IDLE_SECS", 120).max(1)),
        }
    }
}
