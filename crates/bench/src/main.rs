//! `sampling2api-bench`: measures the bridge's own cost.
//!
//! It starts the release binary, acts as an instant MCP client (answers every
//! `sampling/createMessage` at once, or after `--answer-delay-ms`), and drives `POST
//! /v1/messages` over exactly `--connections` keep-alive HTTP/1.1 connections. It reports
//! requests/s, latency and time-to-first-byte percentiles, and the bridge process's CPU time
//! per request (user + system, from /proc, all threads).
//!
//! The bench runs on one thread so that it takes as little CPU from the bridge as it can.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Stdio,
    Http,
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
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let address = format!("127.0.0.1:{}", args.port);
    let mode_name = match args.mode {
        Mode::Stdio => "stdio",
        Mode::Http => "http",
    };
    let mut command = tokio::process::Command::new(&args.bridge);
    command
        .args([mode_name, "--listen", &address, "--log", "warn"])
        .args(&args.bridge_args)
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if matches!(args.mode, Mode::Stdio) {
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
    }
    let mut bridge = command.spawn()?;
    let pid = bridge.id().ok_or("bridge has no pid")?;
    let delay = Duration::from_millis(args.answer_delay_ms);

    match args.mode {
        Mode::Stdio => {
            let stdin = bridge.stdin.take().ok_or("no stdin")?;
            let stdout = bridge.stdout.take().ok_or("no stdout")?;
            stdio_client(stdin, stdout, delay).await?;
            wait_listening(&address).await?;
        }
        Mode::Http => {
            wait_listening(&address).await?;
            http_client(&address, delay).await?;
        }
    }

    wait_for_sampling_session(&address).await?;
    let idle_rss_kb = memory_kb(pid, "VmRSS:")?;
    let body = json!({
        "model": "claude-bench",
        "max_tokens": 16,
        "stream": args.stream,
        "messages": [{"role": "user", "content": "Say hi in one word."}],
    });
    let body = Bytes::from(body.to_string());
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        workers.push(tokio::spawn(load(
            address.clone(),
            body.clone(),
            measuring.clone(),
            stop.clone(),
            errors.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    let cpu_before = process_cpu_seconds(pid)?;
    let started = Instant::now();
    measuring.store(true, Ordering::Release);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    measuring.store(false, Ordering::Release);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = process_cpu_seconds(pid)?;
    let peak_rss_kb = memory_kb(pid, "VmHWM:")?;
    stop.store(true, Ordering::Release);

    let mut latencies = Vec::new();
    let mut first_bytes = Vec::new();
    for worker in workers {
        let samples = worker.await??;
        latencies.extend(samples.iter().map(|s| s.0));
        first_bytes.extend(samples.iter().map(|s| s.1));
    }
    let _ = bridge.start_kill();
    let count = latencies.len();
    if count == 0 {
        return Err("no request completed".into());
    }
    latencies.sort_unstable();
    first_bytes.sort_unstable();
    let cpu_us = (cpu_after - cpu_before) / count as f64 * 1e6;
    let report = json!({
        "mode": mode_name,
        "stream": args.stream,
        "connections": args.connections,
        "answer_delay_ms": args.answer_delay_ms,
        "requests": count,
        "errors": errors.load(Ordering::Relaxed),
        "requests_per_second": (count as f64 / elapsed).round(),
        "latency_ms": {"p50": pct(&latencies, 50.0), "p99": pct(&latencies, 99.0), "max": pct(&latencies, 100.0)},
        "first_byte_ms": {"p50": pct(&first_bytes, 50.0), "p99": pct(&first_bytes, 99.0)},
        "bridge_cpu_us_per_request": (cpu_us * 10.0).round() / 10.0,
        "bridge_idle_rss_mb": idle_rss_kb / 1024,
        "bridge_peak_rss_mb": peak_rss_kb / 1024,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn pct(sorted_micros: &[u64], percentile: f64) -> f64 {
    let index = ((percentile / 100.0) * (sorted_micros.len() - 1) as f64).round() as usize;
    (sorted_micros[index.min(sorted_micros.len() - 1)] as f64 / 10.0).round() / 100.0
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
async fn wait_for_sampling_session(address: &str) -> Result<(), BoxError> {
    let mut sender = connect(address).await?;
    for _ in 0..200 {
        let request =
            Request::get(format!("http://{address}/health")).body(Full::new(Bytes::new()))?;
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
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if message["method"] != "sampling/createMessage" {
                continue;
            }
            answer_after(&answers, &message["id"], delay);
        }
    });
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(address: &str) -> Result<Sender, BoxError> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The instant client over Streamable HTTP: GET stream in, one POST per answer.
async fn http_client(address: &str, delay: Duration) -> Result<(), BoxError> {
    let mut control = connect(address).await?;
    let init = control
        .send_request(mcp_post(address, None, INITIALIZE)?)
        .await?;
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .ok_or("no session id")?
        .to_string();
    init.into_body().collect().await?;
    control
        .send_request(mcp_post(address, Some(&session), INITIALIZED)?)
        .await?
        .into_body()
        .collect()
        .await?;
    let (answers, outgoing) = mpsc::unbounded_channel::<String>();
    let outgoing = Arc::new(tokio::sync::Mutex::new(outgoing));
    for _ in 0..8 {
        let mut poster = connect(address).await?;
        let outgoing = outgoing.clone();
        let session = session.clone();
        let address = address.to_string();
        tokio::spawn(async move {
            loop {
                let next = outgoing.lock().await.recv().await;
                let Some(answer) = next else { return };
                let Ok(request) = mcp_post(&address, Some(&session), &answer) else {
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
    let mut stream_connection = connect(address).await?;
    let request = Request::get(format!("http://{address}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .body(Full::new(Bytes::new()))?;
    let response = stream_connection.send_request(request).await?;
    let mut body = response.into_body();
    tokio::spawn(async move {
        let mut pending = Vec::<u8>::new();
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&event);
                let Some(data) = text.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(message) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if message["method"] != "sampling/createMessage" {
                    continue;
                }
                answer_after(&answers, &message["id"], delay);
            }
        }
    });
    // The stream must be registered before load starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(())
}

fn mcp_post(
    address: &str,
    session: Option<&str>,
    body: &str,
) -> Result<Request<Full<Bytes>>, BoxError> {
    let mut request = Request::post(format!("http://{address}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    Ok(request.body(Full::new(Bytes::from(body.to_string())))?)
}

/// One connection's loop: (latency µs, first-byte µs) of each request finished while measuring.
async fn load(
    address: String,
    body: Bytes,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> Result<Vec<(u64, u64)>, BoxError> {
    let mut sender = connect(&address).await?;
    let mut samples = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let request = Request::post(format!("http://{address}/v1/messages"))
            .header("content-type", "application/json")
            .header("anthropic-version", "2023-06-01")
            .body(Full::new(body.clone()))?;
        let started = Instant::now();
        let in_window = measuring.load(Ordering::Acquire);
        let response = sender.send_request(request).await?;
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
