//! `sampling2api connect` run as a person runs it: golden output for every client on every OS
//! (and VS Code's user, Insiders and workspace targets), `--write` against real files (merges,
//! backups, idempotence, refusals), several clients at once, and a folder set up by an
//! attacker (planted links and FIFOs, links out of the workspace, devices, readable files).
//!
//! Golden files live in `tests/golden/`; `UPDATE_GOLDEN=1 cargo test --test connect` rewrites them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Stdio;
use std::process::{Command, Output};
#[cfg(unix)]
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_sampling2api");

/// Variables that would change what `connect` prints.
const AMBIENT: &[&str] = &[
    "SAMPLING2API_LISTEN",
    "SAMPLING2API_API_KEYS",
    "SAMPLING2API_API_KEY_FILE",
    "SAMPLING2API_MCP_PATH",
    "SAMPLING2API_LAUNCHER",
    "SAMPLING2API_LAUNCHER_PACKAGE",
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
    // As the binary sees it from inside (macOS's /var is a link to /private/var).
    fs::canonicalize(dir).unwrap()
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

/// `connect` that must finish within `limit` (a hang is a failure, not a stuck test), with
/// its address space capped where `sh` can (a read that never ends fails instead of
/// exhausting the machine's memory).
#[cfg(unix)]
fn connect_bounded(home: &Path, args: &[&str], limit: Duration) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -v 2000000 2>/dev/null; exec \"$0\" connect \"$@\"")
        .arg(BINARY)
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env("USERPROFILE", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in AMBIENT {
        command.env_remove(name);
    }
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("connect {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
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
    // VS Code's other targets: Insiders, and a workspace folder (its consent goes beside it).
    for (os, home) in homes {
        let workspace = match os {
            "windows" => format!(r"{home}\src\app"),
            _ => format!("{home}/src/app"),
        };
        for (target, extra) in [
            ("insiders", vec!["--insiders"]),
            ("workspace", vec!["--workspace", workspace.as_str()]),
        ] {
            let mut args = vec!["connect", "vscode", "--os", os, "--api-key", "key-1"];
            args.extend(extra);
            args.extend(["--allow-model", "copilot/gpt-4.1"]);
            let output = Command::new(BINARY)
                .args(&args)
                .current_dir(&dir)
                .env_clear()
                .env("HOME", home)
                .env("USERPROFILE", home)
                .output()
                .unwrap();
            let text = stdout(&output).replace(&binary, "$BINARY");
            check_golden(&format!("vscode-{target}-{os}.diff"), &text);
        }
    }
    // Run from the npm package: VS Code launches it through npx, and updates follow the package.
    let npm = Command::new(BINARY)
        .args(["connect", "vscode", "--os", "linux", "--api-key", "key-1"])
        .current_dir(&dir)
        .env_clear()
        .env("HOME", "/home/ada")
        .env("SAMPLING2API_LAUNCHER", "npm")
        .env("SAMPLING2API_LAUNCHER_PACKAGE", "sampling2api@0.1.0")
        .output()
        .unwrap();
    check_golden("vscode-npm-linux.diff", &stdout(&npm));
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
    assert!(!workspace.join(".vscode/settings.json").exists());
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
    // A workspace file gets no key: VS Code asks for it.
    assert!(!written.contains("Bearer k\""), "{written}");
    assert!(
        written.contains(r#""Authorization": "Bearer ${input:sampling2api-api-key}""#),
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
    assert_eq!(
        names(&workspace.join(".vscode")),
        ["mcp.json", "mcp.json.bak", "settings.json"]
    );
    fs::remove_dir_all(home).unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
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

#[test]
fn several_clients_are_planned_together_and_told_what_comes_next() {
    let home = scratch("several");
    let keys = home.join("keys");
    fs::write(&keys, "# the bridge's key\nkey-from-file\n").unwrap();
    let keys = keys.to_str().unwrap().to_string();
    let args = [
        "vscode",
        "claude-code",
        "--write",
        "--api-key-file",
        &keys,
        "--allow-model",
        "copilot/gpt-4.1",
    ];

    // One file that cannot be merged: nothing is written, not even the other client's.
    let claude = home.join(".claude/settings.json");
    fs::create_dir_all(claude.parent().unwrap()).unwrap();
    fs::write(&claude, "{ broken").unwrap();
    let refused = connect(&home, &args);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not valid JSON"),
        "{}",
        stderr(&refused)
    );
    assert!(!home.join(".config/Code/User/mcp.json").exists());

    fs::remove_file(&claude).unwrap();
    let output = connect(&home, &args);
    let out = stdout(&output);
    let err = stderr(&output);
    let mcp: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(home.join(".config/Code/User/mcp.json")).unwrap())
            .unwrap();
    // The launched bridge reads the key file itself; the key is not copied.
    assert_eq!(
        mcp["servers"]["sampling2api"]["env"],
        serde_json::json!({"SAMPLING2API_API_KEY_FILE": keys})
    );
    let consent: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(home.join(".config/Code/User/settings.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        consent["chat.mcp.serverSampling"]["Global in Code: sampling2api"],
        serde_json::json!({"allowedOutsideChat": true, "allowedModels": ["copilot/gpt-4.1"]})
    );
    assert!(
        out.contains("# VS Code's sampling consent \"Global in Code: sampling2api\""),
        "{out}"
    );
    let code: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&claude).unwrap()).unwrap();
    assert_eq!(code["env"]["ANTHROPIC_AUTH_TOKEN"], "key-from-file");
    let next = err
        .split("Next:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        next.contains("VS Code: run \"MCP: List Servers\" → sampling2api → Start Server"),
        "{err}"
    );
    assert!(
        next.contains("Claude Code: start a new `claude` session"),
        "{err}"
    );
    assert!(!err.contains("process list"), "{err}");
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn a_key_on_the_command_line_is_warned_about_and_other_ways_are_not() {
    let home = scratch("argv");
    let keys = home.join("keys");
    fs::write(&keys, "k\n").unwrap();
    let warned = connect(&home, &["claude-code", "--api-key", "k"]);
    assert!(
        stderr(&warned).contains("process list"),
        "{}",
        stderr(&warned)
    );
    let file = connect(
        &home,
        &["claude-code", "--api-key-file", keys.to_str().unwrap()],
    );
    assert!(!stderr(&file).contains("process list"), "{}", stderr(&file));
    assert!(stdout(&file).contains(r#""ANTHROPIC_AUTH_TOKEN": "k""#));
    let env = Command::new(BINARY)
        .args(["connect", "claude-code"])
        .current_dir(&home)
        .env("HOME", &home)
        .env("SAMPLING2API_API_KEYS", "k")
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    assert!(!stderr(&env).contains("process list"), "{}", stderr(&env));
    let token = connect(
        &home,
        &["claude-code", "--url", "https://w.example", "--token", "t"],
    );
    assert!(
        stderr(&token).contains("--token on the command line"),
        "{}",
        stderr(&token)
    );
    fs::remove_dir_all(home).unwrap();
}

/// A cloned repository with a `.vscode/mcp.json` whose comment holds the attacker's line.
#[cfg(unix)]
fn hostile_project(home: &Path) -> PathBuf {
    let project = home.join("project");
    fs::create_dir_all(project.join(".vscode")).unwrap();
    fs::write(
        project.join(".vscode/mcp.json"),
        "{\n  // ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIattacker attacker@example\n  \"servers\": {}\n}\n",
    )
    .unwrap();
    project
}

#[cfg(unix)]
#[test]
fn a_link_planted_at_the_backup_name_creates_no_file() {
    let home = scratch("planted-link");
    let project = hostile_project(&home);
    fs::create_dir_all(home.join(".ssh")).unwrap();
    let victim = home.join(".ssh/authorized_keys");
    std::os::unix::fs::symlink(&victim, project.join(".vscode/mcp.json.bak")).unwrap();
    let output = connect(&home, &["vscode", "--workspace", "project", "--write"]);
    stdout(&output);
    assert!(!victim.exists(), "the planted link was followed");
    assert!(project.join(".vscode/mcp.json.bak").is_symlink());
    assert!(
        fs::read_to_string(project.join(".vscode/mcp.json.bak.1"))
            .unwrap()
            .contains("attacker@example")
    );
    assert!(
        stderr(&output).contains("not a backup of ours: left alone"),
        "{}",
        stderr(&output)
    );
    fs::remove_dir_all(home).unwrap();
}

#[cfg(unix)]
#[test]
fn a_fifo_planted_at_the_backup_name_does_not_hang() {
    let home = scratch("planted-fifo");
    let project = hostile_project(&home);
    let status = Command::new("mkfifo")
        .arg(project.join(".vscode/mcp.json.bak"))
        .status()
        .unwrap();
    assert!(status.success());
    let output = connect_bounded(
        &home,
        &["vscode", "--workspace", "project", "--write"],
        Duration::from_secs(20),
    );
    stdout(&output);
    assert!(project.join(".vscode/mcp.json.bak.1").is_file());
    fs::remove_dir_all(home).unwrap();
}

#[cfg(unix)]
#[test]
fn only_regular_files_within_the_bound_are_read() {
    let home = scratch("devices");
    let file = home.join(".claude/settings.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    // A link to /dev/zero would read until memory runs out.
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let zero = connect_bounded(&home, &["claude-code"], Duration::from_secs(20));
    assert!(!zero.status.success());
    assert!(
        stderr(&zero).contains("is not a regular file (a device)"),
        "{}",
        stderr(&zero)
    );
    fs::remove_file(&file).unwrap();
    // A FIFO where the file should be would block the read.
    assert!(
        Command::new("mkfifo")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    let fifo = connect_bounded(&home, &["claude-code", "--write"], Duration::from_secs(20));
    assert!(stderr(&fifo).contains("(a FIFO)"), "{}", stderr(&fifo));
    fs::remove_file(&file).unwrap();
    // A regular file beyond the bound.
    fs::write(&file, vec![b' '; 9 * 1024 * 1024]).unwrap();
    let large = connect_bounded(&home, &["claude-code"], Duration::from_secs(20));
    assert!(
        stderr(&large).contains("more than the 8388608"),
        "{}",
        stderr(&large)
    );
    fs::remove_dir_all(home).unwrap();
}

#[cfg(unix)]
#[test]
fn links_out_of_the_workspace_are_refused_unless_asked_for() {
    let home = scratch("outside");
    let project = hostile_project(&home);
    let claude = home.join(".claude/settings.json");
    fs::create_dir_all(claude.parent().unwrap()).unwrap();
    let original = "{\n  \"model\": \"opus\"\n}\n";
    fs::write(&claude, original).unwrap();
    let link = project.join(".vscode/mcp.json");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&claude, &link).unwrap();
    let args = ["vscode", "--workspace", "project", "--write"];
    let refused = connect(&home, &args);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(message.contains(&link.display().to_string()), "{message}");
    assert!(message.contains(&claude.display().to_string()), "{message}");
    assert!(message.contains("--follow-outside-links"), "{message}");
    assert_eq!(fs::read_to_string(&claude).unwrap(), original);
    assert!(!project.join(".vscode/settings.json").exists());

    // The person's own link, followed when asked; the diff says which file changes.
    let mut follow = args.to_vec();
    follow.push("--follow-outside-links");
    let followed = stdout(&connect(&home, &follow));
    assert!(
        followed.contains("is a symbolic link: the file changed is"),
        "{followed}"
    );
    assert!(fs::read_to_string(&claude).unwrap().contains("\"servers\""));
    assert!(link.is_symlink());

    // The whole .vscode folder linked out: the same.
    fs::remove_dir_all(project.join(".vscode")).unwrap();
    std::os::unix::fs::symlink(home.join(".claude"), project.join(".vscode")).unwrap();
    let folder = connect(&home, &args);
    assert!(!folder.status.success());
    assert!(stderr(&folder).contains("outside"), "{}", stderr(&folder));
    assert!(!home.join(".claude/mcp.json").exists());
    fs::remove_dir_all(home).unwrap();
}

#[cfg(unix)]
#[test]
fn a_file_readable_by_others_that_receives_a_key_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let home = scratch("readable");
    let keys = home.join("keys");
    fs::write(&keys, "secret-key\n").unwrap();
    fs::set_permissions(&keys, fs::Permissions::from_mode(0o600)).unwrap();
    let file = home.join(".claude/settings.json");
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::write(&file, "{}\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let output = connect(
        &home,
        &[
            "claude-code",
            "--api-key-file",
            keys.to_str().unwrap(),
            "--write",
        ],
    );
    let out = stdout(&output);
    assert!(
        out.contains("is readable by other users (mode 644) and will hold a key: the new file is private (mode 600)"),
        "{out}"
    );
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert!(fs::read_to_string(&file).unwrap().contains("secret-key"));
    fs::remove_dir_all(home).unwrap();
}

#[test]
fn workspace_files_never_hold_the_key() {
    let home = scratch("workspace-key");
    let project = home.join("project");
    fs::create_dir_all(&project).unwrap();
    for mode in ["stdio", "http"] {
        let output = connect(
            &home,
            &[
                "vscode",
                "--workspace",
                "project",
                "--mode",
                mode,
                "--api-key",
                "secret-key-1",
                "--write",
            ],
        );
        let out = stdout(&output);
        assert!(out.contains("no key is written to this folder"), "{out}");
        for name in names(&project.join(".vscode")) {
            let text = fs::read_to_string(project.join(".vscode").join(&name)).unwrap();
            assert!(!text.contains("secret-key-1"), "{mode}: {name}: {text}");
        }
        let mcp: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(project.join(".vscode/mcp.json")).unwrap())
                .unwrap();
        let inputs = mcp["inputs"].as_array().unwrap();
        assert!(
            inputs
                .iter()
                .all(|input| input["password"] == true && input["type"] == "promptString"),
            "{inputs:?}"
        );
        assert!(
            stderr(&output).contains("asks for the API key"),
            "{}",
            stderr(&output)
        );
    }
    let consent: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(project.join(".vscode/settings.json")).unwrap())
            .unwrap();
    assert_eq!(
        consent["chat.mcp.serverSampling"]["project/.vscode/mcp.json: sampling2api"]["allowedOutsideChat"],
        true
    );
    fs::remove_dir_all(home).unwrap();
}
