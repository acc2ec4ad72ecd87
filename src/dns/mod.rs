//! The authoritative DNS server: a hickory-server request handler that answers from the
//! current [`AnswerTable`], and the UDP/TCP listeners.
//!
//! The handler never awaits anything but sending its response: it loads the table (an
//! atomic pointer read), looks the name up, and encodes borrowed records. It never
//! recurses: names outside our zones get REFUSED. Zone transfers are answered from the
//! same table (`xfr.rs`), and `notify.rs` tells secondaries of new serials.

pub mod ecs;
mod listen;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod meaning;
pub mod notify;
pub mod rrl;
mod tcp;
mod udp;
pub mod wire;
mod xfr;

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

pub use listen::{DnsServer, bind};
pub use tcp::TcpLimits;

use crate::answer::{AnswerTable, Client, Outcome};
use crate::metrics::Metrics;

/// Largest UDP response we send, whatever the client offers: the DNS Flag Day 2020 value,
/// which avoids IP fragmentation on real paths. Larger answers are truncated (TC) and
/// retried over TCP.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// Answers queries from the shared answer table: the general path, which hickory-server
/// calls for TCP and the UDP threads call for every query the fast path does not take.
#[derive(Clone)]
pub struct Handler {
    table: Arc<ArcSwap<AnswerTable>>,
    metrics: Arc<Metrics>,
    geo_counters: Arc<ArcSwap<GeoCounters>>,
}

/// The `gslb_geo_answers_total` counters of one inventory, resolved once: `cells[app]`
/// holds one per region then one for clients in none (empty for apps that are not `geo`).
#[derive(Default)]
struct GeoCounters {
    inventory: Option<Arc<crate::model::Inventory>>,
    cells: Vec<Vec<prometheus::IntCounter>>,
}

impl Handler {
    pub fn new(table: Arc<ArcSwap<AnswerTable>>, metrics: Arc<Metrics>) -> Self {
        Self {
            table,
            metrics,
            geo_counters: Arc::default(),
        }
    }

    /// Counts a `geo` answer; the counters are looked up again only when the inventory
    /// changed.
    pub(super) fn count_geo_answer(&self, table: &AnswerTable, app: usize, region: Option<usize>) {
        let current = self.geo_counters.load();
        let fresh;
        let counters: &GeoCounters = if current
            .inventory
            .as_ref()
            .is_some_and(|i| Arc::ptr_eq(i, &table.inventory))
        {
            &current
        } else {
            let inv = &table.inventory;
            let cells = inv
                .apps
                .iter()
                .map(|a| {
                    if a.policy != crate::model::Policy::Geo {
                        return Vec::new();
                    }
                    let name = a.display_name();
                    inv.geo
                        .regions
                        .iter()
                        .map(|r| r.name.as_str())
                        .chain([crate::metrics::REGION_UNMAPPED])
                        .map(|r| self.metrics.geo_answer_counter(&name, r))
                        .collect()
                })
                .collect();
            fresh = Arc::new(GeoCounters {
                inventory: Some(inv.clone()),
                cells,
            });
            self.geo_counters.store(fresh.clone());
            &fresh
        };
        if let Some(cells) = counters.cells.get(app) {
            if let Some(c) = cells.get(region.unwrap_or(cells.len().saturating_sub(1))) {
                c.inc();
            }
        }
    }

    /// The answer table it serves from.
    pub fn table(&self) -> &ArcSwap<AnswerTable> {
        &self.table
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let tcp = request.protocol() == Protocol::Tcp;
        let qtype = request.queries.queries().first().map(|q| q.query_type());

        let mut edns = None;
        let mut rcode = ResponseCode::NoError;
        let mut ecs = None;
        // DNSSEC OK (RFC 3225): the client wants signatures; the bit is copied back.
        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        if let Some(req) = &request.edns {
            let mut e = Edns::new();
            e.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            e.set_version(0);
            e.set_dnssec_ok(dnssec_ok);
            if req.version() > 0 {
                rcode = ResponseCode::BADVERS;
            } else {
                match ecs::find(request.as_slice()) {
                    Ok(found) => ecs = found,
                    // RFC 7871 §6: a malformed option is answered with FORMERR.
                    Err(ecs::Malformed) => rcode = ResponseCode::FormErr,
                }
            }
            edns = Some(e);
        }
        if rcode == ResponseCode::NoError {
            if request.metadata.op_code != OpCode::Query {
                rcode = ResponseCode::NotImp;
            } else if request.queries.len() != 1 {
                rcode = ResponseCode::FormErr;
            }
        }
        let table = self.table.load();
        let query = match request.queries.queries() {
            [q] if rcode == ResponseCode::NoError => Some(q),
            _ => None,
        };
        let resolver = request.src().ip();
        let client = ecs.map_or(Client::Resolver(resolver), |e| e.client(resolver));
        let found = query
            .filter(|q| q.query_class() == DNSClass::IN)
            .map(|q| table.lookup(q.name(), q.query_type(), Some(client)));
        // RFC 7871 §7.2.1: a query with ECS gets it back, with the prefix length the
        // answer depended on (0 for anything that is not a `geo` answer).
        if let (Some(e), Some(ecs)) = (edns.as_mut(), ecs) {
            let scope = found.as_ref().map_or(0, |f| f.scope());
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                ecs.addr, ecs.source, scope,
            )));
        }
        if let Some((app, located)) = found.as_ref().and_then(|f| f.geo) {
            self.count_geo_answer(&table, app, located.region);
        }
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        if query.is_none() {
            let response = builder.error_msg(&request.metadata, rcode);
            return self.send(
                response_handle.send_response(response).await,
                request,
                tcp,
                qtype,
            );
        }
        let Some(found) = found else {
            // A class other than IN.
            let response = builder.error_msg(&request.metadata, ResponseCode::Refused);
            return self.send(
                response_handle.send_response(response).await,
                request,
                tcp,
                qtype,
            );
        };
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = found.outcome != Outcome::Refused;
        metadata.response_code = match found.outcome {
            Outcome::Answer | Outcome::NoData => ResponseCode::NoError,
            Outcome::NxDomain => ResponseCode::NXDomain,
            Outcome::Refused => ResponseCode::Refused,
        };
        if !(dnssec_ok && found.signed()) {
            let response = builder.build(
                metadata,
                found.answers(),
                std::iter::empty::<&Record>(),
                found.soa,
                found.additional.iter(),
            );
            let sent = response_handle.send_response(response).await;
            return self.send(sent, request, tcp, qtype);
        }
        // Signed: every set with its RRSIGs. A missing name gets the compact denial of
        // RFC 9824, an NSEC at the name made now, and NOERROR (a proven NODATA).
        let synthesized = match &found.missing {
            Some((name, signer, ttl)) => {
                metadata.response_code = ResponseCode::NoError;
                signer.denial(&name.into(), None, *ttl)
            }
            None => Vec::new(),
        };
        let [soa_sigs, nodata] = found.denial;
        let response = builder.build(
            metadata,
            found.signed_answers(),
            std::iter::empty::<&Record>(),
            found
                .soa
                .into_iter()
                .chain(soa_sigs)
                .chain(nodata)
                .chain(&synthesized),
            found.additional.iter(),
        );
        let sent = response_handle.send_response(response).await;
        self.send(sent, request, tcp, qtype)
    }
}

impl Handler {
    /// Counts the response that was sent (or the SERVFAIL that stands for one not sent).
    fn send<E: std::fmt::Display>(
        &self,
        sent: Result<ResponseInfo, E>,
        request: &Request,
        tcp: bool,
        qtype: Option<RecordType>,
    ) -> ResponseInfo {
        let info = sent.unwrap_or_else(|e| {
            tracing::debug!(error = %e, src = %request.src(), "failed to send a DNS response");
            let mut metadata = Metadata::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        });
        self.metrics.count_query(
            tcp,
            qtype.map_or(QTYPE_OTHER, qtype_index),
            rcode_index(info.response_code),
        );
        info
    }
}

const QTYPE_OTHER: usize = crate::metrics::QTYPES.len() - 1;

/// Index into [`crate::metrics::QTYPES`].
fn qtype_index(t: RecordType) -> usize {
    match t {
        RecordType::A => 0,
        RecordType::AAAA => 1,
        RecordType::SOA => 2,
        RecordType::NS => 3,
        RecordType::CNAME => 4,
        RecordType::MX => 5,
        RecordType::TXT => 6,
        RecordType::SRV => 7,
        RecordType::PTR => 8,
        RecordType::CAA => 9,
        RecordType::HTTPS => 10,
        RecordType::SVCB => 11,
        RecordType::DS => 12,
        RecordType::DNSKEY => 13,
        RecordType::ANY => 14,
        _ => QTYPE_OTHER,
    }
}

/// Index into [`crate::metrics::RCODES`].
fn rcode_index(r: ResponseCode) -> usize {
    match r {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        ResponseCode::BADVERS => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{QTYPES, RCODES};

    #[test]
    fn metric_indexes_match_label_tables() {
        for (t, name) in [
            (RecordType::A, "A"),
            (RecordType::AAAA, "AAAA"),
            (RecordType::ANY, "ANY"),
            (RecordType::NULL, "other"),
        ] {
            assert_eq!(QTYPES[qtype_index(t)], name);
        }
        for (r, name) in [
            (ResponseCode::NXDomain, "NXDOMAIN"),
            (ResponseCode::Refused, "REFUSED"),
            (ResponseCode::BADVERS, "BADVERS"),
            (ResponseCode::YXDomain, "other"),
        ] {
            assert_eq!(RCODES[rcode_index(r)], name);
        }
    }
}

#[cfg(test)]
mod path_tests;
