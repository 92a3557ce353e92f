//! Request signing, shared by every sender Lifeboat verifies (Slack, PagerDuty, Grafana,
//! generic webhook sources): HMAC-SHA256 in hex, bearer tokens, and signed timestamps
//! within a window of now. Every comparison is in constant time, and every timestamp
//! comparison is done without overflow.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signed timestamp may be from now, either way.
pub const WINDOW_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("no credentials: send {0}")]
    Missing(&'static str),
    #[error("the credentials do not match")]
    Mismatch,
    #[error("the signed timestamp is not a number of seconds or milliseconds")]
    BadTimestamp,
    #[error("the signed timestamp is more than five minutes from now")]
    Stale,
}

/// Whether `a` and `b` are the same bytes, in time that tells nothing of either.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    // Digests of both sides compared with `verify_slice`: constant time, whatever the
    // lengths of what was sent.
    let digest = |x: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"lifeboat-compare").ok()?;
        m.update(x);
        Some(m)
    };
    match (digest(a), digest(b)) {
        (Some(x), Some(y)) => x.verify_slice(&y.finalize().into_bytes()).is_ok(),
        _ => false,
    }
}

/// hex(HMAC-SHA256(secret, parts…)): what a sender signs.
pub fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `hex_given` is HMAC-SHA256(secret, parts…), compared in constant time.
pub fn hmac_matches(secret: &[u8], parts: &[&[u8]], hex_given: &str) -> bool {
    let Ok(given) = hex::decode(hex_given.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(&given).is_ok()
}

/// A signed timestamp (seconds, or milliseconds when it is that large) within
/// `WINDOW_SECS` of `now_secs`.
pub fn fresh(timestamp: &str, now_secs: i64) -> Result<(), Unverified> {
    let n: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Unverified::BadTimestamp)?;
    let secs = if n > 100_000_000_000 { n / 1000 } else { n };
    // `abs_diff` cannot overflow, whatever a sender puts in the header.
    if now_secs.abs_diff(secs) > WINDOW_SECS.unsigned_abs() {
        return Err(Unverified::Stale);
    }
    Ok(())
}

/// An `Authorization` header: `Bearer TOKEN`, or `Basic` with TOKEN as the password.
pub fn authorization(header: Option<&str>, token: &[u8]) -> Result<(), Unverified> {
    let header = header
        .map(str::trim)
        .ok_or(Unverified::Missing("Authorization: Bearer <token>"))?;
    let (scheme, value) = header.split_once(' ').ok_or(Unverified::Mismatch)?;
    let value = value.trim();
    let given = if scheme.eq_ignore_ascii_case("bearer") {
        value.as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| Unverified::Mismatch)?;
        let colon = decoded
            .iter()
            .position(|b| *b == b':')
            .ok_or(Unverified::Mismatch)?;
        decoded[colon + 1..].to_vec()
    } else {
        return Err(Unverified::Mismatch);
    };
    if same(&given, token) {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_carry_the_token() {
        let token = b"alertmanager-token-123";
        assert_eq!(
            authorization(Some("Bearer alertmanager-token-123"), token),
            Ok(())
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("am:alertmanager-token-123");
        assert_eq!(
            authorization(Some(&format!("Basic {basic}")), token),
            Ok(())
        );
        assert_eq!(
            authorization(Some("Bearer alertmanager-token-12"), token),
            Err(Unverified::Mismatch)
        );
        assert_eq!(
            authorization(Some("Token x"), token),
            Err(Unverified::Mismatch)
        );
        assert!(authorization(None, token).is_err());
    }

    #[test]
    fn a_timestamp_is_fresh_within_five_minutes_either_way_and_never_wraps() {
        let now = 1_800_000_000;
        assert_eq!(fresh(&now.to_string(), now), Ok(()));
        assert_eq!(fresh(&(now - 300).to_string(), now), Ok(()));
        assert_eq!(fresh(&(now + 301).to_string(), now), Err(Unverified::Stale));
        assert_eq!(fresh(&(now * 1000).to_string(), now), Ok(()));
        assert_eq!(fresh(&i64::MIN.to_string(), now), Err(Unverified::Stale));
        assert_eq!(fresh(&i64::MAX.to_string(), now), Err(Unverified::Stale));
        assert_eq!(
            fresh(&i64::MIN.to_string(), i64::MAX),
            Err(Unverified::Stale)
        );
        assert_eq!(fresh("soon", now), Err(Unverified::BadTimestamp));
    }

    #[test]
    fn an_hmac_matches_only_its_secret_and_parts() {
        let sig = sign(b"k", &[b"a", b"b"]);
        assert!(hmac_matches(b"k", &[b"ab"], &sig));
        assert!(!hmac_matches(b"k2", &[b"ab"], &sig));
        assert!(!hmac_matches(b"k", &[b"ac"], &sig));
        assert!(!hmac_matches(b"k", &[b"ab"], "not hex"));
    }
}
