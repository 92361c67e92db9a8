//! `sampling2api`: an MCP client's sampling capability as an Anthropic-compatible API.
//!
//! Modules: `config` (flags), `stdio_mode` / `http_mode` (the two ways to run), `server` (the
//! accept loop: HTTP/1.1 and h2c, connection limits and idle parking), `request_body` (bodies
//! within their limits), `api` (the router from the core's route table; `api::context` is the
//! layer around every route, `api::error` the one error type, `api::flow` the sampling flow, and
//! one module per route, `api::mcp` included), `bridge` (sessions, routing, metrics), `session`
//! (the driver of one session's core `SessionLifecycle`: its lock, timer task and transmits;
//! `outbox` holds what waits for the client, withdrawn when its request ends unwritten),
//! `answer_stream` (a streamed answer), `batching`, `cpu_work` (large bodies off the runtime
//! thread), `image_fetch` (`url` images, SSRF policy), `status` (the status board), `metrics`,
//! `platform`, `connect` (`sampling2api connect`), `api_keys` (keys from flags, environment and a
//! key file), `local_files` (bounded reads of files a person names), `ids`.
//!
//! A request's path: `server` → `api::context` (Host/Origin/key/JSON checks, request id) → the
//! route's handler (`api::messages`, `api::chat_completions`) → `api::flow` (parse, convert,
//! `bridge.route` to a session) → `session.submit` → the session's lifecycle → the client (pipe
//! or `GET /mcp` stream) → its answer through `api::mcp` or the pipe → `session` → the response
//! (JSON, or SSE through `answer_stream`).

mod answer_stream;
mod api;
mod api_keys;
mod batching;
mod bridge;
mod config;
mod connect;
mod cpu_work;
mod http_mode;
mod ids;
mod image_fetch;
mod local_files;
mod metrics;
mod outbox;
mod platform;
mod request_body;
mod server;
mod session;
mod status;
mod stdio_mode;

use std::process::ExitCode;

use config::{Invocation, Mode};
use tracing_subscriber::EnvFilter;

// Requests allocate many small short-lived buffers (JSON, headers); mimalloc serves them at a
// fraction of glibc's cost, measured with the bench (see docs/performance.md). Building without the
// `mimalloc` feature leaves the system allocator, which heap profilers such as heaptrack see.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut cli = match Invocation::parse() {
        Invocation::Bridge(cli) => cli,
        // Prints or writes a client's configuration and exits: no runtime, no logging.
        Invocation::Connect(args) => return connect::run(&args),
    };
    let log_filter = &cli.mode.common().log;
    // Logs go to stderr in every mode: in stdio mode stdout is the MCP channel.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(EnvFilter::try_new(log_filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    match cli.mode.common_mut().keys.load() {
        Ok(loaded) => {
            for warning in loaded.warnings {
                tracing::warn!("{warning}");
            }
        }
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    }
    let common = cli.mode.common();
    if let Err(why) = common.check_exposure() {
        tracing::error!("{why}");
        return ExitCode::FAILURE;
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(usize::from(common.threads));
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match cli.mode {
            Mode::Stdio(args) => stdio_mode::run(args).await,
            Mode::Http(args) => http_mode::run(args).await,
        }
    });
    // Reading stdin occupies a blocking thread that runtime shutdown would wait for; the work
    // is done, so do not wait.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}
