//! Defences against the user's own browser: DNS rebinding (`Host`), cross-site requests
//! (`Origin`) and cross-site "simple" POSTs (`Content-Type`).
//!
//! A page cannot read a cross-origin response, but it can rebind a name it controls to
//! 127.0.0.1 and so become same-origin with the bridge: the browser then sends
//! `Host: its-name:port` and, on same-origin GETs, no `Origin`. Names are what rebinding
//! abuses, so only `localhost`, IP literals (which no page can rebind) and names the operator
//! allows pass the `Host` check. The first two pass on any port, or none: a rebinding page
//! needs a name a resolver answers for, whatever the port, while an SSH tunnel, `docker -p`,
//! a reverse proxy or an editor's port forwarding hands the bridge the port the caller used,
//! not the one it listens on. Origins are compared by parsed host, never by prefix. A
//! cross-site POST with a CORS-safelisted type (`text/plain`, forms) or no type at all needs no
//! preflight, so JSON endpoints refuse every body that is not declared JSON.
//!
//! Pure functions over header values, shared by both runtimes and fuzzed (`fuzz/`).

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::api_error::{ApiError, ErrorKind};

/// The host part of an authority (`Host` header, `:authority`, an origin's host), lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// A registered name, lowercased, exactly as sent (a trailing dot is kept: `localhost.` is
    /// a different name to a resolver than `localhost`).
    Name(String),
}

impl HostName {
    pub fn is_loopback(&self) -> bool {
        match self {
            HostName::Ipv4(ip) => ip.is_loopback(),
            HostName::Ipv6(ip) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            HostName::Name(name) => name == "localhost",
        }
    }

    fn is_ip(&self) -> bool {
        matches!(self, HostName::Ipv4(_) | HostName::Ipv6(_))
    }
}

/// `host[:port]` as in a `Host` header: a bracketed IPv6 literal, a dotted-quad IPv4 literal
/// in its one canonical spelling, or a registered name of letters, digits, `-`, `_` and `.`.
/// Anything else (userinfo, paths, spaces, percent signs, empty parts) is `None`.
pub fn parse_authority(authority: &str) -> Option<(HostName, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(after.strip_prefix(':')?)?),
        };
        (HostName::Ipv6(ip), port)
    } else {
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(parse_port(port)?)),
            None => (authority, None),
        };
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return None;
        }
        let host = host.to_ascii_lowercase();
        match host.parse::<Ipv4Addr>() {
            Ok(ip) => (HostName::Ipv4(ip), port),
            // Digits-and-dots that are not a canonical dotted quad (`127.1`, `0x7f.1`,
            // `2130706433`) are IPv4 to a browser's URL parser but not to this one: refuse
            // them rather than guess.
            Err(_) if looks_numeric(&host) => return None,
            Err(_) => (HostName::Name(host), port),
        }
    };
    Some((host, port))
}

/// A name whose last label is numeric (or hex) is an IPv4 address to WHATWG URL parsing.
fn looks_numeric(host: &str) -> bool {
    let last = host
        .trim_end_matches('.')
        .rsplit('.')
        .next()
        .unwrap_or_default();
    let hex = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X"));
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()))
        || hex.is_some_and(|digits| {
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())
        })
}

fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse().ok()
}

/// Which `Host` values reach the bridge: `localhost` and IP literals on any port, and the
/// names the operator allows.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Operator-allowed names (`--allow-host`): `name` (any port) or `name:port`; `*` allows
    /// every host (for deployments behind a proxy that checks it).
    pub allowed: Vec<String>,
}

impl HostPolicy {
    /// `Ok` when `host` (the request's `Host` header, or its `:authority` in HTTP/2) may reach
    /// the bridge.
    pub fn check(&self, host: Option<&str>) -> Result<(), ApiError> {
        let Some(host) = host else {
            return Err(ApiError::invalid_request(
                "the request has no Host header (HTTP/1.1 requires exactly one)",
            ));
        };
        if self.allowed.iter().any(|entry| entry == "*") {
            return Ok(());
        }
        let refused = || {
            ApiError::new(
                ErrorKind::Permission,
                format!(
                    "Host `{}` is not allowed: use localhost or an IP address, or allow the \
                     name with --allow-host (a name passes only when allowed, because a web \
                     page can point a name it controls at this machine: DNS rebinding)",
                    printable(host),
                ),
            )
            .not_retryable()
        };
        let Some((name, port)) = parse_authority(host) else {
            return Err(refused());
        };
        if name.is_ip() || name == HostName::Name("localhost".into()) {
            return Ok(());
        }
        let allowed = self
            .allowed
            .iter()
            .any(|entry| match parse_authority(entry) {
                Some((entry_name, None)) => entry_name == name,
                Some((entry_name, Some(entry_port))) => {
                    entry_name == name && Some(entry_port) == port
                }
                None => false,
            });
        if allowed { Ok(()) } else { Err(refused()) }
    }
}

/// Whether a browser `Origin` may use the bridge: loopback origins (the user's own tools, any
/// port) and the operator's `--allow-origin` entries (exact, or `*`). `null` and anything
/// that does not parse as `scheme://host[:port]` are refused.
pub fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    if allowed
        .iter()
        .any(|entry| entry == "*" || entry.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && parse_authority(authority).is_some_and(|(host, _)| host.is_loopback())
}

/// Whether a `Content-Type` value declares JSON: `application/json` or `application/*+json`,
/// parameters allowed. An absent type is not JSON: a browser sends none for a typeless body,
/// and that POST needs no preflight.
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", subtype)) => subtype == "json" || subtype.ends_with("+json"),
        _ => false,
    }
}

/// The refusal for a JSON endpoint's body of another type.
pub fn not_json_error(content_type: Option<&str>) -> ApiError {
    ApiError::invalid_request(match content_type {
        Some(value) => format!(
            "content-type `{}` is not JSON: send the body as application/json",
            printable(value)
        ),
        None => "the request has no content-type: send the body as application/json".to_string(),
    })
    .not_retryable()
}

/// The refusal for a foreign browser origin.
pub fn origin_error() -> ApiError {
    ApiError::new(
        ErrorKind::Permission,
        "requests from this browser origin are not allowed (see --allow-origin)",
    )
    .not_retryable()
}

/// A header value echoed in an error: short and without control characters.
fn printable(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> HostPolicy {
        HostPolicy {
            allowed: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn loopback_and_ip_hosts_pass_on_any_port() {
        let p = policy(&[]);
        for host in [
            "localhost:38080",
            "LOCALHOST:38080",
            "127.0.0.1:38080",
            "[::1]:38080",
            "192.168.1.5:38080",
            "[::ffff:127.0.0.1]:38080",
            // Forwarded: `ssh -L 9000:127.0.0.1:38080`, `docker run -p 9000:38080`, an
            // editor's port forwarding, a proxy that sends `Host: localhost`.
            "localhost:9000",
            "127.0.0.1:9000",
            "[::1]:443",
            "localhost",
            "127.0.0.1",
            "[::1]",
            "172.17.0.1:9000",
        ] {
            assert!(p.check(Some(host)).is_ok(), "{host}");
        }
    }

    #[test]
    fn rebinding_names_and_odd_spellings_are_refused() {
        let p = policy(&[]);
        for host in [
            "attacker.example:38080",
            "localhost.attacker.example:38080",
            "127.0.0.1.nip.io:38080",
            "localhost.:38080",
            "localhost.",
            "attacker.example",
            "attacker.example:9000",
            "127.1:38080",
            "0x7f.0.0.1:38080",
            "2130706433:38080",
            "0177.0.0.1:38080",
            "user@localhost:38080",
            "localhost:38080/path",
            "local host:38080",
            "localhost%2e:38080",
            "[::1:38080",
            "[::1]x:38080",
            "localhost:",
            "localhost:99999",
            ":38080",
            "",
            "ｌｏｃａｌｈｏｓｔ:38080",
        ] {
            let err = p.check(Some(host)).unwrap_err();
            assert_eq!(err.status(), 403, "{host}");
        }
        assert_eq!(p.check(None).unwrap_err().status(), 400);
    }

    #[test]
    fn operator_allowed_names() {
        let p = policy(&["bridge.internal", "proxy.example:443"]);
        assert!(p.check(Some("bridge.internal:38080")).is_ok());
        assert!(p.check(Some("BRIDGE.internal:9")).is_ok());
        assert!(p.check(Some("bridge.internal")).is_ok());
        assert!(p.check(Some("proxy.example:443")).is_ok());
        assert!(p.check(Some("proxy.example:444")).is_err());
        assert!(p.check(Some("other.internal:38080")).is_err());
        assert!(policy(&["*"]).check(Some("anything:2")).is_ok());
    }

    #[test]
    fn origins_compare_parsed_hosts() {
        let ok = |o: &str, allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            origin_allowed(o, &allowed)
        };
        assert!(ok("http://localhost:3000", &[]));
        assert!(ok("http://127.0.0.1", &[]));
        assert!(ok("http://127.9.8.7:1", &[]));
        assert!(ok("http://[::1]:8080", &[]));
        assert!(ok("vscode-webview://abc", &["vscode-webview://abc"]));
        assert!(ok("https://evil.example", &["*"]));
        for bad in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.attacker.example",
            "http://127.0.0.1.attacker.example",
            "http://[::1].evil.example",
            "http://[::1]evil:80",
            "http://[::2]:80",
            "http://127.1",
            "http://localhost@evil.example",
            "http://localhost:80/path",
            "null",
            "",
            "://localhost",
            "http//localhost",
        ] {
            assert!(!ok(bad, &[]), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        for good in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
            " application/json ",
        ] {
            assert!(is_json_content_type(Some(good)), "{good}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonp",
            "",
        ] {
            assert!(!is_json_content_type(Some(bad)), "{bad}");
        }
        assert!(!is_json_content_type(None));
        assert_eq!(not_json_error(Some("text/plain")).status(), 400);
    }
}
