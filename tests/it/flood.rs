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

/// Endpoints that accept and never answer: each probe costs one timeout and then lets go
/// of its connection, so gslb's open descriptors stay bounded by the number of endpoints
/// (one probe in flight each) however long they hang, and every endpoint is judged down.
#[tokio::test(flavor = "multi_thread")]
async fn hanging_targets_cost_one_timeout_each_and_no_growth() {
    const VIPS: u8 = 40;
    let block = Block::new();
    // Listeners that accept and hold every connection without a byte in return.
    let first = tokio::net::TcpListener::bind((block.ip(10), 0))
        .await
        .unwrap();
    let port = first.local_addr().unwrap().port();
    let mut listeners = vec![first];
    for i in 1..VIPS {
        listeners.push(
            tokio::net::TcpListener::bind((block.ip(10 + i), port))
                .await
                .unwrap(),
        );
    }
    let held = Arc::new(AtomicU64::new(0));
    let mut holders = tokio::task::JoinSet::new();
    for l in listeners {
        let held = held.clone();
        holders.spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = l.accept().await {
                held.fetch_add(1, Ordering::Relaxed);
                conns.push(c); // never read, never written, kept open
            }
        });
    }
    let vips: Vec<String> = (0..VIPS)
        .map(|i| format!("\"{}\"", block.ip(10 + i)))
        .collect();
    let rest = crate::harness::config(&format!(
        r#"
[[cluster]]
name = "hung"
vips = [{}]
[[app]]
name = "tke-demo.cn"
clusters = ["hung"]
fail_open = false
probe = {{ kind = "http", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}
"#,
        vips.join(", ")
    ));
    let dir = tempfile::tempdir().unwrap();
    let gslb = ServeProcess::start(&dir.path().join("gslb.toml"), "", &rest).await;
    let pid = gslb.child.id().unwrap();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let status = format!("{}/api/v1/status", gslb.admin_url());
    eventually(
        Duration::from_secs(15),
        "every endpoint judged down",
        || async {
            let body = http.get(&status).send().await.ok()?.text().await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let targets = v["targets"].as_array()?;
            targets.iter().all(|t| t["state"] == "down").then_some(())
        },
    )
    .await;
    // Keep them hanging for about 15 more probe rounds, sampling descriptors.
    let mut most = 0;
    for _ in 0..30 {
        most = most.max(fds());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = held.load(Ordering::Relaxed);
    eprintln!(
        "hanging targets: {VIPS} endpoints, {accepted} connections accepted, gslb held at most {most} descriptors"
    );
    // Each endpoint has at most one probe in flight; the rest is gslb's own (sockets,
    // log, epoll, the state of the runtime): well under 40 of those.
    assert!(
        most < usize::from(VIPS) + 40,
        "{most} descriptors open for {VIPS} hanging endpoints"
    );
    assert!(
        accepted > u64::from(VIPS) * 5,
        "probes did not keep running: {accepted}"
    );
    holders.abort_all();
}
