//! Random identifiers.
//!
//! Per-request ids (`msg_`, `req_`, `toolu_`) come from a thread-local CSPRNG seeded by the
//! OS, which costs no system call; session ids, which guard access, come from the OS directly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngExt;

pub fn random_u128() -> u128 {
    rand::rng().random()
}

/// For secrets (session ids): straight from the OS.
pub fn os_random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_ok() {
        return u128::from_le_bytes(bytes);
    }
    // The OS generator does not fail on supported platforms; if it ever did, ids must still
    // be unique, so fall back to time and a counter rather than panic.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    nanos ^ ((COUNTER.fetch_add(1, Ordering::Relaxed) as u128) << 64)
}
