//! Tests of zone transfers: serial arithmetic, spotting transfer questions, TSIG on a
//! signed request, and damaged signed requests (property test).

use super::*;

#[test]
fn spots_transfer_questions() {
    let mut q = Message::query();
    q.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("tke-demo.cn.").unwrap(),
        RecordType::AXFR,
    ));
    assert!(asks_transfer(&q.to_vec().unwrap()));
    q.queries[0].set_query_type(RecordType::IXFR);
    assert!(asks_transfer(&q.to_vec().unwrap()));
    q.queries[0].set_query_type(RecordType::A);
    assert!(!asks_transfer(&q.to_vec().unwrap()));
    assert!(!asks_transfer(&[0; 11]));
    assert!(!asks_transfer(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 63]));
}

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";

/// A handler for zone `tke-demo.cn`, transfers allowed from 127.0.0.0/8 with a key.
fn handler(dir: &std::path::Path) -> Handler {
    let key = dir.join("xfr.key");
    std::fs::write(&key, SECRET).unwrap();
    let text = format!(
        r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
allow_transfer = ["127.0.0.0/8"]
tsig_key_name = "gslb-xfr"
tsig_key_file = "{}"
records = [{{ name = "ns1", type = "A", value = "127.0.0.1" }}]
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1"]
[[app]]
name = "tke-demo.cn"
probe = {{ kind = "tcp", port = 80 }}
"#,
        key.display()
    );
    let inventory = std::sync::Arc::new(crate::config::parse(&text, "test").unwrap().inventory);
    let health = crate::health::HealthSnapshot::initial(&inventory, SystemTime::now());
    Handler::new(
        std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(AnswerTable::build(
            &health, 7,
        ))),
        std::sync::Arc::new(crate::metrics::Metrics::new()),
    )
}

fn signer() -> TSigner {
    let secret = data_encoding::BASE64.decode(SECRET.as_bytes()).unwrap();
    let name = hickory_proto::rr::Name::from_ascii("gslb-xfr.").unwrap();
    TSigner::new(
        secret,
        hickory_proto::rr::rdata::tsig::TsigAlgorithm::HmacSha256,
        name,
        300,
    )
    .unwrap()
}

fn signed_axfr() -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("tke-demo.cn.").unwrap(),
        RecordType::AXFR,
    ));
    m.finalize(&signer(), unix_now()).unwrap();
    m.to_vec().unwrap()
}

#[test]
fn a_signed_request_gets_the_zone_and_a_signed_response() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(dir.path());
    let peer: SocketAddr = "127.0.0.9:5300".parse().unwrap();
    let request = signed_axfr();
    let messages = h.answer_transfer(&request, peer, true).unwrap();
    assert_eq!(messages.len(), 1);
    let response = Message::from_vec(&messages[0]).unwrap();
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        response.answers.len(),
        5,
        "SOA, A, NS, glue A, SOA: {response:?}"
    );
    let request_mac = Message::from_vec(&request)
        .unwrap()
        .signature()
        .unwrap()
        .data
        .mac
        .clone();
    signer()
        .verify_message_byte(&messages[0], Some(&request_mac), true)
        .expect("the response's TSIG verifies against the request's MAC");
    // From outside allow_transfer: refused, whatever the signature.
    let outside: SocketAddr = "192.0.2.1:5300".parse().unwrap();
    let refused = h.answer_transfer(&request, outside, true).unwrap();
    assert_eq!(
        Message::from_vec(&refused[0])
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::Refused
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Damage anywhere in a signed request: no panic, and zone data only when the
    /// damaged request still carries a valid signature (a harmless change, such as
    /// the case of a letter in the zone name, or damage past the message's end).
    #[test]
    fn damaged_signed_requests_get_data_only_with_a_valid_signature(
        edits in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 1..4),
        cut in 0usize..200,
        tcp in proptest::prelude::any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path());
        let mut request = signed_axfr();
        for (at, byte) in edits {
            if let Some(b) = request.get_mut(at) {
                *b = byte;
            }
        }
        if cut > 12 {
            request.truncate(cut);
        }
        let peer: SocketAddr = "127.0.0.9:5300".parse().unwrap();
        if let Some(messages) = h.answer_transfer(&request, peer, tcp) {
            let data = messages.iter().any(|m| {
                Message::from_vec(m).is_ok_and(|r| !r.answers.is_empty())
            });
            if data {
                proptest::prop_assert!(signer().verify_message_byte(&request, None, true).is_ok());
            }
        }
    }
}

#[test]
fn serial_arithmetic_wraps() {
    assert!(serial_lt(1, 2));
    assert!(!serial_lt(2, 2));
    assert!(!serial_lt(3, 2));
    assert!(serial_lt(u32::MAX, 1));
    assert!(!serial_lt(1, u32::MAX));
}
