//! Cheap base64 checks for image payloads that may be several megabytes.
//!
//! Validating by a table scan costs a fraction of a full decode; the bridge passes the text on
//! unchanged, so decoding it would be wasted work.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const fn alphabet_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let c = byte as u8;
        table[byte] = c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
        byte += 1;
    }
    table
}

static ALPHABET: [bool; 256] = alphabet_table();

/// Standard-alphabet base64 with optional `=` padding (at most two, only at the end).
pub fn is_valid_base64(data: &[u8]) -> bool {
    let unpadded = match data {
        [rest @ .., b'=', b'='] => rest,
        [rest @ .., b'='] => rest,
        all => all,
    };
    if unpadded.is_empty() || unpadded.len() % 4 == 1 {
        return false;
    }
    if unpadded.len() != data.len() && !data.len().is_multiple_of(4) {
        return false;
    }
    unpadded.iter().all(|&byte| ALPHABET[byte as usize])
}

/// Decodes at most the first `max_bytes` of the payload (rounded to whole base64 quanta), to
/// read an image header without decoding the whole image.
pub fn decode_prefix(data: &str, max_bytes: usize) -> Option<Vec<u8>> {
    let quanta = max_bytes.div_ceil(3);
    let take = (quanta * 4).min(data.len());
    let prefix = &data.as_bytes()[..take - take % 4];
    STANDARD.decode(prefix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_standard_base64() {
        for ok in ["AAAA", "AA==", "AAA=", "iVBORw0KGgo=", "YWJj", "R0lG"] {
            assert!(is_valid_base64(ok.as_bytes()), "{ok}");
        }
    }

    #[test]
    fn rejects_what_is_not_base64() {
        for bad in [
            "",
            "A",
            "AAAAA",
            "A===",
            "AA=A",
            "not base64!",
            "AA==AA==",
            "AB\nC",
            "=",
            "AA-_",
        ] {
            assert!(!is_valid_base64(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn prefix_decoding_reads_only_the_start() {
        let encoded = STANDARD.encode(vec![7u8; 10_000]);
        let prefix = decode_prefix(&encoded, 30).unwrap();
        assert_eq!(prefix, vec![7u8; 30]);
        assert_eq!(decode_prefix("AAAA", 1000).unwrap(), vec![0, 0, 0]);
    }
}
