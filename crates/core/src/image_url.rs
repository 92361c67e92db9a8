//! Policy for `image` blocks with a `url` source, which the runtime downloads to base64.
//!
//! The bridge runs next to private services, so a URL is a server-side request forgery risk:
//! only http/https, and no loopback, private, link-local, or otherwise non-public address,
//! checked on every address a name resolves to (and on each redirect) by the runtime.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::anthropic::{
    ContentBlock, ImageSource, MessageContent, MessagesRequest, ToolResultContent,
};
use crate::api_error::ApiError;

/// Largest image the bridge downloads (the API's own per-image limit is 5 MB; URLs to larger
/// originals are common, and the client may downscale).
pub const MAX_IMAGE_BYTES: usize = 10 * 1024 * 1024;
/// Time allowed for one image download.
pub const FETCH_TIMEOUT_SECS: u64 = 10;

/// The scheme and host of a URL, checked before any connection is made.
pub fn check_url(url: &str) -> Result<(), ApiError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(refused(url, "only http and https URLs are fetched"));
    }
    let host = host_of(url).ok_or_else(|| refused(url, "the URL has no host"))?;
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return Err(refused(url, "it points at this machine"));
    }
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        && is_forbidden_ip(ip)
    {
        return Err(refused(
            url,
            "it points at a loopback, private or link-local address",
        ));
    }
    Ok(())
}

pub fn refused(url: &str, why: &str) -> ApiError {
    let shown: String = url.chars().filter(|c| !c.is_control()).take(200).collect();
    ApiError::invalid_request(format!("image URL `{shown}` refused: {why}"))
}

fn host_of(url: &str) -> Option<&str> {
    let after_scheme = &url[url.find("://")? + 3..];
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or(after_scheme);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host_port.starts_with('[') {
        &host_port[..host_port.find(']')? + 1]
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    (!host.is_empty()).then_some(host)
}

/// Addresses a public image can never live at.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn is_forbidden_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240
}

/// Every image source in a request that is a URL, for the runtime to replace with base64.
pub fn url_image_sources(request: &mut MessagesRequest) -> Vec<&mut ImageSource> {
    let mut sources = Vec::new();
    for message in &mut request.messages {
        if let MessageContent::Blocks(blocks) = &mut message.content {
            collect(blocks, &mut sources);
        }
    }
    sources
}

fn collect<'a>(blocks: &'a mut [ContentBlock], sources: &mut Vec<&'a mut ImageSource>) {
    for block in blocks {
        match block {
            ContentBlock::Image { source } if matches!(source, ImageSource::Url { .. }) => {
                sources.push(source);
            }
            ContentBlock::ToolResult {
                content: Some(ToolResultContent::Blocks(inner)),
                ..
            } => collect(inner, sources),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anthropic::parse_messages_request;

    #[test]
    fn schemes_and_literal_addresses() {
        assert!(check_url("https://example.com/cat.png").is_ok());
        assert!(check_url("HTTP://example.com:8080/a?b#c").is_ok());
        for bad in [
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "gopher://x",
            "http://localhost/a.png",
            "http://foo.localhost/a.png",
            "http://127.0.0.1/a.png",
            "http://user@127.0.0.2:80/a.png",
            "http://10.1.2.3/a.png",
            "http://192.168.0.1/",
            "http://172.16.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http:///nohost",
        ] {
            let err = check_url(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["100.64.0.1", "198.18.0.1", "240.0.0.1", "224.0.0.1"] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn url_sources_are_found_in_messages_and_tool_results() {
        let mut request = parse_messages_request(
            br#"{"model":"m","max_tokens":1,"messages":[
              {"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://a/1.png"}},
                                        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]},
              {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{}}]},
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[
                 {"type":"image","source":{"type":"url","url":"https://a/2.png"}}]}]}]}"#,
            true,
        )
        .unwrap();
        let urls: Vec<String> = url_image_sources(&mut request)
            .into_iter()
            .map(|source| match source {
                ImageSource::Url { url } => url.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(urls, vec!["https://a/1.png", "https://a/2.png"]);
    }
}
