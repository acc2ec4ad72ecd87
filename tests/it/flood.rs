//! A UDP flood from another process, well above what one core answers: probes keep their
//! schedule (a failover still happens on time), another client is still answered, and
//! memory stays bounded.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Block, ServeProcess, dig, eventually, stand_ins, two_cluster_app};

/// How long the flood lasts, and the most queries each sender sends.
const FLOOD: Duration = Duration::from_secs(6);
const SENDERS: usize = 2;
const MAX_PER_SENDER: u64 = 5_000_000;

fn vmrss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// A query for `name` A with EDNS, as a sender would repeat it.
fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    q
}

#[tokio::test(flavor = "multi_thread")]
async fn a_udp_flood_starves_neither_probes_nor_other_clients() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let gslb = ServeProcess::start(
        &dir.path().join("gslb.toml"),
        "",
        &two_cluster_app(&block, port, "failover", ""),
    )
    .await;
    let primary = vec![block.ip(1).to_string()];
    let secondary = vec![block.ip(2).to_string()];
    eventually(Duration::from_secs(10), "the primary answered", || async {
        (dig(gslb.dns, "tke-demo.cn A").await.rdata("A") == primary).then_some(())
    })
    .await;
    let pid = gslb.child.id().unwrap();
    let rss_before = vmrss_kb(pid);

    // The flood: senders on their own threads, nonblocking, replies never read; half
    // the names exist, half are NXDOMAIN.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (stop, sent, to) = (stop.clone(), sent.clone(), gslb.dns);
            std::thread::spawn(move || {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.set_nonblocking(true).unwrap();
                let packets = [
                    query("tke-demo.cn", s as u16),
                    query("flood.tke-demo.cn", 7),
                ];
                let start = Instant::now();
                let mut n = 0u64;
                while n < MAX_PER_SENDER && start.elapsed() < FLOOD && !stop.load(Ordering::Relaxed)
                {
                    if socket.send_to(&packets[(n % 2) as usize], to).is_ok() {
                        n += 1;
                    }
                }
                sent.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();

    // During the flood: another client is answered, and a dead ingress is failed over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flood_started = Instant::now();
    let mut answered = 0;
    for _ in 0..5 {
        if dig(gslb.dns, "tke-demo.cn A +tries=1 +time=1")
            .await
            .rdata("A")
            == primary
        {
            answered += 1;
        }
    }
    assert!(
        answered >= 1,
        "a separate client got no answer during the flood"
    );
    ingresses[0].stop();
    let fault = Instant::now();
    // Watched over TCP, which the flood does not touch, so that what is timed is the
    // health decision and not a lost UDP query.
    eventually(
        Duration::from_secs(5),
        "failover while the flood runs",
        || async {
            (dig(gslb.dns, "tke-demo.cn A +tcp +tries=1 +time=1")
                .await
                .rdata("A")
                == secondary)
                .then_some(())
        },
    )
    .await;
    let failover = fault.elapsed();
    let still_flooding = flood_started.elapsed() + Duration::from_millis(500) < FLOOD;
    // The flood runs its course, so that memory is measured after all of it.
    for s in senders {
        s.join().unwrap();
    }
    let rss_after = vmrss_kb(pid);
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {sent} queries in at most {FLOOD:?}; other client answered {answered}/5; \
         failover {failover:?} (flood still running: {still_flooding}); \
         VmRSS {rss_before} kB -> {rss_after} kB"
    );
    assert!(
        still_flooding,
        "the failover must happen while the flood runs"
    );
    assert!(
        sent > 100_000,
        "the flood was too small to mean anything: {sent}"
    );
    // Bounded memory: no queue grows with the load.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "VmRSS grew from {rss_before} kB to {rss_after} kB"
    );
    // And after it, answers are normal.
    assert_eq!(dig(gslb.dns, "tke-demo.cn A").await.rdata("A"), secondary);
}
