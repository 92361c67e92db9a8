//! `sampling2api connect CLIENT…`: the configuration clients need to reach this bridge.
//!
//! Each client's settings are computed from the bridge's own flags (listen address, keys, MCP
//! path, or `--url`/`--token` for a remote bridge such as the worker), then merged into the
//! client's files: only the keys this command owns are touched, through a JSONC syntax tree, so
//! comments, order and layout elsewhere stay as the person wrote them (`jsonc`). Without
//! `--write` the result is printed as a unified diff; with it each file is replaced atomically
//! after a backup (`files`, which also keeps a hostile folder from steering the writes).
//! Running it again changes nothing, and makes no second backup. VS Code also gets its
//! sampling consent (`vscode`). Several clients in one call are planned together and written
//! only if every file can be.

mod args;
mod files;
mod jsonc;
pub mod vscode;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use jsonc_parser::cst::CstInputValue;

pub use self::args::{Client, ConnectArgs, Os, Shell, Transport};
use self::jsonc::{Edit, apply_edits, object, set, text, unified_diff};
use self::vscode::Launcher;
use crate::api_keys::KeyFileError;
use crate::local_files::{self, LocalFileError};

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
    #[error("{0}")]
    Unreadable(LocalFileError),
    #[error("{0}")]
    Keys(#[from] KeyFileError),
    #[error("{path} is not valid JSON (with comments): {message}; fix or move it, then run again")]
    Parse { path: String, message: String },
    #[error("{path}: `{key}` is not {kind}; fix or move it, then run again")]
    NotA {
        path: String,
        key: String,
        kind: &'static str,
    },
    #[error(
        "{link} is a symbolic link to {points_to} ({target}), outside {root}: a folder you cloned or share could point connect at another of your files this way. Not followed; if you made this link yourself, run again with --follow-outside-links"
    )]
    OutsideLink {
        link: String,
        points_to: String,
        target: String,
        root: String,
    },
    #[error(
        "{link} is a symbolic link to {points_to}, which does not exist; remove the link or create its target, then run again"
    )]
    DanglingLink { link: String, points_to: String },
}

/// Where a client keeps the file `connect` edits, laid out as on `os`. `home` is the user's home
/// directory there, `env` reads that system's environment, `workspace` is vscode's `--workspace`,
/// `product` VS Code's edition (its user data folder). `None` for `env`, which prints exports.
pub fn config_path(
    client: Client,
    os: Os,
    home: &str,
    env: &dyn Fn(&str) -> Option<String>,
    workspace: Option<&str>,
    product: &str,
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
            None => join(os, &app_data(), &[product, "User", "mcp.json"]),
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

/// The components of a path laid out as on `os`.
fn split_path(path: &str, os: Os) -> Vec<&str> {
    path.split(|c| c == '/' || (os == Os::Windows && c == '\\'))
        .filter(|part| !part.is_empty() && *part != ".")
        .collect()
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
    /// The key file every key came from: a launched bridge can read it itself.
    pub key_file: Option<PathBuf>,
    /// A bridge elsewhere (`--url`): an MCP client can only reach it over http.
    pub remote: bool,
}

/// A caller must present some key (the SDKs and Claude's apps refuse to start without one); a
/// bridge without keys accepts any, so this stands in.
const PLACEHOLDER_KEY: &str = "sampling2api";

impl Endpoint {
    /// From the flags, once `args.keys` holds every key (`KeyArgs::load`).
    pub fn from_args(
        args: &ConnectArgs,
        key_file: Option<PathBuf>,
    ) -> Result<Endpoint, ConnectError> {
        let keys: Vec<String> = args
            .keys
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
                        "--url needs --token (or --api-key-file): the worker (and a bridge reachable from elsewhere) refuses requests without one"
                            .into(),
                    )
                })?;
            return Ok(Endpoint {
                api_base: base.to_string(),
                mcp_url: format!("{base}/mcp"),
                key: Some(key.clone()),
                all_keys: vec![key],
                key_file: None,
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
            key_file,
            remote: false,
        })
    }

    fn caller_key(&self) -> String {
        self.key.clone().unwrap_or_else(|| PLACEHOLDER_KEY.into())
    }
}

/// How the bridge's keys reach an MCP client's server entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlacement {
    /// Written as they are, in a file of the person's own (made private).
    Literal,
    /// The key file's path (`SAMPLING2API_API_KEY_FILE`): the launched bridge reads it.
    KeyFile(PathBuf),
    /// A VS Code input variable (`${input:ID}`, `"password": true`): VS Code asks once and
    /// keeps the value in its secret storage. For workspace files, which projects commit.
    VsCodeInput,
}

/// VS Code's sampling consent for the configured server.
#[derive(Debug, Clone)]
pub struct Consent {
    /// The `settings.json` it goes in.
    pub path: String,
    /// Its key in `chat.mcp.serverSampling`.
    pub key: String,
    pub allow_models: Vec<String>,
}

/// What `connect` settles for one client, before anything is read or written.
#[derive(Debug, Clone)]
pub struct Settings {
    pub client: Client,
    pub endpoint: Endpoint,
    pub transport: Transport,
    /// How a stdio entry launches the bridge.
    pub launcher: Launcher,
    pub listen: SocketAddr,
    pub name: String,
    pub keys: KeyPlacement,
    /// vscode: the consent written beside the server entry (`None`: where is unknown).
    pub consent: Option<Consent>,
}

impl Settings {
    /// The edits that make the client's main file point at the bridge.
    pub fn edits(&self) -> Vec<Edit> {
        let endpoint = &self.endpoint;
        match self.client {
            Client::Vscode => {
                let mut edits = vec![set(&["servers", &self.name], self.mcp_entry(false))];
                if self.keys == KeyPlacement::VsCodeInput
                    && let Some((id, description)) = self.input()
                {
                    edits.push(Edit::Upsert(
                        vec!["inputs".into()],
                        id.clone(),
                        object(vec![
                            ("type", text("promptString")),
                            ("id", text(&id)),
                            ("description", text(&description)),
                            ("password", CstInputValue::Bool(true)),
                        ]),
                    ));
                }
                edits
            }
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

    /// The VS Code input that stands for the key in a workspace file: its id and prompt.
    fn input(&self) -> Option<(String, String)> {
        let id: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        match self.transport {
            Transport::Stdio if !self.endpoint.all_keys.is_empty() => Some((
                format!("{id}-api-keys"),
                format!(
                    "{}: the API keys its callers must present, comma-separated (the bridge's --api-key)",
                    self.name
                ),
            )),
            Transport::Http if self.endpoint.key.is_some() => Some((
                format!("{id}-api-key"),
                format!("{}: the bridge's API key", self.name),
            )),
            _ => None,
        }
    }

    /// A server entry of an MCP client configuration. Copilot CLI calls a launched server
    /// `local` and wants the tools it may use listed (`*`: all).
    fn mcp_entry(&self, copilot: bool) -> CstInputValue {
        let input = || self.input().map(|(id, _)| format!("${{input:{id}}}"));
        let mut entry = match self.transport {
            Transport::Stdio => {
                let mut args: Vec<CstInputValue> =
                    self.launcher.prefix.iter().map(|arg| text(arg)).collect();
                args.extend([
                    text("stdio"),
                    text("--listen"),
                    text(&self.listen.to_string()),
                ]);
                let mut entry = vec![
                    ("type", text(if copilot { "local" } else { "stdio" })),
                    ("command", text(&self.launcher.command)),
                    ("args", CstInputValue::Array(args)),
                ];
                // In the environment, not the arguments: a process list shows arguments.
                let variable = match &self.keys {
                    _ if self.endpoint.all_keys.is_empty() => None,
                    KeyPlacement::VsCodeInput => {
                        input().map(|value| ("SAMPLING2API_API_KEYS", value))
                    }
                    KeyPlacement::KeyFile(path) => {
                        Some(("SAMPLING2API_API_KEY_FILE", path.display().to_string()))
                    }
                    KeyPlacement::Literal => {
                        Some(("SAMPLING2API_API_KEYS", self.endpoint.all_keys.join(",")))
                    }
                };
                if let Some((name, value)) = variable {
                    entry.push(("env", object(vec![(name, text(&value))])));
                }
                entry
            }
            Transport::Http => {
                let mut entry = vec![
                    ("type", text("http")),
                    ("url", text(&self.endpoint.mcp_url)),
                ];
                let key = match &self.keys {
                    KeyPlacement::VsCodeInput => input(),
                    _ => self.endpoint.key.clone(),
                };
                if let Some(key) = key {
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

    /// Whether the client's main file will hold a key (then it is made the owner's only).
    fn holds_secret(&self) -> bool {
        if self.endpoint.key.is_none() {
            return false;
        }
        match self.client {
            // An input or a key file keeps the key out of the entry.
            Client::Vscode | Client::CopilotCli => !matches!(
                (&self.keys, self.transport),
                (KeyPlacement::VsCodeInput, _) | (KeyPlacement::KeyFile(_), Transport::Stdio)
            ),
            _ => true,
        }
    }
}

/// One file `connect` edits, and what it should say about it.
#[derive(Debug, Clone)]
pub struct FilePlan {
    pub path: PathBuf,
    pub edits: Vec<Edit>,
    /// The file will hold a key: a new one, or one readable by others, is made private.
    pub secret: bool,
    /// A `--workspace` folder no link may lead out of.
    pub confine: Option<PathBuf>,
    /// Lines printed before the file's diff: what the change grants or does beyond it.
    pub explain: Vec<String>,
}

/// Everything `connect` settles for one client from its flags and the environment.
pub struct Plan {
    pub settings: Settings,
    /// The files to edit (none for `env`).
    pub files: Vec<FilePlan>,
    pub shell: Shell,
}

/// What `connect` runs in: the environment and the binary, so tests can stand in for both.
pub struct Context<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// This binary as started (not canonicalized: a package manager's bin link keeps working
    /// across upgrades, and Windows paths stay free of the `\\?\` prefix).
    pub exe: String,
}

impl Plan {
    pub fn new(
        args: &ConnectArgs,
        client: Client,
        endpoint: &Endpoint,
        context: &Context,
    ) -> Result<Plan, ConnectError> {
        let os = args.os.unwrap_or_else(Os::current);
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
        let environment = context.env;
        let workspace = match (client, &args.workspace) {
            (Client::Vscode, Some(dir)) => Some(absolute_on(os, dir)),
            _ => None,
        };
        let product = if args.insiders {
            vscode::INSIDERS
        } else {
            vscode::STABLE
        };
        let path = match (&args.file, client) {
            (_, Client::Env) => None,
            (Some(file), _) => Some(absolute_on(os, file).display().to_string()),
            (None, client) => {
                let home_variable = if os == Os::Windows {
                    "USERPROFILE"
                } else {
                    "HOME"
                };
                let home = environment(home_variable)
                    .filter(|home| !home.is_empty())
                    .ok_or(ConnectError::NoHome(home_variable))?;
                let workspace = workspace.as_ref().map(|dir| dir.display().to_string());
                config_path(
                    client,
                    os,
                    &home,
                    environment,
                    workspace.as_deref(),
                    product,
                )
            }
        };
        let shell = args.shell.unwrap_or_else(|| {
            default_shell(
                os,
                environment("SHELL").as_deref().filter(|s| !s.is_empty()),
            )
        });
        // A workspace's files are committed and shared: no key goes in them.
        let in_workspace = client == Client::Vscode
            && (workspace.is_some()
                || path.as_deref().is_some_and(|path| {
                    split_path(path, os).iter().rev().nth(1) == Some(&".vscode")
                }));
        let keys = match &endpoint.key_file {
            _ if in_workspace => KeyPlacement::VsCodeInput,
            Some(file) if transport == Transport::Stdio => KeyPlacement::KeyFile(file.clone()),
            _ => KeyPlacement::Literal,
        };
        let consent = match (client, &path) {
            (Client::Vscode, Some(path)) => {
                vscode::collection_label(path, os).map(|label| Consent {
                    path: vscode::settings_beside(path, os),
                    key: vscode::consent_key(&label, &args.name),
                    allow_models: args.allow_models.clone(),
                })
            }
            _ => None,
        };
        let settings = Settings {
            client,
            endpoint: endpoint.clone(),
            transport,
            launcher: vscode::launcher(environment, &context.exe),
            listen: args.listen,
            name: args.name.clone(),
            keys,
            consent,
        };
        // A path that is not this system's (`--os windows` elsewhere) cannot be checked here.
        let confine = workspace.filter(|dir| dir.is_absolute());
        let mut files = Vec::new();
        if let Some(path) = path {
            let mut explain = Vec::new();
            if in_workspace && settings.input().is_some() {
                explain.push(
                    "no key is written to this folder (projects commit it): VS Code asks for it the first time it starts the server (${input:…}) and keeps it in its secret storage"
                        .to_string(),
                );
            }
            if let (KeyPlacement::KeyFile(file), true) = (
                &settings.keys,
                matches!(client, Client::Vscode | Client::CopilotCli),
            ) {
                explain.push(format!(
                    "the launched bridge reads its keys from {} (SAMPLING2API_API_KEY_FILE); they are not copied here",
                    file.display()
                ));
            }
            files.push(FilePlan {
                path: PathBuf::from(path),
                edits: settings.edits(),
                secret: settings.holds_secret(),
                confine: confine.clone(),
                explain,
            });
        }
        if let Some(consent) = &settings.consent {
            files.push(FilePlan {
                path: PathBuf::from(&consent.path),
                edits: vscode::consent_edits(&consent.key, &consent.allow_models),
                secret: false,
                confine: confine.clone(),
                explain: vec![vscode::consent_explanation(
                    &consent.key,
                    &settings.name,
                    &consent.allow_models,
                )],
            });
        }
        Ok(Plan {
            settings,
            files,
            shell,
        })
    }
}

/// `path` made absolute and free of `.`/`..`. A path of another system (`--os`, for tests of
/// every layout from one machine) is only cleaned on paper, with that system's separators.
fn absolute_on(os: Os, path: &Path) -> PathBuf {
    if os == Os::current() {
        return files::normalize(path);
    }
    let text = path.to_string_lossy();
    let separator = os.separator();
    let rooted = text.starts_with(['/', '\\']);
    let mut parts: Vec<&str> = Vec::new();
    for part in split_path(&text, os) {
        if part == ".." {
            parts.pop();
        } else {
            parts.push(part);
        }
    }
    let joined = parts.join(&separator.to_string());
    PathBuf::from(if rooted {
        format!("{separator}{joined}")
    } else {
        joined
    })
}

/// The change `connect` makes to one file.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// The path as the person knows it (shown in the diff).
    pub path: PathBuf,
    /// The file read and replaced, links followed.
    pub target: PathBuf,
    pub old: Option<String>,
    pub new: String,
    pub secret: bool,
    pub explain: Vec<String>,
}

impl FileChange {
    pub fn is_change(&self) -> bool {
        self.old.as_deref() != Some(self.new.as_str())
    }
}

impl FilePlan {
    /// Reads the file (safely: see `files`) and computes its new content.
    pub fn change(&self, follow_outside_links: bool) -> Result<FileChange, ConnectError> {
        let label = self.path.display().to_string();
        let resolved = files::resolve(&self.path, self.confine.as_deref(), follow_outside_links)?;
        let old = files::read_config(&resolved.target)?;
        let new = apply_edits(&label, old.as_deref(), &self.edits)?;
        let mut explain = Vec::new();
        if resolved.is_link {
            explain.push(format!(
                "{label} is a symbolic link: the file changed is {}",
                resolved.target.display()
            ));
        }
        explain.extend(self.explain.iter().cloned());
        if self.secret
            && let Some(mode) = std::fs::metadata(&resolved.target)
                .ok()
                .and_then(|metadata| local_files::readable_by_others(&metadata))
        {
            // Not refused: the file is the person's own client configuration, which they asked
            // to hold the key; only the person (and the client, running as them) must read it.
            explain.push(format!(
                "{label} is readable by other users (mode {mode:o}) and will hold a key: the new file is private (mode {:o})",
                mode & 0o700
            ));
        }
        Ok(FileChange {
            path: self.path.clone(),
            target: resolved.target,
            old,
            new,
            secret: self.secret,
            explain,
        })
    }
}

/// Checks the combination of flags and clients, once for all clients.
fn check_usage(args: &ConnectArgs, clients: &[Client]) -> Result<(), ConnectError> {
    let vscode = clients.contains(&Client::Vscode);
    let only_vscode = |flag: &str| ConnectError::Usage(format!("{flag} applies to vscode only"));
    if args.workspace.is_some() && !vscode {
        return Err(only_vscode("--workspace"));
    }
    if !args.allow_models.is_empty() && !vscode {
        return Err(only_vscode("--allow-model"));
    }
    if args.insiders && !vscode {
        return Err(only_vscode("--insiders"));
    }
    if clients.len() > 1 {
        if clients.contains(&Client::Env) {
            return Err(ConnectError::Usage(
                "env prints exports to evaluate, which cannot be mixed with other clients' diffs: run it on its own".into(),
            ));
        }
        if args.file.is_some() {
            return Err(ConnectError::Usage(
                "--file names one client's file: configure one client with it".into(),
            ));
        }
    }
    if args.name.trim().is_empty() {
        return Err(ConnectError::Usage("--name must not be empty".into()));
    }
    Ok(())
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
    if settings.client == Client::Vscode {
        match &settings.consent {
            None => notes.push(
                "this file is not where VS Code keeps an MCP configuration (…/User/mcp.json, a profile's, or …/.vscode/mcp.json), so the key of its sampling consent is unknown: none is written, and VS Code asks at the first request".into(),
            ),
            Some(consent) => {
                let unlikely = vscode::unlikely_models(&consent.allow_models);
                if !unlikely.is_empty() {
                    notes.push(format!(
                        "VS Code names models vendor/id (copilot/gpt-4.1); it ignores {} and, with no known model left, asks which models to allow",
                        unlikely.join(", ")
                    ));
                }
            }
        }
    }
    notes
}

/// What to do once the files are written, one line per client.
fn next_steps(plan: &Plan) -> Option<String> {
    let settings = &plan.settings;
    let name = &settings.name;
    let start_in_vscode = format!(
        "run \"MCP: List Servers\" → {name} → Start Server (VS Code also starts a new server at the first chat message). Start it the same way in each new window: VS Code starts a server it has run before only when asked, and the bridge offers no tools that would"
    );
    let local_http = settings.transport == Transport::Http && !settings.endpoint.remote;
    Some(match settings.client {
        Client::Vscode => {
            let mut step = if local_http {
                format!(
                    "VS Code: start the bridge (`sampling2api http --listen {}`, with its keys in --api-key-file), then {start_in_vscode}",
                    settings.listen
                )
            } else {
                format!("VS Code: {start_in_vscode}")
            };
            if settings.keys == KeyPlacement::VsCodeInput && settings.input().is_some() {
                step.push_str("; the first start asks for the API key");
            }
            step
        }
        Client::CopilotCli if local_http => format!(
            "Copilot CLI: start the bridge (`sampling2api http --listen {}`), then `copilot`",
            settings.listen
        ),
        Client::CopilotCli => "Copilot CLI: start `copilot`; it starts the bridge with it".into(),
        Client::ClaudeCode => format!(
            "Claude Code: start a new `claude` session; it calls {}, which answers while the bridge runs",
            settings.endpoint.api_base
        ),
        Client::ClaudeDesktop => "Claude Desktop: restart it".into(),
        Client::Env => return None,
    })
}

/// Runs `sampling2api connect`.
pub fn run(args: &ConnectArgs) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let context = Context {
        env: &env,
        exe: std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "sampling2api".into()),
    };
    match execute(args, &context, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sampling2api connect: {err}");
            ExitCode::FAILURE
        }
    }
}

fn execute(
    args: &ConnectArgs,
    context: &Context,
    out: &mut dyn std::io::Write,
) -> Result<(), ConnectError> {
    let mut args = args.clone();
    let mut clients = args.clients.clone();
    clients.sort();
    clients.dedup();
    check_usage(&args, &clients)?;
    let loaded = args.keys.load()?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    if args.token_on_command_line {
        eprintln!(
            "warning: --token on the command line is readable by every local user in the process list; put it in a file and pass --api-key-file FILE instead"
        );
    }
    let endpoint = Endpoint::from_args(&args, loaded.only_file)?;
    let plans = clients
        .iter()
        .map(|client| Plan::new(&args, *client, &endpoint, context))
        .collect::<Result<Vec<_>, _>>()?;
    let stdout_error = |source| ConnectError::Io {
        path: "stdout".into(),
        source,
    };
    for note in plans.iter().flat_map(notes) {
        eprintln!("note: {note}");
    }
    if let [plan] = plans.as_slice()
        && plan.settings.client == Client::Env
    {
        if args.write {
            return Err(ConnectError::Usage(
                "env has no file to write: it prints exports; apply them with eval \"$(sampling2api connect env)\" (sh), | source (fish), or | Invoke-Expression (PowerShell)".into(),
            ));
        }
        return out
            .write_all(plan.settings.exports(plan.shell).as_bytes())
            .map_err(stdout_error);
    }
    // Every file is read and merged before any is written: one that cannot be changes nothing.
    let changes = plans
        .iter()
        .flat_map(|plan| &plan.files)
        .map(|file| file.change(args.follow_outside_links))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pending = Vec::new();
    for change in &changes {
        let label = change.path.display().to_string();
        if !change.is_change() {
            writeln!(out, "# {label}: up to date, nothing to change").map_err(stdout_error)?;
            continue;
        }
        for line in &change.explain {
            writeln!(out, "# {line}").map_err(stdout_error)?;
        }
        out.write_all(unified_diff(&label, change.old.as_deref(), &change.new).as_bytes())
            .map_err(stdout_error)?;
        pending.push(change);
    }
    if !args.write {
        if !pending.is_empty() {
            let backup = if pending.iter().any(|change| change.old.is_some()) {
                " (each current file is kept as a backup)"
            } else {
                ""
            };
            eprintln!("Nothing written. Run again with --write to apply{backup}.");
        }
        return Ok(());
    }
    for change in pending {
        let label = change.path.display().to_string();
        let written = files::write_file(
            &change.target,
            change.old.as_deref(),
            &change.new,
            change.secret,
        )?;
        for skipped in &written.skipped {
            eprintln!("note: {skipped}");
        }
        match written.backup {
            Some(backup) => eprintln!("Wrote {label} (previous version: {}).", backup.display()),
            None => eprintln!("Wrote {label}."),
        }
    }
    let steps: Vec<String> = plans.iter().filter_map(next_steps).collect();
    if !steps.is_empty() {
        eprintln!("Next:");
        for step in steps {
            eprintln!("  - {step}.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
