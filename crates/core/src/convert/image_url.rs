//! Policy for `image` blocks with a `url` source, which the native runtime downloads to base64.
//!
//! The bridge runs next to private services, so a URL is a server-side request forgery risk.
//! A URL is parsed once, by the WHATWG parser of the `url` crate (the one the HTTP client
//! uses), and the runtime hands that parsed [`Url`] to the client: the host checked here is the
//! host connected to, whatever its spelling (`2130706433`, `0x7f.1`, `127.1`, full-width
//! digits, percent-encoding, a trailing dot, tabs, userinfo all normalise before the check).
//! An IP-literal host is judged here with [`is_public_ip`]; a name is judged by the runtime's
//! resolver, which applies [`is_public_ip`] to every address it resolves to, for every
//! connection, redirects included.
//!
//! Failures that involve the network or a non-public address all read [`UNFETCHABLE`], so that
//! the errors cannot map a private network ("refused" vs "timed out" vs "answered 404").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Host;
pub use url::Url;

use crate::api::anthropic::{
    ContentBlock, ImageSource, MessageContent, MessagesRequest, ToolResultContent,
};
use crate::api_error::ApiError;

/// Time allowed for one image download, connection and body included.
pub const FETCH_TIMEOUT_SECS: u64 = 10;
/// Redirects followed for one image.
pub const MAX_REDIRECTS: usize = 3;
/// The one reason given for any refusal or failure before a public server answered: a
/// non-public address, a name that does not resolve or resolves to one, a refused or timed-out
/// connection, a refused redirect.
pub const UNFETCHABLE: &str = "it could not be fetched from a public address";

/// Why an image URL is refused before any response arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL by the WHATWG rules.
    Malformed,
    /// A scheme other than http and https.
    Scheme,
    /// A non-public destination, or one that could not be reached (see [`UNFETCHABLE`]).
    Unfetchable,
}

impl Refusal {
    pub fn why(self) -> &'static str {
        match self {
            Refusal::Malformed => "it is not a valid URL",
            Refusal::Scheme => "only http and https URLs are fetched",
            Refusal::Unfetchable => UNFETCHABLE,
        }
    }

    /// The caller's error for `raw`, the URL as the caller wrote it.
    pub fn to_api_error(self, raw: &str) -> ApiError {
        refused(raw, self.why())
    }
}

/// The 400 for an image URL, showing the URL as sent (without control characters, cut short).
pub fn refused(url: &str, why: &str) -> ApiError {
    let shown: String = url.chars().filter(|c| !c.is_control()).take(200).collect();
    ApiError::invalid_request(format!("image URL `{shown}` refused: {why}"))
}

/// Where a parsed URL connects to, before any name is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An address literal: the client connects to it without asking a resolver.
    Ip(IpAddr),
    /// A name, lowercase and without a trailing dot, for the resolver.
    Name(String),
}

/// Parses `raw` exactly as the HTTP client will, and keeps only http and https URLs.
pub fn parse_image_url(raw: &str) -> Result<Url, Refusal> {
    let url = Url::parse(raw).map_err(|_| Refusal::Malformed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme);
    }
    Ok(url)
}

/// The destination of a parsed http(s) URL.
pub fn destination(url: &Url) -> Option<Destination> {
    match url.host()? {
        Host::Ipv4(ip) => Some(Destination::Ip(IpAddr::V4(ip))),
        Host::Ipv6(ip) => Some(Destination::Ip(IpAddr::V6(ip))),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.');
            // WHATWG turns every numeric host into an address; should a name still read as
            // one, the connector would take it as a literal and skip the resolver, so judge
            // it as the literal here.
            if let Ok(ip) = name.trim_start_matches('[').trim_end_matches(']').parse() {
                return Some(Destination::Ip(ip));
            }
            (!name.is_empty()).then(|| Destination::Name(name.to_ascii_lowercase()))
        }
    }
}

/// What can be judged without the network, for the first URL and for each redirect:
/// the scheme, then an address literal by `permits` (given the address and port connected to),
/// and names of this machine (`localhost`). Other names are left to the resolver, which must
/// apply the same `permits` to every address it returns.
pub fn check_destination(
    url: &Url,
    permits: impl Fn(IpAddr, u16) -> bool,
) -> Result<Destination, Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme);
    }
    let port = url.port_or_known_default().ok_or(Refusal::Malformed)?;
    let destination = destination(url).ok_or(Refusal::Malformed)?;
    match &destination {
        Destination::Ip(ip) if !permits(*ip, port) => Err(Refusal::Unfetchable),
        Destination::Name(name)
            if is_local_name(name) && !permits(Ipv4Addr::LOCALHOST.into(), port) =>
        {
            Err(Refusal::Unfetchable)
        }
        _ => Ok(destination),
    }
}

/// Names that always mean this machine (RFC 6761), whatever a resolver says.
pub fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether an image may be fetched from `ip`: only globally reachable unicast addresses.
/// IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64, 6to4) are judged as IPv4.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

/// IPv4 ranges that are not globally reachable (IANA special-purpose registry, plus multicast
/// and the reserved 240/4), as (network, prefix length).
const V4_NOT_PUBLIC: &[(u32, u32)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10/8 private
    (0x6440_0000, 10), // 100.64/10 carrier-grade NAT
    (0x7f00_0000, 8),  // 127/8 loopback
    (0xa9fe_0000, 16), // 169.254/16 link-local (cloud metadata)
    (0xac10_0000, 12), // 172.16/12 private
    (0xc000_0000, 24), // 192.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2/24 documentation
    (0xc058_6300, 24), // 192.88.99/24 6to4 relay anycast
    (0xc0a8_0000, 16), // 192.168/16 private
    (0xc612_0000, 15), // 198.18/15 benchmarking
    (0xc633_6400, 24), // 198.51.100/24 documentation
    (0xcb00_7100, 24), // 203.0.113/24 documentation
    (0xe000_0000, 4),  // 224/4 multicast
    (0xf000_0000, 4),  // 240/4 reserved, and 255.255.255.255
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !V4_NOT_PUBLIC
        .iter()
        .any(|&(network, length)| bits >> (32 - length) == network >> (32 - length))
}

/// Inside 2000::/3 (the only globally routed unicast space), the ranges that are not public.
const V6_NOT_PUBLIC: &[(u128, u32)] = &[
    (0x2001_0000 << 96, 23), // 2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x3fff_0000 << 96, 20), // 3fff::/20 documentation
];

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    // Loopback, unspecified, unique-local, link-local, site-local, multicast, NAT64 local-use
    // and the rest of the unassigned space are all outside 2000::/3.
    bits >> 125 == 0b001
        && !V6_NOT_PUBLIC
            .iter()
            .any(|&(network, length)| bits >> (128 - length) == network >> (128 - length))
}

/// The IPv4 address an IPv6 address stands for, in the forms a stack or a gateway translates.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match bits >> 32 {
        // ::a.b.c.d (compatible; also :: and ::1), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (SIIT)
        0 | 0xffff | 0xffff_0000 => Some(low32),
        // 64:ff9b::a.b.c.d, NAT64's well-known prefix
        0x0064_ff9b_0000_0000_0000_0000 => Some(low32),
        // 2002:AABB:CCDD::/48, 6to4
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32)),
        _ => None,
    }
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

/// The 400 for a request with more `url` images than the bridge fetches.
pub fn too_many_url_images(count: usize, max: usize) -> ApiError {
    ApiError::invalid_request(format!(
        "this request has {count} `url` images; the bridge fetches at most {max} per request \
         (send the others as base64)"
    ))
}

/// The 400 for a request whose `url` images together exceed the bridge's total.
pub fn url_images_too_large(max_total: usize) -> ApiError {
    ApiError::invalid_request(format!(
        "the `url` images of this request total more than {max_total} bytes, the most the bridge \
         fetches per request"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::anthropic::parse_messages_request;

    fn judged(raw: &str) -> Result<Destination, Refusal> {
        check_destination(&parse_image_url(raw)?, |ip, _| is_public_ip(ip))
    }

    #[test]
    fn every_spelling_of_a_private_address_is_refused() {
        for raw in [
            "http://127.0.0.1/a.png",
            "http://2130706433/",       // decimal
            "http://0x7f.1/",           // hex, short
            "http://0x7f000001/",       // hex, whole
            "http://0x7F.0x0.0x0.0x1/", // hex per part
            "http://0177.0.0.1/",       // octal
            "http://0177.1/",           // octal, short
            "http://017700000001/",     // octal, whole
            "http://127.1/",            // short form
            "http://127.0.1/",          // short form
            "http://0/",                // 0.0.0.0
            "http://0.0.0.0:8080/",
            "http://127.0.0.1./",              // trailing dot
            "http://0x7f.1./",                 // trailing dot on a hex form
            "http://127.0.0.1../", // two trailing dots: a name to WHATWG, judged as the address it spells
            "http://%31%32%37.0.0.1/", // percent-encoded digits
            "http://%30x7f.1/",    // percent-encoded hex prefix
            "http://１２７.０.０.１/", // full-width digits
            "http://127。0。0。1/", // ideographic full stops
            "http://１２７．０．０．１/", // full-width full stops
            "http://12\t7.0.0.1/", // tab inside the host
            "http://127.0.0.1\n/", // newline after the host
            "\thttp://127.0.0.1/", // leading tab
            " http://127.0.0.1/ ", // surrounding spaces
            "http://user:pass@127.0.0.1/", // userinfo
            "http://example.com@127.0.0.1/", // userinfo that looks like the host
            "http://127.0.0.1\\@example.com/", // backslash ends the authority
            "http://127.0.0.1#@example.com/",
            "http://127.0.0.1?@example.com/",
            "http://127.0.0.1:80@example.com:80@127.0.0.1/",
            "HTTP://127.0.0.1/",
            "https://127.0.0.1:443/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://foo.localhost/",
            "http://%6c%6f%63%61%6c%68%6f%73%74/", // percent-encoded localhost
            "http://ｌｏｃａｌｈｏｓｔ/",          // full-width localhost
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9fea9fe/", // metadata service, hex
            "http://100.64.0.1/", // CGNAT
            "http://100.127.255.255/",
            "http://192.0.0.8/",
            "http://192.0.2.1/", // documentation
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://198.18.0.1/", // benchmarking
            "http://198.19.255.255/",
            "http://224.0.0.1/", // multicast
            "http://239.255.255.250/",
            "http://240.0.0.1/",       // reserved
            "http://255.255.255.255/", // broadcast
            "http://0.1.2.3/",
            "http://[::1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/", // IPv4-mapped
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:0:127.0.0.1]/", // SIIT
            "http://[::127.0.0.1]/",        // IPv4-compatible
            "http://[64:ff9b::127.0.0.1]/", // NAT64
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::1]/",     // NAT64 local use
            "http://[2002:7f00:1::]/",    // 6to4 of loopback
            "http://[2002:c0a8:101::1]/", // 6to4 of 192.168.1.1
            "http://[fe80::1]/",          // link-local
            "http://[fd00::1]/",          // unique-local
            "http://[fc00::1]/",
            "http://[fec0::1]/",     // site-local
            "http://[ff02::1]/",     // multicast
            "http://[2001:db8::1]/", // documentation
            "http://[3fff::1]/",
            "http://[2001::1]/",   // Teredo
            "http://[2001:2::1]/", // benchmarking
            "http://[100::1]/",    // discard-only
        ] {
            assert_eq!(judged(raw), Err(Refusal::Unfetchable), "{raw:?}");
        }
    }

    #[test]
    fn every_spelling_normalises_to_the_address_the_client_connects_to() {
        let loopback = Destination::Ip(Ipv4Addr::LOCALHOST.into());
        for raw in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.0.1./",
            "http://%31%32%37.0.0.1/",
            "http://１２７.０.０.１/",
            "http://12\t7.0.0.1/",
            "http://u:p@127.0.0.1/",
            "http://127.0.0.1\\@example.com/",
        ] {
            let url = parse_image_url(raw).unwrap();
            assert_eq!(destination(&url), Some(loopback.clone()), "{raw:?}");
            // What the client sends on: its serialisation names the same host, which the
            // connector reads as the same literal.
            assert_eq!(url.host_str(), Some("127.0.0.1"), "{raw:?}");
            assert_eq!(
                destination(&Url::parse(url.as_str()).unwrap()),
                Some(loopback.clone())
            );
        }
        assert_eq!(
            destination(&parse_image_url("http://0/").unwrap()),
            Some(Destination::Ip(Ipv4Addr::UNSPECIFIED.into()))
        );
        assert_eq!(
            destination(&parse_image_url("http://[::FFFF:7f00:1]/").unwrap()),
            Some(Destination::Ip("::ffff:127.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn names_go_to_the_resolver_and_public_addresses_pass() {
        assert_eq!(
            judged("https://Example.COM./cat.png"),
            Ok(Destination::Name("example.com".into()))
        );
        assert_eq!(
            judged("http://user@example.com:8080/a?b#c"),
            Ok(Destination::Name("example.com".into()))
        );
        assert_eq!(
            judged("http://127.0.0.1@example.com/"),
            Ok(Destination::Name("example.com".into()))
        );
        assert_eq!(
            judged("http://bücher.example/"),
            Ok(Destination::Name("xn--bcher-kva.example".into()))
        );
        for raw in [
            "http://8.8.8.8/",
            "http://134744072/",
            "http://1.1.1.1/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "http://[64:ff9b::808:808]/",
            "http://[2002:808:808::1]/",
            "http://100.63.255.255/",
            "http://100.128.0.0/",
            "http://172.32.0.1/",
            "http://192.0.3.1/",
            "http://223.255.255.255/",
        ] {
            assert!(matches!(judged(raw), Ok(Destination::Ip(_))), "{raw}");
        }
    }

    #[test]
    fn schemes_and_malformed_urls() {
        for raw in [
            "file:///etc/passwd",
            "ftp://example.com/a.png",
            "gopher://x",
            "data:image/png;base64,AA",
            "javascript:alert(1)",
        ] {
            assert_eq!(judged(raw), Err(Refusal::Scheme), "{raw}");
        }
        for raw in [
            "",
            "example.com/a.png",
            "http://",
            "http://[::1/",
            "http://1.2.3.4.5/",
            "http://0x100000000/",
            "http://256.0.0.1/",
            "http://127.0.0.1:99999/",
            "http://exa mple.com/",
            "http://%zz/",
        ] {
            assert_eq!(judged(raw), Err(Refusal::Malformed), "{raw:?}");
        }
    }

    #[test]
    fn a_policy_can_allow_what_the_default_refuses() {
        let url = parse_image_url("http://0x7f.1:8080/").unwrap();
        let allow_8080 = |ip: IpAddr, port: u16| ip.is_loopback() && port == 8080;
        assert!(check_destination(&url, allow_8080).is_ok());
        let url = parse_image_url("http://127.1:8081/").unwrap();
        assert_eq!(
            check_destination(&url, allow_8080),
            Err(Refusal::Unfetchable)
        );
        let url = parse_image_url("http://localhost:8080/").unwrap();
        assert!(check_destination(&url, allow_8080).is_ok());
    }

    #[test]
    fn the_ranges_have_sharp_edges() {
        for (ip, public) in [
            ("9.255.255.255", true),
            ("10.0.0.0", false),
            ("11.0.0.0", true),
            ("126.255.255.255", true),
            ("128.0.0.0", true),
            ("169.253.255.255", true),
            ("169.255.0.0", true),
            ("172.15.255.255", true),
            ("172.32.0.0", true),
            ("198.17.255.255", true),
            ("198.20.0.0", true),
            ("223.255.255.255", true),
            ("1fff:ffff::1", false),
            ("2000::1", true),
            ("2001:200::1", true),
            ("2001:1ff::1", false),
            ("3fff:1000::1", true),
            ("3fff:fff::1", false),
            ("4000::1", false),
            ("::0.0.0.1", false),
            ("::8.8.8.8", true),
        ] {
            assert_eq!(is_public_ip(ip.parse().unwrap()), public, "{ip}");
        }
    }

    #[test]
    fn local_names() {
        for name in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "a.b.localhost",
            "x.localhost..",
        ] {
            assert!(is_local_name(name), "{name}");
        }
        for name in ["localhost.example", "notlocalhost", "example.com"] {
            assert!(!is_local_name(name), "{name}");
        }
    }

    #[test]
    fn refusals_read_the_same_for_every_unfetchable_url() {
        let message = |raw: &str| Refusal::Unfetchable.to_api_error(raw).message;
        assert_eq!(
            message("http://127.0.0.1/"),
            format!("image URL `http://127.0.0.1/` refused: {UNFETCHABLE}")
        );
        assert_eq!(message("http://12\t7.1/"), message("http://127.1/"));
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
