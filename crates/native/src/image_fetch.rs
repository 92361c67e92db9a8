//! Downloads `url` image sources to base64, under the core's address policy: the resolver
//! refuses names that resolve to any non-public address (so DNS rebinding cannot slip a
//! private address in), and every redirect is checked again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sampling2api_core::ApiError;
use sampling2api_core::anthropic::{ImageSource, MessagesRequest};
use sampling2api_core::image_url::{
    FETCH_TIMEOUT_SECS, MAX_IMAGE_BYTES, check_url, is_forbidden_ip, refused, url_image_sources,
};

pub struct ImageFetcher {
    client: Option<reqwest::Client>,
    allow_private: bool,
}

impl ImageFetcher {
    pub fn new(allow_private: bool) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(FETCH_TIMEOUT_SECS))
            .user_agent(concat!("sampling2api/", env!("CARGO_PKG_VERSION")));
        if allow_private {
            builder = builder.redirect(reqwest::redirect::Policy::limited(3));
        } else {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver)).redirect(
                reqwest::redirect::Policy::custom(|attempt| {
                    if attempt.previous().len() >= 3 {
                        attempt.error("more than 3 redirects")
                    } else if check_url(attempt.url().as_str()).is_err() {
                        attempt.error("redirected to a forbidden address")
                    } else {
                        attempt.follow()
                    }
                }),
            );
        }
        let client = match builder.build() {
            Ok(client) => Some(client),
            Err(err) => {
                tracing::error!(%err, "image URL fetching is unavailable");
                None
            }
        };
        ImageFetcher {
            client,
            allow_private,
        }
    }

    /// Replaces every URL image source in `request` with the downloaded base64 image.
    pub async fn inline_url_images(&self, request: &mut MessagesRequest) -> Result<(), ApiError> {
        let sources = url_image_sources(request);
        if sources.is_empty() {
            return Ok(());
        }
        let downloads = sources.into_iter().map(|source| async move {
            let ImageSource::Url { url } = &*source else {
                return Ok(());
            };
            let (media_type, data) = self.fetch(url).await?;
            *source = ImageSource::Base64 { media_type, data };
            Ok::<(), ApiError>(())
        });
        for result in futures::future::join_all(downloads).await {
            result?;
        }
        Ok(())
    }

    async fn fetch(&self, url: &str) -> Result<(String, String), ApiError> {
        if !self.allow_private {
            check_url(url)?;
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(refused(url, "only http and https URLs are fetched"));
        }
        let client = self
            .client
            .as_ref()
            .ok_or_else(|| refused(url, "image fetching is unavailable on this bridge"))?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|err| refused(url, &describe_error(&err)))?;
        if !response.status().is_success() {
            return Err(refused(
                url,
                &format!("it answered HTTP {}", response.status().as_u16()),
            ));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_IMAGE_BYTES as u64)
        {
            return Err(refused(url, "the image is larger than 10 MB"));
        }
        let declared = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(';')
                    .next()
                    .unwrap_or(value)
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|err| refused(url, &describe_error(&err)))?;
            if body.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(refused(url, "the image is larger than 10 MB"));
            }
            body.extend_from_slice(&chunk);
        }
        let media_type = match declared {
            Some(media_type) if media_type.starts_with("image/") => media_type,
            _ => sniff_media_type(&body)
                .ok_or_else(|| refused(url, "the response is not an image"))?
                .to_string(),
        };
        Ok((media_type, STANDARD.encode(&body)))
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

fn describe_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        format!("the download took longer than {FETCH_TIMEOUT_SECS} s")
    } else if err.is_redirect() {
        "a redirect was refused".to_string()
    } else if err.is_connect() {
        // The resolver's refusal surfaces as a connect error; say what it most likely was.
        format!("could not connect ({})", root_cause(err))
    } else {
        format!("the download failed ({})", root_cause(err))
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Resolves names, then refuses them if any address is loopback, private or link-local.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() || addrs.iter().any(|addr| is_forbidden_ip(addr.ip())) {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} resolves to a loopback, private or link-local address").into();
                return Err(err);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}
