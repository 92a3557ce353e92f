//! `${env:NAME}` and `${file:PATH}`: secrets named where they are needed and never written
//! down. targets.yaml reads them strictly (`agents::providers::reference`); a stage spec
//! reads them wherever they stand, leaving any other `${…}` as text (here).

/// Whether `name` can be an environment variable's name.
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variable's value; the error names it, never a value.
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .map_err(|_| format!("environment variable {name} is not set (read with ${{env:{name}}})"))
}

/// The file's contents, its trailing newline dropped.
pub fn file(path: &str) -> Result<String, String> {
    let v = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    Ok(v.strip_suffix('\n').unwrap_or(&v).to_string())
}

/// `s` with everything but unreserved characters percent-encoded, as a secret read into a
/// URL must be.
pub fn percent_encoded(s: &str) -> String {
    encoded_where(s, |b| {
        !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    })
}

/// The forms a secret takes in what a library or a command prints: as it is, escaped
/// in JSON, and percent-encoded fully (either case of hex), as a form encodes it (`+`
/// for a space) and as URL parsers encode a password (only what the userinfo may not
/// hold). Scrubbing looks for each.
pub fn disguises(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(secret);
    let full = percent_encoded(secret);
    let mut all = vec![
        secret.to_string(),
        json.to_string(),
        lowercase_hex(&full),
        full.clone(),
        full.replace("%20", "+"),
        encoded_where(secret, |b| {
            b.is_ascii_control() || !b.is_ascii() || br##" "#<>?`{}/:;=@[\]^|%"##.contains(&b)
        }),
    ];
    all.sort();
    all.dedup();
    all
}

/// `%2F` as `%2f`, leaving what is not an escape as it is.
fn lowercase_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut hex = 0;
    for c in encoded.chars() {
        if c == '%' {
            hex = 2;
            out.push(c);
        } else if hex > 0 {
            hex -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` with the bytes `escape` picks percent-encoded.
fn encoded_where(s: &str, escape: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if escape(b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(char::from(b));
        }
    }
    out
}

/// Whether `value` is a URL (`scheme://…`) up to `at`: a secret read into it there is
/// percent-encoded, so that a password holding `@`, `/`, `?` or `%` stays a password.
fn in_a_url(value: &str, at: usize) -> bool {
    value[..at].split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// A stage spec's string with its `${env:NAME}` and `${file:PATH}` read, and the values
/// read, to keep out of whatever the agent says. Any other `${…}` (a shell's `${HOME}` in
/// an exec command) is text. A secret read into a longer URL (wait `sql`, an http `url`,
/// an exec `env` value that is a URL) is percent-encoded there, as targets.yaml does.
pub fn resolve_in_spec(what: &str, value: &str) -> Result<(String, Vec<String>), String> {
    let mut out = String::new();
    let mut read = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let reference = after
            .find('}')
            .and_then(|end| match after[..end].split_once(':') {
                Some(("env", name)) if is_env_name(name) => Some((env(name), end)),
                Some(("file", path)) if !path.is_empty() => Some((file(path), end)),
                _ => None,
            });
        match reference {
            Some((read_value, end)) => {
                let secret = read_value.map_err(|m| format!("{what}: {m}"))?;
                out.push_str(&rest[..start]);
                let at = value.len() - rest.len() + start;
                if in_a_url(value, at) {
                    out.push_str(&percent_encoded(&secret));
                } else {
                    out.push_str(&secret);
                }
                read.push(secret);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok((out, read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_its_references_and_leaves_other_dollars_as_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "t0ken\n").expect("write");
        let value = format!(
            "Bearer ${{file:{}}} for ${{HOME}} at $PATH ${{env:}} ${{",
            file.display()
        );
        let (got, read) = resolve_in_spec("header", &value).expect("resolves");
        assert_eq!(got, "Bearer t0ken for ${HOME} at $PATH ${env:} ${");
        assert_eq!(read, ["t0ken"]);
        let e = resolve_in_spec("header", "${env:LIFEBOAT_SURELY_UNSET_9}").expect_err("unset");
        assert!(e.starts_with("header: environment variable LIFEBOAT_SURELY_UNSET_9"));
    }

    #[test]
    fn a_secret_inside_a_url_is_percent_encoded_and_a_whole_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "p@ss/w?rd% x").expect("write");
        let at = file.display();
        let (got, read) =
            resolve_in_spec("sql", &format!("postgres://u:${{file:{at}}}@db/app")).expect("url");
        assert_eq!(got, "postgres://u:p%40ss%2Fw%3Frd%25%20x@db/app");
        assert_eq!(read, ["p@ss/w?rd% x"]);
        let (got, _) = resolve_in_spec("sql", &format!("${{file:{at}}}")).expect("whole");
        assert_eq!(got, "p@ss/w?rd% x");
        let (got, _) = resolve_in_spec("header", &format!("Basic ${{file:{at}}}")).expect("text");
        assert_eq!(got, "Basic p@ss/w?rd% x");
    }

    #[test]
    fn a_secret_is_known_in_each_form_it_is_printed_in() {
        let forms = disguises("p@ss/w\"rd x");
        for form in [
            "p@ss/w\"rd x",
            r#"p@ss/w\"rd x"#,
            "p%40ss%2Fw%22rd%20x",
            "p%40ss%2fw%22rd%20x",
            "p%40ss%2Fw%22rd+x",
            "p%40ss%2Fw%22rd%20x",
        ] {
            assert!(forms.iter().any(|f| f == form), "{form} not in {forms:?}");
        }
        // A password only partly encoded, as URL parsers write one.
        assert!(disguises("a!b@c").iter().any(|f| f == "a!b%40c"));
    }
}
