//! Integration tests: the real `sampling2api` binary in both modes, driven by an independent
//! MCP client (`rmcp`, in its dual-era `Auto` lifecycle, so it probes `server/discover` first)
//! and by hand-written JSON-RPC where the exact bytes matter.

// rmcp marks sampling deprecated (SEP-2577, removal no earlier than 2027); it is what we test.
#![allow(deprecated)]
// Test harness code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::model::{
    ClientCapabilities, CreateMessageRequestParams, CreateMessageResult, ErrorData, Implementation,
    InitializeRequestParams, ProtocolVersion,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_sampling2api");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// An rmcp client whose "LLM" echoes the last user text, after `slow` if the text says so.
#[derive(Clone)]
struct EchoModel {
    name: &'static str,
}

impl ClientHandler for EchoModel {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let params = serde_json::to_value(&params).expect("params serialise");
        let last = params["messages"]
            .as_array()
            .and_then(|messages| messages.last())
            .cloned()
            .unwrap_or_default();
        let text = last["content"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if text.contains("slow") {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let reply = if text.contains("whoami") {
            self.name.to_string()
        } else {
            format!("echo: {text}")
        };
        Ok(serde_json::from_value(json!({
            "role": "assistant",
            "content": {"type": "text", "text": reply},
            "model": "rmcp-echo",
            "stopReason": "endTurn",
        }))
        .expect("a valid result"))
    }

    fn get_info(&self) -> InitializeRequestParams {
        let capabilities: ClientCapabilities =
            serde_json::from_value(json!({"sampling": {"tools": {}}})).expect("capabilities");
        InitializeRequestParams::new(capabilities, Implementation::new(self.name, "1.0"))
    }
}

fn auto_lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::V_2025_11_25),
    }
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("{base}/health")).await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("bridge at {base} never became healthy");
}

async fn ask(base: &str, text: &str, session: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .json(&json!({"model": "claude-x", "max_tokens": 20, "messages": [{"role": "user", "content": text}]}));
    if let Some(session) = session {
        request = request.header("x-mcp-session-id", session);
    }
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn connect_stdio(port: u16) -> RunningService<RoleClient, EchoModel> {
    let mut command = tokio::process::Command::new(BIN);
    command.args(["stdio", "--listen", &format!("127.0.0.1:{port}")]);
    let transport = TokioChildProcess::new(command).expect("spawn the bridge");
    EchoModel { name: "rmcp-stdio" }
        .serve_with_lifecycle(transport, auto_lifecycle())
        .await
        .expect("rmcp connects in auto mode")
}

#[tokio::test]
async fn stdio_mode_serves_an_rmcp_client_in_auto_mode() {
    let port = free_port();
    let client = connect_stdio(port).await;
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let (status, body) = ask(&base, "hello from rust", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "echo: hello from rust");
    assert_eq!(body["model"], "rmcp-echo");
    client.cancel().await.expect("client shuts down");
}

#[tokio::test]
async fn http_mode_routes_between_two_rmcp_clients() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut bridge = Command::new(BIN)
        .args(["http", "--listen", &format!("127.0.0.1:{port}")])
        .spawn()
        .expect("start the bridge");
    wait_healthy(&base).await;
    let mut clients = Vec::new();
    for name in ["rust-a", "rust-b"] {
        let transport = StreamableHttpClientTransport::from_uri(format!("{base}/mcp"));
        clients.push(
            EchoModel { name }
                .serve_with_lifecycle(transport, auto_lifecycle())
                .await
                .expect("rmcp connects over streamable http"),
        );
    }
    let sessions: Value = reqwest::get(format!("{base}/sessions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_of = |name: &str| {
        sessions["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["client_name"] == name)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    // Each client's GET stream may still be opening; the bridge waits for it briefly.
    for name in ["rust-a", "rust-b"] {
        let (status, body) = ask(&base, "whoami", Some(&id_of(name))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["content"][0]["text"], name);
    }
    let (status, body) = ask(&base, "whoami", None).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-mcp-session-id")
    );
    for client in clients {
        client.cancel().await.expect("client shuts down");
    }
    let _ = bridge.kill();
    let _ = bridge.wait();
}

/// Speaks MCP by hand over the bridge's stdin/stdout.
struct RawStdioClient {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl RawStdioClient {
    fn start(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    fn start_with(port: u16, extra: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["stdio", "--listen", listen.as_str()];
        args.extend_from_slice(extra);
        let mut child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the bridge");
        let lines = BufReader::new(child.stdout.take().unwrap());
        let mut client = RawStdioClient { child, lines };
        client.send(json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}));
        assert_eq!(
            client.read()["error"]["code"],
            -32601,
            "the probe is refused, the process lives"
        );
        client.send(json!({"jsonrpc":"2.0","id":2,"method":"initialize","params":{
            "protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"raw","version":"0"}}}));
        let init = client.read();
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
        client.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
        client
    }

    fn send(&mut self, message: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("stdout must carry only JSON-RPC: {line:?}: {err}"))
    }
}

#[tokio::test]
async fn stdio_pending_requests_fail_and_the_process_exits_cleanly_when_stdin_closes() {
    let port = free_port();
    let mut client = RawStdioClient::start(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let pending = tokio::spawn({
        let base = base.clone();
        async move { ask(&base, "never answered", None).await }
    });
    let request = tokio::task::spawn_blocking(move || {
        let request = client.read();
        (client, request)
    })
    .await
    .unwrap();
    let (mut client, request) = request;
    assert_eq!(request["method"], "sampling/createMessage");
    // Old protocol: one block per message, sent as an object.
    assert_eq!(request["params"]["messages"][0]["content"]["type"], "text");
    let closed_at = Instant::now();
    drop(client.child.stdin.take());
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disconnected")
    );
    assert!(closed_at.elapsed() < Duration::from_secs(2));
    let exit = tokio::task::spawn_blocking(move || client.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    assert!(closed_at.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stdio_answers_reach_the_right_caller_and_cancellation_is_sent() {
    let port = free_port();
    let mut client = RawStdioClient::start(port);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let first = tokio::spawn({
        let base = base.clone();
        async move { ask(&base, "first", None).await }
    });
    let (client_back, first_request) = tokio::task::spawn_blocking(move || {
        let request = client.read();
        (client, request)
    })
    .await
    .unwrap();
    client = client_back;
    let second = tokio::spawn({
        let base = base.clone();
        async move { ask(&base, "second", None).await }
    });
    let (client_back, second_request) = tokio::task::spawn_blocking(move || {
        let request = client.read();
        (client, request)
    })
    .await
    .unwrap();
    client = client_back;
    // Answer out of order; each answer must reach its own caller.
    for (request, text) in [(&second_request, "to second"), (&first_request, "to first")] {
        client.send(json!({"jsonrpc":"2.0","id":request["id"],"result":{
            "role":"assistant","content":{"type":"text","text":text},"model":"raw"}}));
    }
    assert_eq!(second.await.unwrap().1["content"][0]["text"], "to second");
    assert_eq!(first.await.unwrap().1["content"][0]["text"], "to first");

    // A caller that gives up: the client is told to cancel that request.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{base}/v1/messages"))
        .json(&json!({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"slow"}]}))
        .send()
        .await;
    assert!(gave_up.is_err());
    let (mut client, messages) = tokio::task::spawn_blocking(move || {
        let messages = [client.read(), client.read()];
        (client, messages)
    })
    .await
    .unwrap();
    assert_eq!(messages[0]["method"], "sampling/createMessage");
    assert_eq!(messages[1]["method"], "notifications/cancelled");
    assert_eq!(messages[1]["params"]["requestId"], messages[0]["id"]);
    drop(client.child.stdin.take());
    let _ = client.child.wait();
}

/// Reads the next sampling request the bridge sends, off the async runtime, passing over its
/// replies to what the test sent.
async fn next_request(client: RawStdioClient) -> (RawStdioClient, Value) {
    tokio::task::spawn_blocking(move || {
        let mut client = client;
        loop {
            let message = client.read();
            if message["method"] == "sampling/createMessage" {
                return (client, message);
            }
            // Replies to what the test sent, and cancellations of requests whose deadline passed.
            assert!(
                message["error"].is_object() || message["method"] == "notifications/cancelled",
                "unexpected message {message}"
            );
        }
    })
    .await
    .unwrap()
}

/// What a misbehaving client sends back for a request id.
type AnswerTo = Box<dyn Fn(&Value) -> Value>;

#[tokio::test]
async fn garbage_from_the_client_fails_that_request_only() {
    let port = free_port();
    let client = RawStdioClient::start_with(port, &["--request-timeout-secs", "1"]);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    let garbage: Vec<(&str, AnswerTo, u16, &str)> = vec![
        (
            "a result without content",
            Box::new(
                |id| json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","model":"m"}}),
            ),
            500,
            "invalid sampling result",
        ),
        (
            "an image the API cannot carry",
            Box::new(
                |id| json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","model":"m","content":{"type":"image","data":"iVBORw0KGgo=","mimeType":"image/png"}}}),
            ),
            500,
            "cannot carry",
        ),
        (
            "an image with invalid base64",
            Box::new(
                |id| json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","model":"m","content":{"type":"image","data":"!!not base64!!","mimeType":"image/png"}}}),
            ),
            500,
            "cannot carry",
        ),
        (
            "an unknown content type",
            Box::new(
                |id| json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant","model":"m","content":{"type":"video","url":"x"}}}),
            ),
            500,
            "invalid sampling result",
        ),
        (
            "a result that is not an object",
            Box::new(|id| json!({"jsonrpc":"2.0","id":id,"result":"done"})),
            500,
            "invalid sampling result",
        ),
        (
            "a JSON-RPC error",
            Box::new(
                |id| json!({"jsonrpc":"2.0","id":id,"error":{"code":-32603,"message":"boom"}}),
            ),
            500,
            "boom",
        ),
        (
            "an answer under the wrong id",
            Box::new(
                |_| json!({"jsonrpc":"2.0","id":987654,"result":{"role":"assistant","model":"m","content":{"type":"text","text":"lost"}}}),
            ),
            504,
            "did not answer within 1 s",
        ),
    ];
    let mut client = client;
    for (what, answer, status, contains) in garbage {
        let pending = tokio::spawn({
            let base = base.clone();
            async move { ask(&base, "hello", None).await }
        });
        let (back, request) = next_request(client).await;
        client = back;
        client.send(answer(&request["id"]));
        // Not-JSON on the wire too: the bridge answers it with a parse error and carries on.
        client.send(json!("not a message"));
        let (got, body) = pending.await.unwrap();
        assert_eq!(got, status, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(contains),
            "{what}: {body}"
        );
        assert_eq!(body["type"], "error");
    }
    // The session goes on: a good answer still works.
    let pending = tokio::spawn({
        let base = base.clone();
        async move { ask(&base, "still there?", None).await }
    });
    let (mut client, request) = next_request(client).await;
    client.send(json!({"jsonrpc":"2.0","id":request["id"],"result":{"role":"assistant","model":"m","content":{"type":"text","text":"yes"}}}));
    let (status, body) = pending.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["content"][0]["text"], "yes");
    drop(client.child.stdin.take());
    let _ = client.child.wait();
}
