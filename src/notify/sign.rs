//! Webhook signatures: `X-Crm-Ingest-Signature: t=<unix>,sha256=<hex>`, the HMAC-SHA256 of
//! `<t>.<body>` under the table's `secret`. [`verify`] is what a receiver does (the tests'
//! receiver uses it): recompute, compare in constant time, refuse old timestamps.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "x-crm-ingest-signature";

/// The header's value for `body` sent at `t` (unix seconds).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},sha256={}", hex(&mac(secret, t, body)))
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(secret) else { return Vec::new() };
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not `t=<unix>,sha256=<hex>`")]
    Malformed,
    #[error("the signature is {0} s away from now: a replay, or a clock that is off")]
    Stale(i64),
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks `header` against `body` at `now`, allowing `tolerance` seconds of age either way.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> Result<(), VerifyError> {
    let (t, sig) = parse(header).ok_or(VerifyError::Malformed)?;
    let skew = now.checked_sub(t).ok_or(VerifyError::Malformed)?;
    if skew.checked_abs().is_none_or(|s| s > tolerance) {
        return Err(VerifyError::Stale(skew));
    }
    let expected = mac(secret, t, body);
    if expected.len() != sig.len() || !constant_time_eq(&expected, &sig) {
        return Err(VerifyError::Mismatch);
    }
    Ok(())
}

/// `t=<digits>,sha256=<64 hex digits>`, in that order, nothing else.
fn parse(header: &str) -> Option<(i64, Vec<u8>)> {
    let (t, sig) = header.trim().split_once(',')?;
    let t: i64 = t.strip_prefix("t=")?.parse().ok()?;
    let sig = sig.strip_prefix("sha256=")?;
    if sig.len() != 64 || !sig.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> =
        (0..sig.len()).step_by(2).map(|i| u8::from_str_radix(&sig[i..i + 2], 16).ok()).collect();
    Some((t, bytes?))
}

/// Equal slices, compared without an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_signature_verifies_and_any_change_is_refused() {
        let body = br#"{"id":"1","type":"file.failed"}"#;
        let header = sign(b"s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,sha256="));
        assert_eq!(verify(b"s3cret", &header, body, 1_700_000_010, 300), Ok(()));
        assert_eq!(verify(b"other", &header, body, 1_700_000_010, 300), Err(VerifyError::Mismatch));
        assert_eq!(
            verify(b"s3cret", &header, b"{}", 1_700_000_010, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", &header, body, 1_700_001_000, 300),
            Err(VerifyError::Stale(1000))
        );
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(verify(b"s3cret", &moved, body, 1_700_000_010, 300), Err(VerifyError::Mismatch));
    }

    #[test]
    fn the_known_vector() {
        // Computed independently: printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1, b"{}"),
            "t=1,sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    proptest! {
        #[test]
        fn verifying_any_header_never_panics(header in ".{0,120}", body in ".{0,40}", now in any::<i64>()) {
            let _ = verify(b"k", &header, body.as_bytes(), now, 300);
        }

        #[test]
        fn what_is_signed_verifies(t in 0i64..4_000_000_000, body in ".{0,200}", secret in ".{1,40}") {
            let h = sign(secret.as_bytes(), t, body.as_bytes());
            prop_assert_eq!(verify(secret.as_bytes(), &h, body.as_bytes(), t, 0), Ok(()));
        }
    }
}
