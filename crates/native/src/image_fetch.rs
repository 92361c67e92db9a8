//! Downloads `url` image sources to base64, under the core's address policy
//! (`sampling2api_core::convert::image_url`).
//!
//! Every connection goes only to a checked address: the URL is parsed once by the core (the
//! WHATWG parser the client itself uses) and that parsed `Url` is what the client gets; an
//! address-literal host is checked from it, because the connector dials literals without asking
//! a resolver; a name goes through [`PolicyResolver`], which refuses names that resolve to any
//! non-public address (so DNS rebinding cannot slip one in); each redirect is checked the same
//! way before it is followed; environment proxies are ignored (a proxy would make the resolver
//! check the proxy instead of the target).
//!
//! Until a permitted server has answered, every failure reads the same (the core's
//! `UNFETCHABLE`), so the errors cannot be used to scan ports; what a permitted server answered
//! (a status, a non-image, an oversized image) is told. Downloads stream into base64 under a running limit
//! per image and per request, never sized from a declared `Content-Length`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use sampling2api_core::ApiError;
use sampling2api_core::api::anthropic::{ImageSource, MessagesRequest};
use sampling2api_core::convert::image_url::{
    FETCH_TIMEOUT_SECS, MAX_REDIRECTS, Refusal, check_destination, is_public_ip, parse_image_url,
    refused, too_many_url_images, url_image_sources, url_images_too_large,
};

use crate::config::UrlImageLimits;

pub struct ImageFetcher {
    client: Option<reqwest::Client>,
    policy: AddressPolicy,
    limits: UrlImageLimits,
}

/// Which addresses a download may connect to.
#[derive(Debug, Clone, Default)]
struct AddressPolicy {
    allow_private: bool,
    /// Unit tests only: one loopback socket that counts as public, to exercise what happens
    /// after a permitted server answered on a machine with only loopback. No flag, variable or
    /// request can set it; only the unit-test build has it.
    #[cfg(test)]
    public_for_tests: Option<SocketAddr>,
}

impl AddressPolicy {
    /// `port` is the port connected to, or 0 where it is not known (in the resolver).
    fn permits(&self, ip: IpAddr, port: u16) -> bool {
        #[cfg(test)]
        if self.public_for_tests == Some(SocketAddr::new(ip, port)) {
            return true;
        }
        let _ = port; // only the test socket is told apart by port
        self.allow_private || is_public_ip(ip)
    }
}

impl ImageFetcher {
    pub fn new(allow_private: bool, limits: UrlImageLimits) -> Self {
        let policy = AddressPolicy {
            allow_private,
            #[cfg(test)]
            public_for_tests: None,
        };
        Self::with_policy(policy, limits)
    }

    fn with_policy(policy: AddressPolicy, limits: UrlImageLimits) -> Self {
        let client = match build_client(&policy) {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(%err, "image URL fetching is unavailable");
                None
            }
        };
        ImageFetcher {
            client,
            policy,
            limits,
        }
    }

    /// Replaces every URL image source in `request` with the downloaded base64 image: at most
    /// `max_url_images` of them, `url_image_concurrency` at a time, and at most
    /// `max_url_image_bytes_total` bytes in all. The first failure fails the request and
    /// abandons the other downloads.
    pub async fn inline_url_images(&self, request: &mut MessagesRequest) -> Result<(), ApiError> {
        let sources = url_image_sources(request);
        if sources.is_empty() {
            return Ok(());
        }
        if sources.len() > self.limits.max_url_images {
            return Err(too_many_url_images(
                sources.len(),
                self.limits.max_url_images,
            ));
        }
        let received = AtomicUsize::new(0);
        // Futures made up front: a stream holding the closure that makes them would not be
        // `Send` for every lifetime, as the handler's future must be.
        let downloads: Vec<_> = sources
            .into_iter()
            .map(|source| self.inline_one(source, &received))
            .collect();
        let mut downloads = futures::stream::iter(downloads)
            .buffer_unordered(usize::from(self.limits.url_image_concurrency.max(1)));
        while let Some(result) = downloads.next().await {
            result?;
        }
        Ok(())
    }

    async fn inline_one(
        &self,
        source: &mut ImageSource,
        received: &AtomicUsize,
    ) -> Result<(), ApiError> {
        let ImageSource::Url { url } = &*source else {
            return Ok(());
        };
        let (media_type, data) = self.fetch(url, received).await?;
        *source = ImageSource::Base64 { media_type, data };
        Ok(())
    }

    /// Downloads one image; `received` counts the bytes of all of this request's images.
    async fn fetch(&self, raw: &str, received: &AtomicUsize) -> Result<(String, String), ApiError> {
        let url = parse_image_url(raw).map_err(|refusal| refusal.to_api_error(raw))?;
        check_destination(&url, |ip, port| self.policy.permits(ip, port)).map_err(|refusal| {
            tracing::debug!(url = raw, ?refusal, "image URL refused");
            refusal.to_api_error(raw)
        })?;
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| refused(raw, "image fetching is unavailable on this bridge"))?;
        let response = client.get(url).send().await.map_err(|err| {
            // Refused names and redirects, failed lookups, refused or timed-out connections:
            // the operator's log says which, the caller's error does not.
            tracing::debug!(url = raw, err = %error_chain(&err), "image URL not fetched");
            Refusal::Unfetchable.to_api_error(raw)
        })?;
        // From here on a permitted server has answered, and what it said may be told.
        let status = response.status();
        if !status.is_success() {
            return Err(refused(
                raw,
                &format!("it answered HTTP {}", status.as_u16()),
            ));
        }
        let max_image = self.limits.max_url_image_bytes;
        let max_total = self.limits.max_url_image_bytes_total;
        let too_large = || refused(raw, &format!("the image is larger than {max_image} bytes"));
        // A declared length only lets a refusal come early; memory follows the bytes received.
        if let Some(declared) = response.content_length() {
            if declared > max_image as u64 {
                return Err(too_large());
            }
            if received.load(Ordering::Relaxed) as u64 + declared > max_total as u64 {
                return Err(url_images_too_large(max_total));
            }
        }
        let declared_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or(value)
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut image = Base64Sink::default();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|err| {
                refused(
                    raw,
                    if err.is_timeout() {
                        "the download did not finish in time"
                    } else {
                        "the download broke off"
                    },
                )
            })?;
            if image.length + chunk.len() > max_image {
                return Err(too_large());
            }
            if received.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > max_total {
                return Err(url_images_too_large(max_total));
            }
            image.push(&chunk);
        }
        let media_type = match declared_type {
            Some(media_type) if media_type.starts_with("image/") && image.length > 0 => media_type,
            _ => sniff_media_type(&image.head)
                .ok_or_else(|| refused(raw, "the response is not an image"))?
                .to_string(),
        };
        Ok((media_type, image.finish()))
    }
}

fn build_client(policy: &AddressPolicy) -> Result<reqwest::Client, reqwest::Error> {
    let redirects = policy.clone();
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("image/*"));
    reqwest::Client::builder()
        .timeout(Duration::from_secs(FETCH_TIMEOUT_SECS))
        .user_agent(concat!("sampling2api/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        // A proxy from the environment would be the address checked, not the target.
        .no_proxy()
        .dns_resolver(Arc::new(PolicyResolver {
            policy: policy.clone(),
        }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` starts with the first URL, which is no redirect.
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            match check_destination(attempt.url(), |ip, port| redirects.permits(ip, port)) {
                Ok(_) => attempt.follow(),
                Err(refusal) => attempt.error(format!("redirect refused: {refusal:?}")),
            }
        }))
        // Do not tell a redirect's target where the caller's URL pointed.
        .referer(false)
        // No idle connections to hosts that callers choose.
        .pool_max_idle_per_host(0)
        .build()
}

/// Base64 of a download, encoded as the bytes arrive (the raw image is never held whole),
/// with its first bytes kept to recognise the format.
#[derive(Default)]
struct Base64Sink {
    encoded: String,
    /// Up to two bytes waiting for a third, since base64 encodes in groups of three.
    carry: Vec<u8>,
    head: Vec<u8>,
    length: usize,
}

/// Bytes needed to recognise every format [`sniff_media_type`] knows.
const SNIFF_LEN: usize = 12;

impl Base64Sink {
    fn push(&mut self, chunk: &[u8]) {
        let wanted = SNIFF_LEN.saturating_sub(self.head.len()).min(chunk.len());
        let (head, _) = chunk.split_at(wanted);
        self.head.extend_from_slice(head);
        self.length += chunk.len();
        let mut rest = chunk;
        if !self.carry.is_empty() {
            let (fill, after) = rest.split_at((3 - self.carry.len()).min(rest.len()));
            self.carry.extend_from_slice(fill);
            rest = after;
            if self.carry.len() < 3 {
                return;
            }
            STANDARD.encode_string(&self.carry, &mut self.encoded);
            self.carry.clear();
        }
        let (whole, tail) = rest.split_at(rest.len() / 3 * 3);
        STANDARD.encode_string(whole, &mut self.encoded);
        self.carry.extend_from_slice(tail);
    }

    fn finish(mut self) -> String {
        STANDARD.encode_string(&self.carry, &mut self.encoded);
        self.encoded
    }
}

fn sniff_media_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', ..] => Some("image/png"),
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', ..] => Some("image/gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("image/webp"),
        _ => None,
    }
}

/// An error and its causes, for the log.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err;
    while let Some(source) = current.source() {
        text.push_str(": ");
        text.push_str(&source.to_string());
        current = source;
    }
    text
}

/// Resolves names, and refuses a name if any of its addresses is not permitted: the client then
/// connects only to addresses that were checked, whatever the name resolves to next time.
struct PolicyResolver {
    policy: AddressPolicy,
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to an address that is not permitted")]
struct NotPermitted(String);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // The port is the connection's, unknown here: a test's public socket never matches.
            if addrs.is_empty() || addrs.iter().any(|addr| !policy.permits(addr.ip(), 0)) {
                return Err(
                    Box::new(NotPermitted(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Instant;

    use sampling2api_core::api::anthropic::parse_messages_request;
    use sampling2api_core::convert::image_url::UNFETCHABLE;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x02\0\0\0\x03\x08\x06\0\0\0";

    fn limits() -> UrlImageLimits {
        UrlImageLimits {
            max_url_images: 20,
            max_url_image_bytes: 10 * 1024 * 1024,
            max_url_image_bytes_total: 24 * 1024 * 1024,
            url_image_concurrency: 4,
        }
    }

    /// A fetcher that refuses non-public addresses, except `public` (standing in for a public
    /// server, since a test machine may have only loopback).
    fn fetcher_treating_as_public(public: SocketAddr, limits: UrlImageLimits) -> ImageFetcher {
        ImageFetcher::with_policy(
            AddressPolicy {
                allow_private: false,
                public_for_tests: Some(public),
            },
            limits,
        )
    }

    fn request_with(urls: &[String]) -> MessagesRequest {
        let blocks: Vec<serde_json::Value> = urls
            .iter()
            .map(|url| serde_json::json!({"type": "image", "source": {"type": "url", "url": url}}))
            .collect();
        let body = serde_json::json!({"model": "m", "max_tokens": 1,
            "messages": [{"role": "user", "content": blocks}]});
        parse_messages_request(body.to_string().as_bytes(), true).unwrap()
    }

    /// The request's images after inlining, as (media type, base64 data).
    async fn inline(
        fetcher: &ImageFetcher,
        urls: &[String],
    ) -> Result<Vec<(String, String)>, String> {
        let mut request = request_with(urls);
        fetcher
            .inline_url_images(&mut request)
            .await
            .map_err(|err| err.message)?;
        Ok(url_sources_after(&mut request))
    }

    fn url_sources_after(request: &mut MessagesRequest) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for message in &request.messages {
            if let sampling2api_core::api::anthropic::MessageContent::Blocks(blocks) =
                &message.content
            {
                for block in blocks {
                    if let sampling2api_core::api::anthropic::ContentBlock::Image {
                        source: ImageSource::Base64 { media_type, data },
                    } = block
                    {
                        found.push((media_type.clone(), data.clone()));
                    }
                }
            }
        }
        found
    }

    fn unfetchable(url: &str) -> String {
        format!("image URL `{url}` refused: {UNFETCHABLE}")
    }

    /// A loopback HTTP server: answers each request with `respond(path)` after `delay`, and
    /// counts requests and the most connections it had open at once.
    struct TestServer {
        addr: SocketAddr,
        hits: Arc<AtomicUsize>,
        most_open: Arc<AtomicUsize>,
    }

    impl TestServer {
        async fn start(
            delay: Duration,
            respond: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static,
        ) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let hits = Arc::new(AtomicUsize::new(0));
            let most_open = Arc::new(AtomicUsize::new(0));
            let open = Arc::new(AtomicUsize::new(0));
            let respond = Arc::new(respond);
            let (hits_in, most_in) = (hits.clone(), most_open.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let (hits, most, open, respond) = (
                        hits_in.clone(),
                        most_in.clone(),
                        open.clone(),
                        respond.clone(),
                    );
                    tokio::spawn(async move {
                        let now_open = open.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now_open, Ordering::SeqCst);
                        let mut request = Vec::new();
                        let mut buffer = [0u8; 4096];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut buffer).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        let text = String::from_utf8_lossy(&request);
                        let path = text.split(' ').nth(1).unwrap_or("/").to_string();
                        tokio::time::sleep(delay).await;
                        let _ = socket.write_all(&respond(&path)).await;
                        let _ = socket.shutdown().await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            TestServer {
                addr,
                hits,
                most_open,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn answer(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn png(body: &[u8]) -> Vec<u8> {
        answer(
            "200 OK",
            &[
                ("content-type", "image/png".into()),
                ("content-length", body.len().to_string()),
            ],
            body,
        )
    }

    fn redirect(location: &str) -> Vec<u8> {
        answer(
            "302 Found",
            &[
                ("location", location.into()),
                ("content-length", "0".into()),
            ],
            b"",
        )
    }

    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_redirect_from_a_permitted_server_to_a_private_one_is_refused() {
        let private = TestServer::start(Duration::ZERO, |_| png(PNG)).await;
        let port = private.addr.port();
        let targets = [
            format!("http://127.0.0.1:{port}/x.png"),
            format!("http://2130706433:{port}/x.png"),
            format!("http://0x7f.1:{port}/x.png"),
            format!("http://0177.0.0.1:{port}/x.png"),
            format!("http://127.1:{port}/x.png"),
            format!("http://127.0.0.1.:{port}/x.png"),
            format!("http://%31%32%37.0.0.1:{port}/x.png"),
            format!("http://user@127.0.0.1:{port}/x.png"),
            format!("http://localhost:{port}/x.png"),
            format!("http://[::ffff:127.0.0.1]:{port}/x.png"),
            format!("http://[::1]:{port}/x.png"),
        ];
        let redirects = targets.clone();
        let public = TestServer::start(Duration::ZERO, move |path| match path {
            "/image" => png(PNG),
            "/hop" => redirect("/image"),
            "/loop" => redirect("/loop"),
            other => {
                let index: usize = other.trim_start_matches("/to/").parse().unwrap_or(0);
                redirect(&redirects[index])
            }
        })
        .await;
        let fetcher = fetcher_treating_as_public(public.addr, limits());

        // The permitted server serves, directly and through its own redirect.
        for path in ["/image", "/hop"] {
            let images = inline(&fetcher, &[public.url(path)]).await.unwrap();
            assert_eq!(
                images,
                vec![("image/png".to_string(), STANDARD.encode(PNG))]
            );
        }
        for (index, target) in targets.iter().enumerate() {
            let url = public.url(&format!("/to/{index}"));
            assert_eq!(
                inline(&fetcher, std::slice::from_ref(&url)).await,
                Err(unfetchable(&url)),
                "{target}"
            );
        }
        // Asked directly, the private server is refused before any connection too.
        for target in &targets {
            assert_eq!(
                inline(&fetcher, std::slice::from_ref(target)).await,
                Err(unfetchable(target))
            );
        }
        assert_eq!(
            private.hits(),
            0,
            "no connection reached the private server"
        );
        let url = public.url("/loop");
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(unfetchable(&url))
        );
    }

    #[tokio::test]
    async fn failures_before_a_permitted_answer_read_the_same() {
        let answering =
            TestServer::start(Duration::ZERO, |_| answer("404 Not Found", &[], b"")).await;
        let closed = closed_port().await;
        let fetcher = ImageFetcher::new(false, limits());
        // Open and answering, closed, and unresolvable: one message.
        for url in [
            answering.url("/x.png"),
            format!("http://127.0.0.1:{closed}/x.png"),
            "http://nothing.invalid/x.png".to_string(),
        ] {
            assert_eq!(
                inline(&fetcher, std::slice::from_ref(&url)).await,
                Err(unfetchable(&url))
            );
        }
        // A "public" port that refuses connections reads the same as a private one.
        let refusing: SocketAddr = format!("127.0.0.1:{closed}").parse().unwrap();
        let fetcher = fetcher_treating_as_public(refusing, limits());
        let url = format!("http://{refusing}/x.png");
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(unfetchable(&url))
        );
        assert_eq!(answering.hits(), 0);
    }

    #[tokio::test]
    async fn what_a_permitted_server_answered_is_told() {
        let server = TestServer::start(Duration::ZERO, |path| match path {
            "/missing" => answer("404 Not Found", &[], b""),
            "/page" => answer("200 OK", &[("content-type", "text/html".into())], b"<html>"),
            "/sniffed" => answer("200 OK", &[], PNG),
            _ => png(PNG),
        })
        .await;
        let fetcher = fetcher_treating_as_public(server.addr, limits());
        let url = server.url("/missing");
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(format!("image URL `{url}` refused: it answered HTTP 404"))
        );
        let url = server.url("/page");
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(format!(
                "image URL `{url}` refused: the response is not an image"
            ))
        );
        let images = inline(&fetcher, &[server.url("/sniffed")]).await.unwrap();
        assert_eq!(images[0].0, "image/png");
        // With the operator's opt-in, private servers serve, and their answers are told.
        let fetcher = ImageFetcher::new(true, limits());
        assert!(inline(&fetcher, &[server.url("/image")]).await.is_ok());
        let url = server.url("/missing");
        assert!(
            inline(&fetcher, std::slice::from_ref(&url))
                .await
                .unwrap_err()
                .contains("HTTP 404")
        );
    }

    #[tokio::test]
    async fn the_count_is_bounded_before_anything_is_fetched() {
        let server = TestServer::start(Duration::ZERO, |_| png(PNG)).await;
        let fetcher = ImageFetcher::new(
            true,
            UrlImageLimits {
                max_url_images: 2,
                ..limits()
            },
        );
        let urls: Vec<String> = (0..3).map(|i| server.url(&format!("/{i}"))).collect();
        let err = inline(&fetcher, &urls).await.unwrap_err();
        assert_eq!(err, too_many_url_images(3, 2).message);
        assert_eq!(server.hits(), 0);
        assert!(inline(&fetcher, &urls[..2]).await.is_ok());
        let none = ImageFetcher::new(
            true,
            UrlImageLimits {
                max_url_images: 0,
                ..limits()
            },
        );
        assert!(inline(&none, &urls[..1]).await.is_err());
    }

    #[tokio::test]
    async fn sizes_are_bounded_by_bytes_received_per_image_and_per_request() {
        let big = vec![7u8; 5000];
        let server = TestServer::start(Duration::ZERO, move |path| match path {
            // No length: the limit must hold on what arrives.
            "/unannounced" => answer("200 OK", &[("content-type", "image/png".into())], &big),
            // A huge declared length, then nothing: refused at once, nothing reserved.
            "/promised" => answer(
                "200 OK",
                &[
                    ("content-type", "image/png".into()),
                    ("content-length", "4000000000".into()),
                ],
                b"",
            ),
            _ => png(&[9u8; 400]),
        })
        .await;
        let fetcher = ImageFetcher::new(
            true,
            UrlImageLimits {
                max_url_image_bytes: 1000,
                max_url_image_bytes_total: 1000,
                ..limits()
            },
        );
        let url = server.url("/unannounced");
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(format!(
                "image URL `{url}` refused: the image is larger than 1000 bytes"
            ))
        );
        let url = server.url("/promised");
        let started = Instant::now();
        assert_eq!(
            inline(&fetcher, std::slice::from_ref(&url)).await,
            Err(format!(
                "image URL `{url}` refused: the image is larger than 1000 bytes"
            ))
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // Two images of 400 fit in 1000 bytes, three do not.
        let urls: Vec<String> = (0..3).map(|i| server.url(&format!("/{i}"))).collect();
        assert!(inline(&fetcher, &urls[..2]).await.is_ok());
        assert_eq!(
            inline(&fetcher, &urls).await,
            Err(url_images_too_large(1000).message)
        );
    }

    #[tokio::test]
    async fn downloads_run_with_bounded_concurrency_and_keep_their_order() {
        let server = TestServer::start(Duration::from_millis(100), |path| {
            png(&[PNG, path.as_bytes()].concat())
        })
        .await;
        let fetcher = ImageFetcher::new(
            true,
            UrlImageLimits {
                url_image_concurrency: 2,
                ..limits()
            },
        );
        let urls: Vec<String> = (0..6).map(|i| server.url(&format!("/{i}"))).collect();
        let images = inline(&fetcher, &urls).await.unwrap();
        for (index, (_, data)) in images.iter().enumerate() {
            let expected = STANDARD.encode([PNG, format!("/{index}").as_bytes()].concat());
            assert_eq!(*data, expected);
        }
        assert_eq!(server.hits(), 6);
        assert_eq!(server.most_open.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_non_public_addresses() {
        let refusing = PolicyResolver {
            policy: AddressPolicy::default(),
        };
        assert!(
            refusing
                .resolve(Name::from_str("localhost").unwrap())
                .await
                .is_err()
        );
        let allowing = PolicyResolver {
            policy: AddressPolicy {
                allow_private: true,
                ..AddressPolicy::default()
            },
        };
        let addrs: Vec<SocketAddr> = allowing
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|addr| addr.ip().is_loopback()) && !addrs.is_empty());
    }

    #[test]
    fn base64_streams_in_any_chunking() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1001).collect();
        for size in [1, 2, 3, 4, 5, 7, 64, 1001] {
            let mut sink = Base64Sink::default();
            for chunk in bytes.chunks(size) {
                sink.push(chunk);
            }
            assert_eq!(sink.head, bytes[..SNIFF_LEN]);
            assert_eq!(sink.length, bytes.len());
            assert_eq!(sink.finish(), STANDARD.encode(&bytes), "chunks of {size}");
        }
    }
}
