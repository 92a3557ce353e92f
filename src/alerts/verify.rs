//! Who may send alerts: Alertmanager with a bearer token (or basic auth whose password is
//! the token), PagerDuty with HMAC-SHA256 signatures over the raw body (several while a
//! secret is rotated), Grafana with its HMAC (over `timestamp:body` when it sends a
//! timestamp) or the bearer token. Every comparison is in constant time.

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

fn same(a: &[u8], b: &[u8]) -> bool {
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

fn hmac_matches(secret: &[u8], parts: &[&[u8]], hex_given: &str) -> bool {
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

/// `X-PagerDuty-Signature: v1=HEX[,v1=HEX…]`: accepted when any `v1` matches.
pub fn pagerduty(header: Option<&str>, secret: &[u8], body: &[u8]) -> Result<(), Unverified> {
    let header = header.ok_or(Unverified::Missing("X-PagerDuty-Signature"))?;
    let any = header
        .split(',')
        .filter_map(|s| s.trim().strip_prefix("v1="))
        .any(|sig| hmac_matches(secret, &[body], sig));
    if any {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

/// `X-Grafana-Alerting-Signature`, over `timestamp:body` when
/// `X-Grafana-Alerting-Timestamp` is sent (then within five minutes of `now`), else over the
/// body alone.
pub fn grafana(
    signature: Option<&str>,
    timestamp: Option<&str>,
    secret: &[u8],
    body: &[u8],
    now_secs: i64,
) -> Result<(), Unverified> {
    let signature = signature.ok_or(Unverified::Missing(
        "X-Grafana-Alerting-Signature, or Authorization: Bearer <secret>",
    ))?;
    let matched = match timestamp.map(str::trim) {
        Some(ts) => {
            let n: i64 = ts.parse().map_err(|_| Unverified::BadTimestamp)?;
            // Seconds or milliseconds, whichever the contact point sends.
            let secs = if n > 100_000_000_000 { n / 1000 } else { n };
            if (now_secs - secs).abs() > WINDOW_SECS {
                return Err(Unverified::Stale);
            }
            hmac_matches(secret, &[ts.as_bytes(), b":", body], signature)
        }
        None => hmac_matches(secret, &[body], signature),
    };
    if matched {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

/// hex(HMAC-SHA256(secret, parts…)): what a sender signs, for tests and stand-ins.
pub fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagerdutys_published_vector_passes_among_several_signatures() {
        let body = br#"{"event":{"id":"x"}}"#;
        let good = "v1=6ffde868d5515a7f9a84c45bf3eb4ef120aa4991dce7d53835e17f63a9b778fd";
        assert_eq!(pagerduty(Some(good), b"pd-secret", body), Ok(()));
        let rotated = format!("v1=00ff, {good}");
        assert_eq!(pagerduty(Some(&rotated), b"pd-secret", body), Ok(()));
        assert_eq!(
            pagerduty(Some(good), b"other-secret", body),
            Err(Unverified::Mismatch)
        );
        assert_eq!(
            pagerduty(Some(good), b"pd-secret", br#"{"event":{"id":"y"}}"#),
            Err(Unverified::Mismatch)
        );
        assert!(matches!(
            pagerduty(None, b"pd-secret", body),
            Err(Unverified::Missing(_))
        ));
    }

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
    fn grafana_signs_the_body_or_the_timestamp_and_body() {
        let body = b"{}";
        let plain = sign(b"g", &[body]);
        assert_eq!(grafana(Some(&plain), None, b"g", body, 0), Ok(()));
        let now = 1_800_000_000;
        let ts = now.to_string();
        let timed = sign(b"g", &[ts.as_bytes(), b":", body]);
        assert_eq!(grafana(Some(&timed), Some(&ts), b"g", body, now), Ok(()));
        assert_eq!(
            grafana(Some(&timed), Some(&ts), b"g", body, now + 301),
            Err(Unverified::Stale)
        );
        assert_eq!(
            grafana(Some(&plain), Some(&ts), b"g", body, now),
            Err(Unverified::Mismatch)
        );
        let ms = (now * 1000).to_string();
        let timed_ms = sign(b"g", &[ms.as_bytes(), b":", body]);
        assert_eq!(grafana(Some(&timed_ms), Some(&ms), b"g", body, now), Ok(()));
    }
}
