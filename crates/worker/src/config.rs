//! Settings from the Worker's environment (`[vars]` in wrangler.toml, or `--var` in dev).

use std::time::Duration;

use sampling2api_core::api::models::ModelCatalog;
use sampling2api_core::convert::tool_emulation::ToolMode;
use sampling2api_core::ops::settings::{self, Setting};
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
    /// `MAX_RESEND_BYTES`: sent requests a session keeps for a resumed event stream.
    pub max_resend_bytes: usize,
    /// Models clients answered with that the namespace's registry keeps (oldest dropped first).
    pub max_reported_models: usize,
    /// Log request bodies (prompts) too; off unless asked for.
    pub log_prompts: bool,
    /// `TOOLS`: auto (default), native or emulate, like the native `--tools`.
    pub tool_mode: ToolMode,
    /// `MAX_EMULATED_TOOL_CALLS`: tool calls parsed from one emulated answer.
    pub max_emulated_tool_calls: usize,
    /// `SESSION_IDLE_SECS`: a session whose event stream stays closed this long is dropped
    /// (its object's alarm), like the native `--session-idle-secs`.
    pub session_idle: Duration,
}

impl Settings {
    pub fn from_env(env: &Env) -> Settings {
        Settings::from_vars(|name| env.var(name).ok().map(|value| value.to_string()))
    }

    /// The settings for the vars `var` gives; a missing, empty or unreadable var means its
    /// default, and numbers are clamped to what the runtime can use.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Settings {
        // A shared number setting under its bare name; unset or unreadable means its default.
        let number = |setting: Setting| {
            var(setting.name)
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(setting.default)
        };
        let text = |name: &str| var(name).filter(|value| !value.trim().is_empty());
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
            max_resend_bytes: settings::MAX_RESEND_BYTES.count(number(settings::MAX_RESEND_BYTES)),
            max_reported_models: settings::MAX_REPORTED_MODELS
                .count(number(settings::MAX_REPORTED_MODELS)),
            log_prompts: text("LOG_PROMPTS")
                .is_some_and(|value| matches!(value.trim(), "1" | "true" | "yes")),
            // An unknown value falls back to the default, as the numbers above do.
            tool_mode: text(settings::TOOLS)
                .and_then(|value| ToolMode::parse(&value).ok())
                .unwrap_or(settings::DEFAULT_TOOL_MODE),
            max_emulated_tool_calls: settings::MAX_EMULATED_TOOL_CALLS
                .count(number(settings::MAX_EMULATED_TOOL_CALLS)),
            session_idle: settings::SESSION_IDLE_SECS.secs(number(settings::SESSION_IDLE_SECS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_match_the_native_flags() {
        let defaults = settings(&[]);
        assert_eq!(defaults.request_timeout, Duration::from_secs(600));
        assert_eq!(defaults.ping_interval, Duration::from_secs(10));
        assert_eq!(defaults.stream_wait, Duration::from_secs(3));
        assert_eq!(defaults.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(defaults.max_in_flight_per_session, 256);
        assert_eq!(defaults.max_queued_per_session, 4096);
        assert_eq!(
            defaults.max_reported_models,
            sampling2api_core::api::models::DEFAULT_MAX_REPORTED_MODELS
        );
        assert_eq!(defaults.session_idle, Duration::from_secs(120));
        assert_eq!(defaults.tool_mode, ToolMode::default());
        assert_eq!(defaults.max_emulated_tool_calls, 128);
        assert!(!defaults.log_prompts);
        assert!(defaults.model_aliases.is_empty());
        assert_eq!(defaults.default_model_hint, None);
    }

    #[test]
    fn numbers_are_trimmed_and_clamped_and_nonsense_is_the_default() {
        let clamped = settings(&[
            ("REQUEST_TIMEOUT_SECS", "0"),
            ("PING_INTERVAL_MS", " 1 "),
            ("STREAM_WAIT_MS", "0"),
            ("MAX_IN_FLIGHT_PER_SESSION", "0"),
            ("MAX_QUEUED_PER_SESSION", "0"),
            ("SESSION_IDLE_SECS", "0"),
            ("MAX_EMULATED_TOOL_CALLS", "0"),
        ]);
        assert_eq!(clamped.request_timeout, Duration::from_secs(1));
        assert_eq!(clamped.ping_interval, Duration::from_millis(10));
        assert_eq!(clamped.stream_wait, Duration::ZERO, "no wait is allowed");
        assert_eq!(clamped.max_in_flight_per_session, 1);
        assert_eq!(clamped.max_queued_per_session, 0, "no queue is allowed");
        assert_eq!(clamped.session_idle, Duration::from_secs(1));
        assert_eq!(clamped.max_emulated_tool_calls, 1);
        assert_eq!(
            settings(&[("MAX_EMULATED_TOOL_CALLS", "7")]).max_emulated_tool_calls,
            7
        );
        let nonsense = settings(&[
            ("REQUEST_TIMEOUT_SECS", "-5"),
            ("MAX_BODY_BYTES", "lots"),
            ("STREAM_WAIT_MS", ""),
        ]);
        assert_eq!(nonsense.request_timeout, Duration::from_secs(600));
        assert_eq!(nonsense.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(nonsense.stream_wait, Duration::from_secs(3));
        assert_eq!(
            settings(&[("REQUEST_TIMEOUT_SECS", " 42\n")]).request_timeout,
            Duration::from_secs(42)
        );
    }

    #[test]
    fn text_settings() {
        let set = settings(&[
            (
                "MODEL_ALIASES",
                "fast=claude-haiku,not an alias,smart=claude-opus",
            ),
            ("DEFAULT_MODEL_HINT", "claude"),
            ("LOG_PROMPTS", " yes "),
            ("TOOLS", "emulate"),
        ]);
        let aliases: Vec<&str> = set.model_aliases.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            aliases,
            vec!["fast", "smart"],
            "a malformed alias is skipped"
        );
        assert_eq!(set.default_model_hint.as_deref(), Some("claude"));
        assert!(set.log_prompts);
        assert_eq!(set.tool_mode, ToolMode::Emulate);
        for off in ["0", "no", "false", "on"] {
            assert!(!settings(&[("LOG_PROMPTS", off)]).log_prompts, "{off}");
        }
        assert_eq!(
            settings(&[("TOOLS", "sometimes")]).tool_mode,
            ToolMode::default()
        );
        assert_eq!(
            settings(&[("DEFAULT_MODEL_HINT", "  ")]).default_model_hint,
            None
        );
    }
}
