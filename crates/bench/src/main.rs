//! `sampling2api-bench`: measures the bridge's own cost.
//!
//! It starts the release binary, acts as an instant MCP client (answers every
//! `sampling/createMessage` at once, or after `--answer-delay-ms`), and drives `POST
//! /v1/messages` over exactly `--connections` keep-alive HTTP/1.1 connections. It reports
//! requests/s, latency and time-to-first-byte percentiles, and the bridge process's CPU time
//! per request (user + system, from /proc, all threads).
//!
//! Linux only: it reads /proc. It builds everywhere and says so when run elsewhere.
//!
//! The bench runs on one thread so that it takes as little CPU from the bridge as it can.
//!
//! `--payload large` sends a 6 MB base64 image plus 1 MB of text and also reports the floor:
//! the time and peak heap of one `serde_json` parse + serialise of the same body, in-process.
//! `--mode external --url … --token …` drives a deployment it did not start (the worker under
//! `wrangler dev`, see `scripts/bench-worker`), acting as its MCP client over Streamable HTTP;
//! `--measure-pid` names the processes whose CPU time counts.

use std::alloc::System;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use peakmem_alloc::{INSTRUMENTED_SYSTEM, PeakMemAlloc, PeakMemAllocTrait};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// The system allocator, instrumented to measure the floor's peak heap.
#[global_allocator]
static ALLOCATOR: &PeakMemAlloc<System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Stdio,
    Http,
    /// A deployment the bench did not start (`--url`).
    External,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Payload {
    /// One short user message.
    Small,
    /// A 6 MB base64 PNG and 1 MB of text.
    Large,
}

#[derive(Debug, Parser)]
#[command(about = "Load benchmark for sampling2api with an instant in-process MCP client")]
struct Args {
    /// The bridge binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/sampling2api")]
    bridge: PathBuf,
    #[arg(long, value_enum, default_value = "stdio")]
    mode: Mode,
    /// Concurrent keep-alive connections to the API.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Ask for `stream: true` (SSE) responses.
    #[arg(long)]
    stream: bool,
    /// The MCP client answers after this many milliseconds (0: at once).
    #[arg(long, default_value_t = 0)]
    answer_delay_ms: u64,
    /// Loopback port for the bridge.
    #[arg(long, default_value_t = 38999)]
    port: u16,
    /// An extra flag for the bridge, e.g. `--bridge-arg=--max-in-flight-per-session=10000`.
    #[arg(long = "bridge-arg", allow_hyphen_values = true)]
    bridge_args: Vec<String>,
    #[arg(long, value_enum, default_value = "small")]
    payload: Payload,
    /// With `--mode external`: the deployment's loopback base URL, e.g. `http://127.0.0.1:8787`.
    #[arg(long)]
    url: Option<String>,
    /// Sent as `Authorization: Bearer` on every request (the worker needs one).
    #[arg(long)]
    token: Option<String>,
    /// With `--mode external`: processes whose CPU time is the deployment's (repeatable).
    #[arg(long = "measure-pid")]
    measure_pids: Vec<u32>,
    /// Send the load over HTTP/2 (prior knowledge): `--connections` concurrent requests
    /// multiplexed over `--http2-connections` connections.
    #[arg(long)]
    http2: bool,
    #[arg(long, default_value_t = 8)]
    http2_connections: usize,
    /// Besides the measured load, this many connections send the large payload (6 MB image,
    /// 1 MB text) back to back, unmeasured: how much large requests slow everyone else.
    #[arg(long, default_value_t = 0)]
    alongside_large: usize,
    /// Instead of load: open this many keep-alive connections that each make one request
    /// (`--idle-request`) and then sit idle, and report the bridge's memory per connection
    /// (with `--http2`, h2c connections).
    #[arg(long, default_value_t = 0)]
    idle_connections: usize,
    /// With `--idle-connections`: the one request each connection makes before it goes idle.
    #[arg(long, value_enum, default_value = "health")]
    idle_request: IdleRequest,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum IdleRequest {
    /// `GET /health`: small request, small response.
    Health,
    /// `POST /v1/messages` with the small payload, answered by the instant client.
    Message,
}

/// Where the load goes: `host:port`, and the token every request carries.
#[derive(Debug, Clone)]
struct Target {
    address: String,
    token: Option<String>,
}

impl Target {
    /// An HTTP/1.1 request: origin-form target plus Host, as HTTP/1.1 clients send it (hyper's
    /// connection-level client adds no Host of its own, and workerd refuses an absolute-form
    /// target).
    fn request(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        self.authorized(
            Request::builder()
                .method(method)
                .uri(path)
                .header("host", &self.address),
        )
    }

    /// An HTTP/2 request: the authority travels in the URI (`:authority`), not in Host.
    fn http2_request(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        self.authorized(
            Request::builder()
                .method(method)
                .uri(format!("http://{}{path}", self.address)),
        )
    }

    fn authorized(&self, builder: hyper::http::request::Builder) -> hyper::http::request::Builder {
        match &self.token {
            Some(token) => builder.header("authorization", format!("Bearer {token}")),
            None => builder,
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    // The CPU and memory figures come from /proc; elsewhere the bench builds (so the workspace
    // checks for every platform) but refuses to run rather than report half its numbers.
    if !cfg!(target_os = "linux") {
        return Err(
            "sampling2api-bench reads CPU time and memory from /proc and runs on Linux \
             only (the `emulation` bench runs anywhere)"
                .into(),
        );
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let delay = Duration::from_millis(args.answer_delay_ms);
    let mode_name = match args.mode {
        Mode::Stdio => "stdio",
        Mode::Http => "http",
        Mode::External => "external",
    };
    let (target, bridge, measured_pids) = match args.mode {
        Mode::External => {
            let url = args.url.as_deref().ok_or("--mode external needs --url")?;
            let address = url
                .strip_prefix("http://")
                .ok_or("--url must be http://host:port")?
                .trim_end_matches('/')
                .to_string();
            let target = Target {
                address,
                token: args.token.clone(),
            };
            http_client(&target, delay).await?;
            (target, None, args.measure_pids.clone())
        }
        Mode::Stdio | Mode::Http => {
            let target = Target {
                address: format!("127.0.0.1:{}", args.port),
                token: args.token.clone(),
            };
            let mut command = tokio::process::Command::new(&args.bridge);
            command
                .args([mode_name, "--listen", &target.address, "--log", "warn"])
                .args(&args.bridge_args)
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if matches!(args.mode, Mode::Stdio) {
                command.stdin(Stdio::piped()).stdout(Stdio::piped());
            }
            let mut bridge = command.spawn()?;
            let pid = bridge.id().ok_or("bridge has no pid")?;
            if matches!(args.mode, Mode::Stdio) {
                let stdin = bridge.stdin.take().ok_or("no stdin")?;
                let stdout = bridge.stdout.take().ok_or("no stdout")?;
                stdio_client(stdin, stdout, delay).await?;
                wait_listening(&target.address).await?;
            } else {
                wait_listening(&target.address).await?;
                http_client(&target, delay).await?;
            }
            (target, Some(bridge), vec![pid])
        }
    };

    wait_for_sampling_session(&target).await?;
    let idle_rss_kb = total_memory_kb(&measured_pids, "VmRSS:")?;
    let body = Bytes::from(request_body(args.payload, args.stream)?);
    if args.idle_connections > 0 {
        let report = idle_connections(&args, &target, &measured_pids, idle_rss_kb, body).await?;
        if let Some(mut bridge) = bridge {
            let _ = bridge.start_kill();
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let floor = match args.payload {
        Payload::Large => Some(parse_serialise_floor(&body)?),
        Payload::Small => None,
    };
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut shared = Vec::new();
    if args.http2 {
        for _ in 0..args.http2_connections.max(1) {
            shared.push(connect_http2(&target.address).await?);
        }
    }
    let mut workers = Vec::new();
    for index in 0..args.connections {
        let sender = match shared.get(index % shared.len().max(1)) {
            Some(connection) => LoadSender::Http2(connection.clone()),
            None => LoadSender::Http1(connect(&target.address).await?),
        };
        workers.push(tokio::spawn(load(
            sender,
            target.clone(),
            body.clone(),
            measuring.clone(),
            stop.clone(),
            errors.clone(),
        )));
    }
    let never_measured = Arc::new(AtomicBool::new(false));
    if args.alongside_large > 0 {
        let large = Bytes::from(request_body(Payload::Large, false)?);
        for _ in 0..args.alongside_large {
            workers.push(tokio::spawn(load(
                LoadSender::Http1(connect(&target.address).await?),
                target.clone(),
                large.clone(),
                never_measured.clone(),
                stop.clone(),
                errors.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let cpu_before = total_cpu_seconds(&measured_pids)?;
    let started = Instant::now();
    measuring.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Release);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = total_cpu_seconds(&measured_pids)?;
    let peak_rss_kb = total_memory_kb(&measured_pids, "VmHWM:")?;
    stop.store(true, Ordering::Release);

    let mut latencies = Vec::new();
    let mut first_bytes = Vec::new();
    for worker in workers {
        let samples = worker.await??;
        latencies.extend(samples.iter().map(|s| s.0));
        first_bytes.extend(samples.iter().map(|s| s.1));
    }
    if let Some(mut bridge) = bridge {
        let _ = bridge.start_kill();
    }
    let count = latencies.len();
    if count == 0 {
        return Err("no request completed".into());
    }
    latencies.sort_unstable();
    first_bytes.sort_unstable();
    let cpu_us = (cpu_after - cpu_before) / count as f64 * 1e6;
    let measured = !measured_pids.is_empty();
    let mut report = json!({
        "mode": mode_name,
        "stream": args.stream,
        "payload": format!("{:?}", args.payload).to_lowercase(),
        "request_bytes": body.len(),
        "connections": args.connections,
        "alongside_large": args.alongside_large,
        "http2_connections": args.http2.then_some(args.http2_connections),
        "answer_delay_ms": args.answer_delay_ms,
        "requests": count,
        "errors": errors.load(Ordering::Relaxed),
        "requests_per_second": (count as f64 / elapsed * 10.0).round() / 10.0,
        "latency_ms": {"p50": pct(&latencies, 50.0), "p99": pct(&latencies, 99.0), "max": pct(&latencies, 100.0)},
        "first_byte_ms": {"p50": pct(&first_bytes, 50.0), "p99": pct(&first_bytes, 99.0)},
        "bridge_cpu_us_per_request": measured.then(|| (cpu_us * 10.0).round() / 10.0),
        "bridge_idle_rss_mb": measured.then_some(idle_rss_kb / 1024),
        "bridge_peak_rss_mb": measured.then_some(peak_rss_kb / 1024),
    });
    if let Some(floor) = floor {
        report["floor"] = json!({
            "parse_serialise_ms": floor.millis,
            "parse_serialise_peak_heap_mb": floor.peak_heap_bytes as f64 / 1_048_576.0,
            "latency_p50_over_floor": pct(&latencies, 50.0) / floor.millis,
            "bridge_cpu_over_floor": measured.then(|| cpu_us / 1000.0 / floor.millis),
            "bridge_peak_rss_growth_over_floor_heap": measured.then(|| {
                (peak_rss_kb.saturating_sub(idle_rss_kb) * 1024) as f64 / floor.peak_heap_bytes as f64
            }),
        });
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// `--idle-connections`: opens the connections, each makes its one request, then all sit
/// idle while the bridge's resident memory is read; the growth over the bridge's memory before
/// they opened, divided by their number, is the cost of one idle connection.
async fn idle_connections(
    args: &Args,
    target: &Target,
    measured_pids: &[u32],
    idle_rss_kb: u64,
    body: Bytes,
) -> Result<Value, BoxError> {
    let mut open = Vec::with_capacity(args.idle_connections);
    let mut errors = 0u64;
    for _ in 0..args.idle_connections {
        let mut sender = if args.http2 {
            LoadSender::Http2(connect_http2(&target.address).await?)
        } else {
            LoadSender::Http1(connect(&target.address).await?)
        };
        let http2 = args.http2;
        let request = match (args.idle_request, http2) {
            (IdleRequest::Health, false) => target.request("GET", "/health"),
            (IdleRequest::Health, true) => target.http2_request("GET", "/health"),
            (IdleRequest::Message, false) => target.request("POST", "/v1/messages"),
            (IdleRequest::Message, true) => target.http2_request("POST", "/v1/messages"),
        };
        let request_body = match args.idle_request {
            IdleRequest::Health => Bytes::new(),
            IdleRequest::Message => body.clone(),
        };
        let request = request
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .body(Full::new(request_body))?;
        let response = sender.send(request).await?;
        let ok = response.status().is_success();
        let ended = response.into_body().collect().await.is_ok();
        if !(ok && ended) {
            errors += 1;
        }
        open.push(sender);
    }
    // Let the bridge finish with the last responses before reading its memory.
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let rss_kb = total_memory_kb(measured_pids, "VmRSS:")?;
    let per_connection_kb =
        rss_kb.saturating_sub(idle_rss_kb) as f64 / args.idle_connections as f64;
    let report = json!({
        "idle_connections": args.idle_connections,
        "http2": args.http2,
        "idle_request": format!("{:?}", args.idle_request).to_lowercase(),
        "errors": errors,
        "bridge_rss_before_kb": idle_rss_kb,
        "bridge_rss_idle_connections_kb": rss_kb,
        "bridge_rss_per_idle_connection_kb": (per_connection_kb * 10.0).round() / 10.0,
    });
    drop(open);
    Ok(report)
}

/// The request the load sends.
fn request_body(payload: Payload, stream: bool) -> Result<Vec<u8>, BoxError> {
    let content = match payload {
        Payload::Small => json!("Say hi in one word."),
        Payload::Large => {
            let image = base64::engine::general_purpose::STANDARD.encode(large_png());
            let text = "The quick brown fox jumps over the lazy dog. ".repeat(1024 * 1024 / 45 + 1);
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
                {"type": "text", "text": text},
            ])
        }
    };
    Ok(serde_json::to_vec(&json!({
        "model": "claude-bench",
        "max_tokens": 16,
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }))?)
}

/// A PNG signature and header (4096 × 4096) followed by pseudo-random bytes: 4.5 MB that
/// base64 makes 6 MB. The bridge reads only the header.
fn large_png() -> Vec<u8> {
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(b"IHDR");
    png.extend_from_slice(&4096u32.to_be_bytes());
    png.extend_from_slice(&4096u32.to_be_bytes());
    png.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    while png.len() < 6 * 1024 * 1024 / 4 * 3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        png.extend_from_slice(&state.to_le_bytes());
    }
    png
}

struct Floor {
    millis: f64,
    peak_heap_bytes: usize,
}

/// The cheapest a JSON proxy could be: parse the body into a `Value` and serialise it again.
/// The median of 7 runs, and the heap that run needed beyond the body itself.
fn parse_serialise_floor(body: &[u8]) -> Result<Floor, BoxError> {
    let mut runs = Vec::new();
    let mut peak_heap_bytes = 0;
    for _ in 0..7 {
        ALLOCATOR.reset_peak_memory();
        let started = Instant::now();
        let value: Value = serde_json::from_slice(body)?;
        let again = serde_json::to_vec(&value)?;
        runs.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(&again);
        drop((value, again));
        peak_heap_bytes = ALLOCATOR.get_peak_memory();
    }
    runs.sort_by(f64::total_cmp);
    Ok(Floor {
        millis: runs[runs.len() / 2],
        peak_heap_bytes,
    })
}

fn pct(sorted_micros: &[u64], percentile: f64) -> f64 {
    let index = ((percentile / 100.0) * (sorted_micros.len() - 1) as f64).round() as usize;
    (sorted_micros[index.min(sorted_micros.len() - 1)] as f64 / 10.0).round() / 100.0
}

fn total_cpu_seconds(pids: &[u32]) -> Result<f64, BoxError> {
    pids.iter().map(|pid| process_cpu_seconds(*pid)).sum()
}

fn total_memory_kb(pids: &[u32], field: &str) -> Result<u64, BoxError> {
    pids.iter().map(|pid| memory_kb(*pid, field)).sum()
}

/// User + system CPU seconds of a process, all its threads.
fn process_cpu_seconds(pid: u32) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) / clock_ticks_per_second())
}

/// A memory figure of the process from /proc (`VmRSS:` now, `VmHWM:` peak), in kB.
fn memory_kb(pid: u32, field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .ok_or("no such field")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn wait_listening(address: &str) -> Result<(), BoxError> {
    for _ in 0..200 {
        if TcpStream::connect(address).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Err(format!("bridge never listened on {address}").into())
}

/// Load must not start before the client's `notifications/initialized` is processed, or the
/// first requests are (rightly) refused with 503.
async fn wait_for_sampling_session(target: &Target) -> Result<(), BoxError> {
    let mut sender = connect(&target.address).await?;
    for _ in 0..200 {
        let request = target
            .request("GET", "/health")
            .body(Full::new(Bytes::new()))?;
        let body = sender
            .send_request(request)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        let health: Value = serde_json::from_slice(&body)?;
        if health["sampling_sessions"].as_u64().unwrap_or(0) >= 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the instant client never became ready".into())
}

/// Queues the answer to request `id`, at once or after `delay`.
fn answer_after(answers: &mpsc::UnboundedSender<String>, id: &Value, delay: Duration) {
    let answer = sampling_answer(id);
    if delay.is_zero() {
        let _ = answers.send(answer);
    } else {
        let answers = answers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = answers.send(answer);
        });
    }
}

fn sampling_answer(id: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": {
        "role": "assistant", "content": {"type": "text", "text": "Hi!"},
        "model": "bench-instant", "stopReason": "endTurn"}})
    .to_string()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{"tools":{}}},"clientInfo":{"name":"bench","version":"1"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The instant client over the bridge's stdin/stdout.
async fn stdio_client(
    mut stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    delay: Duration,
) -> Result<(), BoxError> {
    let mut lines = BufReader::new(stdout);
    stdin
        .write_all(format!("{INITIALIZE}\n").as_bytes())
        .await?;
    let mut line = String::new();
    lines.read_line(&mut line).await?;
    stdin
        .write_all(format!("{INITIALIZED}\n").as_bytes())
        .await?;
    stdin.flush().await?;
    let (answers, mut outgoing) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Some(first) = outgoing.recv().await {
            buffer.clear();
            buffer.extend_from_slice(first.as_bytes());
            buffer.push(b'\n');
            while let Ok(next) = outgoing.try_recv() {
                buffer.extend_from_slice(next.as_bytes());
                buffer.push(b'\n');
            }
            if stdin.write_all(&buffer).await.is_err() || stdin.flush().await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some(id) = sampling_request_id(line.as_bytes()) {
                answer_after(&answers, &id, delay);
            }
        }
    });
    Ok(())
}

/// The id of a `sampling/createMessage` request; its params are skipped, not built, so a
/// large request costs the client a scan, not a copy.
fn sampling_request_id(message: &[u8]) -> Option<Value> {
    #[derive(Deserialize)]
    struct Incoming {
        id: Option<Value>,
        method: Option<String>,
    }
    let incoming: Incoming = serde_json::from_slice(message).ok()?;
    (incoming.method.as_deref() == Some("sampling/createMessage"))
        .then_some(incoming.id)
        .flatten()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type Http2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

/// One load worker's way to send: its own HTTP/1.1 connection, or a share of an HTTP/2 one.
enum LoadSender {
    Http1(Sender),
    Http2(Http2Sender),
}

impl LoadSender {
    async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            LoadSender::Http1(sender) => sender.send_request(request).await,
            LoadSender::Http2(sender) => sender.send_request(request).await,
        }
    }
}

async fn connect_http2(address: &str) -> Result<Http2Sender, BoxError> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_reset_streams(usize::MAX)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn connect(address: &str) -> Result<Sender, BoxError> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The instant client over Streamable HTTP: GET stream in, one POST per answer.
async fn http_client(target: &Target, delay: Duration) -> Result<(), BoxError> {
    let mut control = connect(&target.address).await?;
    let init = control
        .send_request(mcp_post(target, None, INITIALIZE)?)
        .await?;
    let status = init.status();
    let Some(session) = init
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
    else {
        let body = init.into_body().collect().await?.to_bytes();
        return Err(format!(
            "initialize got HTTP {status} without a session id: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    };
    init.into_body().collect().await?;
    control
        .send_request(mcp_post(target, Some(&session), INITIALIZED)?)
        .await?
        .into_body()
        .collect()
        .await?;
    let (answers, outgoing) = mpsc::unbounded_channel::<String>();
    let outgoing = Arc::new(tokio::sync::Mutex::new(outgoing));
    for _ in 0..8 {
        let mut poster = connect(&target.address).await?;
        let outgoing = outgoing.clone();
        let session = session.clone();
        let target = target.clone();
        tokio::spawn(async move {
            loop {
                let next = outgoing.lock().await.recv().await;
                let Some(answer) = next else { return };
                let Ok(request) = mcp_post(&target, Some(&session), &answer) else {
                    return;
                };
                match poster.send_request(request).await {
                    Ok(response) => {
                        let _ = response.into_body().collect().await;
                    }
                    Err(_) => return,
                }
            }
        });
    }
    let mut stream_connection = connect(&target.address).await?;
    let request = target
        .request("GET", "/mcp")
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(Full::new(Bytes::new()))?;
    let response = stream_connection.send_request(request).await?;
    let mut body = response.into_body();
    tokio::spawn(async move {
        let mut pending = Vec::<u8>::new();
        // Where the search for the next event's end resumes: a large event arrives in many
        // frames, and rescanning it from the start for each would be quadratic.
        let mut scanned = 0;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending[scanned..]
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| scanned + at)
            {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                scanned = 0;
                let Some(data) = event
                    .split(|byte| *byte == b'\n')
                    .find_map(|line| line.strip_prefix(b"data: "))
                else {
                    continue;
                };
                if let Some(id) = sampling_request_id(data) {
                    answer_after(&answers, &id, delay);
                }
            }
            scanned = pending.len().saturating_sub(1);
        }
    });
    // The stream must be registered before load starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

fn mcp_post(
    target: &Target,
    session: Option<&str>,
    body: &str,
) -> Result<Request<Full<Bytes>>, BoxError> {
    let mut request = target
        .request("POST", "/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    Ok(request.body(Full::new(Bytes::from(body.to_string())))?)
}

/// One connection's loop: (latency µs, first-byte µs) of each request finished while measuring.
async fn load(
    mut sender: LoadSender,
    target: Target,
    body: Bytes,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> Result<Vec<(u64, u64)>, BoxError> {
    let mut samples = Vec::new();
    let http2 = matches!(sender, LoadSender::Http2(_));
    while !stop.load(Ordering::Acquire) {
        let request = if http2 {
            target.http2_request("POST", "/v1/messages")
        } else {
            target.request("POST", "/v1/messages")
        };
        let request = request
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .body(Full::new(body.clone()))?;
        let started = Instant::now();
        let in_window = measuring.load(Ordering::Acquire);
        let response = sender.send(request).await?;
        let status = response.status();
        let ok = status.is_success();
        let mut body = response.into_body();
        let mut first_byte = None;
        let mut ended_ok = ok;
        let mut error_body = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if frame.is_data() && first_byte.is_none() {
                        first_byte = Some(started.elapsed());
                    }
                    if !ok && let Some(data) = frame.data_ref() {
                        error_body.extend_from_slice(data);
                    }
                }
                Err(_) => {
                    ended_ok = false;
                    break;
                }
            }
        }
        let latency = started.elapsed();
        if !ended_ok {
            if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                eprintln!(
                    "error: HTTP {status}: {}",
                    String::from_utf8_lossy(&error_body)
                );
            }
            continue;
        }
        if in_window && measuring.load(Ordering::Acquire) {
            samples.push((
                latency.as_micros() as u64,
                first_byte.unwrap_or(latency).as_micros() as u64,
            ));
        }
    }
    Ok(samples)
}
