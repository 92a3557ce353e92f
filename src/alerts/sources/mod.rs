//! The senders' bodies, read into `Alert`s. A body that cannot be read is refused whole,
//! with what was wrong and where.

pub mod alertmanager;
pub mod grafana;
pub mod pagerduty;

/// Reads JSON into `T`, saying where in the body it went wrong.
fn read<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })
}
