//! The model hints a requested model id becomes, for clients that match hints loosely.
//!
//! VS Code picks the first hint (in order) that is a case-insensitive substring of one of its
//! allowed model ids, and falls back to the first allowed model when none is. Copilot's ids
//! spell versions with dots under a vendor prefix (`copilot/claude-sonnet-4.5`,
//! `copilot/claude-opus-4.6-1m`, `copilot/gpt-4.1`, `copilot/gemini-2.5-pro`), so the ids callers
//! send (`claude-sonnet-4-5-20250929`, `claude-opus-4-6[1m]`, `gpt-4o-2024-08-06`) match nothing
//! as they are. [`model_hints`] sends the id as it came, then forms of it from most to least
//! specific, each of which can be a substring of such ids:
//!
//! 1. the id as sent;
//! 2. for a bracket variant (`[1m]`): the variant as a dash suffix, dashed and dotted
//!    (`claude-opus-4-6-1m`, `claude-opus-4.6-1m`, Copilot's spelling of a 1M-context model);
//! 3. the id without its vendor prefix (`anthropic/`, `models/`, Bedrock's `us.anthropic.` and
//!    `-v1:0`), date (`-20250929`, `@20250929`, `-2024-08-06`, OpenAI's `-0613`), `-latest`, and
//!    bracket suffix;
//! 4. that with the version dotted (`claude-sonnet-4.5`, `claude-3.5-sonnet`);
//! 5. Gemini only: without a `-preview`/`-exp` suffix (and its date) or a `-001` revision;
//! 6. Claude only: the tier with its major version (`claude-opus-4`), then the family and tier
//!    (`claude-opus`), then, for Opus, Sonnet and Haiku, the tier alone (`opus`, which Copilot's
//!    older ids put after the version: `claude-3.5-sonnet`). A tier name not seen yet
//!    (`claude-lyric-6`) gets the first two forms only: alone it may be a common word.
//!
//! A looser hint can never win while a tighter one matches, because VS Code stops at the first
//! hint that matches anything and tighter hints come first. For the same reason no hint names a
//! family alone (`claude`, `gpt`, `gemini`): it would end the search at whichever model of that
//! family is listed first, whatever its tier, so a Haiku background call could land on Opus
//! (a premium model) where the person's own first allowed model was the better fallback. Nor
//! does any hint name an OpenAI or Gemini tier alone (`mini`, `pro`, `flash`): those words
//! appear in other vendors' ids. Ids longer than [`MAX_EXPANDED_ID_BYTES`] are sent only as
//! they are.

/// A longer id is sent as it came, without derived forms: no real model id is that long, and
/// every form is a copy of it in each request.
pub const MAX_EXPANDED_ID_BYTES: usize = 256;

/// The hints for `requested`, most specific first, without duplicates (compared case-
/// insensitively, as clients match) and without empty names (an empty hint is a substring of
/// every id, so it would pick the first allowed model and end the search).
pub fn model_hints(requested: &str) -> Vec<String> {
    let requested = requested.trim();
    let mut hints = Hints::default();
    hints.push(requested);
    if requested.len() > MAX_EXPANDED_ID_BYTES {
        return hints.0;
    }
    let lower = requested.to_ascii_lowercase();
    let (unbracketed, variant) = split_variant(&lower);
    let base = strip_suffixes(strip_vendor(unbracketed));
    if let Some(variant) = variant {
        hints.push(&format!("{base}-{variant}"));
        hints.push(&format!("{}-{variant}", dotted(base)));
    }
    hints.push(base);
    hints.push(&dotted(base));
    if base.starts_with("gemini-") {
        let unpreviewed = strip_gemini_release(base);
        hints.push(unpreviewed);
        hints.push(&dotted(unpreviewed));
    }
    if let Some(claude) = ClaudeId::parse(base) {
        if let Some(major) = claude.major_after_tier {
            hints.push(&format!("claude-{}-{major}", claude.tier));
        }
        hints.push(&format!("claude-{}", claude.tier));
        // A tier alone only where the word is Anthropic's own (`haiku` appears in no other
        // vendor's ids; an unseen name may be a common word).
        if KNOWN_TIERS.contains(&claude.tier) {
            hints.push(claude.tier);
        }
    }
    hints.0
}

/// Claude tiers whose name alone is a safe hint.
const KNOWN_TIERS: [&str; 3] = ["opus", "sonnet", "haiku"];

#[derive(Default)]
struct Hints(Vec<String>);

impl Hints {
    fn push(&mut self, hint: &str) {
        if !hint.is_empty() && !self.0.iter().any(|known| known.eq_ignore_ascii_case(hint)) {
            self.0.push(hint.to_string());
        }
    }
}

/// `claude-opus-4-6[1m]` → (`claude-opus-4-6`, `1m`).
fn split_variant(id: &str) -> (&str, Option<&str>) {
    if let Some(open) = id.strip_suffix(']').and_then(|rest| rest.rfind('['))
        && let (Some(base), Some(variant)) = (id.get(..open), id.get(open + 1..id.len() - 1))
        && !variant.is_empty()
        && variant.bytes().all(|b| b.is_ascii_alphanumeric())
        && !base.trim_end_matches('-').is_empty()
    {
        return (base.trim_end_matches('-'), Some(variant));
    }
    (id, None)
}

/// Without a router's vendor path (`anthropic/claude-…`, `models/gemini-…`) and Bedrock's
/// region and vendor prefix (`us.anthropic.claude-…`) and version suffix (`-v1:0`).
fn strip_vendor(id: &str) -> &str {
    let id = id.rsplit('/').next().unwrap_or(id);
    let id = match id.find("anthropic.") {
        Some(at) => id.get(at + "anthropic.".len()..).unwrap_or(id),
        None => id,
    };
    match id.rfind("-v") {
        Some(at)
            if id.get(at + 2..).is_some_and(|rest| {
                let (version, revision) = rest.split_once(':').unwrap_or((rest, "0"));
                is_digits(version, 1..=2) && is_digits(revision, 1..=2)
            }) =>
        {
            id.get(..at).unwrap_or(id)
        }
        _ => id,
    }
}

/// Without trailing dates and `-latest`, repeatedly (`claude-3-7-sonnet-latest`,
/// `claude-sonnet-4-5@20250929`, `gpt-4o-2024-08-06`, `gpt-3.5-turbo-0125`).
fn strip_suffixes(mut id: &str) -> &str {
    loop {
        let before = id;
        id = id.strip_suffix("-latest").unwrap_or(id);
        if let Some((head, tail)) = id.rsplit_once(['-', '@'])
            && is_date(tail)
        {
            id = head;
        }
        // `-2024-08-06`: three dash-separated parts.
        if let Some((head, day)) = id.rsplit_once('-')
            && let Some((head, month)) = head.rsplit_once('-')
            && let Some((head, year)) = head.rsplit_once('-')
            && is_digits(year, 4..=4)
            && is_month_day(month, day)
        {
            id = head;
        }
        // `-preview-06-05`: a month and day after a word.
        if let Some((head, day)) = id.rsplit_once('-')
            && let Some((head, month)) = head.rsplit_once('-')
            && is_month_day(month, day)
            && head.rsplit('-').next().is_some_and(|word| {
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase())
            })
        {
            id = head;
        }
        // OpenAI's older `-0613` (month and day), only after a model name's own parts.
        if (id.starts_with("gpt-") || id.starts_with("chatgpt-"))
            && let Some((head, tail)) = id.rsplit_once('-')
            && head.contains('-')
            && tail.len() == 4
            && is_month_day(tail.get(..2).unwrap_or(""), tail.get(2..).unwrap_or(""))
        {
            id = head;
        }
        if id == before {
            return id;
        }
    }
}

/// Gemini without its release stage (`gemini-2.5-pro-preview-06-05` → `gemini-2.5-pro`,
/// `gemini-2.0-flash-exp` → `gemini-2.0-flash`) or revision (`gemini-1.5-pro-002`).
fn strip_gemini_release(id: &str) -> &str {
    for stage in ["-preview", "-exp"] {
        if let Some(at) = id.find(stage) {
            return id.get(..at).unwrap_or(id);
        }
    }
    match id.rsplit_once('-') {
        Some((head, revision)) if is_digits(revision, 3..=3) => head,
        _ => id,
    }
}

/// Version parts joined by dots: a dash between two numbers becomes a dot when the second is
/// a minor version (one or two digits) rather than a date or a size (`4-5` → `4.5`, but
/// `4-20250514` and `3-235b` stay).
fn dotted(id: &str) -> String {
    let parts: Vec<&str> = id.split('-').collect();
    let mut out = String::with_capacity(id.len());
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            let previous = parts[index - 1];
            let joins = is_digits(previous, 1..=2)
                && is_digits(part, 1..=2)
                && !(index >= 2 && out.ends_with(|c: char| c.is_ascii_digit()) && {
                    // `4.5-1`: only one dot per version.
                    let tail = out.rsplit('-').next().unwrap_or("");
                    tail.contains('.')
                });
            out.push(if joins { '.' } else { '-' });
        }
        out.push_str(part);
    }
    out
}

/// A Claude id's tier (`opus`, `sonnet`, `haiku`, or a name not seen yet) and, for ids that
/// put the tier first (`claude-opus-4-5`), its major version.
struct ClaudeId<'a> {
    tier: &'a str,
    major_after_tier: Option<&'a str>,
}

impl<'a> ClaudeId<'a> {
    fn parse(id: &'a str) -> Option<Self> {
        let rest = id.strip_prefix("claude-")?;
        let mut parts = rest.split('-').peekable();
        let first = *parts.peek()?;
        if first.bytes().all(|b| b.is_ascii_lowercase()) && !first.is_empty() {
            // `claude-opus-4-5`, `claude-fable-5`, `claude-instant-1.2`.
            parts.next();
            let major = parts
                .next()
                .and_then(|version| version.split('.').next())
                .filter(|major| is_digits(major, 1..=2));
            return Some(ClaudeId {
                tier: first,
                major_after_tier: major,
            });
        }
        // `claude-3-5-sonnet`, `claude-3.7-sonnet`: the first word after the version.
        let tier = parts.find(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase())
                && !matches!(*part, "latest" | "thinking" | "thought" | "preview")
        })?;
        Some(ClaudeId {
            tier,
            major_after_tier: None,
        })
    }
}

fn is_digits(text: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// `20250929`: eight digits that read as a date of this era.
fn is_date(text: &str) -> bool {
    is_digits(text, 8..=8)
        && text.get(..2).is_some_and(|century| century == "20")
        && is_month_day(text.get(4..6).unwrap_or(""), text.get(6..).unwrap_or(""))
}

fn is_month_day(month: &str, day: &str) -> bool {
    let number = |text: &str| {
        is_digits(text, 2..=2)
            .then(|| text.parse::<u8>().ok())
            .flatten()
    };
    matches!(number(month), Some(1..=12)) && matches!(number(day), Some(1..=31))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_hints_from_most_to_least_specific() {
        let table: &[(&str, &[&str])] = &[
            // Claude Code's ids.
            (
                "claude-sonnet-4-5-20250929",
                &[
                    "claude-sonnet-4-5-20250929",
                    "claude-sonnet-4-5",
                    "claude-sonnet-4.5",
                    "claude-sonnet-4",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            (
                "claude-opus-4-6[1m]",
                &[
                    "claude-opus-4-6[1m]",
                    "claude-opus-4-6-1m",
                    "claude-opus-4.6-1m",
                    "claude-opus-4-6",
                    "claude-opus-4.6",
                    "claude-opus-4",
                    "claude-opus",
                    "opus",
                ],
            ),
            (
                "claude-haiku-4-5",
                &[
                    "claude-haiku-4-5",
                    "claude-haiku-4.5",
                    "claude-haiku-4",
                    "claude-haiku",
                    "haiku",
                ],
            ),
            (
                "claude-sonnet-4-20250514",
                &[
                    "claude-sonnet-4-20250514",
                    "claude-sonnet-4",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            (
                "claude-3-5-sonnet-20241022",
                &[
                    "claude-3-5-sonnet-20241022",
                    "claude-3-5-sonnet",
                    "claude-3.5-sonnet",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            (
                "claude-3-7-sonnet-latest",
                &[
                    "claude-3-7-sonnet-latest",
                    "claude-3-7-sonnet",
                    "claude-3.7-sonnet",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            // A family name and a date not seen yet.
            (
                "claude-lyric-6-1-20290704",
                &[
                    "claude-lyric-6-1-20290704",
                    "claude-lyric-6-1",
                    "claude-lyric-6.1",
                    "claude-lyric-6",
                    "claude-lyric",
                ],
            ),
            ("claude-fable-5", &["claude-fable-5", "claude-fable"]),
            // Routers' and clouds' spellings.
            (
                "anthropic/claude-sonnet-4.5",
                &[
                    "anthropic/claude-sonnet-4.5",
                    "claude-sonnet-4.5",
                    "claude-sonnet-4",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            (
                "us.anthropic.claude-opus-4-1-20250805-v1:0",
                &[
                    "us.anthropic.claude-opus-4-1-20250805-v1:0",
                    "claude-opus-4-1",
                    "claude-opus-4.1",
                    "claude-opus-4",
                    "claude-opus",
                    "opus",
                ],
            ),
            (
                "claude-sonnet-4-5@20250929",
                &[
                    "claude-sonnet-4-5@20250929",
                    "claude-sonnet-4-5",
                    "claude-sonnet-4.5",
                    "claude-sonnet-4",
                    "claude-sonnet",
                    "sonnet",
                ],
            ),
            // OpenAI: dates go, tiers stay with their model.
            ("gpt-4o-2024-08-06", &["gpt-4o-2024-08-06", "gpt-4o"]),
            ("gpt-4.1-2025-04-14", &["gpt-4.1-2025-04-14", "gpt-4.1"]),
            (
                "gpt-5-mini-2025-08-07",
                &["gpt-5-mini-2025-08-07", "gpt-5-mini"],
            ),
            (
                "gpt-3.5-turbo-0125",
                &["gpt-3.5-turbo-0125", "gpt-3.5-turbo"],
            ),
            ("openai/gpt-4.1", &["openai/gpt-4.1", "gpt-4.1"]),
            ("gpt-4-1", &["gpt-4-1", "gpt-4.1"]),
            ("gpt-4.1", &["gpt-4.1"]),
            ("o3-mini", &["o3-mini"]),
            // Gemini: release stages and revisions go last.
            (
                "gemini-2.5-pro-preview-06-05",
                &[
                    "gemini-2.5-pro-preview-06-05",
                    "gemini-2.5-pro-preview",
                    "gemini-2.5-pro",
                ],
            ),
            (
                "models/gemini-2.0-flash-001",
                &[
                    "models/gemini-2.0-flash-001",
                    "gemini-2.0-flash-001",
                    "gemini-2.0-flash",
                ],
            ),
            (
                "gemini-2-5-flash",
                &["gemini-2-5-flash", "gemini-2.5-flash"],
            ),
            // Not model ids to rewrite.
            ("sonnet", &["sonnet"]),
            ("my-local-model", &["my-local-model"]),
            ("qwen3-235b-a22b", &["qwen3-235b-a22b"]),
            ("claude-x", &["claude-x"]),
        ];
        for (id, expected) in table {
            assert_eq!(model_hints(id), *expected, "{id}");
        }
    }

    #[test]
    fn case_blank_and_duplicate_hints() {
        assert_eq!(
            model_hints(" Claude-Haiku-4-5 "),
            vec![
                "Claude-Haiku-4-5",
                "claude-haiku-4.5",
                "claude-haiku-4",
                "claude-haiku",
                "haiku"
            ]
        );
        assert!(model_hints("").is_empty());
        assert!(model_hints("   ").is_empty());
        assert_eq!(model_hints("[1m]"), vec!["[1m]"]);
        let long = format!("claude-opus-4-5-{}", "x".repeat(MAX_EXPANDED_ID_BYTES));
        assert_eq!(model_hints(&long), vec![long.clone()]);
    }

    /// VS Code's choice (`mcpSamplingService.ts`): the first hint that is a case-insensitive
    /// substring of an allowed id, else the first allowed id.
    fn vscode_pick<'a>(hints: &[String], allowed: &[&'a str]) -> &'a str {
        hints
            .iter()
            .find_map(|hint| {
                let hint = hint.to_lowercase();
                allowed
                    .iter()
                    .find(|model| model.to_lowercase().contains(&hint))
            })
            .copied()
            .unwrap_or(allowed[0])
    }

    #[test]
    fn claude_code_ids_land_on_their_copilot_family() {
        let allowed = [
            "copilot/gpt-4.1",
            "copilot/claude-haiku-4.5",
            "copilot/claude-sonnet-4.5",
            "copilot/claude-sonnet-4",
            "copilot/claude-opus-4.6",
            "copilot/claude-opus-4.6-1m",
            "copilot/gemini-2.5-pro",
        ];
        for (id, expected) in [
            ("claude-haiku-4-5-20251001", "copilot/claude-haiku-4.5"),
            ("claude-haiku-4-5", "copilot/claude-haiku-4.5"),
            ("claude-sonnet-4-5-20250929", "copilot/claude-sonnet-4.5"),
            ("claude-sonnet-4-20250514", "copilot/claude-sonnet-4.5"),
            ("claude-sonnet-4-6", "copilot/claude-sonnet-4.5"),
            ("claude-sonnet-4-6[1m]", "copilot/claude-sonnet-4.5"),
            ("claude-opus-4-6", "copilot/claude-opus-4.6"),
            ("claude-opus-4-6[1m]", "copilot/claude-opus-4.6-1m"),
            ("claude-opus-4-5-20251101", "copilot/claude-opus-4.6"),
            ("claude-3-5-haiku-20241022", "copilot/claude-haiku-4.5"),
            ("claude-fable-5", "copilot/gpt-4.1"),
            ("gpt-4.1-2025-04-14", "copilot/gpt-4.1"),
            (
                "google/gemini-2.5-pro-preview-06-05",
                "copilot/gemini-2.5-pro",
            ),
        ] {
            assert_eq!(vscode_pick(&model_hints(id), &allowed), expected, "{id}");
        }
    }

    #[test]
    fn a_looser_hint_never_wins_over_a_tighter_match() {
        // Whatever the allowed list, the pick is the first allowed id of the tightest form that
        // matches anything; a family-only hint would let any Claude win.
        let allowed = ["copilot/claude-opus-4.6", "copilot/claude-haiku-4.5"];
        assert_eq!(
            vscode_pick(&model_hints("claude-haiku-4-5-20251001"), &allowed),
            "copilot/claude-haiku-4.5"
        );
        for id in ["claude-haiku-4-5", "claude-3-haiku-20240307"] {
            assert!(
                !model_hints(id).iter().any(|hint| hint == "claude"),
                "no family-only hint for {id}"
            );
        }
        // A tier that is not allowed falls back to the person's first allowed model.
        assert_eq!(
            vscode_pick(
                &model_hints("claude-haiku-4-5"),
                &["copilot/gpt-4.1", "copilot/claude-opus-4.6"]
            ),
            "copilot/gpt-4.1"
        );
    }
}
