//! Running the bridge: shared settings and what it reports about itself.
//!
//! - `settings`: each shared setting's name, default and lower bound.
//! - `health`: the bodies of `/health` and `/sessions`.
//! - `metrics`: the `/metrics` totals and their Prometheus text.
//! - `status`: the status page's data and the page itself (`status_page.html`).

pub mod health;
pub mod metrics;
pub mod settings;
pub mod status;
