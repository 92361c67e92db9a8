//! The settings both runtimes share, each with its name, default and lower bound, written once.
//!
//! The native binary reads them from flags (`--request-timeout-secs`, with clap's default taken
//! from here, or `SAMPLING2API_REQUEST_TIMEOUT_SECS`); the worker from its environment under the
//! bare name (`REQUEST_TIMEOUT_SECS`). Both then clamp the value through the same [`Setting`],
//! so a configured 0 means the same thing on both.

use std::time::Duration;

use crate::convert::tool_emulation::ToolMode;

/// A number setting: its name (the worker's variable; the native flag is the same in kebab
/// case), its default, and the least value that makes sense (smaller values are raised to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    pub default: u64,
    pub min: u64,
}

impl Setting {
    /// The configured value raised to the setting's minimum.
    pub const fn clamp(self, value: u64) -> u64 {
        if value < self.min { self.min } else { value }
    }

    /// A value in seconds, clamped.
    pub const fn secs(self, value: u64) -> Duration {
        Duration::from_secs(self.clamp(value))
    }

    /// A value in milliseconds, clamped.
    pub const fn millis(self, value: u64) -> Duration {
        Duration::from_millis(self.clamp(value))
    }

    /// A count or a size, clamped; saturates where `usize` is narrower (wasm32) rather than
    /// wrapping to a small number.
    pub fn count(self, value: u64) -> usize {
        usize::try_from(self.clamp(value)).unwrap_or(usize::MAX)
    }

    /// The default, as [`Setting::count`] reads it.
    pub fn default_count(self) -> usize {
        self.count(self.default)
    }
}

/// Deadline for one API request: then the caller gets 504 and the client is told to cancel.
pub const REQUEST_TIMEOUT_SECS: Setting = Setting {
    name: "REQUEST_TIMEOUT_SECS",
    default: 600,
    min: 1,
};

/// Interval of SSE pings while a streamed answer waits for the client's LLM; below 10 ms the
/// pings would be most of the traffic.
pub const PING_INTERVAL_MS: Setting = Setting {
    name: "PING_INTERVAL_MS",
    default: 10_000,
    min: 10,
};

/// How long a sampling request waits for a client without an open event stream to open one
/// (0: it fails at once).
pub const STREAM_WAIT_MS: Setting = Setting {
    name: "STREAM_WAIT_MS",
    default: 3_000,
    min: 0,
};

/// A session with no event stream and no request for this long is dropped.
pub const SESSION_IDLE_SECS: Setting = Setting {
    name: "SESSION_IDLE_SECS",
    default: 120,
    min: 1,
};

/// Largest request body accepted, in bytes (413 above).
pub const MAX_BODY_BYTES: Setting = Setting {
    name: "MAX_BODY_BYTES",
    default: 32 * 1024 * 1024,
    min: 0,
};

/// Sampling requests one MCP session may have in flight; at least one, or nothing would run.
pub const MAX_IN_FLIGHT_PER_SESSION: Setting = Setting {
    name: "MAX_IN_FLIGHT_PER_SESSION",
    default: 256,
    min: 1,
};

/// Requests that may wait beyond a session's in-flight limit (0: none wait, more get 429).
pub const MAX_QUEUED_PER_SESSION: Setting = Setting {
    name: "MAX_QUEUED_PER_SESSION",
    default: 4096,
    min: 0,
};

/// Bytes of sent sampling requests one session keeps, all together, to send them again when
/// the client resumes its event stream (`Last-Event-ID`); a request that does not fit (or is
/// over 1 MiB) is not kept, and fails if the client shows it never received it. 0: none kept.
pub const MAX_RESEND_BYTES: Setting = Setting {
    name: "MAX_RESEND_BYTES",
    default: 16 * 1024 * 1024,
    min: 0,
};

/// Models clients answered with that `/v1/models` keeps listing; the oldest goes first.
pub const MAX_REPORTED_MODELS: Setting = Setting {
    name: "MAX_REPORTED_MODELS",
    default: crate::api::models::DEFAULT_MAX_REPORTED_MODELS as u64,
    min: 0,
};

/// Tool calls parsed from one emulated answer; calls beyond stay text. At least one, or
/// emulated tools could never be called.
pub const MAX_EMULATED_TOOL_CALLS: Setting = Setting {
    name: "MAX_EMULATED_TOOL_CALLS",
    default: crate::convert::tool_emulation::DEFAULT_MAX_CALLS as u64,
    min: 1,
};

/// How tools reach clients (native `--tools`, worker `TOOLS`).
pub const TOOLS: &str = "TOOLS";
pub const DEFAULT_TOOL_MODE: ToolMode = ToolMode::Auto;

/// Every shared number setting, for tests and documentation.
pub const ALL: [Setting; 10] = [
    REQUEST_TIMEOUT_SECS,
    PING_INTERVAL_MS,
    STREAM_WAIT_MS,
    SESSION_IDLE_SECS,
    MAX_BODY_BYTES,
    MAX_IN_FLIGHT_PER_SESSION,
    MAX_QUEUED_PER_SESSION,
    MAX_RESEND_BYTES,
    MAX_REPORTED_MODELS,
    MAX_EMULATED_TOOL_CALLS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_within_their_bounds() {
        assert_eq!(
            REQUEST_TIMEOUT_SECS.secs(REQUEST_TIMEOUT_SECS.default),
            Duration::from_secs(600)
        );
        assert_eq!(
            PING_INTERVAL_MS.millis(PING_INTERVAL_MS.default),
            Duration::from_secs(10)
        );
        assert_eq!(
            STREAM_WAIT_MS.millis(STREAM_WAIT_MS.default),
            Duration::from_secs(3)
        );
        assert_eq!(
            SESSION_IDLE_SECS.secs(SESSION_IDLE_SECS.default),
            Duration::from_secs(120)
        );
        assert_eq!(MAX_BODY_BYTES.default_count(), 32 * 1024 * 1024);
        assert_eq!(MAX_IN_FLIGHT_PER_SESSION.default_count(), 256);
        assert_eq!(MAX_QUEUED_PER_SESSION.default_count(), 4096);
        assert_eq!(
            MAX_REPORTED_MODELS.default_count(),
            crate::api::models::DEFAULT_MAX_REPORTED_MODELS
        );
        assert_eq!(MAX_EMULATED_TOOL_CALLS.default_count(), 128);
        assert_eq!(MAX_EMULATED_TOOL_CALLS.count(0), 1);
        assert_eq!(DEFAULT_TOOL_MODE, ToolMode::default());
        for setting in ALL {
            assert!(setting.default >= setting.min, "{setting:?}");
            assert_eq!(setting.clamp(setting.default), setting.default);
            assert!(
                setting
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{setting:?}"
            );
        }
    }

    #[test]
    fn values_below_the_minimum_are_raised_to_it() {
        assert_eq!(REQUEST_TIMEOUT_SECS.secs(0), Duration::from_secs(1));
        assert_eq!(PING_INTERVAL_MS.millis(1), Duration::from_millis(10));
        assert_eq!(SESSION_IDLE_SECS.secs(0), Duration::from_secs(1));
        assert_eq!(MAX_IN_FLIGHT_PER_SESSION.count(0), 1);
        // Zero is meaningful where the minimum is zero.
        assert_eq!(STREAM_WAIT_MS.millis(0), Duration::ZERO);
        assert_eq!(MAX_QUEUED_PER_SESSION.count(0), 0);
        assert_eq!(MAX_BODY_BYTES.count(0), 0);
        // Large values pass unchanged, or saturate on a narrower usize.
        assert_eq!(
            REQUEST_TIMEOUT_SECS.secs(86_400),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            MAX_BODY_BYTES.count(u64::MAX),
            usize::try_from(u64::MAX).unwrap_or(usize::MAX)
        );
    }
}
