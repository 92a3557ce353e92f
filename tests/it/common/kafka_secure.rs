//! A Kafka-protocol broker behind TLS and SASL on loopback, to prove that a Kafka client
//! connects with `security.protocol` SSL (mutual TLS optional), SASL_PLAINTEXT and
//! SASL_SSL, and fails clearly with a wrong password or a CA it does not trust.
//!
//! The broker is tansu (memory storage), which speaks plaintext only. TLS comes from
//! stunnel in front of it; SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) from a small front
//! in this process that answers the login itself and then pipes the connection to tansu.
//! tansu advertises the outermost address, since Kafka clients reconnect to what metadata
//! advertises. With SASL over TLS the chain is: client → stunnel → SASL front → tansu.
//!
//! The certificates (a test CA, a server certificate for 127.0.0.1/localhost, a client
//! certificate and an unrelated CA) come from [`make_certs`], which other TLS tests can use
//! on their own.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Proc, free_port, required, until};

const OPENSSL: &str = "/usr/bin/openssl";
/// Where stunnel is when `LIFEBOAT_TEST_STUNNEL` (from scripts/tls.sh) does not say.
const STUNNEL: &str = "/usr/bin/stunnel4";

fn stunnel() -> PathBuf {
    std::env::var_os("LIFEBOAT_TEST_STUNNEL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(STUNNEL))
}

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// PEM files made by [`make_certs`]. Private keys are mode 0600.
#[derive(Clone, Debug)]
pub struct Certs {
    /// The test CA's certificate: what clients trust.
    pub ca: PathBuf,
    /// The test CA's private key, to sign more certificates.
    pub ca_key: PathBuf,
    /// A server certificate signed by the CA, for `IP:127.0.0.1` and `DNS:localhost`.
    pub server_cert: PathBuf,
    /// The key of `server_cert`.
    pub server_key: PathBuf,
    /// A client certificate signed by the CA (CN `lifeboat`), for mutual TLS.
    pub client_cert: PathBuf,
    /// The key of `client_cert`.
    pub client_key: PathBuf,
    /// A CA that signed none of the above: trusting it alone must fail the handshake.
    pub other_ca: PathBuf,
}

/// Extensions for each kind of certificate. A file of our own, so that the system's
/// openssl.cnf defaults do not clash with them.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";

/// A test CA, a server and a client certificate signed by it, and an unrelated CA, as
/// PEM files in `dir` (which must exist). Needs the `openssl` command. Keys are EC P-256,
/// certificates valid for three days. A server that runs as another user (PostgreSQL as
/// `postgres`) must be able to enter `dir` (a tempdir is mode 0700) and own its key: see
/// [`protect_key`].
pub fn make_certs(dir: &Path) -> Certs {
    let cnf = dir.join("openssl.cnf");
    std::fs::write(&cnf, OPENSSL_CNF).expect("write openssl.cnf");
    let (ca, ca_key) = self_signed(dir, &cnf, "ca", "Lifeboat Test CA");
    let (other_ca, _) = self_signed(dir, &cnf, "other-ca", "Unrelated Test CA");
    let (server_cert, server_key) = signed(dir, &cnf, (&ca, &ca_key), "server", "localhost");
    let (client_cert, client_key) = signed(dir, &cnf, (&ca, &ca_key), "client", "lifeboat");
    Certs {
        ca,
        ca_key,
        server_cert,
        server_key,
        client_cert,
        client_key,
        other_ca,
    }
}

/// Makes `key` readable by `owner` alone: mode 0600, and owned by `owner` when one is
/// given (needs root). PostgreSQL refuses a key file that others can read or that the
/// server's user does not own, e.g. `protect_key(&certs.server_key, Some("postgres"))`.
pub fn protect_key(key: &Path, owner: Option<&str>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    if let Some(owner) = owner {
        let status = Command::new("chown")
            .arg(owner)
            .arg(key)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {owner} {}", key.display());
    }
}

/// Runs openssl, failing the test with its error output.
fn openssl(args: &[&str]) {
    let out = Command::new(OPENSSL)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A fresh P-256 key (quick to make, and every TLS stack here takes it).
fn new_key(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.key"));
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path_str(&key),
    ]);
    protect_key(&key, None);
    key
}

/// A CA certificate and its key.
fn self_signed(dir: &Path, cnf: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let key = new_key(dir, name);
    let cert = dir.join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-config",
        path_str(cnf),
        "-extensions",
        "ca",
        "-key",
        path_str(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-days",
        "3",
        "-out",
        path_str(&cert),
    ]);
    (cert, key)
}

/// A certificate of kind `name` (a section of [`OPENSSL_CNF`]) signed by `ca`, and its key.
fn signed(
    dir: &Path,
    cnf: &Path,
    (ca, ca_key): (&Path, &Path),
    name: &str,
    cn: &str,
) -> (PathBuf, PathBuf) {
    let key = new_key(dir, name);
    let csr = dir.join(format!("{name}.csr"));
    let cert = dir.join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-new",
        "-config",
        path_str(cnf),
        "-key",
        path_str(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        path_str(&csr),
    ]);
    // A random serial: two certificates from one CA must not share one.
    let serial = format!("0x{}", uuid::Uuid::now_v7().simple());
    openssl(&[
        "x509",
        "-req",
        "-in",
        path_str(&csr),
        "-CA",
        path_str(ca),
        "-CAkey",
        path_str(ca_key),
        "-set_serial",
        &serial,
        "-extfile",
        path_str(cnf),
        "-extensions",
        name,
        "-days",
        "3",
        "-out",
        path_str(&cert),
    ]);
    (cert, key)
}

// ---------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------

/// What stands in front of the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// `security.protocol=SSL`; with `mutual`, a client certificate signed by the test CA
    /// is required.
    Tls { mutual: bool },
    /// `SASL_SSL` with `tls`, else `SASL_PLAINTEXT`.
    Sasl { tls: bool },
}

/// The user the SASL front accepts.
pub const USER: &str = "lifeboat";
/// [`USER`]'s password.
pub const PASSWORD: &str = "correct horse, battery=staple";
/// The SASL mechanisms the front offers.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A tansu broker behind a TLS or SASL front on loopback; everything stops on drop.
pub struct SecureKafka {
    front: Front,
    port: u16,
    certs: Certs,
    logins: Arc<Logins>,
    // Held to be killed on drop.
    _stunnel: Option<Proc>,
    _tansu: Proc,
    /// The SASL front's own runtime, so that a test may block its thread (e.g. in
    /// `fetch_metadata`) without stalling the front.
    runtime: Option<tokio::runtime::Runtime>,
    // Last, so that the processes are gone before their files are.
    dir: tempfile::TempDir,
}

impl SecureKafka {
    /// Starts the broker and `front`, and waits until they accept connections; `None`
    /// (skip) without tansu, stunnel4 or openssl.
    pub async fn start(front: Front) -> Option<SecureKafka> {
        let tansu = tools()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = make_certs(dir.path());
        let logins = Arc::new(Logins::default());
        let tls = matches!(front, Front::Tls { .. } | Front::Sasl { tls: true });
        let sasl = match front {
            Front::Sasl { .. } => {
                Some(std::net::TcpListener::bind("127.0.0.1:0").expect("bind the SASL front"))
            }
            Front::Tls { .. } => None,
        };
        let sasl_port = sasl
            .as_ref()
            .map(|l| l.local_addr().expect("the front's address").port());
        let broker_port = free_port();
        let port = match sasl_port {
            Some(port) if !tls => port,
            _ => free_port(),
        };
        let tansu = start_tansu(&tansu, dir.path(), broker_port, port);
        let broker: SocketAddr = ([127, 0, 0, 1], broker_port).into();
        wait_for_port(broker, "tansu to listen").await;
        let runtime = sasl.map(|listener| {
            start_sasl_front(listener, broker, Arc::new(Accounts::new()), logins.clone())
        });
        let stunnel = tls.then(|| {
            let mutual = front == Front::Tls { mutual: true };
            let next = sasl_port.unwrap_or(broker_port);
            start_stunnel(dir.path(), &certs, port, next, mutual)
        });
        wait_for_port(([127, 0, 0, 1], port).into(), "the front to listen").await;
        Some(SecureKafka {
            front,
            port,
            certs,
            logins,
            _stunnel: stunnel,
            _tansu: tansu,
            runtime,
            dir,
        })
    }

    /// `bootstrap.servers` for this front: `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// All the certificates, for tests that need more than the shortcuts below.
    pub fn certs(&self) -> &Certs {
        &self.certs
    }

    /// The CA that signed the front's certificate.
    pub fn ca(&self) -> &Path {
        &self.certs.ca
    }

    /// A CA that did not sign the front's certificate.
    pub fn other_ca(&self) -> &Path {
        &self.certs.other_ca
    }

    /// A client certificate the mutual-TLS front accepts.
    pub fn client_cert(&self) -> &Path {
        &self.certs.client_cert
    }

    /// The key of [`Self::client_cert`].
    pub fn client_key(&self) -> &Path {
        &self.certs.client_key
    }

    /// Logins so far: (succeeded, failed).
    pub fn logins(&self) -> (usize, usize) {
        (
            self.logins.ok.load(Ordering::SeqCst),
            self.logins.failed.load(Ordering::SeqCst),
        )
    }

    /// The librdkafka properties a client needs for this front, without
    /// `bootstrap.servers`. `mechanism` (one of [`MECHANISMS`]) is for SASL fronts only;
    /// a mutual-TLS front gets the client certificate.
    pub fn client_properties(&self, mechanism: &str) -> Vec<(String, String)> {
        let path = |p: &Path| path_str(p).to_string();
        let mut props: Vec<(&str, String)> = match self.front {
            Front::Tls { .. } => vec![("security.protocol", "SSL".into())],
            Front::Sasl { tls } => vec![
                (
                    "security.protocol",
                    if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" }.into(),
                ),
                ("sasl.mechanism", mechanism.into()),
                ("sasl.username", USER.into()),
                ("sasl.password", PASSWORD.into()),
            ],
        };
        if matches!(self.front, Front::Tls { .. } | Front::Sasl { tls: true }) {
            props.push(("ssl.ca.location", path(self.ca())));
        }
        if self.front == (Front::Tls { mutual: true }) {
            props.push(("ssl.certificate.location", path(self.client_cert())));
            props.push(("ssl.key.location", path(self.client_key())));
        }
        props.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// A client configuration for this front: `bootstrap.servers` and
    /// [`Self::client_properties`].
    pub fn client_config(&self, mechanism: &str) -> rdkafka::config::ClientConfig {
        let mut config = rdkafka::config::ClientConfig::new();
        config.set("bootstrap.servers", self.brokers());
        for (key, value) in self.client_properties(mechanism) {
            config.set(key, value);
        }
        config
    }

    /// tansu's and stunnel's logs, for the message of a failing test.
    pub fn logs(&self) -> String {
        ["tansu.log", "stunnel.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                format!("--- {name}\n{text}")
            })
            .collect()
    }
}

impl Drop for SecureKafka {
    fn drop(&mut self) {
        // A runtime may not be dropped from async code; this one needs no orderly end.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// tansu's path if tansu, stunnel4 and openssl are all there, else `None` (skip).
fn tools() -> Option<PathBuf> {
    let Some(tansu) = super::services::tansu() else {
        required("tansu (scripts/kafka.sh installs it)");
        return None;
    };
    for (tool, package) in [(stunnel(), "stunnel4"), (PathBuf::from(OPENSSL), "openssl")] {
        if !tool.exists() {
            required(&format!(
                "{} (Debian package {package}; scripts/tls.sh installs it)",
                tool.display()
            ));
            return None;
        }
    }
    Some(tansu)
}

fn start_tansu(tansu: &Path, dir: &Path, port: u16, advertised: u16) -> Proc {
    let log = std::fs::File::create(dir.join("tansu.log")).expect("tansu log");
    let child = Command::new(tansu)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{advertised}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start tansu");
    Proc(child)
}

/// stunnel in the foreground, terminating TLS on `port` and passing plaintext to `next`.
fn start_stunnel(dir: &Path, certs: &Certs, port: u16, next: u16, mutual: bool) -> Proc {
    let mut conf = format!(
        "foreground = yes\npid =\nsyslog = no\ndebug = info\n\
         socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n\
         [kafka]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{next}\n\
         cert = {}\nkey = {}\n",
        certs.server_cert.display(),
        certs.server_key.display(),
    );
    if mutual {
        // verifyChain + requireCert: any client certificate the CA signed (verifyPeer
        // would only take certificates listed in CAfile itself).
        conf.push_str(&format!(
            "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            certs.ca.display()
        ));
    }
    let path = dir.join("stunnel.conf");
    std::fs::write(&path, conf).expect("write stunnel.conf");
    let log = std::fs::File::create(dir.join("stunnel.log")).expect("stunnel log");
    let child = Command::new(stunnel())
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start stunnel4");
    Proc(child)
}

async fn wait_for_port(addr: SocketAddr, what: &str) {
    until(what, Duration::from_secs(30), async || {
        TcpStream::connect(addr).await.ok()
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// The SASL front
// ---------------------------------------------------------------------------------------

const SASL_HANDSHAKE: i16 = 17;
const API_VERSIONS: i16 = 18;
const SASL_AUTHENTICATE: i16 = 36;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// Frames before a login are small; a larger one is not a Kafka client's.
const MAX_FRAME: usize = 1 << 20;
const SCRAM_ITERATIONS: u32 = 4096;

#[derive(Default)]
struct Logins {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

/// Serves the SASL front on its own runtime until the runtime is shut down.
fn start_sasl_front(
    listener: std::net::TcpListener,
    broker: SocketAddr,
    accounts: Arc<Accounts>,
    logins: Arc<Logins>,
) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the SASL front");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    runtime.spawn(async move {
        let listener = TcpListener::from_std(listener).expect("a tokio listener");
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let (accounts, logins) = (accounts.clone(), logins.clone());
            tokio::spawn(async move {
                let _ = serve(client, broker, &accounts, &logins).await;
            });
        }
    });
    runtime
}

/// One client connection: answers ApiVersions (through the broker), SaslHandshake and
/// SaslAuthenticate; after a login, pipes the connection to the broker. Anything else
/// before a login, or a failed login, closes the connection, as Kafka does.
async fn serve(
    mut client: TcpStream,
    broker: SocketAddr,
    accounts: &Accounts,
    logins: &Logins,
) -> io::Result<()> {
    // Each hop adds a round trip per request; Nagle's delay would add more.
    client.set_nodelay(true)?;
    let mut upstream: Option<TcpStream> = None;
    let mut login = Login::default();
    loop {
        let Some(frame) = read_frame(&mut client).await? else {
            return Ok(());
        };
        let Some(request) = Request::parse(&frame) else {
            return Ok(());
        };
        match request.api_key {
            API_VERSIONS => {
                let broker = match &mut upstream {
                    Some(up) => up,
                    None => upstream.insert(connect(broker).await?),
                };
                write_frame(broker, &frame).await?;
                let Some(answer) = read_frame(broker).await? else {
                    return Ok(());
                };
                let answer = advertise_sasl(&answer, request.api_version).unwrap_or(answer);
                write_frame(&mut client, &answer).await?;
            }
            SASL_HANDSHAKE => {
                let (answer, mechanism) = handshake(&request);
                write_frame(&mut client, &answer).await?;
                match mechanism {
                    Some(mechanism) => login.mechanism = Some(mechanism),
                    None => return Ok(()),
                }
            }
            SASL_AUTHENTICATE => match login.step(accounts, &request) {
                Step::Continue(answer) => write_frame(&mut client, &answer).await?,
                Step::Done(answer) => {
                    logins.ok.fetch_add(1, Ordering::SeqCst);
                    write_frame(&mut client, &answer).await?;
                    break;
                }
                Step::Failed(answer) => {
                    logins.failed.fetch_add(1, Ordering::SeqCst);
                    write_frame(&mut client, &answer).await?;
                    return Ok(());
                }
            },
            _ => return Ok(()),
        }
    }
    let mut broker = match upstream {
        Some(up) => up,
        None => connect(broker).await?,
    };
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A frame's payload (after its int32 size), or `None` at the end of the stream.
/// Unbuffered, so that nothing read ahead is lost when the connection becomes a pipe.
async fn read_frame(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut size = [0; 4];
    match stream.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = usize::try_from(i32::from_be_bytes(size))
        .ok()
        .filter(|size| *size <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad frame size"))?;
    let mut payload = vec![0; size];
    stream.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

async fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(4 + payload.len());
    put_i32(&mut frame, len_i32(payload.len()));
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await
}

/// A request's header fields, and its body.
struct Request<'a> {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    fn parse(frame: &'a [u8]) -> Option<Request<'a>> {
        let mut r = Reader::new(frame);
        let api_key = r.i16()?;
        let api_version = r.i16()?;
        let correlation_id = r.i32()?;
        let _client_id = r.nullable_string()?;
        // Of the requests read here only ApiVersions v3+ has a flexible header, which adds
        // tagged fields (SaslAuthenticate v2+ would, but the front offers v0-v1).
        if api_key == API_VERSIONS && api_version >= 3 {
            r.tagged_fields()?;
        }
        Some(Request {
            api_key,
            api_version,
            correlation_id,
            body: r.rest(),
        })
    }
}

/// The broker's ApiVersions answer (response header v0, always), also offering
/// SaslHandshake v0-v1 and SaslAuthenticate v0-v1 in place of whatever the broker said of
/// them. An error answer (an unsupported version, which the client retries lower) is
/// passed as it is; `None` if the answer cannot be read.
fn advertise_sasl(answer: &[u8], version: i16) -> Option<Vec<u8>> {
    let flexible = version >= 3;
    let mut r = Reader::new(answer);
    let correlation_id = r.take(4)?;
    let error_code = r.i16()?;
    if error_code != 0 {
        return Some(answer.to_vec());
    }
    let count = if flexible {
        r.uvarint()?.checked_sub(1)?
    } else {
        u64::try_from(r.i32()?).ok()?
    };
    let mut entries = Vec::new();
    let mut kept = 0usize;
    for _ in 0..count {
        let start = r.pos;
        let key = r.i16()?;
        r.take(4)?;
        if flexible {
            r.tagged_fields()?;
        }
        if key != SASL_HANDSHAKE && key != SASL_AUTHENTICATE {
            entries.extend_from_slice(&answer[start..r.pos]);
            kept += 1;
        }
    }
    for key in [SASL_HANDSHAKE, SASL_AUTHENTICATE] {
        put_i16(&mut entries, key);
        put_i16(&mut entries, 0);
        put_i16(&mut entries, 1);
        if flexible {
            entries.push(0); // no tagged fields
        }
    }
    let count = kept + 2;
    let mut out = correlation_id.to_vec();
    put_i16(&mut out, error_code);
    if flexible {
        put_uvarint(&mut out, count as u64 + 1);
    } else {
        put_i32(&mut out, len_i32(count));
    }
    out.extend_from_slice(&entries);
    // throttle_time_ms and, in v3+, the broker's tagged fields.
    out.extend_from_slice(r.rest());
    Some(out)
}

/// The SaslHandshake answer, and the mechanism if the front offers it (else the client is
/// told which it does, and the connection ends).
fn handshake(request: &Request) -> (Vec<u8>, Option<Mechanism>) {
    let asked = Reader::new(request.body)
        .nullable_string()
        .flatten()
        .and_then(|m| std::str::from_utf8(m).ok())
        .and_then(Mechanism::named);
    let mut out = request.correlation_id.to_be_bytes().to_vec();
    put_i16(
        &mut out,
        if asked.is_some() {
            0
        } else {
            UNSUPPORTED_SASL_MECHANISM
        },
    );
    put_i32(&mut out, len_i32(MECHANISMS.len()));
    for name in MECHANISMS {
        put_string(&mut out, Some(name));
    }
    (out, asked)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mechanism {
    Plain,
    Scram(Hash),
}

impl Mechanism {
    fn named(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain),
            "SCRAM-SHA-256" => Some(Mechanism::Scram(Hash::Sha256)),
            "SCRAM-SHA-512" => Some(Mechanism::Scram(Hash::Sha512)),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Scram(Hash::Sha256) => "SCRAM-SHA-256",
            Mechanism::Scram(Hash::Sha512) => "SCRAM-SHA-512",
        }
    }
}

/// What a SaslAuthenticate request leads to: the answer, and whether the login goes on.
enum Step {
    Continue(Vec<u8>),
    Done(Vec<u8>),
    Failed(Vec<u8>),
}

/// A connection's login so far.
#[derive(Default)]
struct Login {
    mechanism: Option<Mechanism>,
    scram: Option<ScramFirst>,
}

/// The first SCRAM round, which the client's final message must match.
struct ScramFirst {
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Login {
    fn step(&mut self, accounts: &Accounts, request: &Request) -> Step {
        let token = Reader::new(request.body).bytes();
        let answer = |error: i16, message: Option<&str>, bytes: &[u8]| {
            authenticate_answer(request, error, message, bytes)
        };
        let Some(mechanism) = self.mechanism else {
            return Step::Failed(answer(
                SASL_AUTHENTICATION_FAILED,
                Some("Unexpected SASL authentication before a handshake"),
                &[],
            ));
        };
        let outcome = token.and_then(|token| match mechanism {
            Mechanism::Plain => accounts.plain(token).then(|| (Vec::new(), true)),
            Mechanism::Scram(hash) => match self.scram.take() {
                None => {
                    let (first, server_first) = accounts.scram_first(hash, token)?;
                    self.scram = Some(first);
                    Some((server_first.into_bytes(), false))
                }
                Some(first) => accounts
                    .scram_final(hash, &first, token)
                    .map(|server_final| (server_final.into_bytes(), true)),
            },
        });
        match outcome {
            Some((bytes, false)) => Step::Continue(answer(0, None, &bytes)),
            Some((bytes, true)) => Step::Done(answer(0, None, &bytes)),
            // Kafka's own wording, so that a client shows what it would show for Kafka.
            None => Step::Failed(answer(
                SASL_AUTHENTICATION_FAILED,
                Some(&format!(
                    "Authentication failed during authentication due to invalid \
                     credentials with SASL mechanism {}",
                    mechanism.name()
                )),
                &[],
            )),
        }
    }
}

/// A SaslAuthenticate answer (v0, or v1 with a session lifetime of 0: no
/// re-authentication).
fn authenticate_answer(
    request: &Request,
    error: i16,
    message: Option<&str>,
    bytes: &[u8],
) -> Vec<u8> {
    let mut out = request.correlation_id.to_be_bytes().to_vec();
    put_i16(&mut out, error);
    put_string(&mut out, message);
    put_i32(&mut out, len_i32(bytes.len()));
    out.extend_from_slice(bytes);
    if request.api_version >= 1 {
        out.extend_from_slice(&0i64.to_be_bytes());
    }
    out
}

/// The one user, with SCRAM credentials made once: deriving them takes thousands of
/// HMACs, too slow in a debug build to do for each connection.
struct Accounts {
    sha256: ScramCredential,
    sha512: ScramCredential,
}

/// What a SCRAM server keeps of a password (RFC 5802).
struct ScramCredential {
    salt: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl ScramCredential {
    fn new(hash: Hash, password: &str) -> ScramCredential {
        let salt = uuid::Uuid::now_v7().as_bytes().to_vec();
        let salted = hash.salted_password(password.as_bytes(), &salt, SCRAM_ITERATIONS);
        ScramCredential {
            stored_key: hash.digest(&hash.hmac(&salted, b"Client Key")),
            server_key: hash.hmac(&salted, b"Server Key"),
            salt,
        }
    }
}

impl Accounts {
    fn new() -> Accounts {
        Accounts {
            sha256: ScramCredential::new(Hash::Sha256, PASSWORD),
            sha512: ScramCredential::new(Hash::Sha512, PASSWORD),
        }
    }

    fn credential(&self, hash: Hash) -> &ScramCredential {
        match hash {
            Hash::Sha256 => &self.sha256,
            Hash::Sha512 => &self.sha512,
        }
    }

    /// PLAIN (RFC 4616): `authzid NUL user NUL password`.
    fn plain(&self, token: &[u8]) -> bool {
        let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
        matches!(parts.as_slice(),
            [authzid, user, password]
                if (authzid.is_empty() || *authzid == USER.as_bytes())
                    && *user == USER.as_bytes()
                    && *password == PASSWORD.as_bytes())
    }

    /// The client-first message `n,,n=USER,r=CNONCE`: our server-first message, or
    /// `None` for another user or a malformed message.
    fn scram_first(&self, hash: Hash, token: &[u8]) -> Option<(ScramFirst, String)> {
        let message = std::str::from_utf8(token).ok()?;
        let (flag, rest) = message.split_once(',')?;
        // Channel binding ("p=") is not offered, so the client may not ask for it.
        if flag != "n" && flag != "y" {
            return None;
        }
        let (_authzid, bare) = rest.split_once(',')?;
        let gs2_header = &message[..message.len() - bare.len()];
        let user = attribute(bare, 'n').map(unescape_username)?;
        let client_nonce = attribute(bare, 'r')?;
        if user != USER || client_nonce.is_empty() {
            return None;
        }
        let nonce = format!("{client_nonce}{}", uuid::Uuid::now_v7().simple());
        let server_first = format!(
            "r={nonce},s={},i={SCRAM_ITERATIONS}",
            BASE64.encode(&self.credential(hash).salt)
        );
        let first = ScramFirst {
            gs2_header: gs2_header.to_string(),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Some((first, server_first))
    }

    /// The client-final message `c=biws,r=NONCE,p=PROOF`: our server-final message
    /// `v=SIGNATURE` if the proof shows the password, else `None`.
    fn scram_final(&self, hash: Hash, first: &ScramFirst, token: &[u8]) -> Option<String> {
        let message = std::str::from_utf8(token).ok()?;
        let (without_proof, proof) = message.rsplit_once(",p=")?;
        if attribute(without_proof, 'c')? != BASE64.encode(&first.gs2_header)
            || attribute(without_proof, 'r')? != first.nonce
        {
            return None;
        }
        let credential = self.credential(hash);
        let auth_message = format!(
            "{},{},{without_proof}",
            first.client_first_bare, first.server_first
        );
        let signature = hash.hmac(&credential.stored_key, auth_message.as_bytes());
        let proof = BASE64.decode(proof).ok()?;
        if proof.len() != signature.len() {
            return None;
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if hash.digest(&client_key) != credential.stored_key {
            return None;
        }
        let server_signature = hash.hmac(&credential.server_key, auth_message.as_bytes());
        Some(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// The value of attribute `name` in a SCRAM message (`a=value,b=value`).
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|attr| {
        attr.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

/// A SCRAM username has ',' and '=' escaped as `=2C` and `=3D`.
fn unescape_username(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => hmac_once(new_mac::<Hmac<Sha256>>(key), data),
            Hash::Sha512 => hmac_once(new_mac::<Hmac<Sha512>>(key), data),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// SCRAM's Hi(): PBKDF2 with this hash's HMAC.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => hi(new_mac::<Hmac<Sha256>>(password), salt, iterations),
            Hash::Sha512 => hi(new_mac::<Hmac<Sha512>>(password), salt, iterations),
        }
    }
}

fn new_mac<M: Mac + KeyInit>(key: &[u8]) -> M {
    <M as Mac>::new_from_slice(key).expect("HMAC takes a key of any length")
}

fn hmac_once<M: Mac>(mut mac: M, data: &[u8]) -> Vec<u8> {
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Hi(password, salt, i) = U1 ^ U2 ^ … ^ Ui, with U1 = HMAC(password, salt ‖ INT(1)) and
/// Un = HMAC(password, Un-1). `keyed` is the HMAC keyed with the password, cloned for each
/// round rather than keyed again.
fn hi<M: Mac + Clone>(keyed: M, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_once(keyed.clone(), &first);
    let mut result = u.clone();
    for _ in 1..iterations {
        u = hmac_once(keyed.clone(), &u);
        result.iter_mut().zip(&u).for_each(|(r, u)| *r ^= u);
    }
    result
}

// ---------------------------------------------------------------------------------------
// Kafka's wire encoding
// ---------------------------------------------------------------------------------------

/// Reads big-endian Kafka fields; `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let taken = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(taken)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A STRING or NULLABLE_STRING (int16 length, -1 for null).
    fn nullable_string(&mut self) -> Option<Option<&'a [u8]>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        self.take(usize::try_from(len).ok()?).map(Some)
    }

    /// BYTES (int32 length).
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.i32()?).ok()?;
        self.take(len)
    }

    /// Skips a TAG_BUFFER.
    fn tagged_fields(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).ok()?;
            self.take(size)?;
        }
        Some(())
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

fn put_i16(out: &mut Vec<u8>, value: i16) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, value: i32) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A NULLABLE_STRING.
fn put_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(s) => {
            put_i16(out, i16::try_from(s.len()).expect("a short string"));
            out.extend_from_slice(s.as_bytes());
        }
        None => put_i16(out, -1),
    }
}

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).expect("a length that fits a Kafka int32")
}
