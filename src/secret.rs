//! Values that must never be printed: API tokens, passwords, and URLs that carry them.
//! They are held in `secrecy`'s types, whose `Debug` says `[REDACTED]`, and exposed only
//! where they are used.

use std::fmt;

pub use secrecy::{ExposeSecret, SecretString};

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

/// A URL with the password of its user info (`user:PASSWORD@host`) and the value of any
/// query parameter whose name contains `password` replaced by `***`. A password with an
/// unencoded `@` or `/` in it is masked whole as well.
pub fn mask_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let query_at = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before_query, query) = rest.split_at(query_at);
    let before_query = match before_query.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => before_query.to_string(),
        },
        None => before_query.to_string(),
    };
    let prefix = scheme.map(|s| format!("{s}://")).unwrap_or_default();
    format!("{prefix}{before_query}{}", mask_query(query))
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
