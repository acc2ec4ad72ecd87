//! DNS semantics, as `dig` sees them.

use std::time::Duration;

use crate::harness::{Block, Gslb, config, eventually, stand_ins, two_cluster_app};

async fn serving() -> (Gslb, Vec<gslb::demo::StandIn>, Block) {
    let block = Block::new();
    let (ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    (gslb, ingresses, block)
}

#[tokio::test(flavor = "multi_thread")]
async fn app_name_answers_the_primary_vip_authoritatively() {
    let (gslb, _ingresses, block) = serving().await;
    let d = gslb.dig("tke-demo.cn A").await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("aa"), "AA must be set: {}", d.raw);
    assert!(!d.has_flag("ra"), "we do not offer recursion: {}", d.raw);
    assert_eq!(d.rdata("A"), vec![block.ip(1).to_string()]);
    assert!(
        d.answer[0].split_whitespace().nth(1) == Some("5"),
        "app TTL: {}",
        d.raw
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv4_only_app_answers_aaaa_with_nodata() {
    let (gslb, _i, _b) = serving().await;
    let d = gslb.dig("tke-demo.cn AAAA").await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.answer.is_empty(), "{}", d.raw);
    assert!(
        d.authority[0].contains("SOA"),
        "NODATA carries the SOA: {}",
        d.raw
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_name_is_nxdomain_with_soa_for_negative_caching() {
    let (gslb, _i, _b) = serving().await;
    let d = gslb.dig("no-such-name.tke-demo.cn A").await;
    assert_eq!(d.status, "NXDOMAIN", "{}", d.raw);
    assert!(d.has_flag("aa"), "{}", d.raw);
    let soa: Vec<&str> = d.authority[0].split_whitespace().collect();
    assert_eq!(soa[3], "SOA", "{}", d.raw);
    // RFC 2308: TTL of the negative SOA is min(SOA TTL, MINIMUM) = min(300, 45).
    assert_eq!(soa[1], "45", "{}", d.raw);
    assert_eq!(soa.last(), Some(&"45"), "{}", d.raw);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_outside_our_zones_are_refused_never_resolved() {
    let (gslb, _i, _b) = serving().await;
    for q in ["example.com A", "cn NS", ". NS"] {
        let d = gslb.dig(q).await;
        assert_eq!(d.status, "REFUSED", "{q}: {}", d.raw);
        assert!(d.answer.is_empty());
    }
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apex_soa_ns_with_glue_and_static_records() {
    let (gslb, _i, block) = serving().await;
    let soa = gslb.dig("tke-demo.cn SOA").await;
    let fields: Vec<&str> = soa.answer[0].split_whitespace().collect();
    assert_eq!(
        &fields[3..6],
        ["SOA", "ns1.tke-demo.cn.", "hostmaster.tke-demo.cn."],
        "{}",
        soa.raw
    );

    let ns = gslb.dig("tke-demo.cn NS").await;
    assert_eq!(ns.rdata("NS"), vec!["ns1.tke-demo.cn."]);
    assert!(
        ns.additional
            .iter()
            .any(|l| l.starts_with("ns1.tke-demo.cn.") && l.ends_with("127.0.0.1")),
        "glue: {}",
        ns.raw
    );

    assert_eq!(
        gslb.dig("info.tke-demo.cn TXT").await.rdata("TXT"),
        vec!["\"served by gslb\""]
    );
    let mx = gslb.dig("tke-demo.cn MX").await;
    assert_eq!(mx.rdata("MX"), vec!["10 mail.tke-demo.cn."]);
    assert!(
        mx.additional.iter().any(|l| l.ends_with("127.0.0.25")),
        "{}",
        mx.raw
    );
    let www = gslb.dig("www.tke-demo.cn A").await;
    assert_eq!(www.rdata("CNAME"), vec!["tke-demo.cn."]);
    assert_eq!(www.rdata("A"), vec![block.ip(1).to_string()]);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_answers_like_udp() {
    let (gslb, _i, block) = serving().await;
    let d = gslb.dig("+tcp tke-demo.cn A").await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(d.rdata("A"), vec![block.ip(1).to_string()]);
    assert_eq!(gslb.dig("+tcp nope.tke-demo.cn A").await.status, "NXDOMAIN");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edns_is_honoured_and_unknown_versions_get_badvers() {
    let (gslb, _i, _b) = serving().await;
    let d = gslb.dig("+bufsize=4096 tke-demo.cn A").await;
    assert_eq!(
        d.edns_udp,
        Some(1232),
        "we cap our UDP size at 1232: {}",
        d.raw
    );
    let d = gslb.dig("+noedns tke-demo.cn A").await;
    assert_eq!(
        d.edns_udp, None,
        "no OPT without EDNS in the query: {}",
        d.raw
    );
    let d = gslb.dig("+edns=1 +noednsnegotiation tke-demo.cn A").await;
    assert_eq!(d.status, "BADVERS", "{}", d.raw);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() {
    let records: String = (0..30)
        .map(|i| {
            format!(
                "  {{ name = \"big\", type = \"TXT\", value = \"{i:02} {}\" }},\n",
                "x".repeat(60)
            )
        })
        .collect();
    let text = config("").replace("records = [\n", &format!("records = [\n{records}"));
    let gslb = Gslb::start(&text).await;
    let udp = gslb.dig("+noedns +ignore big.tke-demo.cn TXT").await;
    assert!(
        udp.has_flag("tc"),
        "over 512 bytes without EDNS must set TC: {}",
        udp.raw
    );
    let tcp = gslb.dig("+tcp big.tke-demo.cn TXT").await;
    assert!(!tcp.has_flag("tc"));
    assert_eq!(tcp.rdata("TXT").len(), 30, "{}", tcp.raw);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_packets_do_not_stop_the_server() {
    let (gslb, _i, block) = serving().await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let junk: [&[u8]; 5] = [
        b"",
        b"\x00\x01",
        &[0xff; 12],
        // header claiming one question, then a compression pointer to itself
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",
        &[0x41; 600],
    ];
    for j in junk {
        sock.send_to(j, gslb.dns).await.unwrap();
    }
    // And a TCP connection that sends half a message and goes away.
    let mut tcp = tokio::net::TcpStream::connect(gslb.dns).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"\x00\x40\x12")
        .await
        .unwrap();
    drop(tcp);
    let d = eventually(Duration::from_secs(5), "an answer after junk", || async {
        let d = gslb.dig("tke-demo.cn A").await;
        (d.status == "NOERROR").then_some(d)
    })
    .await;
    assert_eq!(d.rdata("A"), vec![block.ip(1).to_string()]);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn non_query_opcodes_are_not_implemented() {
    let (gslb, _i, _b) = serving().await;
    // A NOTIFY (opcode 4) for the zone, hand-built: dig cannot send one.
    let mut msg = vec![0xab, 0xcd, 0x20, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["tke-demo", "cn"] {
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.extend_from_slice(&[0, 0, 6, 0, 1]);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&msg, gslb.dns).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 12);
    assert_eq!(&buf[..2], &[0xab, 0xcd]);
    assert_eq!(buf[3] & 0x0f, 4, "rcode NOTIMP");
    gslb.stop().await;
}
