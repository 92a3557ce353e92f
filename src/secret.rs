//! Values that must never be printed: API tokens, passwords, and URLs that carry them.
//! They are held in `secrecy`'s types, whose `Debug` says `[REDACTED]`, and exposed only
//! where they are used.

use std::fmt;

pub use secrecy::{ExposeSecret, SecretString};

/// What went wrong with an HTTP request, without the URL it went to: a Slack
/// `response_url`, a Discord interaction's webhook or a PagerDuty call carries a
/// credential in its URL, and errors end up in logs and messages.
pub fn unsent(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// A database URL. A PostgreSQL URL may carry a password, so it prints masked and is
/// exposed only to connect.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> DatabaseUrl {
        DatabaseUrl(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The URL with its password replaced by `***`.
    pub fn masked(&self) -> String {
        mask_url(self.expose())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.masked())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A database URL, or a libpq keyword string (`host=… password=…`), with every password
/// replaced by `***`: that of the user info (`user:PASSWORD@host`) and the value of any
/// parameter whose name contains `password`.
pub fn mask_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", mask_after_scheme(rest)),
        None if url.contains('=') => mask_keywords(url),
        None => url.to_string(),
    }
}

fn mask_after_scheme(rest: &str) -> String {
    // The user info ends at the last `@`: a password written unencoded may hold `@`, `/`,
    // `?` or `#`. Masking too much of a malformed URL beats showing part of a password.
    let (userinfo, tail) = match rest.rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => (format!("{user}:***@"), &rest[at + 1..]),
            None => (rest[..=at].to_string(), &rest[at + 1..]),
        },
        None => (String::new(), rest),
    };
    let query_at = tail.find(['?', '#']).unwrap_or(tail.len());
    format!(
        "{userinfo}{}{}",
        &tail[..query_at],
        mask_query(&tail[query_at..])
    )
}

/// `host=db password='s3cret word' dbname=x`, with the password's value masked.
fn mask_keywords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let key_end = rest.find('=').unwrap_or(rest.len());
        let key = &rest[..key_end];
        out.push_str(key);
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix('=') else {
            break;
        };
        out.push('=');
        let value_end = match after.strip_prefix('\'') {
            Some(quoted) => {
                let mut escaped = false;
                let close = quoted
                    .char_indices()
                    .find(|&(_, c)| {
                        let end = c == '\'' && !escaped;
                        escaped = c == '\\' && !escaped;
                        end
                    })
                    .map_or(quoted.len(), |(i, _)| i + 1);
                (close + 1).min(after.len())
            }
            None => after.find(char::is_whitespace).unwrap_or(after.len()),
        };
        if key.trim().to_ascii_lowercase().contains("password") {
            out.push_str("***");
        } else {
            out.push_str(&after[..value_end]);
        }
        rest = &after[value_end..];
    }
    out
}

fn mask_query(query: &str) -> String {
    let Some(params) = query.strip_prefix('?') else {
        return query.to_string();
    };
    let (params, fragment) = match params.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (params, None),
    };
    let masked: Vec<String> = params
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if k.to_ascii_lowercase().contains("password") => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect();
    let mut out = format!("?{}", masked.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_request_error_does_not_say_its_url() {
        // Nothing listens on port 1: the request fails, and the error would name the URL.
        let url = "http://127.0.0.1:1/webhooks/1/interaction-token-7f3a/messages/@original";
        let e = reqwest::Client::new()
            .get(url)
            .send()
            .await
            .expect_err("nothing listens there");
        assert!(e.to_string().contains("interaction-token-7f3a"), "{e}");
        let said = super::unsent(e);
        assert!(!said.contains("interaction-token-7f3a"), "{said}");
        assert!(!said.is_empty());
    }

    use super::*;

    #[test]
    fn passwords_are_masked_wherever_a_url_carries_them() {
        assert_eq!(
            mask_url("postgres://lifeboat:s3cret@db.internal:5432/lifeboat"),
            "postgres://lifeboat:***@db.internal:5432/lifeboat"
        );
        assert_eq!(
            mask_url("postgresql://u:p@ss/w@rd@h/db?sslmode=require"),
            "postgresql://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            mask_url("postgres://h/db?user=u&password=s3cret&sslpassword=x#f"),
            "postgres://h/db?user=u&password=***&sslpassword=***#f"
        );
        assert_eq!(
            mask_url("postgres://only-user@h/db"),
            "postgres://only-user@h/db"
        );
        assert_eq!(
            mask_url("postgres://u:pa#ss?x@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            mask_url("host=db user=u password=s3cret dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
        assert_eq!(
            mask_url("host=db password='a \\' b' sslpassword=p port=5432"),
            "host=db password=*** sslpassword=*** port=5432"
        );
        assert_eq!(mask_url("sqlite://lifeboat.db"), "sqlite://lifeboat.db");
        assert_eq!(mask_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn a_database_url_never_prints_its_password() {
        let url = DatabaseUrl::new("postgres://u:hunter2@h/db");
        assert!(!format!("{url:?} {url}").contains("hunter2"));
        assert_eq!(url.expose(), "postgres://u:hunter2@h/db");
    }
}
