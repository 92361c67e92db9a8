//! Any text as a `Host`, an `Origin` and a `Content-Type`: the browser guard must return, never
//! panic, and never let through what it promises to refuse (a name other than `localhost` as
//! Host, a non-loopback origin).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sampling2api_core::http::browser_guard::{
    HostName, HostPolicy, is_json_content_type, origin_allowed, parse_authority,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = HostPolicy { allowed: Vec::new() };
    if policy.check(Some(text)).is_ok() {
        let (host, _) = parse_authority(text).expect("an allowed Host parses");
        assert!(
            matches!(host, HostName::Ipv4(_) | HostName::Ipv6(_))
                || host == HostName::Name("localhost".into()),
            "{text:?}"
        );
    }
    if origin_allowed(text, &[]) {
        let (_, authority) = text.split_once("://").expect("an allowed origin has a scheme");
        let (host, _) = parse_authority(authority).expect("an allowed origin's host parses");
        assert!(host.is_loopback(), "{text:?}");
    }
    let _ = is_json_content_type(Some(text));
});
