//! `connect`'s planning: paths, entries, key placement and consent, without touching files
//! (`files` and the integration tests in `tests/connect.rs` cover those).

use clap::{CommandFactory, FromArgMatches, Parser};
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::CstRootNode;
use serde_json::Value;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: ConnectArgs,
}

fn args(argv: &[&str]) -> ConnectArgs {
    let mut full = vec!["connect"];
    full.extend_from_slice(argv);
    let matches = Cli::command().try_get_matches_from(full).unwrap();
    let mut args = Cli::from_arg_matches(&matches).unwrap().args;
    args.note_sources(&matches);
    args
}

/// The plan for the first client of `argv`, with `env` as the whole environment.
fn plan_with(argv: &[&str], env: &[(&str, &str)]) -> Plan {
    let mut argv = argv.to_vec();
    if !argv.contains(&"--os") {
        // Linux's layout wherever the tests run (HOME, XDG paths, `/` separators).
        argv.extend(["--os", "linux"]);
    }
    let mut args = args(&argv);
    let loaded = args.keys.load().unwrap();
    let endpoint = Endpoint::from_args(&args, loaded.only_file).unwrap();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    if !env.iter().any(|(name, _)| name == "HOME") {
        env.push(("HOME".into(), "/home/ada".into()));
    }
    let lookup = move |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let context = Context {
        env: &lookup,
        exe: "/opt/bin/sampling2api".into(),
    };
    Plan::new(&args, args.clients[0], &endpoint, &context).unwrap()
}

fn plan(argv: &[&str]) -> Plan {
    plan_with(argv, &[])
}

fn parse(text: &str) -> Value {
    CstRootNode::parse(text, &ParseOptions::default())
        .unwrap()
        .to_serde_value()
        .unwrap()
}

/// The main file of the first client of `argv`, merged into `original`.
fn merged(argv: &[&str], original: Option<&str>) -> String {
    apply_edits("test.json", original, &plan(argv).files[0].edits).unwrap()
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
            config_path(client, os, home, &no_env, None, "Code").as_deref(),
            Some(expected),
            "{client:?} on {os:?}"
        );
    }
    assert_eq!(
        config_path(Client::Env, Os::Linux, "/h", &no_env, None, "Code"),
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
    let path = |client, os| config_path(client, os, "/home/ada", &env, None, "Code").unwrap();
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
            Some(r"C:\src\app"),
            "Code"
        ),
        Some(r"C:\src\app\.vscode\mcp.json".to_string())
    );
    // An empty variable counts as unset.
    let empty = |_: &str| Some(String::new());
    assert_eq!(
        config_path(Client::ClaudeCode, Os::Linux, "/h", &empty, None, "Code").unwrap(),
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
    let mut settings = plan(&["env", "--api-key", "it's"]).settings;
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
    let endpoint = plan(&[
        "claude-code",
        "--listen",
        "0.0.0.0:9000",
        "--api-key",
        "k1,k2",
        "--mcp-path",
        "bridge",
    ])
    .settings
    .endpoint;
    assert_eq!(endpoint.api_base, "http://127.0.0.1:9000");
    assert_eq!(endpoint.mcp_url, "http://127.0.0.1:9000/bridge");
    assert_eq!(endpoint.key.as_deref(), Some("k1"));
    assert_eq!(endpoint.all_keys, ["k1", "k2"]);
    let v6 = plan(&["env", "--listen", "[::]:1"]).settings.endpoint;
    assert_eq!(v6.api_base, "http://[::1]:1");
    assert_eq!(v6.key, None);
    let worker = plan(&[
        "env",
        "--url",
        "https://s.example.workers.dev/",
        "--token",
        "t",
    ])
    .settings
    .endpoint;
    assert_eq!(worker.api_base, "https://s.example.workers.dev");
    assert_eq!(worker.mcp_url, "https://s.example.workers.dev/mcp");
    assert!(worker.remote);
    assert!(Endpoint::from_args(&args(&["env", "--url", "https://x"]), None).is_err());
    assert!(
        Endpoint::from_args(&args(&["env", "--url", "ftp://x", "--token", "t"]), None).is_err()
    );
    assert!(
        Cli::command()
            .try_get_matches_from(["connect", "env", "--token", "t"])
            .is_err()
    );
    let both = args(&[
        "vscode",
        "claude-code",
        "--token",
        "t",
        "--url",
        "https://x",
    ]);
    assert_eq!(both.clients, [Client::Vscode, Client::ClaudeCode]);
    assert!(both.token_on_command_line);
}

#[test]
fn entries_for_stdio_and_http() {
    let stdio = parse(&merged(&["vscode", "--api-key", "k"], None));
    assert_eq!(
        stdio["servers"]["sampling2api"],
        serde_json::json!({"type": "stdio", "command": "/opt/bin/sampling2api",
            "args": ["stdio", "--listen", "127.0.0.1:38080"],
            "env": {"SAMPLING2API_API_KEYS": "k"}})
    );
    let http = parse(&merged(
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
    ));
    assert_eq!(
        http["mcpServers"]["bridge"],
        serde_json::json!({"type": "http", "url": "http://127.0.0.1:38080/mcp",
            "headers": {"Authorization": "Bearer k"}, "tools": ["*"]})
    );
    let keyless = parse(&merged(&["vscode", "--mode", "http"], None));
    assert!(keyless["servers"]["sampling2api"].get("headers").is_none());
    let desktop = parse(&merged(&["claude-desktop"], None));
    assert_eq!(
        desktop["enterpriseConfig"],
        serde_json::json!({"inferenceProvider": "gateway",
            "inferenceGatewayBaseUrl": "http://127.0.0.1:38080",
            "inferenceGatewayApiKey": "sampling2api", "inferenceGatewayAuthScheme": "bearer"})
    );
}

#[test]
fn the_npm_package_is_launched_through_npx() {
    let npm = [
        ("SAMPLING2API_LAUNCHER", "npm"),
        ("SAMPLING2API_LAUNCHER_PACKAGE", "sampling2api@0.3.1"),
    ];
    for (client, servers) in [("vscode", "servers"), ("copilot-cli", "mcpServers")] {
        let planned = plan_with(&[client, "--api-key", "k"], &npm);
        let entry = &parse(&apply_edits("f", None, &planned.files[0].edits).unwrap())[servers]["sampling2api"];
        assert_eq!(entry["command"], "npx", "{client}");
        assert_eq!(
            entry["args"],
            serde_json::json!(["-y", "sampling2api", "stdio", "--listen", "127.0.0.1:38080"])
        );
    }
}

#[test]
fn workspace_files_get_vscode_inputs_instead_of_keys() {
    for mode in ["stdio", "http"] {
        let planned = plan(&[
            "vscode",
            "--workspace",
            "/src/app",
            "--mode",
            mode,
            "--api-key",
            "secret-key",
        ]);
        let main = &planned.files[0];
        assert!(!main.secret);
        #[cfg(unix)]
        assert_eq!(main.confine.as_deref(), Some(Path::new("/src/app")));
        let text = apply_edits("f", None, &main.edits).unwrap();
        assert!(!text.contains("secret-key"), "{text}");
        let parsed = parse(&text);
        let (id, reference) = if mode == "stdio" {
            let id = "sampling2api-api-keys";
            (
                id,
                parsed["servers"]["sampling2api"]["env"]["SAMPLING2API_API_KEYS"].clone(),
            )
        } else {
            let id = "sampling2api-api-key";
            (
                id,
                parsed["servers"]["sampling2api"]["headers"]["Authorization"].clone(),
            )
        };
        assert!(
            reference
                .as_str()
                .unwrap()
                .contains(&format!("${{input:{id}}}")),
            "{text}"
        );
        assert_eq!(parsed["inputs"][0]["id"], id);
        assert_eq!(parsed["inputs"][0]["type"], "promptString");
        assert_eq!(parsed["inputs"][0]["password"], true);
    }
    // The same for a file named inside a .vscode folder, and for --url's token.
    let named = plan(&[
        "vscode",
        "--file",
        "/src/app/.vscode/mcp.json",
        "--url",
        "https://w.example",
        "--token",
        "tok",
    ]);
    let text = apply_edits("f", None, &named.files[0].edits).unwrap();
    assert!(!text.contains("tok\""), "{text}");
    assert!(
        text.contains("Bearer ${input:sampling2api-api-key}"),
        "{text}"
    );
    // Without keys there is nothing to ask for.
    let keyless = apply_edits(
        "f",
        None,
        &plan_with(&["vscode", "--workspace", "/w"], &[]).files[0].edits,
    )
    .unwrap();
    assert!(!keyless.contains("inputs"), "{keyless}");
}

#[test]
fn a_key_file_is_named_in_launched_entries_not_copied() {
    let dir = std::env::temp_dir().join(format!(
        "sampling2api-connect-keyfile-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys");
    std::fs::write(&file, "file-key\n").unwrap();
    let path = file.to_str().unwrap();
    let launched = plan(&["vscode", "--api-key-file", path]);
    assert!(!launched.files[0].secret);
    let entry = parse(&apply_edits("f", None, &launched.files[0].edits).unwrap())["servers"]
        ["sampling2api"]
        .clone();
    assert_eq!(
        entry["env"],
        serde_json::json!({"SAMPLING2API_API_KEY_FILE": path})
    );
    // Callers and http entries need the key itself.
    let code = parse(&merged(&["claude-code", "--api-key-file", path], None));
    assert_eq!(code["env"]["ANTHROPIC_AUTH_TOKEN"], "file-key");
    let http = plan(&["vscode", "--mode", "http", "--api-key-file", path]);
    assert!(http.files[0].secret);
    // A key also on the command line: the keys are written, as they no longer all come from the file.
    let mixed = parse(&merged(
        &["vscode", "--api-key", "k", "--api-key-file", path],
        None,
    ));
    assert_eq!(
        mixed["servers"]["sampling2api"]["env"]["SAMPLING2API_API_KEYS"],
        "k,file-key"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn vscode_gets_its_consent_under_the_key_it_reads() {
    let user = plan(&["vscode", "--allow-model", "copilot/gpt-4.1"]);
    let consent = user.settings.consent.as_ref().unwrap();
    assert_eq!(consent.key, "Global in Code: sampling2api");
    assert_eq!(consent.path, "/home/ada/.config/Code/User/settings.json");
    assert_eq!(user.files[1].path, Path::new(&consent.path));
    let settings = parse(&apply_edits("f", None, &user.files[1].edits).unwrap());
    assert_eq!(
        settings["chat.mcp.serverSampling"]["Global in Code: sampling2api"],
        serde_json::json!({"allowedOutsideChat": true, "allowedModels": ["copilot/gpt-4.1"]})
    );
    let insiders = plan(&["vscode", "--insiders", "--name", "bridge"]);
    let consent = insiders.settings.consent.unwrap();
    assert_eq!(consent.key, "Global in Code - Insiders: bridge");
    assert_eq!(
        consent.path,
        "/home/ada/.config/Code - Insiders/User/settings.json"
    );
    let workspace = plan(&["vscode", "--workspace", "/src/my-app/."]);
    let consent = workspace.settings.consent.unwrap();
    assert_eq!(consent.key, "my-app/.vscode/mcp.json: sampling2api");
    assert_eq!(consent.path, "/src/my-app/.vscode/settings.json");
    #[cfg(unix)]
    assert_eq!(
        workspace.files[1].confine.as_deref(),
        Some(Path::new("/src/my-app"))
    );
    // Another system's layout is cleaned on paper.
    assert_eq!(
        absolute_on(Os::Windows, Path::new(r"C:\src\.\x\..\app")),
        PathBuf::from(r"C:\src\app")
    );
    // Without --allow-model the models already allowed stay as they are.
    let existing = "{\n  \"chat.mcp.serverSampling\": {\n    \"Global in Code: sampling2api\": {\"allowedModels\": [\"copilot/gpt-5\"], \"allowedDuringChat\": false}\n  }\n}\n";
    let out = apply_edits("f", Some(existing), &plan(&["vscode"]).files[1].edits).unwrap();
    assert_eq!(
        parse(&out)["chat.mcp.serverSampling"]["Global in Code: sampling2api"],
        serde_json::json!({"allowedModels": ["copilot/gpt-5"], "allowedDuringChat": false,
            "allowedOutsideChat": true})
    );
    // A file of unknown layout gets no consent, and a note says why.
    let unknown = plan(&["vscode", "--file", "/tmp/x.json"]);
    assert!(unknown.settings.consent.is_none());
    assert_eq!(unknown.files.len(), 1);
    assert!(notes(&unknown)[0].contains("not where VS Code keeps"));
    let odd = plan(&["vscode", "--allow-model", "gpt-4.1"]);
    assert!(notes(&odd)[0].contains("gpt-4.1"), "{:?}", notes(&odd));
}

#[test]
fn flags_and_clients_must_fit_together() {
    let check = |argv: &[&str]| {
        let args = args(argv);
        check_usage(&args, &args.clients).map_err(|err| err.to_string())
    };
    assert!(check(&["vscode", "claude-code"]).is_ok());
    assert!(check(&["vscode", "claude-code", "--workspace", "."]).is_ok());
    assert!(
        check(&["claude-code", "--workspace", "."])
            .unwrap_err()
            .contains("vscode only")
    );
    assert!(
        check(&["claude-code", "--allow-model", "a/b"])
            .unwrap_err()
            .contains("vscode only")
    );
    assert!(
        check(&["claude-code", "--insiders"])
            .unwrap_err()
            .contains("vscode only")
    );
    assert!(
        check(&["vscode", "env"])
            .unwrap_err()
            .contains("on its own")
    );
    assert!(
        check(&["vscode", "claude-code", "--file", "f"])
            .unwrap_err()
            .contains("one client")
    );
    assert!(check(&["vscode", "--name", " "]).is_err());
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
        out.contains(
            r#""github": { "type": "http", "url": "https://api.githubcopilot.com/mcp/" }, // keep"#
        ),
        "{out}"
    );
    assert!(out.contains("/* stale entry of ours */"), "{out}");
    assert!(out.contains("\t\"inputs\": [],\n}"), "{out}");
    assert!(!out.contains("\"old\""), "{out}");
    let parsed = parse(&out);
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
    assert_eq!(
        parse(&out)["env"],
        serde_json::json!({"FOO": "1", "ANTHROPIC_BASE_URL": "http://127.0.0.1:38080",
            "ANTHROPIC_AUTH_TOKEN": "k", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1"})
    );
    assert_eq!(merged(&["claude-code", "--api-key", "k"], Some(&out)), out);
}
