//! Any string as an image URL: parsing and classification return, never panic, and the host
//! judged is the host the HTTP client connects to. reqwest sends the parsed URL on as its
//! serialisation, parsed again as an `http::Uri`, whose host hyper's connector dials directly
//! when it reads as an address and resolves otherwise: so a re-parse must give the same
//! destination and verdict, an address must read as that address, and a name never as one.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use sampling2api_core::convert::image_url::{
    Destination, Refusal, Url, check_destination, destination, is_public_ip, parse_image_url,
};

fn judge(url: &Url) -> Result<Destination, Refusal> {
    check_destination(url, |ip, _| is_public_ip(ip))
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = parse_image_url(raw) else {
        return;
    };
    let verdict = judge(&url);
    let again = Url::parse(url.as_str()).expect("a serialised URL parses again");
    assert_eq!(judge(&again), verdict, "{raw:?} -> {}", url.as_str());
    let Some(target) = destination(&url) else {
        assert!(verdict.is_err());
        return;
    };
    if let Destination::Ip(ip) = target {
        assert_eq!(verdict.is_ok(), is_public_ip(ip), "{raw:?}");
    }
    // What the connector sees. A URI that does not parse fails the request: nothing connects.
    let Ok(uri) = url.as_str().parse::<http::Uri>() else {
        return;
    };
    let Some(host) = uri.host() else {
        return;
    };
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    // A host the connector reads as an address is dialled without the resolver: it must be
    // the address judged. (A name judged as the address it spells, like `7.0.0.1..`, reaches
    // the resolver, which checks what it resolves to.)
    if let Some(literal) = literal {
        assert_eq!(target, Destination::Ip(literal), "{raw:?} -> {host}");
    }
    if let Destination::Name(name) = &target {
        assert_eq!(
            host.trim_end_matches('.').to_ascii_lowercase(),
            *name,
            "{raw:?}"
        );
    }
});
