//! Slack's request signing (PROTOCOLS.md section 1): `v0=` + hex HMAC-SHA256 of
//! `v0:{timestamp}:{raw body}` with the app's signing secret, compared in constant time,
//! and a timestamp within five minutes of now. Checked before the body is parsed.

use crate::signing;

/// How far a request's timestamp may be from now, either way.
pub const WINDOW_SECS: i64 = signing::WINDOW_SECS;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unverified {
    #[error("the request is not signed")]
    Unsigned,
    #[error("the request's timestamp is not a number")]
    BadTimestamp,
    #[error("the request's timestamp is more than five minutes from now")]
    Stale,
    #[error("the request's signature does not match")]
    Mismatch,
}

/// Checks a request's signature headers against its raw body at `now` (unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Unverified> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Unverified::Unsigned);
    };
    let timestamp = timestamp.trim();
    signing::fresh(timestamp, now).map_err(|e| match e {
        signing::Unverified::BadTimestamp => Unverified::BadTimestamp,
        _ => Unverified::Stale,
    })?;
    let given = signature.strip_prefix("v0=").ok_or(Unverified::Mismatch)?;
    if signing::hmac_matches(secret, &[b"v0:", timestamp.as_bytes(), b":", body], given) {
        Ok(())
    } else {
        Err(Unverified::Mismatch)
    }
}

/// The signature Slack would send for `body` at `timestamp`: for tests and stand-ins.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    format!(
        "v0={}",
        signing::sign(secret, &[b"v0:", ts.as_bytes(), b":", body])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1_531_420_618;
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_published_test_vector_passes_at_its_own_time() {
        let now = TS + 10;
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now
            ),
            Ok(())
        );
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIGNATURE);
    }

    #[test]
    fn a_stale_tampered_or_unsigned_request_fails() {
        let now = TS + 10;
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIGNATURE),
                BODY.as_bytes(),
                TS + 301
            ),
            Err(Unverified::Stale)
        );
        let tampered = BODY.replace("foobar", "foobaz");
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIGNATURE),
                tampered.as_bytes(),
                now
            ),
            Err(Unverified::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret",
                Some("1531420618"),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now
            ),
            Err(Unverified::Mismatch)
        );
        assert_eq!(
            verify(SECRET, None, Some(SIGNATURE), BODY.as_bytes(), now),
            Err(Unverified::Unsigned)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("yesterday"),
                Some(SIGNATURE),
                BODY.as_bytes(),
                now
            ),
            Err(Unverified::BadTimestamp)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some("v0=zz"),
                BODY.as_bytes(),
                now
            ),
            Err(Unverified::Mismatch)
        );
    }
}
