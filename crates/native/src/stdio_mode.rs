//! stdio mode: MCP as newline-delimited JSON over our stdin/stdout (the MCP client launched
//! us), or over a child's pipes (`--spawn`: we launched the client). The API listens on
//! `--listen`. When the MCP stream ends, pending requests fail and the process exits.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::api;
use crate::bridge::Bridge;
use crate::config::{ApiSettings, StdioArgs};
use crate::session::Session;

/// The stdio session's id, for `x-mcp-session-id` in this mode.
pub const STDIO_SESSION_ID: &str = "stdio";

pub async fn run(args: StdioArgs) -> ExitCode {
    let Some((listener, address)) = crate::server::bind(args.common.listen).await else {
        return ExitCode::FAILURE;
    };
    let bridge = Bridge::new(ApiSettings::from(&args.common), "stdio");
    let bridge = Arc::new(bridge);

    let (reader, writer, mut child): (
        Box<dyn AsyncRead + Unpin + Send>,
        Box<dyn AsyncWrite + Unpin + Send>,
        _,
    ) = match &args.spawn {
        Some(command) => match spawn_client(command) {
            Ok((reader, writer, child)) => (reader, writer, Some(child)),
            Err(err) => {
                tracing::error!(command = ?command, %err, "cannot start the MCP client");
                return ExitCode::FAILURE;
            }
        },
        None => {
            let (reader, writer) = own_stdio();
            (reader, writer, None)
        }
    };

    let (lines, outgoing) = crate::outbox::outbox();
    let session = Session::over_pipe(STDIO_SESSION_ID.to_string(), lines, bridge.session_limits());
    bridge.add_session(session.clone());
    // The pipe is always open, so the session never expires; it ends with the pipe.
    session.start_timer(|| {});
    let writer_task = tokio::spawn(write_lines(writer, outgoing));

    let app = api::app(bridge.clone(), false);
    let front = args.common.front.clone();
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = server_stopped.await;
        };
        crate::server::serve(listener, app, &front, shutdown).await;
    });
    tracing::info!(
        "sampling2api {} listening on http://{address} (stdio mode: MCP over {}; tools: {})",
        env!("CARGO_PKG_VERSION"),
        if child.is_some() {
            "the spawned client's stdin/stdout"
        } else {
            "stdin/stdout"
        },
        bridge.settings.tool_mode.as_str()
    );

    let why = match read_messages(reader, &session, &bridge, args.max_client_line_bytes).await {
        Ended::Closed => {
            tracing::info!("the MCP client closed its connection; shutting down");
            "the MCP client disconnected (its stdio stream ended)"
        }
        Ended::LineTooLong => {
            tracing::error!(
                limit = args.max_client_line_bytes,
                "the MCP client sent a line longer than --max-client-line-bytes; closing the session"
            );
            "the MCP client sent a message longer than --max-client-line-bytes; the session was closed"
        }
    };
    bridge.end_session(STDIO_SESSION_ID, why);
    let _ = stop_server.send(());
    // In-flight requests were just failed, so their responses finish at once; do not wait on
    // idle keep-alive connections longer than that.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    writer_task.abort();
    match child.as_mut() {
        Some(child) => match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            Ok(Ok(status)) if status.success() => ExitCode::SUCCESS,
            Ok(Ok(status)) => {
                tracing::warn!(%status, "the spawned MCP client exited with an error");
                ExitCode::FAILURE
            }
            _ => {
                let _ = child.start_kill();
                ExitCode::FAILURE
            }
        },
        None => ExitCode::SUCCESS,
    }
}

/// Our stdin/stdout. On unix, when they are pipes (an MCP client launched us), they are polled
/// directly; tokio's generic stdin/stdout would hop through a blocking thread for every line,
/// which costs a context switch per message.
#[cfg(unix)]
fn own_stdio() -> (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let reader: Box<dyn AsyncRead + Unpin + Send> = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Receiver::from_owned_fd)
    {
        Ok(receiver) => Box::new(receiver),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let writer: Box<dyn AsyncWrite + Unpin + Send> = match std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .and_then(pipe::Sender::from_owned_fd)
    {
        Ok(sender) => Box::new(sender),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (reader, writer)
}

/// Our stdin/stdout elsewhere (Windows): tokio's, which read and write on its blocking pool.
/// Named pipes are not the tool here: the pipes an MCP client hands its child are usually
/// opened without overlapped I/O, which tokio's named pipes require, and adopting a raw
/// handle takes unsafe code, which this workspace forbids.
#[cfg(not(unix))]
fn own_stdio() -> (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
) {
    (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
}

type Pipes = (
    Box<dyn AsyncRead + Unpin + Send>,
    Box<dyn AsyncWrite + Unpin + Send>,
    tokio::process::Child,
);

fn spawn_client(command: &[String]) -> std::io::Result<Pipes> {
    let (program, arguments) = command.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "--spawn needs a command")
    })?;
    let mut child = tokio::process::Command::new(crate::platform::program_path(program))
        .args(arguments)
        // How the npm wrapper launched this bridge is not how the child was launched.
        .env_remove(crate::connect::vscode::LAUNCHER_VARIABLE)
        .env_remove(crate::connect::vscode::PACKAGE_VARIABLE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let missing = || std::io::Error::other("child pipes unavailable");
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stdin = child.stdin.take().ok_or_else(missing)?;
    Ok((Box::new(stdout), Box::new(stdin), child))
}

/// Why reading from the client stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// End of stream, or a read error: the client is gone.
    Closed,
    /// A line passed the limit: the client is broken, and reading on would only grow memory.
    LineTooLong,
}

/// Reads newline-delimited JSON-RPC messages until the stream ends or a line passes
/// `max_line_bytes`.
async fn read_messages(
    reader: Box<dyn AsyncRead + Unpin + Send>,
    session: &Arc<Session>,
    bridge: &Bridge,
    max_line_bytes: usize,
) -> Ended {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut announced = false;
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match read_line(&mut reader, &mut line, max_line_bytes).await {
            Ok(Line::Complete) => {}
            Ok(Line::End) => return Ended::Closed,
            Ok(Line::TooLong) => return Ended::LineTooLong,
            Err(err) => {
                tracing::warn!(%err, "reading from the MCP client failed");
                return Ended::Closed;
            }
        }
        if message_of(&line).is_empty() {
            continue;
        }
        let taken = std::mem::take(&mut line);
        let receiver = session.clone();
        let received = crate::cpu_work::run(taken.len(), move || {
            let reply = receiver.receive(message_of(&taken));
            Ok((taken, reply))
        })
        .await;
        match received {
            Ok((taken, reply)) => {
                line = taken;
                if let Some(reply) = reply {
                    session.deliver_now(reply);
                }
                if !announced && let Some(client) = session.state().client() {
                    bridge.log_client_connected(&session.handle, client);
                    announced = true;
                }
            }
            Err(err) => tracing::error!(%err, "handling a message from the MCP client failed"),
        }
    }
}

/// The JSON text of a line: without its `\n`, the `\r\n` a Windows client may send, or other
/// whitespace around it (which JSON ignores anyway).
fn message_of(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// What `read_line` found.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A line (its newline included, unless the stream ended after it) is in the buffer.
    Complete,
    /// The stream ended with no bytes of a new line.
    End,
    /// More than the limit arrived without a newline.
    TooLong,
}

/// `read_until(b'\n')` that stops once `line` would pass `max_bytes`, so a client that never
/// sends a newline cannot make us buffer without end.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max_bytes: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if line.is_empty() {
                Line::End
            } else {
                Line::Complete
            });
        }
        let (taken, complete) = match available.iter().position(|&byte| byte == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > max_bytes.saturating_add(1) {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(available.get(..taken).unwrap_or_default());
        reader.consume(taken);
        if complete {
            return Ok(Line::Complete);
        }
    }
}

/// A message this large is written from its own buffer rather than copied into the batch.
const DIRECT_WRITE_BYTES: usize = 64 * 1024;
/// A batch is written out once it holds this much.
const BATCH_BYTES: usize = 1 << 20;

/// Writes queued messages one per line, flushing once per burst rather than per message.
async fn write_lines(
    mut writer: Box<dyn AsyncWrite + Unpin + Send>,
    mut outgoing: crate::outbox::OutboxReceiver<crate::session::Outgoing>,
) {
    let mut batch = Vec::with_capacity(DIRECT_WRITE_BYTES);
    while let Some(first) = outgoing.recv().await {
        crate::batching::let_ready_tasks_run().await;
        let mut next = Some(first);
        let written: std::io::Result<()> = async {
            while let Some(message) = next.take() {
                if message.len() >= DIRECT_WRITE_BYTES {
                    writer.write_all(&batch).await?;
                    batch.clear();
                    writer.write_all(message.as_bytes()).await?;
                    writer.write_all(b"\n").await?;
                } else {
                    batch.extend_from_slice(message.as_bytes());
                    batch.push(b'\n');
                    if batch.len() >= BATCH_BYTES {
                        writer.write_all(&batch).await?;
                        batch.clear();
                    }
                }
                next = outgoing.try_recv();
            }
            writer.write_all(&batch).await?;
            batch.clear();
            writer.flush().await
        }
        .await;
        if let Err(err) = written {
            tracing::warn!(%err, "writing to the MCP client failed");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &'static [u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        let mut reader = BufReader::with_capacity(4, input);
        let mut seen = Vec::new();
        loop {
            let mut line = Vec::new();
            let found = read_line(&mut reader, &mut line, max).await.unwrap();
            let last = found != Line::Complete;
            seen.push((found, line));
            if last {
                return seen;
            }
        }
    }

    #[tokio::test]
    async fn windows_line_endings_are_not_part_of_the_message() {
        let read = lines_of(b"{\"a\":1}\r\n\r\n{\"b\":2}\n", 64).await;
        let messages: Vec<&[u8]> = read.iter().map(|(_, line)| message_of(line)).collect();
        assert_eq!(messages, vec![&b"{\"a\":1}"[..], b"", b"{\"b\":2}", b""]);
    }

    #[tokio::test]
    async fn lines_are_read_up_to_the_limit_and_no_further() {
        // The limit counts the message; its newline is extra.
        let read = lines_of(b"12345678\nab\ncd", 8).await;
        assert_eq!(
            read,
            vec![
                (Line::Complete, b"12345678\n".to_vec()),
                (Line::Complete, b"ab\n".to_vec()),
                (Line::Complete, b"cd".to_vec()),
                (Line::End, Vec::new()),
            ]
        );
        // One byte more without a newline: refused before it is all buffered.
        let read = lines_of(b"ok\n123456789xxxxxxxxxxxxxxxx", 8).await;
        assert_eq!(read[0], (Line::Complete, b"ok\n".to_vec()));
        assert_eq!(read[1].0, Line::TooLong);
        assert!(read[1].1.len() <= 9);
    }
}
