//! What VS Code needs besides the server entry: the sampling consent in `settings.json`, keyed
//! the way VS Code keys it, and the command that launches the bridge.
//!
//! Read from VS Code's source (`main`, mid-2026; the forks palmshed/shed and
//! samchon/ttsc-benchmark-vscode carry the same files):
//! - `src/vs/workbench/contrib/mcp/common/mcpSamplingService.ts`: the consent for a server is
//!   `chat.mcp.serverSampling["<collection label>: <server label>"]`, an object with
//!   `allowedDuringChat`, `allowedOutsideChat` and `allowedModels`. It is looked up from the
//!   most specific settings down to the settings target of the file that defines the server,
//!   and no further: a server of a workspace folder's `.vscode/mcp.json` reads only that
//!   folder's `.vscode/settings.json` (never the user's), a server of the user `mcp.json`
//!   reads the user `settings.json` (and the folder's, which would win).
//!   `allowedModels` entries that name no known model are dropped, and an empty result makes
//!   VS Code ask again; without the key VS Code uses its default models (non-premium).
//! - `src/vs/workbench/contrib/mcp/browser/mcpWorkbenchService.ts` (`getMcpConfigPath`): the
//!   collection label of the user `mcp.json` is `Global in <product nameShort>` ("Code",
//!   "Code - Insiders"; the same for every profile), of a workspace folder's
//!   `.vscode/mcp.json` it is `<folder name>/.vscode/mcp.json`, of a remote's user
//!   configuration the remote's host label (e.g. "SSH: host"). The server label is its key
//!   under `servers` (`common/discovery/installedMcpServersDiscovery.ts`).
//! - `src/vs/platform/environment/node/userDataPath.ts`: the user data folder is named after
//!   the same `nameShort`, so the folder above `User/` gives the product.
//! - `src/vs/workbench/api/common/extHostLanguageModels.ts`: model ids are `<vendor>/<id>`
//!   (or `<vendor>/<group>/<id>`), e.g. `copilot/gpt-4.1`.

use jsonc_parser::cst::CstInputValue;

use super::jsonc::{Edit, set};
use super::{Os, split_path};

/// The settings key of VS Code's consent for servers to sample.
pub const CONSENT_SECTION: &str = "chat.mcp.serverSampling";
/// `nameShort` of VS Code and VS Code Insiders: their user data folders and collection labels.
pub const STABLE: &str = "Code";
pub const INSIDERS: &str = "Code - Insiders";

/// The collection label VS Code gives the servers of the MCP configuration at `mcp_json`
/// (laid out as on `os`), when the path is where VS Code keeps one.
pub fn collection_label(mcp_json: &str, os: Os) -> Option<String> {
    let parts = split_path(mcp_json, os);
    let [.., parent, file] = parts.as_slice() else {
        return None;
    };
    if *file != "mcp.json" {
        return None;
    }
    let named = |part: Option<&&str>| part.filter(|name| !name.is_empty()).map(|s| s.to_string());
    let n = parts.len();
    match *parent {
        ".vscode" => {
            named(parts.get(n.wrapping_sub(3))).map(|folder| format!("{folder}/.vscode/mcp.json"))
        }
        "User" => named(parts.get(n.wrapping_sub(3))).map(|product| format!("Global in {product}")),
        // A profile's own configuration: `<product>/User/profiles/<id>/mcp.json`.
        _ if n >= 5 && parts[n - 3] == "profiles" && parts[n - 4] == "User" => {
            named(parts.get(n - 5)).map(|product| format!("Global in {product}"))
        }
        _ => None,
    }
}

/// The key of a server's consent in `chat.mcp.serverSampling`.
pub fn consent_key(collection_label: &str, server_name: &str) -> String {
    format!("{collection_label}: {server_name}")
}

/// The `settings.json` that VS Code reads the consent of the servers of `mcp_json` from: the
/// one beside it (`User/`, a profile's folder, or `.vscode/`).
pub fn settings_beside(mcp_json: &str, os: Os) -> String {
    let cut = mcp_json
        .rfind(|c| c == '/' || (os == Os::Windows && c == '\\'))
        .map_or(0, |index| index + 1);
    format!("{}settings.json", &mcp_json[..cut])
}

/// The edits that give the server its consent: sampling outside chat (bridge requests never
/// come during one of its tool calls), and the allowed models when given.
pub fn consent_edits(key: &str, allow_models: &[String]) -> Vec<Edit> {
    let mut edits = vec![set(
        &[CONSENT_SECTION, key, "allowedOutsideChat"],
        CstInputValue::Bool(true),
    )];
    if !allow_models.is_empty() {
        edits.push(set(
            &[CONSENT_SECTION, key, "allowedModels"],
            CstInputValue::Array(
                allow_models
                    .iter()
                    .map(|model| CstInputValue::String(model.clone()))
                    .collect(),
            ),
        ));
    }
    edits
}

/// What the consent grants, said before its diff.
pub fn consent_explanation(key: &str, server_name: &str, allow_models: &[String]) -> String {
    let models = if allow_models.is_empty() {
        "the models already allowed there, else VS Code's default (non-premium) models".to_string()
    } else {
        format!("only {} (allowedModels)", allow_models.join(", "))
    };
    format!(
        "VS Code's sampling consent \"{key}\": the MCP server \"{server_name}\" may ask VS Code's language models for completions outside chat without a prompt (allowedOutsideChat: true), using {models}"
    )
}

/// Model ids that cannot be VS Code's (which are `vendor/id`): VS Code drops them, and with
/// none left it asks which models to allow.
pub fn unlikely_models(allow_models: &[String]) -> Vec<&str> {
    allow_models
        .iter()
        .filter(|model| {
            let mut parts = model.split('/');
            !(parts.next().is_some_and(|vendor| !vendor.is_empty())
                && parts.next().is_some_and(|id| !id.is_empty()))
        })
        .map(String::as_str)
        .collect()
}

/// How a client launches the bridge: this binary, or through the npm package it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launcher {
    pub command: String,
    /// Arguments before `stdio …`.
    pub prefix: Vec<String>,
}

/// The variable the npm package's `bin` wrapper sets (to `npm`) before it runs the binary,
/// and the one that names the package (`sampling2api@<version>`).
pub const LAUNCHER_VARIABLE: &str = "SAMPLING2API_LAUNCHER";
pub const PACKAGE_VARIABLE: &str = "SAMPLING2API_LAUNCHER_PACKAGE";

/// The launcher for a binary at `exe`: `npx -y <package>` when it runs from the npm package
/// (the binary's own path lies in npm's cache or `node_modules` and changes with each
/// version, and npx follows the package's updates), the binary's path otherwise.
pub fn launcher(env: &dyn Fn(&str) -> Option<String>, exe: &str) -> Launcher {
    if env(LAUNCHER_VARIABLE).as_deref() == Some("npm") {
        let package = env(PACKAGE_VARIABLE).unwrap_or_default();
        // `name@version` or `@scope/name@version`: the name without the version, so that
        // updates of the package are what runs.
        let name = match package.rsplit_once('@') {
            Some((name, _)) if !name.is_empty() => name,
            _ => package.as_str(),
        };
        let valid = !name.is_empty()
            && name.bytes().all(|byte| {
                byte.is_ascii_lowercase()
                    || byte.is_ascii_digit()
                    || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@' | b'/')
            });
        return Launcher {
            command: "npx".into(),
            prefix: vec![
                "-y".into(),
                if valid { name } else { "sampling2api" }.to_string(),
            ],
        };
    }
    Launcher {
        command: exe.to_string(),
        prefix: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_labels_follow_vscodes_layout() {
        let cases = [
            (
                "/home/ada/.config/Code/User/mcp.json",
                Os::Linux,
                Some("Global in Code"),
            ),
            (
                "/Users/ada/Library/Application Support/Code - Insiders/User/mcp.json",
                Os::Macos,
                Some("Global in Code - Insiders"),
            ),
            (
                r"C:\Users\ada\AppData\Roaming\Code\User\mcp.json",
                Os::Windows,
                Some("Global in Code"),
            ),
            (
                "/home/ada/.config/Code/User/profiles/-4a2b/mcp.json",
                Os::Linux,
                Some("Global in Code"),
            ),
            (
                "/src/app/.vscode/mcp.json",
                Os::Linux,
                Some("app/.vscode/mcp.json"),
            ),
            (
                r"C:\src\my app\.vscode\mcp.json",
                Os::Windows,
                Some("my app/.vscode/mcp.json"),
            ),
            ("/src/app/.vscode/other.json", Os::Linux, None),
            ("/tmp/mcp.json", Os::Linux, None),
            ("mcp.json", Os::Linux, None),
        ];
        for (path, os, label) in cases {
            assert_eq!(collection_label(path, os).as_deref(), label, "{path}");
        }
        assert_eq!(
            consent_key("Global in Code", "sampling2api"),
            "Global in Code: sampling2api"
        );
    }

    #[test]
    fn the_consent_sits_in_the_settings_beside_the_configuration() {
        assert_eq!(
            settings_beside("/h/.config/Code/User/mcp.json", Os::Linux),
            "/h/.config/Code/User/settings.json"
        );
        assert_eq!(
            settings_beside(r"C:\src\app\.vscode\mcp.json", Os::Windows),
            r"C:\src\app\.vscode\settings.json"
        );
    }

    #[test]
    fn model_ids_without_a_vendor_are_pointed_out() {
        let models = ["copilot/gpt-4.1", "gpt-4.1", "copilot/", "/x", "a/b/c"].map(String::from);
        assert_eq!(unlikely_models(&models), ["gpt-4.1", "copilot/", "/x"]);
    }

    #[test]
    fn the_npm_package_launches_through_npx_without_its_version() {
        let npm = |package: Option<&'static str>| {
            move |name: &str| match name {
                LAUNCHER_VARIABLE => Some("npm".to_string()),
                PACKAGE_VARIABLE => package.map(String::from),
                _ => None,
            }
        };
        let expect = |name: &str| Launcher {
            command: "npx".into(),
            prefix: vec!["-y".into(), name.into()],
        };
        assert_eq!(
            launcher(&npm(Some("sampling2api@1.2.3")), "/x"),
            expect("sampling2api")
        );
        assert_eq!(
            launcher(&npm(Some("@acme/sampling2api@0.1.0-rc.1")), "/x"),
            expect("@acme/sampling2api")
        );
        assert_eq!(launcher(&npm(None), "/x"), expect("sampling2api"));
        assert_eq!(
            launcher(&npm(Some("bad name; rm")), "/x"),
            expect("sampling2api")
        );
        let plain = launcher(&|_: &str| None, "/opt/sampling2api");
        assert_eq!(plain.command, "/opt/sampling2api");
        assert!(plain.prefix.is_empty());
        let other = launcher(
            &|name: &str| (name == LAUNCHER_VARIABLE).then(|| "pip".into()),
            "/b",
        );
        assert_eq!(other.command, "/b");
    }
}
