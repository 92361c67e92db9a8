//! Any text as an answer to a request with a response schema: the value extracted from it must
//! be one JSON value by the grammar (numbers of any size: `1E999999` is JSON, which JavaScript
//! and Python read as infinity, though serde_json's `Value` refuses it), a part of the text,
//! and found without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::convert::structured_output::extract_json;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(value) = extract_json(&text) {
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(value).is_ok(), "not JSON: {value:?}");
        let start = value.as_ptr() as usize - text.as_ptr() as usize;
        assert!(start + value.len() <= text.len(), "not a part of the text");
    }
});
