//! `sampling2api connect CLIENT`: the configuration a client needs to reach this bridge.
//!
//! Each client's settings are computed from the bridge's own flags (listen address, key, MCP
//! path, or `--url`/`--token` for a remote bridge such as the worker), then merged into the
//! client's file: only the keys this command owns are touched, through a JSONC syntax tree, so
//! comments, order and layout elsewhere stay as the person wrote them. Without `--write` the
//! result is printed as a unified diff; with it the file is replaced atomically after a backup.
//! Running it again changes nothing, and makes no second backup.

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};
use serde_json::Value;

use crate::config::ConnectArgs;

/// A client `connect` knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// VS Code's MCP configuration (`mcp.json`): the client that samples.
    Vscode,
    /// GitHub Copilot CLI's MCP configuration (`mcp-config.json`).
    CopilotCli,
    /// Claude Code's user settings (`settings.json`, its `env`).
    ClaudeCode,
    /// Claude Desktop's third-party inference (gateway) configuration.
    ClaudeDesktop,
    /// Shell exports for the Anthropic and OpenAI SDKs.
    Env,
}

/// How an MCP client reaches the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// The client launches this binary (`sampling2api stdio`).
    Stdio,
    /// The client connects to a running `sampling2api http` (or the worker).
    Http,
}

/// An operating system, for where each client keeps its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Os {
    Linux,
    Macos,
    Windows,
}

impl Os {
    pub fn current() -> Os {
        if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::Macos
        } else {
            Os::Linux
        }
    }

    fn separator(self) -> char {
        match self {
            Os::Windows => '\\',
            Os::Linux | Os::Macos => '/',
        }
    }
}

/// A shell to print `env` exports for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Sh,
    Fish,
    Powershell,
}

/// Why `connect` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot find the home directory: set {0}")]
    NoHome(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON (with comments): {message}; fix or move it, then run again")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}` is not a JSON object; fix or move it, then run again")]
    NotAnObject { path: String, key: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConnectError + '_ {
    move |source| ConnectError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Where a client keeps the file `connect` edits, laid out as on `os`. `home` is the user's home
/// directory there, `env` reads that system's environment, `workspace` is vscode's `--workspace`.
/// `None` for `env`, which prints exports instead of editing a file.
pub fn config_path(
    client: Client,
    os: Os,
    home: &str,
    env: &dyn Fn(&str) -> Option<String>,
    workspace: Option<&str>,
) -> Option<String> {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    // Per-user application data: where Electron apps (VS Code, Claude Desktop) keep their files.
    let app_data = || match os {
        Os::Linux => set("XDG_CONFIG_HOME").unwrap_or_else(|| join(os, home, &[".config"])),
        Os::Macos => join(os, home, &["Library", "Application Support"]),
        Os::Windows => set("APPDATA").unwrap_or_else(|| join(os, home, &["AppData", "Roaming"])),
    };
    match client {
        Client::Vscode => Some(match workspace {
            Some(dir) => join(os, dir, &[".vscode", "mcp.json"]),
            None => join(os, &app_data(), &["Code", "User", "mcp.json"]),
        }),
        Client::CopilotCli => Some(match set("COPILOT_HOME") {
            Some(dir) => join(os, &dir, &["mcp-config.json"]),
            None => join(os, home, &[".copilot", "mcp-config.json"]),
        }),
        Client::ClaudeCode => Some(match set("CLAUDE_CONFIG_DIR") {
            Some(dir) => join(os, &dir, &["settings.json"]),
            None => join(os, home, &[".claude", "settings.json"]),
        }),
        Client::ClaudeDesktop => Some(join(
            os,
            &app_data(),
            &["Claude-3p", "claude_desktop_config.json"],
        )),
        Client::Env => None,
    }
}

fn join(os: Os, base: &str, parts: &[&str]) -> String {
    let separator = os.separator();
    let mut path = base.trim_end_matches(separator).to_string();
    for part in parts {
        path.push(separator);
        path.push_str(part);
    }
    path
}

/// The shell whose syntax `env` prints when `--shell` is not given.
pub fn default_shell(os: Os, shell_env: Option<&str>) -> Shell {
    let name = shell_env
        .and_then(|path| path.rsplit(['/', '\\']).next())
        .map(|name| name.to_ascii_lowercase());
    match name.as_deref() {
        Some(name) if name.starts_with("fish") => Shell::Fish,
        Some(name) if name.starts_with("pwsh") || name.starts_with("powershell") => {
            Shell::Powershell
        }
        Some(_) => Shell::Sh,
        None if os == Os::Windows => Shell::Powershell,
        None => Shell::Sh,
    }
}

/// Where and how clients reach the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL of the API (`…/v1/messages` is below it), no trailing slash.
    pub api_base: String,
    /// URL of the MCP endpoint.
    pub mcp_url: String,
    /// The key callers present, if the bridge has one.
    pub key: Option<String>,
    /// Every key of the bridge, for a stdio bridge the client launches.
    pub all_keys: Vec<String>,
    /// A bridge elsewhere (`--url`): an MCP client can only reach it over http.
    pub remote: bool,
}

/// A caller must present some key (the SDKs and Claude's apps refuse to start without one); a
/// bridge without keys accepts any, so this stands in.
const PLACEHOLDER_KEY: &str = "sampling2api";

impl Endpoint {
    pub fn from_args(args: &ConnectArgs) -> Result<Endpoint, ConnectError> {
        let keys: Vec<String> = args
            .api_keys
            .iter()
            .filter(|key| !key.is_empty())
            .cloned()
            .collect();
        if let Some(url) = &args.url {
            let base = url.trim().trim_end_matches('/');
            if !(base.starts_with("https://") || base.starts_with("http://")) || base.contains('?')
            {
                return Err(ConnectError::Usage(format!(
                    "--url must be the bridge's base URL, http(s)://host[:port][/path], not {url}"
                )));
            }
            let key = args
                .token
                .clone()
                .filter(|token| !token.is_empty())
                .or_else(|| keys.first().cloned())
                .ok_or_else(|| {
                    ConnectError::Usage(
                        "--url needs --token: the worker (and a bridge reachable from elsewhere) refuses requests without one"
                            .into(),
                    )
                })?;
            return Ok(Endpoint {
                api_base: base.to_string(),
                mcp_url: format!("{base}/mcp"),
                key: Some(key.clone()),
                all_keys: vec![key],
                remote: true,
            });
        }
        // A bridge on every interface is reached from here through loopback.
        let ip = match args.listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let address = SocketAddr::new(ip, args.listen.port());
        let mcp_path = format!("/{}", args.mcp_path.trim_start_matches('/'));
        Ok(Endpoint {
            api_base: format!("http://{address}"),
            mcp_url: format!("http://{address}{mcp_path}"),
            key: keys.first().cloned(),
            all_keys: keys,
            remote: false,
        })
    }

    fn caller_key(&self) -> String {
        self.key.clone().unwrap_or_else(|| PLACEHOLDER_KEY.into())
    }
}

/// One change to a JSON document: a value at a path of object keys, or a key taken out.
#[derive(Debug, Clone)]
pub enum Edit {
    Set(Vec<String>, CstInputValue),
    Remove(Vec<String>),
}

fn set(path: &[&str], value: CstInputValue) -> Edit {
    Edit::Set(path.iter().map(|key| key.to_string()).collect(), value)
}

fn text(value: &str) -> CstInputValue {
    CstInputValue::String(value.to_string())
}

fn object(entries: Vec<(&str, CstInputValue)>) -> CstInputValue {
    CstInputValue::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect(),
    )
}

/// What `connect` settles for one client, before anything is read or written.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client: Client,
    pub endpoint: Endpoint,
    pub transport: Transport,
    /// The `command` of a stdio entry: this binary.
    pub command: String,
    pub listen: SocketAddr,
    pub name: String,
}

impl Settings {
    /// The edits that make the client's file point at the bridge.
    pub fn edits(&self) -> Vec<Edit> {
        let endpoint = &self.endpoint;
        match self.client {
            Client::Vscode => vec![set(&["servers", &self.name], self.mcp_entry(false))],
            Client::CopilotCli => vec![set(&["mcpServers", &self.name], self.mcp_entry(true))],
            Client::ClaudeCode => vec![
                set(&["env", "ANTHROPIC_BASE_URL"], text(&endpoint.api_base)),
                // Sent as `Authorization: Bearer`, which the bridge and the worker accept; unlike
                // ANTHROPIC_API_KEY it needs no interactive approval and wins over a claude.ai login.
                set(
                    &["env", "ANTHROPIC_AUTH_TOKEN"],
                    text(&endpoint.caller_key()),
                ),
                set(
                    &["env", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"],
                    text("1"),
                ),
                set(
                    &["env", "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY"],
                    text("1"),
                ),
                // Claude Code prefers ANTHROPIC_API_KEY over the token: left in place, a real
                // Anthropic key would be sent to the bridge instead.
                Edit::Remove(vec!["env".into(), "ANTHROPIC_API_KEY".into()]),
            ],
            Client::ClaudeDesktop => vec![
                set(&["enterpriseConfig", "inferenceProvider"], text("gateway")),
                set(
                    &["enterpriseConfig", "inferenceGatewayBaseUrl"],
                    text(&endpoint.api_base),
                ),
                set(
                    &["enterpriseConfig", "inferenceGatewayApiKey"],
                    text(&endpoint.caller_key()),
                ),
                set(
                    &["enterpriseConfig", "inferenceGatewayAuthScheme"],
                    text("bearer"),
                ),
            ],
            Client::Env => Vec::new(),
        }
    }

    /// A server entry of an MCP client configuration. Copilot CLI calls a launched server
    /// `local` and wants the tools it may use listed (`*`: all).
    fn mcp_entry(&self, copilot: bool) -> CstInputValue {
        let mut entry = match self.transport {
            Transport::Stdio => {
                let mut entry = vec![
                    ("type", text(if copilot { "local" } else { "stdio" })),
                    ("command", text(&self.command)),
                    (
                        "args",
                        CstInputValue::Array(vec![
                            text("stdio"),
                            text("--listen"),
                            text(&self.listen.to_string()),
                        ]),
                    ),
                ];
                // In the environment, not the arguments: a process list shows arguments.
                if !self.endpoint.all_keys.is_empty() {
                    entry.push((
                        "env",
                        object(vec![(
                            "SAMPLING2API_API_KEYS",
                            text(&self.endpoint.all_keys.join(",")),
                        )]),
                    ));
                }
                entry
            }
            Transport::Http => {
                let mut entry = vec![
                    ("type", text("http")),
                    ("url", text(&self.endpoint.mcp_url)),
                ];
                if let Some(key) = &self.endpoint.key {
                    entry.push((
                        "headers",
                        object(vec![("Authorization", text(&format!("Bearer {key}")))]),
                    ));
                }
                entry
            }
        };
        if copilot {
            entry.push(("tools", CstInputValue::Array(vec![text("*")])));
        }
        object(entry)
    }

    /// `env`: exports for the Anthropic and OpenAI SDKs in `shell`'s syntax.
    pub fn exports(&self, shell: Shell) -> String {
        let key = self.endpoint.caller_key();
        let api_base = &self.endpoint.api_base;
        let variables = [
            ("ANTHROPIC_BASE_URL", api_base.clone()),
            ("ANTHROPIC_API_KEY", key.clone()),
            ("OPENAI_BASE_URL", format!("{api_base}/v1")),
            ("OPENAI_API_KEY", key),
        ];
        variables
            .iter()
            .map(|(name, value)| match shell {
                Shell::Sh => format!("export {name}='{}'\n", value.replace('\'', r"'\''")),
                Shell::Fish => format!(
                    "set -gx {name} '{}'\n",
                    value.replace('\\', r"\\").replace('\'', r"\'")
                ),
                Shell::Powershell => {
                    format!("$env:{name} = '{}'\n", value.replace('\'', "''"))
                }
            })
            .collect()
    }

    /// Whether the file will hold a secret (then a new file is readable by its owner only).
    fn holds_secret(&self) -> bool {
        self.endpoint.key.is_some()
    }
}

/// Applies `edits` to a JSONC document (`None` or blank: a new one). Values already equal are
/// left alone, so an unchanged document comes back byte for byte.
pub fn apply_edits(
    path: &str,
    original: Option<&str>,
    edits: &[Edit],
) -> Result<String, ConnectError> {
    // Windows editors may start the file with a byte order mark, which JSON does not allow.
    let (bom, original) = match original.and_then(|text| text.strip_prefix('\u{feff}')) {
        Some(rest) => ("\u{feff}", Some(rest)),
        None => ("", original),
    };
    let source = match original {
        Some(text) if !text.trim().is_empty() => text,
        _ => "{}\n",
    };
    let root = CstRootNode::parse(source, &ParseOptions::default()).map_err(|err| {
        ConnectError::Parse {
            path: path.to_string(),
            message: err.to_string(),
        }
    })?;
    let not_an_object = |key: &str| ConnectError::NotAnObject {
        path: path.to_string(),
        key: key.to_string(),
    };
    let top = match root.value() {
        None => root.object_value_or_set(),
        Some(_) => root
            .object_value()
            .ok_or_else(|| not_an_object("(the document)"))?,
    };
    for edit in edits {
        match edit {
            Edit::Set(keys, value) => {
                let Some((last, parents)) = keys.split_last() else {
                    continue;
                };
                let mut container: CstObject = top.clone();
                for key in parents {
                    container = container
                        .object_value_or_create(key)
                        .ok_or_else(|| not_an_object(key))?;
                }
                let wanted = to_value(value);
                match container.get(last) {
                    Some(property) => {
                        let current = property.value().and_then(|node| node.to_serde_value());
                        if current.as_ref() != Some(&wanted) {
                            property.set_value(value.clone());
                        }
                    }
                    None => {
                        container.append(last, value.clone());
                    }
                }
            }
            Edit::Remove(keys) => {
                let Some((last, parents)) = keys.split_last() else {
                    continue;
                };
                let mut container = Some(top.clone());
                for key in parents {
                    container = container.and_then(|object| object.object_value(key));
                }
                if let Some(property) = container.and_then(|object| object.get(last)) {
                    property.remove();
                }
            }
        }
    }
    Ok(format!("{bom}{root}"))
}

fn to_value(input: &CstInputValue) -> Value {
    match input {
        CstInputValue::Null => Value::Null,
        CstInputValue::Bool(value) => Value::Bool(*value),
        CstInputValue::Number(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        CstInputValue::String(text) => Value::String(text.clone()),
        CstInputValue::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        CstInputValue::Object(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, value)| (key.clone(), to_value(value)))
                .collect(),
        ),
    }
}

/// A unified diff from `old` (`None`: no file yet) to `new`, labelled with `path`.
pub fn unified_diff(path: &str, old: Option<&str>, new: &str) -> String {
    let before = old.unwrap_or("");
    let old_label = if old.is_some() { path } else { "/dev/null" };
    similar::TextDiff::from_lines(before, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, path)
        .to_string()
}

/// The change `connect` makes to one file.
#[derive(Debug, Clone)]
pub struct FileChange {
    pub path: PathBuf,
    pub old: Option<String>,
    pub new: String,
}

impl FileChange {
    pub fn is_change(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_str())
    }
}

/// Replaces `path` with `content`: the previous version is kept as a backup (returned), the new
/// one is written to a temporary file beside it and renamed over it, so a crash leaves either
/// the old file or the new one. A symlinked file is written where the link points.
pub fn write_file(
    path: &Path,
    old: Option<&str>,
    content: &str,
    secret: bool,
) -> Result<Option<PathBuf>, ConnectError> {
    let target = if path.is_symlink() {
        fs::canonicalize(path).map_err(io_error(path))?
    } else {
        path.to_path_buf()
    };
    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&directory).map_err(io_error(&directory))?;
    let backup = match old {
        Some(old) => Some(backup(&target, old)?),
        None => None,
    };
    let file_name = target
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let temporary = directory.join(format!(
        ".{file_name}.sampling2api-{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = write_new(&temporary, content, &target, secret)
        .and_then(|()| fs::rename(&temporary, &target).map_err(io_error(&target)));
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result.map(|()| backup)
}

fn write_new(
    temporary: &Path,
    content: &str,
    target: &Path,
    secret: bool,
) -> Result<(), ConnectError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        // Never through something already there (a stale file, or a link planted in its place).
        .create_new(true)
        .open(temporary)
        .map_err(io_error(temporary))?;
    // The new file keeps the old one's permissions; a new file with a key is the owner's only.
    match fs::metadata(target) {
        Ok(metadata) => file
            .set_permissions(metadata.permissions())
            .map_err(io_error(temporary))?,
        Err(_) if secret => owner_only(&file).map_err(io_error(temporary))?,
        Err(_) => {}
    }
    file.write_all(content.as_bytes())
        .map_err(io_error(temporary))?;
    file.sync_all().map_err(io_error(temporary))
}

#[cfg(unix)]
fn owner_only(file: &fs::File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn owner_only(_file: &fs::File) -> std::io::Result<()> {
    // Windows: a new file takes its folder's ACL, which under the user's profile is the user's.
    Ok(())
}

/// Keeps `old` beside `target` as `FILE.bak`, or `FILE.bak.N` when an earlier backup holds
/// something else; a backup that already holds `old` is reused, so nothing piles up.
fn backup(target: &Path, old: &str) -> Result<PathBuf, ConnectError> {
    let base = target.as_os_str().to_string_lossy().into_owned();
    for attempt in 0u32.. {
        let candidate = if attempt == 0 {
            PathBuf::from(format!("{base}.bak"))
        } else {
            PathBuf::from(format!("{base}.bak.{attempt}"))
        };
        match fs::read(&candidate) {
            Ok(existing) if existing == old.as_bytes() => return Ok(candidate),
            Ok(_) => continue,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                fs::copy(target, &candidate).map_err(io_error(&candidate))?;
                return Ok(candidate);
            }
            Err(err) => return Err(io_error(&candidate)(err)),
        }
    }
    Err(ConnectError::Usage(format!(
        "no free backup name beside {base}"
    )))
}

/// Everything `connect` settles from its flags and the environment.
pub struct Plan {
    pub settings: Settings,
    /// The file to edit (`None`: `env`).
    pub path: Option<PathBuf>,
    pub shell: Shell,
}

impl Plan {
    pub fn from_args(args: &ConnectArgs) -> Result<Plan, ConnectError> {
        let os = args.os.unwrap_or_else(Os::current);
        let endpoint = Endpoint::from_args(args)?;
        let transport = match (args.mode, endpoint.remote) {
            (Some(Transport::Stdio), true) => {
                return Err(ConnectError::Usage(
                    "--mode stdio launches a local bridge; with --url the client connects over http".into(),
                ));
            }
            (Some(mode), _) => mode,
            (None, true) => Transport::Http,
            (None, false) => Transport::Stdio,
        };
        if args.workspace.is_some() && args.client != Client::Vscode {
            return Err(ConnectError::Usage(
                "--workspace applies to vscode only".into(),
            ));
        }
        if args.name.trim().is_empty() {
            return Err(ConnectError::Usage("--name must not be empty".into()));
        }
        // As started, not canonicalized: a symlink (e.g. a package manager's bin link) keeps
        // working across upgrades, and Windows paths stay free of the `\\?\` prefix.
        let command = std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "sampling2api".into());
        let environment = |name: &str| std::env::var(name).ok();
        let path = match (&args.file, args.client) {
            (_, Client::Env) => None,
            (Some(file), _) => Some(absolute(file)),
            (None, client) => {
                let home_variable = if os == Os::Windows {
                    "USERPROFILE"
                } else {
                    "HOME"
                };
                let home = environment(home_variable)
                    .filter(|home| !home.is_empty())
                    .ok_or(ConnectError::NoHome(home_variable))?;
                let workspace = args
                    .workspace
                    .as_deref()
                    .map(|dir| absolute(dir).display().to_string());
                config_path(client, os, &home, &environment, workspace.as_deref())
                    .map(PathBuf::from)
            }
        };
        let shell = args.shell.unwrap_or_else(|| {
            default_shell(
                os,
                environment("SHELL").as_deref().filter(|s| !s.is_empty()),
            )
        });
        Ok(Plan {
            settings: Settings {
                client: args.client,
                endpoint,
                transport,
                command,
                listen: args.listen,
                name: args.name.clone(),
            },
            path,
            shell,
        })
    }

    /// Reads the client's file and computes its new content.
    pub fn change(&self) -> Result<Option<FileChange>, ConnectError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let old = match fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => return Err(io_error(path)(err)),
        };
        let label = path.display().to_string();
        let new = apply_edits(&label, old.as_deref(), &self.settings.edits())?;
        Ok(Some(FileChange {
            path: path.clone(),
            old,
            new,
        }))
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    std::env::current_dir()
        .map(|dir| dir.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// What a person should know about a configuration that is written as asked but may not work.
fn notes(plan: &Plan) -> Vec<String> {
    let mut notes = Vec::new();
    let settings = &plan.settings;
    let api_caller = matches!(
        settings.client,
        Client::ClaudeCode | Client::ClaudeDesktop | Client::Env
    );
    if api_caller && settings.endpoint.key.is_none() {
        notes.push(format!(
            "the bridge has no --api-key, so callers present the placeholder key `{PLACEHOLDER_KEY}`"
        ));
    }
    if settings.client == Client::ClaudeDesktop
        && !settings.endpoint.api_base.starts_with("https://")
    {
        notes.push(
            "Claude Desktop documents an https:// gateway URL; if it refuses this http:// one, use the worker (--url https://…) or an https proxy in front of the bridge"
                .into(),
        );
    }
    if matches!(settings.client, Client::Vscode | Client::CopilotCli)
        && settings.transport == Transport::Http
        && !settings.endpoint.remote
    {
        notes.push(format!(
            "http mode: start the bridge first with `sampling2api http --listen {}`",
            settings.listen
        ));
    }
    notes
}

/// Runs `sampling2api connect`.
pub fn run(args: &ConnectArgs) -> ExitCode {
    match execute(args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sampling2api connect: {err}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &ConnectArgs, out: &mut dyn std::io::Write) -> Result<(), ConnectError> {
    let plan = Plan::from_args(args)?;
    let stdout_error = |source| ConnectError::Io {
        path: "stdout".into(),
        source,
    };
    for note in notes(&plan) {
        eprintln!("note: {note}");
    }
    let Some(change) = plan.change()? else {
        if args.write {
            return Err(ConnectError::Usage(
                "env has no file to write: it prints exports; apply them with eval \"$(sampling2api connect env)\" (sh), | source (fish), or | Invoke-Expression (PowerShell)".into(),
            ));
        }
        return out
            .write_all(plan.settings.exports(plan.shell).as_bytes())
            .map_err(stdout_error);
    };
    let label = change.path.display().to_string();
    if !change.is_change() {
        writeln!(out, "# {label}: up to date, nothing to change").map_err(stdout_error)?;
        return Ok(());
    }
    out.write_all(unified_diff(&label, change.old.as_deref(), &change.new).as_bytes())
        .map_err(stdout_error)?;
    if !args.write {
        let backup = if change.old.is_some() {
            " (the current file is kept as a backup)"
        } else {
            ""
        };
        eprintln!("Nothing written. Run again with --write to apply{backup}.");
        return Ok(());
    }
    let backup = write_file(
        &change.path,
        change.old.as_deref(),
        &change.new,
        plan.settings.holds_secret(),
    )?;
    match backup {
        Some(backup) => eprintln!("Wrote {label} (previous version: {}).", backup.display()),
        None => eprintln!("Wrote {label}."),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Invocation;

    fn args(argv: &[&str]) -> ConnectArgs {
        let mut full = vec!["sampling2api", "connect"];
        full.extend_from_slice(argv);
        match Invocation::try_parse_from(full).unwrap() {
            Invocation::Connect(args) => args,
            Invocation::Bridge(_) => unreachable!(),
        }
    }

    fn settings(argv: &[&str]) -> Settings {
        let args = args(argv);
        let endpoint = Endpoint::from_args(&args).unwrap();
        let transport = args.mode.unwrap_or(if endpoint.remote {
            Transport::Http
        } else {
            Transport::Stdio
        });
        Settings {
            client: args.client,
            endpoint,
            transport,
            command: "/opt/bin/sampling2api".into(),
            listen: args.listen,
            name: args.name,
        }
    }

    fn merged(argv: &[&str], original: Option<&str>) -> String {
        apply_edits("test.json", original, &settings(argv).edits()).unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn paths_follow_each_clients_documentation_on_every_os() {
        let cases = [
            (
                Client::Vscode,
                Os::Linux,
                "/home/ada/.config/Code/User/mcp.json",
            ),
            (
                Client::Vscode,
                Os::Macos,
                "/Users/ada/Library/Application Support/Code/User/mcp.json",
            ),
            (
                Client::Vscode,
                Os::Windows,
                r"C:\Users\ada\AppData\Roaming\Code\User\mcp.json",
            ),
            (
                Client::CopilotCli,
                Os::Linux,
                "/home/ada/.copilot/mcp-config.json",
            ),
            (
                Client::CopilotCli,
                Os::Macos,
                "/Users/ada/.copilot/mcp-config.json",
            ),
            (
                Client::CopilotCli,
                Os::Windows,
                r"C:\Users\ada\.copilot\mcp-config.json",
            ),
            (
                Client::ClaudeCode,
                Os::Linux,
                "/home/ada/.claude/settings.json",
            ),
            (
                Client::ClaudeCode,
                Os::Macos,
                "/Users/ada/.claude/settings.json",
            ),
            (
                Client::ClaudeCode,
                Os::Windows,
                r"C:\Users\ada\.claude\settings.json",
            ),
            (
                Client::ClaudeDesktop,
                Os::Linux,
                "/home/ada/.config/Claude-3p/claude_desktop_config.json",
            ),
            (
                Client::ClaudeDesktop,
                Os::Macos,
                "/Users/ada/Library/Application Support/Claude-3p/claude_desktop_config.json",
            ),
            (
                Client::ClaudeDesktop,
                Os::Windows,
                r"C:\Users\ada\AppData\Roaming\Claude-3p\claude_desktop_config.json",
            ),
        ];
        for (client, os, expected) in cases {
            let home = match os {
                Os::Linux => "/home/ada/",
                Os::Macos => "/Users/ada",
                Os::Windows => r"C:\Users\ada",
            };
            assert_eq!(
                config_path(client, os, home, &no_env, None).as_deref(),
                Some(expected),
                "{client:?} on {os:?}"
            );
        }
        assert_eq!(
            config_path(Client::Env, Os::Linux, "/h", &no_env, None),
            None
        );
    }

    #[test]
    fn documented_environment_overrides_move_the_files() {
        let env = |name: &str| match name {
            "XDG_CONFIG_HOME" => Some("/xdg".to_string()),
            "APPDATA" => Some(r"D:\Roaming".to_string()),
            "COPILOT_HOME" => Some("/copilot".to_string()),
            "CLAUDE_CONFIG_DIR" => Some("/claude".to_string()),
            _ => None,
        };
        let path = |client, os| config_path(client, os, "/home/ada", &env, None).unwrap();
        assert_eq!(path(Client::Vscode, Os::Linux), "/xdg/Code/User/mcp.json");
        assert_eq!(
            path(Client::Vscode, Os::Windows),
            r"D:\Roaming\Code\User\mcp.json"
        );
        // macOS apps do not read XDG_CONFIG_HOME.
        assert_eq!(
            path(Client::Vscode, Os::Macos),
            "/home/ada/Library/Application Support/Code/User/mcp.json"
        );
        assert_eq!(
            path(Client::CopilotCli, Os::Linux),
            "/copilot/mcp-config.json"
        );
        assert_eq!(path(Client::ClaudeCode, Os::Macos), "/claude/settings.json");
        assert_eq!(
            config_path(
                Client::Vscode,
                Os::Windows,
                r"C:\u",
                &no_env,
                Some(r"C:\src\app")
            ),
            Some(r"C:\src\app\.vscode\mcp.json".to_string())
        );
        // An empty variable counts as unset.
        let empty = |_: &str| Some(String::new());
        assert_eq!(
            config_path(Client::ClaudeCode, Os::Linux, "/h", &empty, None).unwrap(),
            "/h/.claude/settings.json"
        );
    }

    #[test]
    fn default_shell_follows_shell_then_platform() {
        assert_eq!(default_shell(Os::Linux, Some("/usr/bin/fish")), Shell::Fish);
        assert_eq!(default_shell(Os::Macos, Some("/bin/zsh")), Shell::Sh);
        assert_eq!(
            default_shell(Os::Linux, Some("/usr/bin/pwsh")),
            Shell::Powershell
        );
        assert_eq!(default_shell(Os::Windows, None), Shell::Powershell);
        assert_eq!(default_shell(Os::Linux, None), Shell::Sh);
    }

    #[test]
    fn exports_quote_values_for_each_shell() {
        let mut settings = settings(&["env", "--api-key", "it's"]);
        settings.endpoint.api_base = r"http://h\x".into();
        let sh = settings.exports(Shell::Sh);
        assert!(sh.contains(r"export ANTHROPIC_API_KEY='it'\''s'"), "{sh}");
        assert!(
            sh.contains(r"export OPENAI_BASE_URL='http://h\x/v1'"),
            "{sh}"
        );
        let fish = settings.exports(Shell::Fish);
        assert!(fish.contains(r"set -gx OPENAI_API_KEY 'it\'s'"), "{fish}");
        assert!(
            fish.contains(r"set -gx ANTHROPIC_BASE_URL 'http://h\\x'"),
            "{fish}"
        );
        let powershell = settings.exports(Shell::Powershell);
        assert!(
            powershell.contains("$env:ANTHROPIC_API_KEY = 'it''s'"),
            "{powershell}"
        );
        assert_eq!(sh.lines().count(), 4);
    }

    #[test]
    fn endpoint_uses_the_bridges_listen_address_key_and_mcp_path() {
        let endpoint = Endpoint::from_args(&args(&[
            "claude-code",
            "--listen",
            "0.0.0.0:9000",
            "--api-key",
            "k1,k2",
            "--mcp-path",
            "bridge",
        ]))
        .unwrap();
        assert_eq!(endpoint.api_base, "http://127.0.0.1:9000");
        assert_eq!(endpoint.mcp_url, "http://127.0.0.1:9000/bridge");
        assert_eq!(endpoint.key.as_deref(), Some("k1"));
        assert_eq!(endpoint.all_keys, ["k1", "k2"]);
        let v6 = Endpoint::from_args(&args(&["env", "--listen", "[::]:1"])).unwrap();
        assert_eq!(v6.api_base, "http://[::1]:1");
        assert_eq!(v6.key, None);
        let worker = Endpoint::from_args(&args(&[
            "env",
            "--url",
            "https://s.example.workers.dev/",
            "--token",
            "t",
        ]))
        .unwrap();
        assert_eq!(worker.api_base, "https://s.example.workers.dev");
        assert_eq!(worker.mcp_url, "https://s.example.workers.dev/mcp");
        assert!(worker.remote);
        assert!(Endpoint::from_args(&args(&["env", "--url", "https://x"])).is_err());
        assert!(Endpoint::from_args(&args(&["env", "--url", "ftp://x", "--token", "t"])).is_err());
        assert!(
            Invocation::try_parse_from(["sampling2api", "connect", "env", "--token", "t"]).is_err()
        );
    }

    #[test]
    fn entries_for_stdio_and_http() {
        let stdio: Value =
            serde_json::from_str(&merged(&["vscode", "--api-key", "k"], None)).unwrap();
        assert_eq!(
            stdio["servers"]["sampling2api"],
            serde_json::json!({"type": "stdio", "command": "/opt/bin/sampling2api",
                "args": ["stdio", "--listen", "127.0.0.1:38080"],
                "env": {"SAMPLING2API_API_KEYS": "k"}})
        );
        let http: Value = serde_json::from_str(&merged(
            &[
                "copilot-cli",
                "--mode",
                "http",
                "--api-key",
                "k",
                "--name",
                "bridge",
            ],
            None,
        ))
        .unwrap();
        assert_eq!(
            http["mcpServers"]["bridge"],
            serde_json::json!({"type": "http", "url": "http://127.0.0.1:38080/mcp",
                "headers": {"Authorization": "Bearer k"}, "tools": ["*"]})
        );
        let keyless: Value =
            serde_json::from_str(&merged(&["vscode", "--mode", "http"], None)).unwrap();
        assert!(keyless["servers"]["sampling2api"].get("headers").is_none());
        let desktop: Value = serde_json::from_str(&merged(&["claude-desktop"], None)).unwrap();
        assert_eq!(
            desktop["enterpriseConfig"],
            serde_json::json!({"inferenceProvider": "gateway",
                "inferenceGatewayBaseUrl": "http://127.0.0.1:38080",
                "inferenceGatewayApiKey": "sampling2api", "inferenceGatewayAuthScheme": "bearer"})
        );
    }

    const VSCODE_JSONC: &str = r#"{
	// servers I use
	"servers": {
		"github": { "type": "http", "url": "https://api.githubcopilot.com/mcp/" }, // keep
		/* stale entry of ours */
		"sampling2api": { "type": "stdio", "command": "old" },
	},
	"inputs": [],
}
"#;

    #[test]
    fn merge_keeps_comments_layout_and_other_entries() {
        let out = merged(&["vscode", "--mode", "http"], Some(VSCODE_JSONC));
        assert!(out.contains("\t// servers I use\n"), "{out}");
        assert!(
            out.contains(r#""github": { "type": "http", "url": "https://api.githubcopilot.com/mcp/" }, // keep"#),
            "{out}"
        );
        assert!(out.contains("/* stale entry of ours */"), "{out}");
        assert!(out.contains("\t\"inputs\": [],\n}"), "{out}");
        assert!(!out.contains("\"old\""), "{out}");
        let parsed = CstRootNode::parse(&out, &ParseOptions::default())
            .unwrap()
            .to_serde_value()
            .unwrap();
        assert_eq!(
            parsed["servers"]["sampling2api"]["url"],
            "http://127.0.0.1:38080/mcp"
        );
        assert_eq!(parsed["servers"]["github"]["type"], "http");
        // Applying again changes nothing, byte for byte.
        assert_eq!(merged(&["vscode", "--mode", "http"], Some(&out)), out);
    }

    #[test]
    fn claude_code_keeps_other_settings_and_drops_a_real_anthropic_key() {
        let original = "{\n  \"model\": \"opus\", // mine\n  \"env\": { \"FOO\": \"1\", \"ANTHROPIC_API_KEY\": \"sk-ant-real\" }\n}\n";
        let out = merged(&["claude-code", "--api-key", "k"], Some(original));
        assert!(out.contains("\"model\": \"opus\", // mine"), "{out}");
        let parsed = CstRootNode::parse(&out, &ParseOptions::default())
            .unwrap()
            .to_serde_value()
            .unwrap();
        assert_eq!(
            parsed["env"],
            serde_json::json!({"FOO": "1", "ANTHROPIC_BASE_URL": "http://127.0.0.1:38080",
                "ANTHROPIC_AUTH_TOKEN": "k", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"})
        );
        assert_eq!(merged(&["claude-code", "--api-key", "k"], Some(&out)), out);
    }

    #[test]
    fn documents_that_cannot_be_merged_are_refused() {
        let edits = settings(&["vscode"]).edits();
        assert!(matches!(
            apply_edits("f", Some("[1, 2]"), &edits),
            Err(ConnectError::NotAnObject { .. })
        ));
        assert!(matches!(
            apply_edits("f", Some(r#"{"servers": []}"#), &edits),
            Err(ConnectError::NotAnObject { key, .. }) if key == "servers"
        ));
        assert!(matches!(
            apply_edits("f", Some(r#"{"servers": "#), &edits),
            Err(ConnectError::Parse { .. })
        ));
        // Blank counts as empty.
        assert!(
            apply_edits("f", Some("  \n"), &edits)
                .unwrap()
                .contains("\"servers\"")
        );
    }

    #[test]
    fn unified_diff_labels_new_files_as_from_dev_null() {
        let diff = unified_diff("/x/settings.json", None, "{\n}\n");
        assert!(
            diff.starts_with("--- /dev/null\n+++ /x/settings.json\n@@ -0,0 +1,2 @@\n+{\n+}\n"),
            "{diff}"
        );
        let change = unified_diff("/x", Some("a\nb\n"), "a\nc\n");
        assert!(change.contains("-b\n+c\n"), "{change}");
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sampling2api-connect-{name}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn write_creates_directories_keeps_one_backup_per_content_and_follows_symlinks() {
        let dir = scratch("write");
        let path = dir.join("a/b/settings.json");
        assert_eq!(write_file(&path, None, "one", true).unwrap(), None);
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let backup = write_file(&path, Some("one"), "two", true)
            .unwrap()
            .unwrap();
        assert_eq!(backup, dir.join("a/b/settings.json.bak"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), "one");
        // A backup that already holds the content being replaced is reused.
        assert_eq!(
            write_file(&path, Some("one"), "two", true).unwrap(),
            Some(backup.clone())
        );
        // A later change with different content keeps the first backup and adds another.
        let second = write_file(&path, Some("two"), "three", true)
            .unwrap()
            .unwrap();
        assert_eq!(second, dir.join("a/b/settings.json.bak.1"));
        assert_eq!(fs::read_to_string(&backup).unwrap(), "one");
        assert_eq!(fs::read_to_string(&second).unwrap(), "two");
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.join("a/b"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // An existing file keeps its permissions.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
            write_file(&path, Some("three"), "three", false).unwrap();
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
            let link = dir.join("link.json");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            write_file(&link, Some("three"), "four", true).unwrap();
            assert!(link.is_symlink());
            assert_eq!(fs::read_to_string(&path).unwrap(), "four");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn windows_line_endings_and_a_byte_order_mark_survive() {
        let original = "\u{feff}{\r\n  \"other\": 1\r\n}\r\n";
        let edits = [set(&["servers", "s"], text("v"))];
        let out = apply_edits("f", Some(original), &edits).unwrap();
        assert!(out.starts_with('\u{feff}'), "{out:?}");
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
        assert_eq!(apply_edits("f", Some(&out), &edits).unwrap(), out);
    }
}
