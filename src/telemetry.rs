//! Logging: `RUST_LOG` decides; the service logs at info, interactive commands only warn.

use tracing_subscriber::EnvFilter;

pub fn init(service: bool) {
    let default = if service { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
