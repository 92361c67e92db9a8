//! The HTTP front both runtimes put before every route.
//!
//! - `routes`: the one route table (method, path, error shape, key, JSON body).
//! - `flavor`: which API's error shape a request gets.
//! - `auth`: the presented API key and a constant-time check.
//! - `browser_guard`: `Host`, `Origin` and `Content-Type` checks against the user's browser.
//! - `request_headers`: the bridge's bound on a request's headers.

pub mod auth;
pub mod browser_guard;
pub mod flavor;
pub mod request_headers;
pub mod routes;
