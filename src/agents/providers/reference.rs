//! Secrets in targets.yaml are never written there: a value holds `${env:NAME}` (read from
//! the environment) or `${file:PATH}` (read from a file, trailing newline dropped), alone or
//! inside a longer string (`postgres://lifeboat:${env:PG_PASSWORD}@db/app`). They are read
//! when an attempt needs them, so a rotated secret is picked up without a restart.

use secrecy::SecretString;

use crate::agents::work::Failure;
use crate::references::{self, is_env_name};

/// One `${…}` in a value.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Env(&'a str),
    File(&'a str),
}

/// Splits a value into text and references; an error names what is malformed.
fn pieces(value: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in {value:?}"))?;
        let inner = &after[..end];
        out.push(match inner.split_once(':') {
            Some(("env", name)) if is_env_name(name) => Piece::Env(name),
            Some(("env", name)) => {
                return Err(format!(
                    "`${{env:{name}}}`: not an environment variable name"
                ));
            }
            Some(("file", path)) if !path.is_empty() => Piece::File(path),
            _ => {
                return Err(format!(
                    "`${{{inner}}}`: write `${{env:NAME}}` or `${{file:PATH}}`"
                ));
            }
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks a value's references are well formed (for validation; nothing is read).
pub fn check(value: &str) -> Result<(), String> {
    pieces(value).map(drop)
}

/// Whether a value holds at least one reference.
pub fn has_reference(value: &str) -> bool {
    pieces(value).is_ok_and(|p| p.iter().any(|p| !matches!(p, Piece::Text(_))))
}

/// The environment variables a value reads, for validation to warn about unset ones.
pub fn env_names(value: &str) -> Vec<String> {
    pieces(value)
        .map(|p| {
            p.into_iter()
                .filter_map(|p| match p {
                    Piece::Env(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value with its references read. A variable that is unset or a file that can't be
/// read fails the stage for good, naming it (and never the value).
pub fn resolve(what: &str, value: &str) -> Result<SecretString, Failure> {
    read(what, value, false)
}

/// As `resolve`, for a URL: a secret read into a longer URL is percent-encoded, so that a
/// password holding `@`, `/`, `?` or `%` stays a password (and no part of it lands in the
/// query string, where a driver may log what it does not know).
pub fn resolve_url(what: &str, value: &str) -> Result<SecretString, Failure> {
    read(what, value, true)
}

fn read(what: &str, value: &str, url: bool) -> Result<SecretString, Failure> {
    let bad = |m: String| Failure::permanent(format!("{what}: {m}"));
    let all = pieces(value).map_err(bad)?;
    let encode = url && all.len() > 1;
    let mut out = String::new();
    for piece in all {
        let secret = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            reference => read_one(what, &reference)?,
        };
        if encode {
            out.push_str(&references::percent_encoded(&secret));
        } else {
            out.push_str(&secret);
        }
    }
    Ok(SecretString::from(out))
}

/// What one reference names; an unset variable or unreadable file fails for good.
fn read_one(what: &str, piece: &Piece<'_>) -> Result<String, Failure> {
    let read = match piece {
        Piece::Text(t) => Ok(t.to_string()),
        Piece::Env(name) => references::env(name),
        Piece::File(path) => references::file(path),
    };
    read.map_err(|m| Failure::permanent(format!("{what}: {m}")))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn references_are_read_where_they_stand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").expect("write");
        let value = format!("postgres://u:${{file:{}}}@db/app", file.display());
        let got = resolve("url", &value).expect("resolves");
        assert_eq!(got.expose_secret(), "postgres://u:s3cret@db/app");
        assert!(has_reference(&value));
        assert!(!has_reference("postgres://db/app"));
    }

    #[test]
    fn an_unset_variable_is_named_and_its_value_never_shown() {
        let err = resolve("url", "${env:LIFEBOAT_SURELY_UNSET_9}").expect_err("unset");
        assert!(!err.retryable);
        assert!(
            err.message.contains("LIFEBOAT_SURELY_UNSET_9 is not set"),
            "{err:?}"
        );
        assert_eq!(env_names("a${env:A_B}b${env:C}"), ["A_B", "C"]);
    }

    #[test]
    fn a_secret_inside_a_url_is_percent_encoded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "p@ss/w?rd%").expect("write");
        let inside = format!("postgres://u:${{file:{}}}@db/app", file.display());
        let got = resolve_url("url", &inside).expect("resolves");
        assert_eq!(
            got.expose_secret(),
            "postgres://u:p%40ss%2Fw%3Frd%25@db/app"
        );
        let whole = format!("${{file:{}}}", file.display());
        assert_eq!(
            resolve_url("url", &whole)
                .expect("resolves")
                .expose_secret(),
            "p@ss/w?rd%"
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in ["${env:}", "${env:1X}", "${nope}", "${env:X", "${vault:x}"] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
        assert!(check("plain").is_ok());
    }
}
