//! One TLS crypto provider for the process. The AWS SDK builds rustls with aws-lc-rs and
//! the other clients with ring; with both compiled in, rustls will not pick one itself, and
//! a client built without an explicit provider (kube's) would fail. ring is installed once,
//! before any client is made.

pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
