//! `rfc2136`: moves an endpoint by DNS dynamic update (RFC 2136) signed with TSIG
//! (RFC 8945), as BIND, Knot and PowerDNS take it. The record sets listed under the region
//! replace what the name has, in one update message; record types other regions list and
//! this one does not are deleted, so that an A-to-CNAME move leaves no conflict. The new
//! answer is then verified by asking the authoritative server until it gives it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use hickory_client::client::{Client, ClientHandle};
use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_proto::dnssec::tsig::TSigner;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::runtime::TokioRuntimeProvider;
use hickory_proto::tcp::TcpClientStream;
use hickory_proto::xfer::{DnsHandle, FirstAnswer};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use super::capability::{Dial, Move, Provider};
use super::records::{self, RecordKind, Regions};
use super::reference;
use crate::agents::work::{Failure, Work};
use crate::workflow::{SpecError, Target, kinds};

pub const DIAL: Provider<dyn Dial> = Provider {
    name: "rfc2136",
    check,
    build: |target| {
        let fields: Rfc2136Target = kinds::parse(&target.fields).map_err(Failure::bad_spec)?;
        Ok(Arc::new(Rfc2136 { fields }))
    },
};

/// How long one DNS exchange may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(5);
/// Clock skew a TSIG signature tolerates, as BIND's default.
const FUDGE: u16 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rfc2136Target {
    /// `host[:port]`, port 53 by default: the primary that takes updates.
    server: String,
    zone: String,
    key: TsigKey,
    #[serde(default)]
    ttl: Option<u32>,
    regions: Regions,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TsigKey {
    name: String,
    #[serde(default = "default_algorithm")]
    algorithm: String,
    /// Base64, as `tsig-keygen` prints it; from `${env:…}` or `${file:…}`.
    secret: String,
}

fn default_algorithm() -> String {
    "hmac-sha256".into()
}

fn record_type(kind: RecordKind) -> RecordType {
    match kind {
        RecordKind::A => RecordType::A,
        RecordKind::AAAA => RecordType::AAAA,
        RecordKind::CNAME => RecordType::CNAME,
    }
}

fn rdata(kind: RecordKind, value: &str) -> Result<RData, String> {
    let bad = |e: &dyn std::fmt::Display| format!("{kind} value {value:?}: {e}");
    Ok(match kind {
        RecordKind::A => RData::A(value.parse().map_err(|e| bad(&e))?),
        RecordKind::AAAA => RData::AAAA(value.parse().map_err(|e| bad(&e))?),
        RecordKind::CNAME => RData::CNAME(hickory_proto::rr::rdata::CNAME(
            fqdn(value).map_err(|e| bad(&e))?,
        )),
    })
}

fn algorithm(name: &str) -> Option<TsigAlgorithm> {
    match name.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

fn fqdn(name: &str) -> Result<Name, String> {
    let mut n = Name::from_str(name).map_err(|e| format!("not a DNS name: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

fn check(fields: &Value) -> Result<(), SpecError> {
    let t: Rfc2136Target = kinds::parse(fields)?;
    split_server(&t.server).map_err(|m| SpecError::at(&["server"], m))?;
    fqdn(&t.zone).map_err(|m| SpecError::at(&["zone"], m))?;
    fqdn(&t.key.name).map_err(|m| SpecError::at(&["key", "name"], m))?;
    if algorithm(&t.key.algorithm).is_none() {
        return Err(SpecError::at(
            &["key", "algorithm"],
            format!(
                "`{}` is not supported (hmac-sha256, hmac-sha384, hmac-sha512)",
                t.key.algorithm
            ),
        ));
    }
    if !reference::has_reference(&t.key.secret) {
        return Err(SpecError::at(
            &["key", "secret"],
            "a secret is written here: read it with ${env:NAME} or ${file:PATH}",
        ));
    }
    reference::check(&t.key.secret).map_err(|m| SpecError::at(&["key", "secret"], m))?;
    records::check(&t.regions)?;
    for (region, sets) in &t.regions {
        for (kind, values) in sets {
            for v in values {
                rdata(*kind, v).map_err(|m| SpecError::at(&["regions", region], m))?;
            }
        }
    }
    Ok(())
}

/// `host[:port]`, with 53 as the port when none is given.
fn split_server(server: &str) -> Result<(String, u16), String> {
    if let Ok(addr) = SocketAddr::from_str(server) {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => port
            .parse()
            .map(|p| (host.to_string(), p))
            .map_err(|_| format!("`{server}`: the port must be a number")),
        _ if server.is_empty() => Err("the server is empty".into()),
        _ => Ok((server.trim_matches(['[', ']']).to_string(), 53)),
    }
}

pub struct Rfc2136 {
    fields: Rfc2136Target,
}

/// One record set: what the server answers, and what the region wants.
struct RecordSet {
    kind: RecordType,
    now: BTreeSet<String>,
    /// The longest TTL the server answers the set with.
    ttl: Option<u32>,
    wanted: Vec<RData>,
    wanted_text: BTreeSet<String>,
}

impl Rfc2136 {
    async fn client(&self, endpoint: &str, work: &Work) -> Result<(Client, SocketAddr), Failure> {
        let t = &self.fields;
        let (host, port) = split_server(&t.server).map_err(Failure::permanent)?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                Failure::retryable(format!(
                    "endpoint `{endpoint}`: cannot resolve the DNS server `{}`",
                    t.server
                ))
            })?;
        let secret = reference::resolve(
            &format!("endpoint `{endpoint}` TSIG key `{}`", t.key.name),
            &t.key.secret,
        )?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.expose_secret().trim())
            .map_err(|_| {
                Failure::permanent(format!(
                    "endpoint `{endpoint}`: the TSIG secret of key `{}` is not base64",
                    t.key.name
                ))
            })?;
        let alg = algorithm(&t.key.algorithm).ok_or_else(|| {
            Failure::permanent(format!(
                "endpoint `{endpoint}`: unsupported TSIG algorithm `{}`",
                t.key.algorithm
            ))
        })?;
        let name = fqdn(&t.key.name).map_err(Failure::permanent)?;
        let signer = TSigner::new(key, alg, name, FUDGE)
            .map_err(|e| Failure::permanent(format!("endpoint `{endpoint}`: TSIG key: {e}")))?;
        let limit = EXCHANGE_LIMIT.min(work.time_left());
        let (stream, handle) =
            TcpClientStream::new(addr, None, Some(limit), TokioRuntimeProvider::new());
        let (client, background) =
            Client::with_timeout(stream, handle, limit, Some(Arc::new(signer)))
                .await
                .map_err(|e| {
                    Failure::retryable(format!(
                        "endpoint `{endpoint}`: cannot reach DNS server {addr}: {e}"
                    ))
                })?;
        let cancel = work.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = background => {}
                _ = cancel.cancelled() => {}
            }
        });
        Ok((client, addr))
    }

    /// The server's answer for the name and type, as text, sorted.
    async fn answer(
        client: &mut Client,
        name: &Name,
        kind: RecordType,
    ) -> Result<BTreeSet<String>, String> {
        Ok(Self::answer_with_ttl(client, name, kind).await?.0)
    }

    /// The answer, and the longest TTL it comes with.
    async fn answer_with_ttl(
        client: &mut Client,
        name: &Name,
        kind: RecordType,
    ) -> Result<(BTreeSet<String>, Option<u32>), String> {
        let response = client
            .query(name.clone(), DNSClass::IN, kind)
            .await
            .map_err(|e| e.to_string())?;
        match response.response_code() {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            other => return Err(format!("the server answered {other}")),
        }
        let records: Vec<_> = response
            .answers()
            .iter()
            .filter(|r| r.record_type() == kind && r.name() == name)
            .collect();
        Ok((
            records.iter().map(|r| text(r.data())).collect(),
            records.iter().map(|r| r.ttl()).max(),
        ))
    }
}

fn text(data: &RData) -> String {
    match data {
        RData::CNAME(c) => c.0.to_string(),
        other => other.to_string(),
    }
}

fn list(values: &BTreeSet<String>) -> String {
    if values.is_empty() {
        "nothing".into()
    } else {
        values.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[async_trait]
impl Dial for Rfc2136 {
    async fn dial(&self, target: &Target, m: &Move, work: &Work) -> Result<String, Failure> {
        let t = &self.fields;
        let endpoint = &target.name;
        let name = fqdn(endpoint).map_err(Failure::permanent)?;
        let zone = fqdn(&t.zone).map_err(Failure::permanent)?;
        if !zone.zone_of(&name) {
            return Err(Failure::permanent(format!(
                "endpoint `{endpoint}` is not in zone {zone}"
            )));
        }
        let Some(region) = t.regions.get(&m.region) else {
            return Err(Failure::permanent(format!(
                "endpoint `{endpoint}` has no region `{}` in targets.yaml",
                m.region
            )));
        };
        let ttl = m.ttl.or(t.ttl).unwrap_or(60);
        let (mut client, addr) = self.client(endpoint, work).await?;

        let soa = Self::answer(&mut client, &zone, RecordType::SOA)
            .await
            .map_err(|e| {
                Failure::retryable(format!("endpoint `{endpoint}`: zone {zone} on {addr}: {e}"))
            })?;
        let Some(soa) = soa.into_iter().next() else {
            work.check(
                "zone answers",
                false,
                format!("{addr} has no SOA for {zone}"),
            )
            .await;
            return Err(Failure::permanent(format!(
                "endpoint `{endpoint}`: {addr} is not authoritative for {zone}"
            )));
        };
        let serial = soa.split_whitespace().nth(2).unwrap_or("?").to_string();
        work.check(
            "zone answers",
            true,
            format!("{addr} serves {zone} (serial {serial})"),
        )
        .await;

        let mut sets = Vec::new();
        for kind in records::kinds(&t.regions) {
            let values = region.get(&kind).cloned().unwrap_or_default();
            let wanted = values
                .iter()
                .map(|v| rdata(kind, v))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::permanent)?;
            let wanted_text = wanted.iter().map(text).collect();
            let (now, served) = Self::answer_with_ttl(&mut client, &name, record_type(kind))
                .await
                .map_err(|e| {
                    Failure::retryable(format!("endpoint `{endpoint}`: {kind} query: {e}"))
                })?;
            sets.push(RecordSet {
                kind: record_type(kind),
                now,
                ttl: served,
                wanted,
                wanted_text,
            });
        }
        records::ttl_check(
            sets.iter().filter_map(|s| s.ttl).max(),
            m.ttl.or(t.ttl),
            work,
        )
        .await;
        let changing: Vec<&RecordSet> = sets.iter().filter(|s| s.now != s.wanted_text).collect();
        let answer = sets
            .iter()
            .filter(|s| !s.wanted_text.is_empty())
            .map(|s| format!("{} ({})", list(&s.wanted_text), s.kind))
            .collect::<Vec<_>>()
            .join("; ");
        if changing.is_empty() {
            return Ok(format!(
                "{endpoint} already answers {answer} from {}; nothing to do",
                m.region
            ));
        }
        let answers: Vec<(String, String)> = sets
            .iter()
            .map(|s| (s.kind.to_string(), list(&s.now)))
            .collect();
        records::as_expected(endpoint, &m.expect, &answers, work).await?;
        for s in &changing {
            work.change(
                format!("{endpoint} {}", s.kind),
                list(&s.now),
                list(&s.wanted_text),
            )
            .await;
        }
        if work.request.dry_run {
            return Ok(format!(
                "would point {endpoint} at {} ({answer}); nothing changed",
                m.region
            ));
        }

        let mut update = Message::new();
        update
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Update)
            .set_recursion_desired(false);
        let mut zone_query = Query::new();
        zone_query
            .set_name(zone.clone())
            .set_query_class(DNSClass::IN)
            .set_query_type(RecordType::SOA);
        update.add_zone(zone_query);
        // Every delete before any add: a server ignores a CNAME added beside other data
        // (RFC 2136 3.4.2.2), so an A-to-CNAME move must empty the A set first.
        for s in &changing {
            let mut delete = Record::update0(name.clone(), 0, s.kind);
            delete.set_dns_class(DNSClass::ANY);
            update.add_update(delete);
        }
        for s in &changing {
            for data in &s.wanted {
                update.add_update(Record::from_rdata(name.clone(), ttl, data.clone()));
            }
        }
        let response = client.send(update).first_answer().await.map_err(|e| {
            let said = e.to_string().to_ascii_lowercase();
            // A server that rejects the signature answers unsigned, with a TSIG error
            // code; the client's verifier then fails on that answer.
            if said.contains("tsig") || said.contains("hmac") {
                Failure::permanent(format!(
                    "endpoint `{endpoint}`: {addr} rejected the update's signature with TSIG key `{}`: check the key's name, algorithm and secret",
                    t.key.name
                ))
            } else {
                Failure::retryable(format!(
                    "endpoint `{endpoint}`: the update to {addr} failed: {e}"
                ))
            }
        })?;
        match response.response_code() {
            ResponseCode::NoError => {}
            code @ (ResponseCode::NotAuth | ResponseCode::Refused) => {
                return Err(Failure::permanent(format!(
                    "endpoint `{endpoint}`: {addr} refused the update ({code}): TSIG key `{}` is not allowed to change {name}",
                    t.key.name
                )));
            }
            code => {
                return Err(Failure::retryable(format!(
                    "endpoint `{endpoint}`: {addr} answered the update with {code}"
                )));
            }
        }
        work.say(format!("update accepted by {addr}; verifying the answer"))
            .await;

        loop {
            let mut all = true;
            for s in &changing {
                let now = Self::answer(&mut client, &name, s.kind)
                    .await
                    .map_err(|e| Failure::retryable(format!("endpoint `{endpoint}`: {e}")))?;
                all &= now == s.wanted_text;
            }
            if all {
                break;
            }
            if work.time_left() < Duration::from_millis(300) {
                return Err(Failure::retryable(format!(
                    "endpoint `{endpoint}`: {addr} does not answer the new records yet"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(format!(
            "{endpoint} now answers {answer} from {} ({addr})",
            m.region
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_take_a_default_port() {
        assert_eq!(split_server("192.0.2.53"), Ok(("192.0.2.53".into(), 53)));
        assert_eq!(
            split_server("192.0.2.53:5353"),
            Ok(("192.0.2.53".into(), 5353))
        );
        assert_eq!(
            split_server("ns1.example.com"),
            Ok(("ns1.example.com".into(), 53))
        );
        assert_eq!(
            split_server("[2001:db8::53]:53"),
            Ok(("2001:db8::53".into(), 53))
        );
        assert!(split_server("ns1:port").is_err());
    }
}
