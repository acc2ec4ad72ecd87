//! Hostile and malformed packets, table-driven: each gets the right rcode or a silent
//! drop, and the server keeps answering normal queries afterwards.

use std::time::Duration;

use crate::harness::{Block, Gslb, stand_ins, two_cluster_app};

/// What a hostile packet must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Drop,
    Rcode(u8),
    /// NOERROR with at most this many answer records.
    Answers(u16),
}

const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;
const REFUSED: u8 = 5;

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, an, ns, ar] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

fn name(labels: &[&str]) -> Vec<u8> {
    let mut n = Vec::new();
    for l in labels {
        n.push(l.len() as u8);
        n.extend_from_slice(l.as_bytes());
    }
    n.push(0);
    n
}

fn question(labels: &[&str], qtype: u16, qclass: u16) -> Vec<u8> {
    let mut q = name(labels);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    q
}

/// An OPT record: `bufsize`, extended rcode 0, `version`.
fn opt(bufsize: u16, version: u8) -> Vec<u8> {
    let mut o = vec![0]; // root name
    o.extend_from_slice(&41u16.to_be_bytes());
    o.extend_from_slice(&bufsize.to_be_bytes());
    o.extend_from_slice(&[0, version, 0, 0]);
    o.extend_from_slice(&0u16.to_be_bytes());
    o
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    let zone = ["tke-demo", "cn"];
    let q = |labels: &[&str], t: u16, c: u16| question(labels, t, c);
    let mut v = Vec::new();
    v.push(("empty", vec![], Expect::Drop));
    v.push(("truncated header", vec![0x12, 0x34, 0x01], Expect::Drop));
    v.push((
        "QDCOUNT 0",
        header(1, 0x0100, 0, 0, 0, 0),
        Expect::Rcode(FORMERR),
    ));
    let mut two = header(2, 0x0100, 2, 0, 0, 0);
    two.extend(q(&zone, 1, 1));
    two.extend(q(&zone, 28, 1));
    v.push(("QDCOUNT 2", two, Expect::Rcode(FORMERR)));
    let mut claims = header(3, 0x0100, 1, 0, 0, 0);
    claims.extend_from_slice(&[8, b'n', b'o']); // label longer than the packet
    v.push(("question cut short", claims, Expect::Rcode(FORMERR)));
    let mut looped = header(4, 0x0100, 1, 0, 0, 0);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // pointer to itself
    v.push(("compression pointer loop", looped, Expect::Rcode(FORMERR)));
    let mut long_label = header(5, 0x0100, 1, 0, 0, 0);
    long_label.push(64);
    long_label.extend_from_slice(&[b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("label of 64 bytes", long_label, Expect::Rcode(FORMERR)));
    let mut long_name = header(6, 0x0100, 1, 0, 0, 0);
    for _ in 0..5 {
        long_name.push(60);
        long_name.extend_from_slice(&[b'a'; 60]);
    }
    long_name.extend_from_slice(&[0, 0, 1, 0, 1]);
    v.push(("name over 255 bytes", long_name, Expect::Rcode(FORMERR)));
    for (label, opcode) in [
        ("IQUERY", 1u16),
        ("NOTIFY", 4),
        ("UPDATE", 5),
        ("opcode 15", 15),
    ] {
        let mut p = header(10 + opcode, opcode << 11, 1, 0, 0, 0);
        p.extend(q(&zone, 6, 1));
        v.push((label, p, Expect::Rcode(NOTIMP)));
    }
    let mut chaos = header(20, 0x0100, 1, 0, 0, 0);
    chaos.extend(q(&["version", "bind"], 16, 3));
    v.push(("CHAOS version.bind", chaos, Expect::Rcode(REFUSED)));
    let mut big = header(21, 0x0100, 1, 0, 0, 1);
    big.extend(q(&zone, 1, 1));
    big.extend(opt(65535, 0));
    v.push(("EDNS buffer 65535", big, Expect::Answers(1)));
    let mut tiny = header(22, 0x0100, 1, 0, 0, 1);
    tiny.extend(q(&zone, 1, 1));
    tiny.extend(opt(1, 0));
    v.push(("EDNS buffer 1", tiny, Expect::Answers(1)));
    let mut any = header(23, 0x0100, 1, 0, 0, 0);
    any.extend(q(&zone, 255, 1));
    v.push(("ANY (RFC 8482: one RRset)", any, Expect::Answers(2)));
    let mut response = header(24, 0x8100, 1, 0, 0, 0);
    response.extend(q(&zone, 1, 1));
    v.push(("a response (QR=1), reflection bait", response, Expect::Drop));
    let mut trailing = header(25, 0x0100, 1, 0, 0, 0);
    trailing.extend(q(&zone, 1, 1));
    trailing.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    v.push(("trailing garbage", trailing, Expect::Answers(1)));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_packets_get_the_right_rcode_or_nothing() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut failures = Vec::new();
    for (label, packet, expect) in cases() {
        sock.send_to(&packet, gslb.dns).await.unwrap();
        let mut buf = [0u8; 4096];
        let got = tokio::time::timeout(Duration::from_millis(500), sock.recv(&mut buf)).await;
        let outcome = match got {
            Err(_) => Expect::Drop,
            Ok(Ok(n)) if n >= 12 => {
                let rcode = buf[3] & 0x0f;
                let answers = u16::from_be_bytes([buf[6], buf[7]]);
                if rcode == 0 && matches!(expect, Expect::Answers(_)) {
                    Expect::Answers(answers)
                } else {
                    Expect::Rcode(rcode)
                }
            }
            Ok(r) => panic!("{label}: unexpected receive {r:?}"),
        };
        let ok = match (expect, outcome) {
            (Expect::Answers(max), Expect::Answers(n)) => n >= 1 && n <= max,
            (e, o) => e == o,
        };
        if !ok {
            failures.push(format!("{label}: expected {expect:?}, got {outcome:?}"));
        }
        // After every hostile packet, a normal query is still answered.
        let d = gslb.dig("tke-demo.cn A").await;
        assert_eq!(
            d.rdata("A"),
            vec![block.ip(1).to_string()],
            "after {label}: {}",
            d.raw
        );
    }
    assert!(failures.is_empty(), "{failures:#?}");
    gslb.stop().await;
}

/// Response rate limiting: a burst from one client prefix gets its budget, then every
/// second response truncated (so a real client retries over TCP) and the rest dropped;
/// TCP and other prefixes are unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn rate_limiting_caps_udp_answers_per_prefix() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let text = format!(
        "[server.rate_limit]\nresponses_per_second = 5\nslip = 2\n{}",
        two_cluster_app(&block, port, "failover", "")
    );
    let gslb = Gslb::start(&text).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let burst = 40u16;
    for id in 0..burst {
        let mut p = header(id, 0x0100, 1, 0, 0, 0);
        p.extend(question(&["tke-demo", "cn"], 1, 1));
        sock.send_to(&p, gslb.dns).await.unwrap();
    }
    let (mut answered, mut truncated) = (0, 0);
    let mut buf = [0u8; 512];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv(&mut buf)).await
    {
        assert!(n >= 12);
        if buf[2] & 0x02 != 0 {
            truncated += 1;
        } else {
            answered += 1;
        }
    }
    // 5 a second; the burst may straddle a second boundary, so allow two budgets.
    assert!(
        (5..=10).contains(&answered),
        "answered {answered} of {burst}"
    );
    assert!(
        truncated >= 10,
        "slip 2: about half of the rest truncated, got {truncated}"
    );
    assert!(answered + truncated < u32::from(burst), "the rest dropped");
    // TCP is not limited, and another prefix has its own budget.
    assert_eq!(
        gslb.dig("+tcp tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()]
    );
    let other = tokio::net::UdpSocket::bind("127.99.0.1:0").await.unwrap();
    let mut p = header(7, 0x0100, 1, 0, 0, 0);
    p.extend(question(&["tke-demo", "cn"], 1, 1));
    other.send_to(&p, gslb.dns).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), other.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 12 && buf[2] & 0x02 == 0 && u16::from_be_bytes([buf[6], buf[7]]) == 1);
    let (_, metrics) = gslb.get("/metrics").await;
    assert!(
        metrics.contains(r#"gslb_dns_rate_limited_total{action="drop"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gslb_dns_rate_limited_total{action="slip"}"#),
        "{metrics}"
    );
    gslb.stop().await;
}

/// Slow clients (one byte a second, on many connections) do not stop a normal client
/// from being answered over TCP; pipelined queries on one connection are all answered.
#[tokio::test(flavor = "multi_thread")]
async fn slow_tcp_clients_do_not_block_others_and_pipelining_works() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let mut query = header(99, 0x0100, 1, 0, 0, 0);
    query.extend(question(&["tke-demo", "cn"], 1, 1));
    let framed: Vec<u8> = [(query.len() as u16).to_be_bytes().to_vec(), query.clone()].concat();

    // 200 connections dribbling one byte a second, for a bounded 4 s.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (dns, framed, stop) = (gslb.dns, framed.clone(), stop.clone());
        slow.spawn(async move {
            let Ok(mut s) = tokio::net::TcpStream::connect(dns).await else {
                return;
            };
            for b in framed.iter().take(4) {
                if s.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..3 {
        let d = gslb.dig("+tcp tke-demo.cn A").await;
        assert_eq!(
            d.rdata("A"),
            vec![block.ip(1).to_string()],
            "a normal TCP client among slow ones: {}",
            d.raw
        );
    }

    // Three queries written at once on one connection: three answers, ids matched.
    let mut s = tokio::net::TcpStream::connect(gslb.dns).await.unwrap();
    let mut burst = Vec::new();
    for id in [1u16, 2, 3] {
        let mut q = query.clone();
        q[..2].copy_from_slice(&id.to_be_bytes());
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend(q);
    }
    s.write_all(&burst).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut len = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).await.unwrap();
        ids.push(u16::from_be_bytes([msg[0], msg[1]]));
    }
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
    stop.cancel();
    while slow.join_next().await.is_some() {}
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_connections_are_capped_and_slots_come_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let text = format!(
        "[server]\ntcp_max_connections = 4\n{}",
        two_cluster_app(&block, port, "failover", "")
    );
    let gslb = Gslb::start(&text).await;
    let mut query = header(7, 0x0100, 1, 0, 0, 0);
    query.extend(question(&["tke-demo", "cn"], 1, 1));
    let framed: Vec<u8> = [(query.len() as u16).to_be_bytes().to_vec(), query].concat();
    // Whether a connection gets an answer (false: closed without one).
    async fn answered(s: &mut tokio::net::TcpStream, framed: &[u8]) -> bool {
        if s.write_all(framed).await.is_err() {
            return false;
        }
        let mut len = [0u8; 2];
        matches!(
            tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut len)).await,
            Ok(Ok(_))
        )
    }

    // Four idle connections take every slot (each proves it is served).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = tokio::net::TcpStream::connect(gslb.dns).await.unwrap();
        let mut len = [0u8; 2];
        s.write_all(&framed).await.unwrap();
        s.read_exact(&mut len).await.unwrap();
        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).await.unwrap();
        held.push(s);
    }
    // A fifth is closed without an answer; UDP is unaffected.
    let mut fifth = tokio::net::TcpStream::connect(gslb.dns).await.unwrap();
    assert!(!answered(&mut fifth, &framed).await, "over the cap");
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()]
    );
    let (_, metrics) = gslb.get("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gslb_dns_tcp_refused_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Closing one frees its slot for a new client.
    drop(held.pop());
    let mut again = false;
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(gslb.dns).await.unwrap();
        if answered(&mut s, &framed).await {
            again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again, "a freed slot serves a new connection");
    gslb.stop().await;
}

/// Connections to the admin API that never send a request hold a slot only until the
/// header timeout, and no more than the cap of them are kept: past it a connection is
/// closed at once, while DNS goes on; once they are gone the API answers again.
#[tokio::test(flavor = "multi_thread")]
async fn silent_admin_connections_are_capped_and_timed_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    // Whether gslb closed the connection (EOF or reset) within `within`.
    async fn closed(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 512];
        loop {
            match tokio::time::timeout(within, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => continue, // a response: read on to the close
                Err(_) => return false,
            }
        }
    }

    let mut silent = Vec::new();
    for _ in 0..gslb::admin::MAX_CONNECTIONS {
        silent.push(tokio::net::TcpStream::connect(gslb.admin).await.unwrap());
    }
    // Every slot is taken once gslb has accepted them all: a connection past the cap is
    // closed without an answer. (Until then, one may still be served: retry a few times.)
    let mut refused = false;
    for _ in 0..50 {
        let mut extra = tokio::net::TcpStream::connect(gslb.admin).await.unwrap();
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: gslb\r\n\r\n")
            .await;
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(2), extra.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                refused = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(
        refused,
        "a connection past the cap must be closed without an answer"
    );
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()],
        "DNS goes on while the admin API is saturated"
    );
    // The silent connections are closed by gslb (header timeout), not by us.
    let limit = gslb::admin::HEADER_TIMEOUT * 3;
    for s in &mut silent {
        assert!(
            closed(s, limit).await,
            "a silent connection outlived {limit:?}"
        );
    }
    let (code, _) = gslb.get("/healthz").await;
    assert_eq!(code, 200, "the API answers again once the slots are free");
    gslb.stop().await;
}
