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
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A stage spec's string with its `${env:NAME}` and `${file:PATH}` read, and the values
/// read, to keep out of whatever the agent says. Any other `${…}` (a shell's `${HOME}` in
/// an exec command) is text.
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
            Some((value, end)) => {
                let secret = value.map_err(|m| format!("{what}: {m}"))?;
                out.push_str(&rest[..start]);
                out.push_str(&secret);
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
}
