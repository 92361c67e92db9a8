//! Every HTTP route the bridge serves, once: method, path, the API whose conventions it follows
//! (and so the shape of its errors), whether it needs a key, whether it takes a JSON body.
//!
//! Both runtimes route by this table (natively it builds the axum router; the Worker matches
//! with [`resolve`]), and the request guard, the metrics labels and the status page read it, so
//! a route is added in one place and answers the same on both.

use crate::api_error::{ApiError, ErrorKind};
use crate::http::flavor::Flavor;

/// What a route does; each runtime maps it to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
    ListModels,
    GetModel,
    Health,
    Sessions,
    Metrics,
    Status,
    /// Claude Code's unauthenticated preconnect probe.
    Hello,
    /// What this is; a browser gets the status page.
    Root,
    /// MCP Streamable HTTP (http mode and the Worker; its path is configurable natively).
    Mcp,
}

/// The methods a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Methods {
    /// `GET`, and `HEAD` (the same answer without its body).
    Get,
    Post,
    /// The MCP endpoint: `POST` a message, `GET` the event stream, `DELETE` the session.
    PostGetDelete,
}

impl Methods {
    pub fn allows(self, method: &str) -> bool {
        match self {
            Methods::Get => matches!(method, "GET" | "HEAD"),
            Methods::Post => method == "POST",
            Methods::PostGetDelete => matches!(method, "POST" | "GET" | "DELETE"),
        }
    }
}

/// The API whose conventions a route follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    Anthropic,
    OpenAi,
    /// Both SDKs list models at the same path: Anthropic's shape when the caller speaks
    /// Anthropic (`anthropic-version` or `x-api-key`, which every Anthropic SDK sends), else
    /// OpenAI's.
    EitherByCaller,
    /// JSON-RPC.
    Mcp,
}

impl Convention {
    pub fn flavor(self, speaks_anthropic: bool) -> Flavor {
        match self {
            Convention::Anthropic => Flavor::Anthropic,
            Convention::OpenAi => Flavor::OpenAi,
            Convention::EitherByCaller if speaks_anthropic => Flavor::Anthropic,
            Convention::EitherByCaller => Flavor::OpenAi,
            Convention::Mcp => Flavor::Mcp,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    /// The path pattern; `{id}` is one non-empty segment. The MCP endpoint's is its default.
    pub path: &'static str,
    pub methods: Methods,
    pub convention: Convention,
    /// With keys configured (natively) or always (the Worker's token), the caller must present
    /// one. Liveness probes and the status page's shell need none.
    pub needs_key: bool,
    /// A `POST` must declare a JSON body (a cross-site form or text POST needs no preflight).
    pub json_body: bool,
    /// Its requests sample, so the status page lists them.
    pub samples: bool,
}

/// The MCP endpoint's path on the Worker and the default of `--mcp-path`.
pub const DEFAULT_MCP_PATH: &str = "/mcp";

const fn route(
    endpoint: Endpoint,
    path: &'static str,
    methods: Methods,
    convention: Convention,
) -> Route {
    Route {
        endpoint,
        path,
        methods,
        convention,
        needs_key: true,
        json_body: false,
        samples: false,
    }
}

const fn sampling(route: Route) -> Route {
    Route {
        json_body: true,
        samples: true,
        ..route
    }
}

const fn keyless(route: Route) -> Route {
    Route {
        needs_key: false,
        ..route
    }
}

use Convention::{Anthropic, EitherByCaller, Mcp, OpenAi};

pub const ROUTES: [Route; 12] = [
    sampling(route(
        Endpoint::Messages,
        "/v1/messages",
        Methods::Post,
        Anthropic,
    )),
    Route {
        json_body: true,
        ..route(
            Endpoint::CountTokens,
            "/v1/messages/count_tokens",
            Methods::Post,
            Anthropic,
        )
    },
    sampling(route(
        Endpoint::ChatCompletions,
        "/v1/chat/completions",
        Methods::Post,
        OpenAi,
    )),
    route(
        Endpoint::ListModels,
        "/v1/models",
        Methods::Get,
        EitherByCaller,
    ),
    route(
        Endpoint::GetModel,
        "/v1/models/{id}",
        Methods::Get,
        EitherByCaller,
    ),
    // With a key (the Worker's token), it also reports that caller's sessions.
    keyless(route(Endpoint::Health, "/health", Methods::Get, Anthropic)),
    route(Endpoint::Sessions, "/sessions", Methods::Get, Anthropic),
    route(Endpoint::Metrics, "/metrics", Methods::Get, Anthropic),
    route(Endpoint::Status, "/status", Methods::Get, Anthropic),
    keyless(route(
        Endpoint::Hello,
        "/api/hello",
        Methods::Get,
        Anthropic,
    )),
    // The page holds no data; `/status`, which it polls, needs the key.
    keyless(route(Endpoint::Root, "/", Methods::Get, Anthropic)),
    Route {
        json_body: true,
        ..route(Endpoint::Mcp, DEFAULT_MCP_PATH, Methods::PostGetDelete, Mcp)
    },
];

impl Route {
    /// The route's path pattern where the MCP endpoint lives at `mcp_path`.
    pub fn path_at<'a>(&'static self, mcp_path: &'a str) -> &'a str {
        if self.endpoint == Endpoint::Mcp {
            mcp_path
        } else {
            self.path
        }
    }

    pub fn flavor(&self, speaks_anthropic: bool) -> Flavor {
        self.convention.flavor(speaks_anthropic)
    }

    /// The `{id}` segment of `path` if the route's pattern matches it.
    fn matches<'p>(&'static self, path: &'p str, mcp_path: &str) -> Option<Option<&'p str>> {
        let pattern = self.path_at(mcp_path);
        match pattern.strip_suffix("{id}") {
            Some(prefix) => path
                .strip_prefix(prefix)
                .filter(|segment| !segment.is_empty() && !segment.contains('/'))
                .map(Some),
            None => (pattern == path).then_some(None),
        }
    }
}

/// The path pattern of `endpoint` (the MCP endpoint's default), as the status page names it.
pub fn path_of(endpoint: Endpoint) -> &'static str {
    ROUTES
        .iter()
        .find(|route| route.endpoint == endpoint)
        .map_or("", |route| route.path)
}

/// The route whose pattern matches `path`, whatever the method, with its `{id}` segment. An
/// empty `mcp_path` means there is no MCP endpoint (native stdio mode).
pub fn find<'p>(path: &'p str, mcp_path: &str) -> Option<(&'static Route, Option<&'p str>)> {
    ROUTES
        .iter()
        .find_map(|route| route.matches(path, mcp_path).map(|id| (route, id)))
}

/// How a request's method and path resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved<'p> {
    /// The route, and its `{id}` segment if its pattern has one (still percent-encoded).
    Route(&'static Route, Option<&'p str>),
    MethodNotAllowed(&'static Route),
    NotFound,
}

pub fn resolve<'p>(method: &str, path: &'p str, mcp_path: &str) -> Resolved<'p> {
    match find(path, mcp_path) {
        Some((route, id)) if route.methods.allows(method) => Resolved::Route(route, id),
        Some((route, _)) => Resolved::MethodNotAllowed(route),
        None => Resolved::NotFound,
    }
}

/// The error shape of any request: its route's, or for an unknown path, the one its prefix
/// suggests (`/v1/chat/…` OpenAI's, `/v1/models…` by the caller, the rest Anthropic's).
pub fn flavor_of(path: &str, mcp_path: &str, speaks_anthropic: bool) -> Flavor {
    let convention = match find(path, mcp_path) {
        Some((route, _)) => route.convention,
        None if path.starts_with("/v1/chat/") => OpenAi,
        None if path.starts_with("/v1/models") => EitherByCaller,
        None => Anthropic,
    };
    convention.flavor(speaks_anthropic)
}

/// The metrics label of a request path: its route's pattern, so ids never become labels.
pub fn label<'a>(path: &str, mcp_path: &'a str) -> &'a str {
    find(path, mcp_path).map_or("unmatched", |(route, _)| route.path_at(mcp_path))
}

/// Whether `path` can be the MCP endpoint's: absolute, outside the API's `/v1/`, and not
/// another route's.
pub fn check_mcp_path(path: &str) -> Result<(), String> {
    let taken = ROUTES
        .iter()
        .any(|route| route.endpoint != Endpoint::Mcp && route.matches(path, "").is_some());
    if !path.starts_with('/') || path.starts_with("/v1/") || taken {
        Err(format!(
            "the MCP path `{path}` must start with /, not lie under /v1/, and not be another route's"
        ))
    } else {
        Ok(())
    }
}

/// A path echoed in an error: at most 200 characters.
fn shown(path: &str) -> String {
    path.chars().take(200).collect()
}

pub fn not_found(method: &str, path: &str) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", shown(path)))
}

pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("method {method} is not allowed on {}", shown(path)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_resolves_to_its_route_and_methods() {
        let found = |method, path| match resolve(method, path, DEFAULT_MCP_PATH) {
            Resolved::Route(route, id) => Some((route.endpoint, id)),
            _ => None,
        };
        assert_eq!(
            found("POST", "/v1/messages"),
            Some((Endpoint::Messages, None))
        );
        assert_eq!(
            found("GET", "/v1/models/claude-x%5B1m%5D"),
            Some((Endpoint::GetModel, Some("claude-x%5B1m%5D")))
        );
        assert_eq!(found("HEAD", "/api/hello"), Some((Endpoint::Hello, None)));
        assert_eq!(found("DELETE", "/mcp"), Some((Endpoint::Mcp, None)));
        assert_eq!(
            resolve("GET", "/v1/messages", DEFAULT_MCP_PATH),
            Resolved::MethodNotAllowed(&ROUTES[0])
        );
        assert!(matches!(
            resolve("PUT", "/mcp", DEFAULT_MCP_PATH),
            Resolved::MethodNotAllowed(route) if route.endpoint == Endpoint::Mcp
        ));
        for path in ["/v1/models/", "/v1/models/a/b", "/v1/nothing", "/mcp/", ""] {
            assert_eq!(resolve("GET", path, DEFAULT_MCP_PATH), Resolved::NotFound);
        }
        // A configured MCP path replaces the default.
        assert_eq!(resolve("GET", "/mcp", "/x/mcp"), Resolved::NotFound);
        assert!(matches!(
            resolve("GET", "/x/mcp", "/x/mcp"),
            Resolved::Route(route, None) if route.endpoint == Endpoint::Mcp
        ));
    }

    #[test]
    fn each_endpoint_has_one_route() {
        assert_eq!(path_of(Endpoint::ChatCompletions), "/v1/chat/completions");
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.endpoint, b.endpoint);
                assert_ne!(a.path, b.path);
            }
        }
    }

    #[test]
    fn flavors() {
        let flavor = |path, anthropic| flavor_of(path, DEFAULT_MCP_PATH, anthropic);
        assert_eq!(flavor("/v1/chat/completions", true), Flavor::OpenAi);
        assert_eq!(flavor("/v1/chat/nothing", true), Flavor::OpenAi);
        assert_eq!(flavor("/v1/models", false), Flavor::OpenAi);
        assert_eq!(flavor("/v1/models/x", true), Flavor::Anthropic);
        assert_eq!(flavor("/v1/messages", false), Flavor::Anthropic);
        assert_eq!(flavor("/health", false), Flavor::Anthropic);
        assert_eq!(flavor("/status", false), Flavor::Anthropic);
        assert_eq!(flavor("/nothing", false), Flavor::Anthropic);
        assert_eq!(flavor("/mcp", false), Flavor::Mcp);
        assert_eq!(flavor_of("/mcp", "/other", false), Flavor::Anthropic);
    }

    #[test]
    fn keys_and_json_bodies() {
        let keyless: Vec<_> = ROUTES
            .iter()
            .filter(|r| !r.needs_key)
            .map(|r| r.path)
            .collect();
        assert_eq!(keyless, ["/health", "/api/hello", "/"]);
        let json: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.json_body)
            .map(|r| r.path)
            .collect();
        assert_eq!(
            json,
            [
                "/v1/messages",
                "/v1/messages/count_tokens",
                "/v1/chat/completions",
                "/mcp"
            ]
        );
        let sampling: Vec<_> = ROUTES
            .iter()
            .filter(|r| r.samples)
            .map(|r| r.path)
            .collect();
        assert_eq!(sampling, ["/v1/messages", "/v1/chat/completions"]);
    }

    #[test]
    fn labels_are_patterns() {
        assert_eq!(label("/v1/models/claude-x", "/mcp"), "/v1/models/{id}");
        assert_eq!(label("/x/mcp", "/x/mcp"), "/x/mcp");
        assert_eq!(label("/api/hello", "/mcp"), "/api/hello");
        assert_eq!(label("/nothing", "/mcp"), "unmatched");
    }

    #[test]
    fn mcp_paths() {
        assert!(check_mcp_path("/mcp").is_ok());
        assert!(check_mcp_path("/a/mcp").is_ok());
        for bad in ["mcp", "/v1/mcp", "/health", "/", "/v1/models"] {
            assert!(check_mcp_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals() {
        let err = method_not_allowed("GET", "/v1/messages");
        assert_eq!((err.status(), err.retryable), (405, false));
        assert_eq!(err.message, "method GET is not allowed on /v1/messages");
        let err = not_found("GET", &"/x".repeat(300));
        assert_eq!(err.status(), 404);
        assert_eq!(err.message.chars().count(), "no route for GET ".len() + 200);
    }
}
