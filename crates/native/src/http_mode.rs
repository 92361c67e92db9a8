//! http mode: MCP Streamable HTTP (2025-11-25, handshake era) at `--mcp-path` (served by
//! `api::mcp`), and the API on the same port; idle sessions are dropped here.

use std::process::ExitCode;
use std::sync::Arc;

use sampling2api_core::http::routes;

use crate::api;
use crate::bridge::Bridge;
use crate::config::{ApiSettings, HttpArgs};

pub async fn run(args: HttpArgs) -> ExitCode {
    if let Err(why) = routes::check_mcp_path(&args.mcp_path) {
        tracing::error!("--mcp-path: {why}");
        return ExitCode::FAILURE;
    }
    let Some((listener, address)) = crate::server::bind(args.common.listen).await else {
        return ExitCode::FAILURE;
    };
    let mut bridge = Bridge::new(ApiSettings::from(&args.common), "http");
    bridge.stream_wait = args.stream_wait();
    bridge.mcp_path = Arc::from(args.mcp_path.as_str());
    bridge.max_sessions = args.max_sessions as usize;
    bridge.session_idle = args.session_idle();
    let bridge = Arc::new(bridge);
    let app = api::app(bridge.clone(), true);
    tracing::info!(
        "sampling2api {} listening on http://{address} (http mode: MCP at http://{address}{}; tools: {})",
        env!("CARGO_PKG_VERSION"),
        args.mcp_path,
        bridge.settings.tool_mode.as_str()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::server::serve(listener, app, &args.common.front, shutdown).await;
    ExitCode::SUCCESS
}
