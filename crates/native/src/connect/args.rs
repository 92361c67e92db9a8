//! `connect`'s command line: which clients, where the bridge is, and how to write.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};

use crate::api_keys::KeyArgs;

/// Configure clients (VS Code, Copilot CLI, Claude Code, Claude Desktop, SDK env) for this bridge.
///
/// Prints the change to each client's configuration as a diff, or merges it into the client's
/// own files with `--write`. The bridge's flags (`--listen`, `--api-key`, `--api-key-file`,
/// `--mcp-path`) and their environment variables mean the same here, so what is written
/// matches what runs.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The clients to configure; several at once set them up together
    /// (`connect vscode claude-code --write`).
    #[arg(value_enum, required = true, num_args = 1..)]
    pub clients: Vec<Client>,
    /// Apply the change (merged into the existing file, the previous version kept as FILE.bak).
    /// Without it, only prints what would change.
    #[arg(long)]
    pub write: bool,
    /// Address the bridge listens on (as `--listen` of `stdio`/`http`).
    #[arg(long, default_value = "127.0.0.1:38080", env = "SAMPLING2API_LISTEN")]
    pub listen: SocketAddr,
    /// The bridge's API keys (as its `--api-key`/`--api-key-file`); the first is what callers present.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// How an MCP client (vscode, copilot-cli) reaches the bridge: `stdio` (the client launches
    /// this binary) or `http` (to a running `sampling2api http`). Default: stdio, or http with --url.
    #[arg(long, value_enum)]
    pub mode: Option<Transport>,
    /// Path of the MCP endpoint of `sampling2api http` (as its `--mcp-path`).
    #[arg(long, default_value = "/mcp", env = "SAMPLING2API_MCP_PATH")]
    pub mcp_path: String,
    /// A bridge elsewhere instead of --listen, e.g. the worker: `https://sampling2api.<you>.workers.dev`.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The token (API key) for --url; the worker refuses requests without one. The first key
    /// of --api-key-file serves too, and keeps it out of the process list.
    #[arg(long, requires = "url")]
    pub token: Option<String>,
    /// vscode: configure `DIR/.vscode/mcp.json` (and its sampling consent in
    /// `DIR/.vscode/settings.json`) instead of the user configuration. No key is written
    /// there: VS Code asks for it once and keeps it in its secret storage.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// vscode: a model the bridge may use through VS Code, as VS Code names it
    /// (`copilot/gpt-4.1`, `copilot/claude-sonnet-4.5`; "MCP: List Servers → sampling2api →
    /// Configure Model Access" shows them). Repeatable. Without it, VS Code's default models.
    #[arg(long = "allow-model", value_name = "ID")]
    pub allow_models: Vec<String>,
    /// vscode: VS Code Insiders' user configuration instead of VS Code's.
    #[arg(long)]
    pub insiders: bool,
    /// Follow a symbolic link in the --workspace folder that points outside it (refused
    /// otherwise: a cloned or shared folder could point connect at another of your files).
    #[arg(long)]
    pub follow_outside_links: bool,
    /// env: the shell to print exports for (default: from $SHELL; PowerShell on Windows).
    #[arg(long, value_enum)]
    pub shell: Option<Shell>,
    /// Name of the server entry in MCP client configurations.
    #[arg(long, default_value = "sampling2api")]
    pub name: String,
    /// Edit this file instead of the client's usual one (one client only).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Lay out paths as on this OS (tests cover every OS from one machine).
    #[arg(long, value_enum, hide = true)]
    pub os: Option<Os>,
    /// Whether --token came from the command line (set from the parsed command line).
    #[arg(skip)]
    pub token_on_command_line: bool,
}

impl ConnectArgs {
    /// Notes which secrets came from the command line, where the process list shows them.
    pub fn note_sources(&mut self, matches: &ArgMatches) {
        self.keys.note_sources(matches);
        self.token_on_command_line =
            matches.value_source("token") == Some(ValueSource::CommandLine);
    }
}

/// A client `connect` knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Client {
    /// VS Code's MCP configuration (`mcp.json`) and its sampling consent (`settings.json`).
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

    pub fn separator(self) -> char {
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
