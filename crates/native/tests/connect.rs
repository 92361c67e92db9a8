//! `sampling2api connect` run as a person runs it: golden output for every client on every OS,
//! and `--write` against real files (merges, backups, idempotence, refusals).
//!
//! Golden files live in `tests/golden/`; `UPDATE_GOLDEN=1 cargo test --test connect` rewrites them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_sampling2api");

/// Variables that would change what `connect` prints.
const AMBIENT: &[&str] = &[
    "SAMPLING2API_LISTEN",
    "SAMPLING2API_API_KEYS",
    "SAMPLING2API_MCP_PATH",
    "XDG_CONFIG_HOME",
    "APPDATA",
    "COPILOT_HOME",
    "CLAUDE_CONFIG_DIR",
    "SHELL",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sampling2api-connect-it-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn connect(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.arg("connect").args(args).current_dir(home);
    for name in AMBIENT {
        command.env_remove(name);
    }
    command
        .env("HOME", home)
        .env("USERPROFILE", home)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "golden file {name} differs");
}

#[test]
fn golden_output_for_every_client_on_every_os() {
    let binary = fs::canonicalize(BINARY).unwrap().display().to_string();
    // Homes that do not exist: every file is new, so the output is its whole content.
    let homes = [
        ("linux", "/home/ada"),
        ("macos", "/Users/ada"),
        ("windows", r"C:\Users\ada"),
    ];
    let clients = ["vscode", "copilot-cli", "claude-code", "claude-desktop"];
    let dir = scratch("golden");
    for (os, home) in homes {
        for client in clients {
            let output = Command::new(BINARY)
                .args(["connect", client, "--os", os, "--api-key", "key-1"])
                .current_dir(&dir)
                .env_clear()
                .env("HOME", home)
                .env("USERPROFILE", home)
                .output()
                .unwrap();
            let text = stdout(&output).replace(&binary, "$BINARY");
            check_golden(&format!("{client}-{os}.diff"), &text);
        }
    }
    for shell in ["sh", "fish", "powershell"] {
        let text = stdout(&connect(
            &dir,
            &["env", "--shell", shell, "--api-key", "key-1"],
        ));
        check_golden(&format!("env-{shell}.txt"), &text);
    }
    // The worker: http entries and its URL for every client.
    for client in clients {
        let output = Command::new(BINARY)
            .args([
                "connect",
                client,
                "--os",
                "linux",
                "--url",
                "https://sampling2api.ada.workers.dev",
                "--token",
                "tok-1",
            ])
            .current_dir(&dir)
            .env_clear()
            .env("HOME", "/home/ada")
            .output()
            .unwrap();
        check_golden(&format!("{client}-worker.diff"), &stdout(&output));
    }
    let worker_env = stdout(&connect(
        &dir,
        &[
            "env",
            "--shell",
            "sh",
            "--url",
            "https://sampling2api.ada.workers.dev",
            "--token",
            "tok-1",
        ],
    ));
    check_golden("env-worker.txt", &worker_env);
    fs::remove_dir_all(dir).unwrap();
}

const USER_MCP_JSON: &str = r#"{
  // my servers
  "servers": {
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}, // work
  },
  "inputs": [
    /* none yet */
  ],
}
"#;

#[test]
fn write_merges_keeps_comments_backs_up_once_and_is_idempotent() {
    let home = scratch("merge");
    let workspace = home.join("project");
    let file = workspace.join(".vscode/mcp.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, USER_MCP_JSON).unwrap();
    let args = [
        "vscode",
        "--workspace",
        "project",
        "--mode",
        "http",
        "--listen",
        "127.0.0.1:9123",
        "--api-key",
        "k",
    ];

    // Without --write: the diff, and nothing touched.
    let preview = stdout(&connect(&home, &args));
    assert!(preview.contains("+    \"sampling2api\": {"), "{preview}");
    assert_eq!(fs::read_to_string(&file).unwrap(), USER_MCP_JSON);
    assert!(!workspace.join(".vscode/mcp.json.bak").exists());

    let mut write = args.to_vec();
    write.push("--write");
    let first = stdout(&connect(&home, &write));
    assert_eq!(first, preview);
    let written = fs::read_to_string(&file).unwrap();
    for kept in [
        "  // my servers\n",
        r#""github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}, // work"#,
        "/* none yet */",
    ] {
        assert!(written.contains(kept), "lost {kept:?}:\n{written}");
    }
    assert!(
        written.contains(r#""url": "http://127.0.0.1:9123/mcp""#),
        "{written}"
    );
    assert!(
        written.contains(r#""Authorization": "Bearer k""#),
        "{written}"
    );
    assert_eq!(
        fs::read_to_string(workspace.join(".vscode/mcp.json.bak")).unwrap(),
        USER_MCP_JSON
    );

    // Again: nothing to change, no second backup, the file untouched.
    let second = stdout(&connect(&home, &write));
    assert!(second.contains("up to date, nothing to change"), "{second}");
    assert_eq!(fs::read_to_string(&file).unwrap(), written);
    let mut names: Vec<String> = fs::read_dir(workspace.join(".vscode"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["mcp.json", "mcp.json.bak"]);
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn write_creates_the_users_claude_settings_with_its_directory() {
    let home = scratch("create");
    let out = stdout(&connect(
        &home,
        &["claude-code", "--write", "--listen", "127.0.0.1:9124"],
    ));
    assert!(out.starts_with("--- /dev/null\n"), "{out}");
    let settings: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(home.join(".claude/settings.json")).unwrap())
            .unwrap();
    assert_eq!(
        settings["env"]["ANTHROPIC_BASE_URL"],
        "http://127.0.0.1:9124"
    );
    assert!(!home.join(".claude/settings.json.bak").exists());
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn refusals_leave_files_alone_and_say_why() {
    let home = scratch("refuse");
    let file = home.join(".claude/settings.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "[\"not an object\"]").unwrap();
    let output = connect(&home, &["claude-code", "--write"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not a JSON object"), "{stderr}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "[\"not an object\"]");

    for (args, why) in [
        (&["env", "--write"][..], "no file to write"),
        (
            &["claude-code", "--url", "https://w.example"][..],
            "--token",
        ),
        (
            &[
                "vscode",
                "--url",
                "https://w",
                "--token",
                "t",
                "--mode",
                "stdio",
            ][..],
            "http",
        ),
        (&["claude-code", "--workspace", "."][..], "vscode only"),
    ] {
        let output = connect(&home, args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn the_bridges_environment_sets_what_is_written() {
    let home = scratch("environment");
    let output = Command::new(BINARY)
        .args(["connect", "copilot-cli", "--mode", "http"])
        .current_dir(&home)
        .env("HOME", &home)
        .env("SAMPLING2API_LISTEN", "127.0.0.1:9125")
        .env("SAMPLING2API_API_KEYS", "from-env,second")
        .env("SAMPLING2API_MCP_PATH", "/other")
        .env_remove("COPILOT_HOME")
        .output()
        .unwrap();
    let out = stdout(&output);
    assert!(
        out.contains(r#""url": "http://127.0.0.1:9125/other""#),
        "{out}"
    );
    assert!(
        out.contains(r#""Authorization": "Bearer from-env""#),
        "{out}"
    );
    fs::remove_dir_all(home).unwrap();
}
