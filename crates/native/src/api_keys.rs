//! The bridge's API keys, as the bridge (`stdio`, `http`) and `connect` take them: `--api-key`,
//! the `SAMPLING2API_API_KEYS` environment variable, or a key file.
//!
//! A key on the command line is readable by every local user in the process list (`ps`,
//! `/proc/PID/cmdline`); the environment and a file are not, so a key that came from the
//! command line earns a warning naming both.

use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use crate::local_files::{self, LocalFileError};

/// Largest key file read: keys are short, and a larger file is not a key file.
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Where the keys come from.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyArgs {
    /// An API key callers must present as `x-api-key` or `Authorization: Bearer` (repeat for
    /// several; in the environment, comma-separated). In http mode MCP clients present it too.
    /// On the command line every local user can read it in the process list: prefer
    /// --api-key-file or the environment.
    #[arg(
        long = "api-key",
        env = "SAMPLING2API_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// A file of API keys, one per line (blank lines and lines starting with `#` are
    /// skipped), added to any --api-key.
    #[arg(
        long = "api-key-file",
        env = "SAMPLING2API_API_KEY_FILE",
        value_name = "FILE"
    )]
    pub api_key_file: Option<PathBuf>,
    /// Whether a key came from `--api-key` itself (set from the parsed command line).
    #[arg(skip)]
    pub on_command_line: bool,
}

/// What loading the keys found beyond the keys themselves.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Things the person should hear about (a key on the command line, a readable key file).
    pub warnings: Vec<String>,
    /// The key file, absolute, when every key came from it (a configuration can then name
    /// the file instead of copying the keys).
    pub only_file: Option<PathBuf>,
}

/// Why the key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("--api-key-file: {0}")]
    Read(#[from] LocalFileError),
    #[error("--api-key-file {path}: no such file")]
    Missing { path: String },
    #[error(
        "--api-key-file {path}, line {line}: a key cannot contain spaces or commas (keys travel in HTTP headers and comma-separated lists)"
    )]
    BadKey { path: String, line: usize },
    #[error("--api-key-file {path} holds no key (one per line; `#` starts a comment line)")]
    Empty { path: String },
}

/// The warning for a key given on the command line.
pub const COMMAND_LINE_WARNING: &str = "an API key was given with --api-key on the command line, where every local user can read it in the process list; use --api-key-file FILE or the SAMPLING2API_API_KEYS environment variable instead";

impl KeyArgs {
    /// Notes whether `--api-key` came from the command line rather than the environment.
    pub fn note_sources(&mut self, matches: &ArgMatches) {
        self.on_command_line = matches.value_source("api_keys") == Some(ValueSource::CommandLine);
    }

    /// Adds the key file's keys to `api_keys` and drops empty keys.
    pub fn load(&mut self) -> Result<Loaded, KeyFileError> {
        let mut loaded = Loaded::default();
        self.api_keys.retain(|key| !key.is_empty());
        if self.on_command_line && !self.api_keys.is_empty() {
            loaded.warnings.push(COMMAND_LINE_WARNING.into());
        }
        let Some(path) = self.api_key_file.clone() else {
            return Ok(loaded);
        };
        let label = path.display().to_string();
        let text = local_files::read_text(&path, MAX_KEY_FILE_BYTES)?.ok_or_else(|| {
            KeyFileError::Missing {
                path: label.clone(),
            }
        })?;
        let keys = parse_key_file(&label, &text)?;
        if let Some(mode) = std::fs::metadata(&path)
            .ok()
            .and_then(|metadata| local_files::readable_by_others(&metadata))
        {
            // Not refused: container secrets are mounted read-only and often 0644 or 0444
            // (Kubernetes, Docker), by root, where the bridge cannot change them.
            loaded.warnings.push(format!(
                "--api-key-file {label} is readable by other users (mode {mode:o}); make it private with `chmod 600 {label}`"
            ));
        }
        if self.api_keys.is_empty() {
            loaded.only_file = Some(absolute(&path));
        }
        for key in keys {
            if !self.api_keys.contains(&key) {
                self.api_keys.push(key);
            }
        }
        Ok(loaded)
    }
}

/// The keys in a key file's text: one per line, surrounding whitespace trimmed, blank lines and
/// `#` comment lines skipped.
pub fn parse_key_file(path: &str, text: &str) -> Result<Vec<String>, KeyFileError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(KeyFileError::BadKey {
                path: path.into(),
                line: index + 1,
            });
        }
        keys.push(line.to_string());
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty { path: path.into() });
    }
    Ok(keys)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        keys: KeyArgs,
    }

    fn parse(args: &[&str]) -> KeyArgs {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let mut keys = Cli::from_arg_matches(&matches).unwrap().keys;
        keys.note_sources(&matches);
        keys
    }

    #[test]
    fn key_files_hold_one_key_per_line_with_comments() {
        assert_eq!(
            parse_key_file("f", "# keys\n\n  k1  \r\nk2\n#k3\n").unwrap(),
            ["k1", "k2"]
        );
        assert!(matches!(
            parse_key_file("f", "k1\nk 2\n"),
            Err(KeyFileError::BadKey { line: 2, .. })
        ));
        assert!(matches!(
            parse_key_file("f", "a,b\n"),
            Err(KeyFileError::BadKey { line: 1, .. })
        ));
        assert!(matches!(
            parse_key_file("f", "# none\n"),
            Err(KeyFileError::Empty { .. })
        ));
    }

    #[test]
    fn a_key_on_the_command_line_is_warned_about_and_a_file_is_merged() {
        let dir = std::env::temp_dir().join(format!(
            "sampling2api-keys-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "from-file\nk1\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let path = file.to_str().unwrap();

        let mut argv = parse(&["--api-key", "k1", "--api-key-file", path]);
        assert!(argv.on_command_line);
        let loaded = argv.load().unwrap();
        assert_eq!(loaded.warnings, [COMMAND_LINE_WARNING]);
        assert_eq!(argv.api_keys, ["k1", "from-file"]);
        assert_eq!(loaded.only_file, None);

        let mut only_file = parse(&["--api-key-file", path]);
        assert!(!only_file.on_command_line);
        let loaded = only_file.load().unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert_eq!(only_file.api_keys, ["from-file", "k1"]);
        assert_eq!(loaded.only_file.as_deref(), Some(file.as_path()));

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let loaded = parse(&["--api-key-file", path]).load().unwrap();
            assert_eq!(loaded.warnings.len(), 1);
            assert!(
                loaded.warnings[0].contains("mode 644"),
                "{:?}",
                loaded.warnings
            );
        }
        let missing = dir.join("missing");
        assert!(matches!(
            parse(&["--api-key-file", missing.to_str().unwrap()]).load(),
            Err(KeyFileError::Missing { .. })
        ));
        // An empty --api-key (as `--api-key ""`) is no key and no warning.
        let mut empty = parse(&["--api-key", ""]);
        assert!(empty.load().unwrap().warnings.is_empty());
        assert!(empty.api_keys.is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
