//! What a DNS response means to a client, for comparing two encodings of one answer: the
//! fast path's and the general path's (`dns/path_tests.rs` and the `dns_request` fuzz
//! target). Not part of the product: compiled for the tests and with the `testing`
//! feature, which the fuzz crate enables.

use hickory_proto::op::Message;
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::opt::EdnsCode;

/// A response reduced to what a client acts on: the header's metadata (id, flags, rcode)
/// and the question, each section as sorted lowercase text (record order and name case
/// carry no meaning), and the OPT record's payload size, version, DO bit and Client
/// Subnet option.
#[derive(Debug, PartialEq, Eq)]
pub struct Meaning {
    pub header: String,
    pub answers: Vec<String>,
    pub authorities: Vec<String>,
    pub additionals: Vec<String>,
    pub edns: String,
}

/// The meaning of the response in `bytes`, or `None` when they do not parse as a DNS
/// message (the fuzz target must not panic on them; tests `expect` a parsable response).
pub fn meaning(bytes: &[u8]) -> Option<Meaning> {
    let m = Message::from_vec(bytes).ok()?;
    let sorted = |records: &[Record]| {
        let mut v: Vec<String> = records
            .iter()
            .map(|r| r.to_string().to_lowercase())
            .collect();
        v.sort();
        v
    };
    Some(Meaning {
        header: format!("{:?} {:?}", m.metadata, m.queries),
        answers: sorted(&m.answers),
        authorities: sorted(&m.authorities),
        additionals: sorted(&m.additionals),
        edns: format!(
            "{:?}",
            m.edns.map(|e| (
                e.max_payload(),
                e.version(),
                e.flags().dnssec_ok,
                e.option(EdnsCode::Subnet).cloned()
            ))
        ),
    })
}
