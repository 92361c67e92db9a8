//! The model catalog behind `GET /v1/models` and the model hints sent to MCP clients.
//!
//! Any model id a caller sends is accepted and passed on as a hint; the client decides. The
//! catalog lists what is worth picking: configured aliases, every model a connected client has
//! answered with, and for each of those a `claude-mcp-` twin, because Claude Code's picker shows
//! only ids that start with `claude`. Asking for a twin sends the client its real model name.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::api::model_hints::model_hints;
use crate::api_error::ApiError;

/// Prefix of the Claude-picker-friendly twin of a client's model.
pub const TWIN_PREFIX: &str = "claude-mcp-";
pub const DEFAULT_PAGE_LIMIT: usize = 20;
pub const MAX_PAGE_LIMIT: usize = 1000;
/// Models clients answered with that the catalog keeps; the oldest goes first beyond it, so a
/// client reporting a new name per answer cannot grow the catalog (or its listing) forever.
pub const DEFAULT_MAX_REPORTED_MODELS: usize = 256;
/// A reported model name longer than this (or with control characters) is not kept: no real
/// model id is that long, and it would be copied into every listing.
pub const MAX_MODEL_NAME_BYTES: usize = 256;
/// The longest `model` a request may name, in characters: the Messages API's own bound (its
/// schema gives `model` a `maxLength` of 256). Real ids are far shorter (`claude-opus-4-5[1m]`,
/// an AWS inference-profile ARN of about 100, an OpenAI fine-tune id of about 60); a longer one
/// is refused (400) rather than cut, since a cut id would be passed on as another model.
pub const MAX_MODEL_ID_CHARS: usize = 256;

/// Refuses a requested `model` longer than [`MAX_MODEL_ID_CHARS`], as the real API does.
pub fn check_model_id(model: &str) -> Result<(), ApiError> {
    // A byte count bounds the character count: only long texts need counting.
    if model.len() > MAX_MODEL_ID_CHARS && model.chars().nth(MAX_MODEL_ID_CHARS).is_some() {
        return Err(ApiError::invalid_request(format!(
            "model: String should have at most {MAX_MODEL_ID_CHARS} characters"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub id: String,
    pub display_name: String,
    /// Unix seconds: when the alias was configured or the model first answered.
    pub created_unix: u64,
}

#[derive(Debug, Clone)]
pub struct ModelCatalog {
    /// `(alias, hint)`, as configured.
    aliases: Vec<(String, String)>,
    /// Appended after the request's own hint, as the client's fallback preference.
    default_hint: Option<String>,
    /// Models clients answered with, in the order first seen.
    reported: Vec<(String, u64)>,
    max_reported: usize,
    started_unix: u64,
}

impl Default for ModelCatalog {
    fn default() -> Self {
        ModelCatalog::new(Vec::new(), None, 0)
    }
}

/// Whether a model name a client answered with is worth keeping in a catalog.
pub fn is_keepable_model_name(model: &str) -> bool {
    !model.is_empty() && model.len() <= MAX_MODEL_NAME_BYTES && !model.chars().any(char::is_control)
}

/// Adds `model` to `reported` (models in the order first seen) unless it is known or not a
/// plausible model id, dropping the oldest beyond `max`. Returns whether it was added. Shared
/// by the native catalog and the worker's registry, so both keep the same models.
pub fn remember_reported(
    reported: &mut Vec<(String, u64)>,
    model: &str,
    now_unix: u64,
    max: usize,
) -> bool {
    if max == 0
        || !is_keepable_model_name(model)
        || reported.iter().any(|(known, _)| known == model)
    {
        return false;
    }
    if reported.len() >= max {
        let excess = reported.len() + 1 - max;
        reported.drain(..excess);
    }
    reported.push((model.to_string(), now_unix));
    true
}

impl ModelCatalog {
    pub fn new(
        aliases: Vec<(String, String)>,
        default_hint: Option<String>,
        started_unix: u64,
    ) -> Self {
        ModelCatalog {
            aliases,
            default_hint,
            reported: Vec::new(),
            max_reported: DEFAULT_MAX_REPORTED_MODELS,
            started_unix,
        }
    }

    /// Keeps at most `max` reported models (`DEFAULT_MAX_REPORTED_MODELS` otherwise).
    pub fn with_max_reported(mut self, max: usize) -> Self {
        self.max_reported = max;
        self
    }

    /// Parses `ALIAS=HINT`.
    pub fn parse_alias(text: &str) -> Result<(String, String), String> {
        match text.split_once('=') {
            Some((alias, hint)) if !alias.trim().is_empty() && !hint.trim().is_empty() => {
                Ok((alias.trim().to_string(), hint.trim().to_string()))
            }
            _ => Err(format!("`{text}`: expected ALIAS=MODEL_HINT")),
        }
    }

    /// Remembers a model a client answered with. Returns whether it was new.
    pub fn record_reported(&mut self, model: &str, now_unix: u64) -> bool {
        remember_reported(&mut self.reported, model, now_unix, self.max_reported)
    }

    /// The hints, in preference order, for a requested model id: an alias's hint or a twin's
    /// model in place of the id, each spelled in every form [`model_hints`] derives, then the
    /// default hint (`--default-model-hint`) as the last fallback.
    pub fn hints_for(&self, requested: &str) -> Vec<String> {
        let requested = requested.trim();
        let primary = self
            .aliases
            .iter()
            .find(|(alias, _)| alias == requested)
            .map(|(_, hint)| hint.as_str())
            .or_else(|| {
                requested
                    .strip_prefix(TWIN_PREFIX)
                    .filter(|rest| !rest.is_empty())
            })
            .unwrap_or(requested);
        let mut hints = model_hints(primary);
        if let Some(default) = &self.default_hint
            && !hints.iter().any(|hint| hint.eq_ignore_ascii_case(default))
        {
            hints.push(default.clone());
        }
        hints
    }

    pub fn entries(&self) -> Vec<ModelEntry> {
        let mut entries: Vec<ModelEntry> =
            Vec::with_capacity(self.aliases.len() + 2 * self.reported.len());
        // A set keeps listing linear in the catalog's size.
        let mut listed: HashSet<String> = HashSet::with_capacity(entries.capacity());
        let mut push = |id: String, display_name: String, created_unix: u64| {
            if listed.insert(id.clone()) {
                entries.push(ModelEntry {
                    id,
                    display_name,
                    created_unix,
                });
            }
        };
        for (alias, hint) in &self.aliases {
            push(
                alias.clone(),
                format!("{alias} (→ {hint})"),
                self.started_unix,
            );
        }
        for (model, seen) in &self.reported {
            if !model.starts_with("claude") {
                push(
                    format!("{TWIN_PREFIX}{model}"),
                    format!("{model} via MCP"),
                    *seen,
                );
            }
            push(model.clone(), model.clone(), *seen);
        }
        entries
    }

    /// The entry for `id`; any id is a valid model to ask for, so unknown ids get a plain entry.
    pub fn entry(&self, id: &str) -> ModelEntry {
        self.entries()
            .into_iter()
            .find(|entry| entry.id == id)
            .unwrap_or_else(|| ModelEntry {
                id: id.to_string(),
                display_name: id.to_string(),
                created_unix: self.started_unix,
            })
    }
}

/// Query parameters of `GET /v1/models`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub after_id: Option<String>,
    pub before_id: Option<String>,
}

impl PageQuery {
    /// Reads `limit`, `after_id`, `before_id` from a raw query string.
    pub fn parse(query: Option<&str>) -> Result<PageQuery, ApiError> {
        let mut page = PageQuery::default();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value);
            match key {
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        ApiError::invalid_request("limit: must be an integer from 1 to 1000")
                    })?;
                    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
                        return Err(ApiError::invalid_request(
                            "limit: must be an integer from 1 to 1000",
                        ));
                    }
                    page.limit = Some(limit);
                }
                "after_id" => page.after_id = Some(value),
                "before_id" => page.before_id = Some(value),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// Decodes `%XX` escapes (and `+`) of a URL path segment or query value. Works on bytes, so
/// an escape cut short by a multi-byte character (`%aé`) stays literal instead of slicing the
/// text through that character.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' => {
                let escaped = match (bytes.get(index + 1), bytes.get(index + 2)) {
                    (Some(&high), Some(&low)) => hex_value(high).zip(hex_value(low)),
                    _ => None,
                };
                match escaped {
                    Some((high, low)) => {
                        out.push(high << 4 | low);
                        index += 3;
                    }
                    None => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|value| value as u8)
}

/// Anthropic's list shape: `{data, has_more, first_id, last_id}`.
pub fn anthropic_list(entries: &[ModelEntry], query: &PageQuery) -> Value {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    let (start, end) = if let Some(before) = &query.before_id {
        let end = entries
            .iter()
            .position(|e| &e.id == before)
            .unwrap_or(entries.len());
        (end.saturating_sub(limit), end)
    } else {
        let start = query
            .after_id
            .as_ref()
            .and_then(|after| entries.iter().position(|e| &e.id == after).map(|p| p + 1))
            .unwrap_or(0);
        (start, (start + limit).min(entries.len()))
    };
    let page = &entries[start.min(end)..end];
    let has_more = if query.before_id.is_some() {
        start > 0
    } else {
        end < entries.len()
    };
    json!({
        "data": page.iter().map(anthropic_model).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|e| e.id.clone()),
        "last_id": page.last().map(|e| e.id.clone()),
    })
}

/// `max_input_tokens` of every entry. The limit of the model behind a client is unknown to the
/// bridge; this is what chat models behind VS Code's Copilot commonly accept, so a context
/// meter (Claude Code, Claude Desktop) compacts before the client would refuse.
pub const ADVERTISED_MAX_INPUT_TOKENS: u64 = 128_000;
/// `max_tokens` of every entry: the output budget Claude Code asks for by default.
pub const ADVERTISED_MAX_OUTPUT_TOKENS: u64 = 32_000;

/// The tier Claude Desktop's gateway picker files a model under (it lists only tier-named ids
/// or entries carrying `anthropic_family_tier`): `opus` for ids naming it, `haiku` for small
/// models (`haiku`, `mini`, `nano`, `flash`, `lite`, `small`), `sonnet` otherwise.
pub fn family_tier(id: &str) -> &'static str {
    let id = id.to_ascii_lowercase();
    if id.contains("opus") {
        "opus"
    } else if ["haiku", "mini", "nano", "flash", "lite", "small"]
        .iter()
        .any(|small| id.contains(small))
    {
        "haiku"
    } else {
        "sonnet"
    }
}

pub fn anthropic_model(entry: &ModelEntry) -> Value {
    json!({
        "type": "model",
        "id": entry.id,
        "display_name": entry.display_name,
        "created_at": rfc3339(entry.created_unix),
        "max_input_tokens": ADVERTISED_MAX_INPUT_TOKENS,
        "max_tokens": ADVERTISED_MAX_OUTPUT_TOKENS,
        "anthropic_family_tier": family_tier(&entry.id),
    })
}

/// OpenAI's list shape: `{object: "list", data: [{id, object: "model", created, owned_by}]}`.
pub fn openai_list(entries: &[ModelEntry]) -> Value {
    json!({"object": "list", "data": entries.iter().map(openai_model).collect::<Vec<_>>()})
}

pub fn openai_model(entry: &ModelEntry) -> Value {
    json!({"id": entry.id, "object": "model", "created": entry.created_unix, "owned_by": "sampling2api"})
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (days-from-civil, inverted).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> ModelCatalog {
        let mut catalog = ModelCatalog::new(
            vec![("claude-fast".into(), "gpt-4o-mini".into())],
            Some("gpt-4o".into()),
            1_700_000_000,
        );
        catalog.record_reported("gpt-4o", 1_700_000_100);
        catalog.record_reported("claude-sonnet-4.5", 1_700_000_200);
        catalog
    }

    #[test]
    fn hints_follow_aliases_twins_and_the_default() {
        let catalog = catalog();
        assert_eq!(
            catalog.hints_for("claude-fast"),
            vec!["gpt-4o-mini", "gpt-4o"]
        );
        assert_eq!(catalog.hints_for("claude-mcp-gpt-4o"), vec!["gpt-4o"]);
        // Every form of the id first, the default last.
        let hints = catalog.hints_for("claude-opus-4-1[1m]");
        assert_eq!(
            hints.first().map(String::as_str),
            Some("claude-opus-4-1[1m]")
        );
        assert!(hints.contains(&"claude-opus-4.1-1m".to_string()));
        assert_eq!(hints.last().map(String::as_str), Some("gpt-4o"));
        // An alias's hint is expanded like any id, and a default already among them is not
        // repeated.
        let catalog = ModelCatalog::new(
            vec![("main".into(), "claude-sonnet-4-5-20250929".into())],
            Some("Claude-Sonnet-4.5".into()),
            0,
        );
        assert_eq!(
            catalog.hints_for("main"),
            vec![
                "claude-sonnet-4-5-20250929",
                "claude-sonnet-4-5",
                "claude-sonnet-4.5",
                "claude-sonnet-4",
                "claude-sonnet",
                "sonnet"
            ]
        );
        assert_eq!(ModelCatalog::default().hints_for(""), Vec::<String>::new());
    }

    #[test]
    fn entries_list_aliases_reported_models_and_claude_twins() {
        let ids: Vec<String> = catalog().entries().into_iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            vec![
                "claude-fast",
                "claude-mcp-gpt-4o",
                "gpt-4o",
                "claude-sonnet-4.5"
            ]
        );
        assert!(!catalog().record_reported("gpt-4o", 5));
        assert_eq!(catalog().entry("anything-at-all").id, "anything-at-all");
    }

    #[test]
    fn pagination() {
        let entries = catalog().entries();
        let first = anthropic_list(
            &entries,
            &PageQuery {
                limit: Some(2),
                ..Default::default()
            },
        );
        assert_eq!(first["data"].as_array().unwrap().len(), 2);
        assert_eq!(first["has_more"], true);
        assert_eq!(first["first_id"], "claude-fast");
        assert_eq!(first["last_id"], "claude-mcp-gpt-4o");
        let second = anthropic_list(
            &entries,
            &PageQuery {
                limit: Some(2),
                after_id: Some("claude-mcp-gpt-4o".into()),
                ..Default::default()
            },
        );
        assert_eq!(second["first_id"], "gpt-4o");
        assert_eq!(second["has_more"], false);
        let before = anthropic_list(
            &entries,
            &PageQuery {
                limit: Some(1),
                before_id: Some("gpt-4o".into()),
                ..Default::default()
            },
        );
        assert_eq!(before["first_id"], "claude-mcp-gpt-4o");
        assert_eq!(before["has_more"], true);
        assert_eq!(first["data"][0]["type"], "model");
        assert_eq!(first["data"][0]["created_at"], "2023-11-14T22:13:20Z");
        let empty = anthropic_list(&[], &PageQuery::default());
        assert!(empty["first_id"].is_null() && empty["has_more"] == false);
    }

    #[test]
    fn queries_parse_and_refuse_bad_limits() {
        assert_eq!(
            PageQuery::parse(Some("limit=5&after_id=claude%2Dx&beta=true")).unwrap(),
            PageQuery {
                limit: Some(5),
                after_id: Some("claude-x".into()),
                before_id: None
            }
        );
        assert!(PageQuery::parse(Some("limit=0")).is_err());
        assert!(PageQuery::parse(Some("limit=abc")).is_err());
        assert_eq!(
            PageQuery::parse(Some("after_id=%"))
                .unwrap()
                .after_id
                .as_deref(),
            Some("%")
        );
    }

    #[test]
    fn escapes_cut_by_a_multibyte_character_stay_literal() {
        // A byte slice through `é` here once panicked the handler.
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(percent_decode("%\u{e9}x"), "%\u{e9}x");
        assert_eq!(percent_decode("\u{e9}%"), "\u{e9}%");
        assert_eq!(percent_decode("%C3%A9%41+b"), "\u{e9}A b");
        // A sign is no hex digit (`from_str_radix` would take `+1`).
        assert_eq!(percent_decode("%+1%zz"), "% 1%zz");
        assert_eq!(
            PageQuery::parse(Some("after_id=%a\u{e9}&before_id=%"))
                .unwrap()
                .after_id
                .as_deref(),
            Some("%a\u{e9}")
        );
    }

    #[test]
    fn reported_models_are_bounded_oldest_first() {
        let mut catalog = ModelCatalog::new(Vec::new(), None, 0).with_max_reported(3);
        for index in 0..5 {
            assert!(catalog.record_reported(&format!("m{index}"), index));
        }
        let ids: Vec<String> = catalog.entries().into_iter().map(|e| e.id).collect();
        assert_eq!(
            ids,
            vec![
                "claude-mcp-m2",
                "m2",
                "claude-mcp-m3",
                "m3",
                "claude-mcp-m4",
                "m4"
            ]
        );
        assert!(!catalog.record_reported("m4", 9));
        let long = "x".repeat(MAX_MODEL_NAME_BYTES + 1);
        assert!(!catalog.record_reported(&long, 9));
        assert!(catalog.record_reported(&long[1..], 9));
        assert!(!catalog.record_reported("bad\nname", 9));
        assert!(!catalog.record_reported("", 9));
        assert!(
            !ModelCatalog::default()
                .with_max_reported(0)
                .record_reported("m", 1)
        );
        assert_eq!(
            ModelCatalog::default().max_reported,
            DEFAULT_MAX_REPORTED_MODELS
        );
    }

    #[test]
    fn a_full_catalog_lists_in_linear_time() {
        let mut catalog = ModelCatalog::default();
        for index in 0..100_000 {
            catalog.record_reported(&format!("model-{index}"), index);
        }
        assert_eq!(catalog.entries().len(), 2 * DEFAULT_MAX_REPORTED_MODELS);
        let started = std::time::Instant::now();
        for _ in 0..100 {
            let entries = catalog.entries();
            let page = anthropic_list(
                &entries,
                &PageQuery {
                    limit: Some(MAX_PAGE_LIMIT),
                    after_id: Some("model-99999".into()),
                    ..Default::default()
                },
            );
            assert_eq!(page["has_more"], false);
        }
        // 100 listings of a full catalog take milliseconds, where one quadratic listing of an
        // unbounded catalog took 300 ms. Generous for a debug build on a loaded machine.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn anthropic_entries_carry_limits_and_a_tier() {
        let entry = |id: &str| ModelEntry {
            id: id.into(),
            display_name: id.into(),
            created_unix: 0,
        };
        let model = anthropic_model(&entry("claude-mcp-gpt-4.1"));
        assert_eq!(model["max_input_tokens"], ADVERTISED_MAX_INPUT_TOKENS);
        assert_eq!(model["max_tokens"], ADVERTISED_MAX_OUTPUT_TOKENS);
        assert_eq!(model["anthropic_family_tier"], "sonnet");
        assert_eq!(family_tier("claude-opus-4-1"), "opus");
        assert_eq!(family_tier("gpt-4o-mini"), "haiku");
        assert_eq!(family_tier("Gemini-2.5-Flash"), "haiku");
        assert_eq!(family_tier("claude-haiku-4-5"), "haiku");
        assert_eq!(family_tier("gpt-5"), "sonnet");
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
