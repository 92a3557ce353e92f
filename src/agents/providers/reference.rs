//! Secrets in targets.yaml are never written there: a value holds `${env:NAME}` (read from
//! the environment) or `${file:PATH}` (read from a file, trailing newline dropped), alone or
//! inside a longer string (`postgres://lifeboat:${env:PG_PASSWORD}@db/app`). They are read
//! when an attempt needs them, so a rotated secret is picked up without a restart.

use secrecy::SecretString;

use crate::agents::work::Failure;

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

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    let bad = |m: String| Failure::permanent(format!("{what}: {m}"));
    let mut out = String::new();
    for piece in pieces(value).map_err(bad)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Env(name) => match std::env::var(name) {
                Ok(v) => out.push_str(&v),
                Err(_) => {
                    return Err(bad(format!(
                        "environment variable {name} is not set (targets.yaml reads it with ${{env:{name}}})"
                    )));
                }
            },
            Piece::File(path) => match std::fs::read_to_string(path) {
                Ok(v) => out.push_str(v.strip_suffix('\n').unwrap_or(&v)),
                Err(e) => return Err(bad(format!("cannot read {path}: {e}"))),
            },
        }
    }
    Ok(SecretString::from(out))
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
    fn malformed_references_are_refused() {
        for bad in ["${env:}", "${env:1X}", "${nope}", "${env:X", "${vault:x}"] {
            assert!(check(bad).is_err(), "{bad} should be refused");
        }
        assert!(check("plain").is_ok());
    }
}
