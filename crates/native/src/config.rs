//! Command line and environment: every flag can also be set as `SAMPLING2API_<NAME>`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sampling2api_core::convert::tool_emulation::ToolMode;
use sampling2api_core::ops::settings;

use crate::api_keys::KeyArgs;
use crate::connect::ConnectArgs;

#[derive(Debug, Parser)]
#[command(
    name = "sampling2api",
    version,
    about = "Expose an MCP client's sampling capability as an Anthropic-compatible Messages API",
    long_about = "Expose an MCP client's sampling capability as an Anthropic-compatible Messages API.\n\n\
                  stdio: an MCP client (VS Code, fast-agent, ...) launches sampling2api as its MCP server; \
                  POST /v1/messages on --listen is then answered by that client's LLM.\n\
                  http:  MCP Streamable HTTP at --mcp-path and the API on the same port; many clients at once, \
                  chosen per request with the x-mcp-session-id header."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// MCP over stdin/stdout (launched by the MCP client), or over a spawned client's pipes.
    Stdio(StdioArgs),
    /// MCP Streamable HTTP and the API on one port.
    Http(HttpArgs),
}

#[derive(Debug, Args)]
pub struct StdioArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Start this MCP client as a child process and speak MCP over its stdin/stdout instead
    /// of our own. Everything after --spawn is the command and its arguments.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD [ARGS]...", env = "SAMPLING2API_SPAWN", value_delimiter = ' ')]
    pub spawn: Option<Vec<String>>,
    /// Longest line (one MCP message) read from the client, in bytes. A longer line means a
    /// broken client: the session ends as if the client had closed its stdout.
    #[arg(
        long,
        default_value_t = 64 * 1024 * 1024,
        env = "SAMPLING2API_MAX_CLIENT_LINE_BYTES"
    )]
    pub max_client_line_bytes: usize,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Path of the MCP Streamable HTTP endpoint.
    #[arg(long, default_value = "/mcp", env = "SAMPLING2API_MCP_PATH")]
    pub mcp_path: String,
    /// How long a sampling request waits for a client with no open GET stream to open one
    /// before it fails, in milliseconds.
    #[arg(long, default_value_t = settings::STREAM_WAIT_MS.default, env = "SAMPLING2API_STREAM_WAIT_MS")]
    pub stream_wait_ms: u64,
    /// A session with no open GET stream and no request for this many seconds is dropped.
    #[arg(long, default_value_t = settings::SESSION_IDLE_SECS.default, env = "SAMPLING2API_SESSION_IDLE_SECS")]
    pub session_idle_secs: u64,
    /// MCP sessions open at once; an `initialize` beyond gets 503 until one ends (DELETE, or
    /// --session-idle-secs without a stream).
    #[arg(long, default_value_t = 1024, env = "SAMPLING2API_MAX_SESSIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_sessions: u32,
}

#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Address of the HTTP API (and, in http mode, of /mcp).
    #[arg(long, default_value = "127.0.0.1:38080", env = "SAMPLING2API_LISTEN")]
    pub listen: SocketAddr,
    /// Deadline for one API request, in seconds; when it passes the caller gets 504 and the
    /// MCP client is told to cancel.
    #[arg(long, default_value_t = settings::REQUEST_TIMEOUT_SECS.default, env = "SAMPLING2API_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: u64,
    /// Largest request body accepted, in bytes (413 above).
    #[arg(long, default_value_t = settings::MAX_BODY_BYTES.default, env = "SAMPLING2API_MAX_BODY_BYTES")]
    pub max_body_bytes: u64,
    /// Interval of SSE pings while waiting for the client's LLM, in milliseconds.
    #[arg(long, default_value_t = settings::PING_INTERVAL_MS.default, env = "SAMPLING2API_PING_INTERVAL_MS")]
    pub ping_interval_ms: u64,
    /// Let image URLs point at loopback, private and link-local addresses (off: such URLs
    /// are refused, to prevent server-side request forgery).
    #[arg(long, env = "SAMPLING2API_ALLOW_PRIVATE_IMAGE_URLS")]
    pub allow_private_image_urls: bool,
    #[command(flatten)]
    pub url_images: UrlImageLimits,
    /// Extra browser origins allowed to call the bridge (loopback origins always are;
    /// requests without an Origin header are not affected).
    #[arg(
        long = "allow-origin",
        env = "SAMPLING2API_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// Threads that serve requests. One serves tens of thousands of requests a second, far
    /// beyond what the LLMs behind the clients answer, and spends less CPU per request than
    /// several, which wake each other (see docs/performance.md); parsing and
    /// encoding large bodies runs on separate threads whatever this is.
    #[arg(long, default_value_t = 1, env = "SAMPLING2API_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: u16,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `sampling2api=debug`.
    #[arg(long, default_value = "info", env = "SAMPLING2API_LOG")]
    pub log: String,
    /// Also log each API request's body (prompts) at info level. Off by default: prompts are
    /// private.
    #[arg(long, env = "SAMPLING2API_LOG_PROMPTS")]
    pub log_prompts: bool,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Allow listening on a non-loopback address without an API key.
    #[arg(long, env = "SAMPLING2API_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// A model id that maps to another model hint, `ALIAS=HINT` (repeatable; listed by
    /// /v1/models). E.g. `claude-sonnet-4-5=gpt-5`.
    #[arg(long = "model-alias", env = "SAMPLING2API_MODEL_ALIASES", value_delimiter = ',', value_parser = parse_alias)]
    pub model_aliases: Vec<(String, String)>,
    /// A model hint sent after the request's own, as the client's fallback preference.
    #[arg(long, env = "SAMPLING2API_DEFAULT_MODEL_HINT")]
    pub default_model_hint: Option<String>,
    /// Sampling requests one MCP session may have in flight; more wait in a queue.
    #[arg(
        long,
        default_value_t = settings::MAX_IN_FLIGHT_PER_SESSION.default,
        env = "SAMPLING2API_MAX_IN_FLIGHT_PER_SESSION"
    )]
    pub max_in_flight_per_session: u64,
    /// Requests that may wait for a session beyond its in-flight limit; more get 429.
    #[arg(
        long,
        default_value_t = settings::MAX_QUEUED_PER_SESSION.default,
        env = "SAMPLING2API_MAX_QUEUED_PER_SESSION"
    )]
    pub max_queued_per_session: u64,
    /// Bytes of sent sampling requests one MCP session keeps to send them again when its
    /// client resumes its event stream with `Last-Event-ID` (http mode); a request over 1 MiB
    /// or past this total is not kept, and fails if the client shows it never received it.
    #[arg(
        long,
        default_value_t = settings::MAX_RESEND_BYTES.default,
        env = "SAMPLING2API_MAX_RESEND_BYTES"
    )]
    pub max_resend_bytes: u64,
    /// Bytes of messages one MCP session may have waiting for a client that does not read its
    /// stdout (stdio) or its event stream (http); requests beyond get 503. A message always
    /// fits when nothing waits, so one request of any accepted size gets through.
    #[arg(
        long,
        default_value_t = 64 * 1024 * 1024,
        env = "SAMPLING2API_MAX_CLIENT_QUEUE_BYTES"
    )]
    pub max_client_queue_bytes: usize,
    /// Models clients answered with that /v1/models keeps listing; the oldest goes first.
    #[arg(
        long,
        default_value_t = settings::MAX_REPORTED_MODELS.default,
        env = "SAMPLING2API_MAX_REPORTED_MODELS"
    )]
    pub max_reported_models: u64,
    /// How tools reach the MCP client: `native` in the sampling request (only clients that
    /// declared `sampling.tools` can take them), `emulate` in the prompt with the answer parsed
    /// back, or `auto`: native where the client declared `sampling.tools`, emulated elsewhere.
    #[arg(long = "tools", default_value = settings::DEFAULT_TOOL_MODE.as_str(), env = "SAMPLING2API_TOOLS", value_parser = ToolMode::parse)]
    pub tool_mode: ToolMode,
    /// Tool calls parsed from one emulated answer (at least 1); calls beyond stay text.
    #[arg(
        long,
        default_value_t = settings::MAX_EMULATED_TOOL_CALLS.default,
        env = "SAMPLING2API_MAX_EMULATED_TOOL_CALLS"
    )]
    pub max_emulated_tool_calls: u64,
    #[command(flatten)]
    pub front: FrontArgs,
}

/// The HTTP front's defences: which `Host` names reach the bridge, and the bounds on
/// connections and request bodies that keep slow or flooding peers from exhausting it.
#[derive(Debug, Clone, Args)]
pub struct FrontArgs {
    /// Extra names the `Host` header may carry besides localhost and IP addresses (DNS
    /// rebinding defence): `name` (any port) or `name:port`; `*` allows any (only behind a
    /// proxy that checks it). Repeatable; comma-separated in the environment.
    #[arg(
        long = "allow-host",
        env = "SAMPLING2API_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Open connections at most; more are closed as soon as they are accepted. The process's
    /// file limit is raised at start where the hard limit allows, and lowers this if needed.
    #[arg(long, default_value_t = 16_384, env = "SAMPLING2API_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a connection may take to send a request's headers, and may sit idle with no
    /// request open (keep-alive, HTTP/2, or a peer that never sends a byte) before it is closed.
    #[arg(long, default_value_t = 30, env = "SAMPLING2API_HEADER_READ_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
    /// Seconds a request's body may take to arrive in full (408 after).
    #[arg(long, default_value_t = 120, env = "SAMPLING2API_BODY_READ_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout_secs: u64,
    /// Bytes of request bodies being received at once, across all connections; a body that
    /// would pass it fails with 529 (retryable). Memory follows bytes received, never a
    /// declared Content-Length.
    #[arg(long, default_value_t = 256 * 1024 * 1024, env = "SAMPLING2API_MAX_RECEIVING_BYTES")]
    pub max_receiving_bytes: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 1000, env = "SAMPLING2API_H2_MAX_STREAMS", value_parser = clap::value_parser!(u32).range(1..))]
    pub h2_max_streams: u32,
}

/// Bounds on fetching `url` images, per API request: one request's downloads, finished or in
/// progress, hold at most `max_url_image_bytes_total` received bytes, kept as base64 (a third
/// more).
#[derive(Debug, Clone, Args)]
pub struct UrlImageLimits {
    /// `url` images one request may carry (more: 400 before anything is fetched; 0 refuses
    /// every `url` image). The Messages API allows 100 images, but URLs are rare in practice,
    /// and each one is a connection the bridge makes on a caller's behalf.
    #[arg(long, default_value_t = 20, env = "SAMPLING2API_MAX_URL_IMAGES")]
    pub max_url_images: usize,
    /// Largest single image downloaded, in bytes (larger: 400). Twice the API's 5 MB per image,
    /// since URLs often point at originals that the client may downscale.
    #[arg(long, default_value_t = 10 * 1024 * 1024, env = "SAMPLING2API_MAX_URL_IMAGE_BYTES")]
    pub max_url_image_bytes: usize,
    /// Most bytes downloaded for all `url` images of one request (more: 400). 24 MiB is 32 MiB
    /// as base64, the most a request with those images inline could carry.
    #[arg(long, default_value_t = 24 * 1024 * 1024, env = "SAMPLING2API_MAX_URL_IMAGE_BYTES_TOTAL")]
    pub max_url_image_bytes_total: usize,
    /// Downloads one request runs at once.
    #[arg(long, default_value_t = 4, env = "SAMPLING2API_URL_IMAGE_CONCURRENCY", value_parser = clap::value_parser!(u16).range(1..))]
    pub url_image_concurrency: u16,
}

/// What the command line asks for: run the bridge in a mode, or configure a client and exit.
#[derive(Debug)]
pub enum Invocation {
    Bridge(Cli),
    Connect(ConnectArgs),
}

impl Invocation {
    /// `connect` is added to the modes here rather than in `Mode`, so that code matching on a
    /// running mode never sees it.
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let connect = ConnectArgs::augment_args(clap::Command::new("connect"));
        let matches = Cli::command()
            .subcommand(connect)
            .try_get_matches_from(args)?;
        match matches.subcommand() {
            Some(("connect", sub)) => {
                let mut args = ConnectArgs::from_arg_matches(sub)?;
                args.note_sources(sub);
                Ok(Invocation::Connect(args))
            }
            sub => {
                let mut cli = Cli::from_arg_matches(&matches)?;
                if let Some((_, sub)) = sub {
                    cli.mode.common_mut().keys.note_sources(sub);
                }
                Ok(Invocation::Bridge(cli))
            }
        }
    }

    pub fn parse() -> Self {
        Self::try_parse_from(std::env::args_os()).unwrap_or_else(|err| err.exit())
    }
}

fn parse_alias(text: &str) -> Result<(String, String), String> {
    sampling2api_core::api::models::ModelCatalog::parse_alias(text)
}

/// Settings the API side needs, whatever the mode.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub ping_interval: Duration,
    pub allow_private_image_urls: bool,
    pub url_images: UrlImageLimits,
    pub allow_origins: Vec<String>,
    pub log_prompts: bool,
    pub api_keys: Vec<String>,
    pub model_aliases: Vec<(String, String)>,
    pub default_model_hint: Option<String>,
    pub max_in_flight_per_session: usize,
    pub max_queued_per_session: usize,
    pub max_resend_bytes: usize,
    pub body_read_timeout: Duration,
    pub max_receiving_bytes: usize,
    pub allow_hosts: Vec<String>,
    pub max_client_queue_bytes: usize,
    pub max_reported_models: usize,
    pub tool_mode: ToolMode,
    pub max_emulated_tool_calls: usize,
}

impl Mode {
    pub fn common(&self) -> &CommonArgs {
        match self {
            Mode::Stdio(args) => &args.common,
            Mode::Http(args) => &args.common,
        }
    }

    pub fn common_mut(&mut self) -> &mut CommonArgs {
        match self {
            Mode::Stdio(args) => &mut args.common,
            Mode::Http(args) => &mut args.common,
        }
    }
}

impl HttpArgs {
    /// How long a request waits for a client to open its event stream (clamped as the worker's).
    pub fn stream_wait(&self) -> Duration {
        settings::STREAM_WAIT_MS.millis(self.stream_wait_ms)
    }

    /// How long a session without a stream or a request lives (clamped as the worker's).
    pub fn session_idle(&self) -> Duration {
        settings::SESSION_IDLE_SECS.secs(self.session_idle_secs)
    }
}

impl CommonArgs {
    /// Refuses to expose the bridge beyond this machine without a key, unless told to.
    pub fn check_exposure(&self) -> Result<(), String> {
        let api_keys: Vec<&String> = self
            .keys
            .api_keys
            .iter()
            .filter(|k| !k.is_empty())
            .collect();
        if !self.listen.ip().is_loopback() && api_keys.is_empty() && !self.allow_unauthenticated {
            return Err(format!(
                "refusing to listen on {} without an API key: anyone who can reach it could use the connected \
                 clients' models. Set --api-key (or SAMPLING2API_API_KEYS), or pass --allow-unauthenticated",
                self.listen
            ));
        }
        Ok(())
    }
}

impl From<&CommonArgs> for ApiSettings {
    fn from(args: &CommonArgs) -> Self {
        ApiSettings {
            request_timeout: settings::REQUEST_TIMEOUT_SECS.secs(args.request_timeout_secs),
            max_body_bytes: settings::MAX_BODY_BYTES.count(args.max_body_bytes),
            ping_interval: settings::PING_INTERVAL_MS.millis(args.ping_interval_ms),
            allow_private_image_urls: args.allow_private_image_urls,
            url_images: args.url_images.clone(),
            allow_origins: args.allow_origins.clone(),
            log_prompts: args.log_prompts,
            api_keys: args
                .keys
                .api_keys
                .iter()
                .filter(|k| !k.is_empty())
                .cloned()
                .collect(),
            model_aliases: args.model_aliases.clone(),
            default_model_hint: args.default_model_hint.clone(),
            max_in_flight_per_session: settings::MAX_IN_FLIGHT_PER_SESSION
                .count(args.max_in_flight_per_session),
            max_queued_per_session: settings::MAX_QUEUED_PER_SESSION
                .count(args.max_queued_per_session),
            max_resend_bytes: settings::MAX_RESEND_BYTES.count(args.max_resend_bytes),
            body_read_timeout: Duration::from_secs(args.front.body_read_timeout_secs),
            max_receiving_bytes: args.front.max_receiving_bytes,
            allow_hosts: args.front.allow_hosts.clone(),
            max_client_queue_bytes: args.max_client_queue_bytes,
            max_reported_models: settings::MAX_REPORTED_MODELS.count(args.max_reported_models),
            tool_mode: args.tool_mode,
            max_emulated_tool_calls: settings::MAX_EMULATED_TOOL_CALLS
                .count(args.max_emulated_tool_calls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(args: &[&str]) -> CommonArgs {
        let mut argv = vec!["sampling2api", "http"];
        argv.extend_from_slice(args);
        match Invocation::try_parse_from(argv).unwrap() {
            Invocation::Bridge(Cli {
                mode: Mode::Http(http),
            }) => http.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn exposure_beyond_loopback_needs_a_key_or_an_explicit_opt_out() {
        assert!(common(&[]).check_exposure().is_ok());
        assert!(common(&["--listen", "[::1]:9"]).check_exposure().is_ok());
        let err = common(&["--listen", "0.0.0.0:9"])
            .check_exposure()
            .unwrap_err();
        assert!(err.contains("--allow-unauthenticated"));
        assert!(
            common(&["--listen", "0.0.0.0:9", "--api-key", "k"])
                .check_exposure()
                .is_ok()
        );
        assert!(
            common(&["--listen", "10.0.0.1:9", "--allow-unauthenticated"])
                .check_exposure()
                .is_ok()
        );
        assert!(
            common(&["--listen", "0.0.0.0:9", "--api-key", ""])
                .check_exposure()
                .is_err()
        );
    }

    #[test]
    fn url_image_limits_default_as_documented_and_can_be_set() {
        let limits = common(&[]).url_images;
        assert_eq!(limits.max_url_images, 20);
        assert_eq!(limits.max_url_image_bytes, 10 * 1024 * 1024);
        assert_eq!(limits.max_url_image_bytes_total, 24 * 1024 * 1024);
        assert_eq!(limits.url_image_concurrency, 4);
        let limits = common(&[
            "--max-url-images",
            "0",
            "--max-url-image-bytes",
            "1",
            "--max-url-image-bytes-total",
            "2",
            "--url-image-concurrency",
            "9",
        ])
        .url_images;
        assert_eq!(
            (
                limits.max_url_images,
                limits.max_url_image_bytes,
                limits.max_url_image_bytes_total,
                limits.url_image_concurrency
            ),
            (0, 1, 2, 9)
        );
        assert!(
            Cli::try_parse_from(["sampling2api", "http", "--url-image-concurrency", "0"]).is_err()
        );
    }

    #[test]
    fn aliases_and_keys_parse() {
        let args = common(&[
            "--model-alias",
            "a=b",
            "--model-alias",
            "c=d",
            "--api-key",
            "k1",
            "--api-key",
            "k2",
        ]);
        assert_eq!(
            args.model_aliases,
            vec![("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert_eq!(args.keys.api_keys, vec!["k1", "k2"]);
        assert!(args.keys.on_command_line);
        assert!(Cli::try_parse_from(["sampling2api", "http", "--model-alias", "nohint"]).is_err());
    }

    #[test]
    fn growth_bounds_have_defaults_and_flags() {
        let defaults = ApiSettings::from(&common(&[]));
        assert_eq!(defaults.max_client_queue_bytes, 64 * 1024 * 1024);
        // The default queue admits a request of the default largest body.
        assert!(defaults.max_client_queue_bytes >= defaults.max_body_bytes);
        assert_eq!(defaults.max_reported_models, 256);
        assert_eq!(defaults.max_emulated_tool_calls, 128);
        let set = ApiSettings::from(&common(&[
            "--max-client-queue-bytes",
            "1000",
            "--max-reported-models",
            "3",
            "--max-emulated-tool-calls",
            "5",
        ]));
        assert_eq!(
            (
                set.max_client_queue_bytes,
                set.max_reported_models,
                set.max_emulated_tool_calls
            ),
            (1000, 3, 5)
        );
        let zero = ApiSettings::from(&common(&["--max-emulated-tool-calls", "0"]));
        assert_eq!(zero.max_emulated_tool_calls, 1, "raised to its minimum");
        let Mode::Stdio(stdio) =
            Cli::try_parse_from(["sampling2api", "stdio", "--max-client-line-bytes", "4096"])
                .unwrap()
                .mode
        else {
            unreachable!()
        };
        assert_eq!(stdio.max_client_line_bytes, 4096);
        let Mode::Http(http) = Cli::try_parse_from(["sampling2api", "http"]).unwrap().mode else {
            unreachable!()
        };
        assert_eq!(http.max_sessions, 1024);
        assert!(Cli::try_parse_from(["sampling2api", "http", "--max-sessions", "0"]).is_err());
    }

    #[test]
    fn the_command_line_runs_a_mode_or_connects_a_client() {
        let bridge =
            Invocation::try_parse_from(["sampling2api", "http", "--listen", "127.0.0.1:9"]);
        let Ok(Invocation::Bridge(Cli {
            mode: Mode::Http(http),
        })) = bridge
        else {
            panic!("{bridge:?}")
        };
        assert_eq!(http.common.listen.port(), 9);
        let connect =
            Invocation::try_parse_from(["sampling2api", "connect", "claude-code", "--write"]);
        let Ok(Invocation::Connect(args)) = connect else {
            panic!("{connect:?}")
        };
        assert!(args.write && args.clients == [crate::connect::Client::ClaudeCode]);
        assert!(Invocation::try_parse_from(["sampling2api"]).is_err());
        assert!(Invocation::try_parse_from(["sampling2api", "connect", "emacs"]).is_err());
    }

    #[test]
    fn shared_settings_default_and_clamp_as_the_core_says() {
        let Mode::Http(http) = Cli::try_parse_from(["sampling2api", "http"]).unwrap().mode else {
            unreachable!()
        };
        let defaults = ApiSettings::from(&http.common);
        assert_eq!(defaults.request_timeout, Duration::from_secs(600));
        assert_eq!(defaults.ping_interval, Duration::from_secs(10));
        assert_eq!(defaults.max_body_bytes, 32 * 1024 * 1024);
        assert_eq!(defaults.max_in_flight_per_session, 256);
        assert_eq!(defaults.max_queued_per_session, 4096);
        assert_eq!(http.stream_wait(), Duration::from_secs(3));
        assert_eq!(http.session_idle(), Duration::from_secs(120));
        let Mode::Http(zeros) = Cli::try_parse_from([
            "sampling2api",
            "http",
            "--request-timeout-secs",
            "0",
            "--ping-interval-ms",
            "0",
            "--max-in-flight-per-session",
            "0",
            "--max-queued-per-session",
            "0",
            "--stream-wait-ms",
            "0",
            "--session-idle-secs",
            "0",
        ])
        .unwrap()
        .mode
        else {
            unreachable!()
        };
        let clamped = ApiSettings::from(&zeros.common);
        assert_eq!(clamped.request_timeout, Duration::from_secs(1));
        assert_eq!(clamped.ping_interval, Duration::from_millis(10));
        assert_eq!(clamped.max_in_flight_per_session, 1);
        assert_eq!(clamped.max_queued_per_session, 0);
        assert_eq!(zeros.stream_wait(), Duration::ZERO);
        assert_eq!(zeros.session_idle(), Duration::from_secs(1));
    }

    #[test]
    fn tool_mode_defaults_to_auto_and_parses() {
        assert_eq!(common(&[]).tool_mode, ToolMode::Auto);
        assert_eq!(common(&["--tools", "native"]).tool_mode, ToolMode::Native);
        assert_eq!(common(&["--tools", "emulate"]).tool_mode, ToolMode::Emulate);
        assert!(Cli::try_parse_from(["sampling2api", "http", "--tools", "maybe"]).is_err());
    }
}
