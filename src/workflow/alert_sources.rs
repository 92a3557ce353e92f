//! `sources:` in routes.yaml: senders that post JSON and need no code. Each names its
//! secret, and where in a body the alert's name, status, fingerprint and labels are, as
//! JSON pointers (`/alert/id`) or dotted paths (`$.alert.id`).

use std::path::Path;

use indexmap::IndexMap;

use super::source::{Diagnostic, Pos, Spanned};

/// A generic webhook source, received at `POST /webhooks/generic/{name}`.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericSource {
    pub name: String,
    /// Where its name is written.
    pub pos: Pos,
    /// `${env:NAME}` or `${file:PATH}`, read when the service starts.
    pub secret: String,
    /// The header carrying hex HMAC-SHA256 of the body (`sha256=` may lead it).
    pub signature_header: String,
    /// When set, the signature is over `timestamp:body`, and the timestamp must be within
    /// five minutes of now.
    pub timestamp_header: Option<String>,
    /// An array of alerts in the body; unset, the body is one alert.
    pub alerts: Option<String>,
    /// Each pointer below is read inside one alert.
    pub alertname: Option<String>,
    pub status: String,
    /// Status values that fire, and that resolve; any other is recorded and starts nothing.
    pub firing: Vec<String>,
    pub resolved: Vec<String>,
    /// What ties a resolve to its firing; unset, the name and labels.
    pub fingerprint: Option<String>,
    pub labels: IndexMap<String, String>,
    /// Values holding many labels: an object, `key:value` strings (in a list, or comma
    /// separated), or `{tag, value}` objects.
    pub tags: Vec<String>,
    pub summary: Option<String>,
    pub link: Option<String>,
}

pub const SIGNATURE_HEADER: &str = "x-lifeboat-signature";

/// `$.a.b[0]` or `/a/b/0` as an RFC 6901 pointer, or why it is neither.
pub fn pointer(path: &str) -> Result<String, String> {
    let path = path.trim();
    if path.is_empty() {
        return Err("an empty path: write `$.field` or `/field`".into());
    }
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let Some(rest) = path.strip_prefix('$') else {
        return Err(format!(
            "`{path}` is not a path: write `$.field.inner` or `/field/inner`"
        ));
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                let mut key = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '.' || n == '[' {
                        break;
                    }
                    key.push(n);
                    chars.next();
                }
                if key.is_empty() {
                    return Err(format!("`{path}`: a `.` with no field after it"));
                }
                out.push('/');
                out.push_str(&key.replace('~', "~0").replace('/', "~1"));
            }
            '[' => {
                let mut index = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    index.push(n);
                }
                if index.parse::<usize>().is_err() {
                    return Err(format!("`{path}`: `[{index}]` is not an index"));
                }
                out.push('/');
                out.push_str(&index);
            }
            other => {
                return Err(format!(
                    "`{path}`: `{other}` where a `.field` or `[index]` belongs"
                ));
            }
        }
    }
    Ok(out)
}

/// The raw `sources:` entry, every value with its position.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Spanned<String>,
    pub secret: Spanned<String>,
    #[serde(default)]
    pub signature_header: Option<Spanned<String>>,
    #[serde(default)]
    pub timestamp_header: Option<Spanned<String>>,
    #[serde(default)]
    pub alerts: Option<Spanned<String>>,
    #[serde(default)]
    pub alertname: Option<Spanned<String>>,
    pub status: Spanned<String>,
    #[serde(default)]
    pub firing: Option<Vec<String>>,
    #[serde(default)]
    pub resolved: Option<Vec<String>>,
    #[serde(default)]
    pub fingerprint: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: super::source::OrderedMap<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub summary: Option<Spanned<String>>,
    #[serde(default)]
    pub link: Option<Spanned<String>>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Checks every `sources:` entry.
pub(super) fn check(
    file: &Path,
    raw: Vec<Spanned<RawSource>>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<GenericSource> {
    let mut out: Vec<GenericSource> = Vec::new();
    for spanned in raw {
        let r = spanned.value;
        let name = r.name.value.clone();
        if !is_name(&name) {
            errors.push(Pos::of(&r.name).diag(
                file,
                format!("source `{name}`: a name is lowercase letters, digits, `-` and `_`"),
            ));
        }
        if name == "any" {
            errors.push(Pos::of(&r.name).diag(
                file,
                "source `any`: the name is taken (routes use it for every source)",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            errors.push(Pos::of(&r.name).diag(file, format!("source `{name}` is defined twice")));
        }
        let secret = r.secret.value.trim();
        if !(secret.starts_with("${") && secret.ends_with('}')) {
            errors.push(Pos::of(&r.secret).diag(
                file,
                format!(
                    "source `{name}`: a secret is never written here: read it with ${{env:NAME}} or ${{file:PATH}}"
                ),
            ));
        }
        let mut path = |field: &Spanned<String>| match pointer(&field.value) {
            Ok(p) => p,
            Err(e) => {
                errors.push(Pos::of(field).diag(file, format!("source `{name}`: {e}")));
                String::new()
            }
        };
        let status = path(&r.status);
        let alerts = r.alerts.as_ref().map(&mut path);
        let alertname = r.alertname.as_ref().map(&mut path);
        let fingerprint = r.fingerprint.as_ref().map(&mut path);
        let summary = r.summary.as_ref().map(&mut path);
        let link = r.link.as_ref().map(&mut path);
        let labels = r
            .labels
            .iter()
            .map(|(k, v)| (k.value.clone(), path(v)))
            .collect();
        let tags = r.tags.iter().map(&mut path).collect();
        let header = |h: &Option<Spanned<String>>| h.as_ref().map(|h| h.value.to_ascii_lowercase());
        out.push(GenericSource {
            pos: Pos::of(&r.name),
            name,
            secret: secret.to_string(),
            signature_header: header(&r.signature_header)
                .unwrap_or_else(|| SIGNATURE_HEADER.to_string()),
            timestamp_header: header(&r.timestamp_header),
            alerts,
            alertname,
            status,
            firing: r.firing.unwrap_or_else(|| vec!["firing".into()]),
            resolved: r.resolved.unwrap_or_else(|| vec!["resolved".into()]),
            fingerprint,
            labels,
            tags,
            summary,
            link,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::pointer;

    #[test]
    fn dotted_paths_become_pointers() {
        assert_eq!(
            pointer("$.alert_transition").as_deref(),
            Ok("/alert_transition")
        );
        assert_eq!(pointer("$.a.b[2].c").as_deref(), Ok("/a/b/2/c"));
        assert_eq!(pointer("$.a/b").as_deref(), Ok("/a~1b"));
        assert_eq!(
            pointer("/already/a/pointer").as_deref(),
            Ok("/already/a/pointer")
        );
        assert_eq!(pointer("$").as_deref(), Ok(""));
        assert!(pointer("alert_transition").is_err());
        assert!(pointer("$.a[x]").is_err());
        assert!(pointer("$..a").is_err());
        assert!(pointer("").is_err());
    }
}
