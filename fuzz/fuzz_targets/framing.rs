//! Caller text through the bridge's framing escape: it reads back exactly, and the escaped
//! text opens or closes none of the bridge's tags as a model reads them (`<`, spaces, an
//! optional `/`, spaces, the name in any case, then anything that does not continue a name).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::convert::framing::{TAG_NAMES, escape, unescape};

fn opens_or_closes_a_tag(text: &str) -> bool {
    text.match_indices('<').any(|(at, _)| {
        let rest = text[at + 1..].trim_start();
        let rest = rest.strip_prefix('/').map_or(rest, str::trim_start);
        TAG_NAMES.iter().any(|name| {
            rest.get(..name.len()).is_some_and(|head| head.eq_ignore_ascii_case(name))
                && !rest[name.len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let escaped = escape(text.clone());
    assert_eq!(unescape(&escaped), text);
    assert!(!opens_or_closes_a_tag(&escaped), "a tag survives in {escaped:?}");
});
