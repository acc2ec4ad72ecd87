//! Hidden primary: zone transfers and NOTIFY, checked with clients nobody here wrote.
//! `dig AXFR`/`IXFR` from allowed and other source addresses, with and without TSIG
//! (`dig -y`), a real Knot DNS secondary (`knotd`, Debian's `knot` package) that
//! transfers from gslb and follows a failover through NOTIFY and an incremental IXFR
//! (also with a TSIG key it requires on transfers and NOTIFYs), and SOA serials that keep
//! increasing across restarts of a `gslb serve` process.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::harness::{
    Block, Dig, Gslb, ServeProcess, config, config_with_zone, dig, eventually, free_port,
    stand_ins, two_clusters,
};

/// Generous: each wait below takes about a second; a loaded machine is slower.
const LIMIT: Duration = Duration::from_secs(20);
/// A TSIG secret, base64 (as `tsig-keygen` prints one).
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";

/// `dig AXFR` (or IXFR=n) from `source`, with extra arguments.
async fn transfer(server: SocketAddr, source: IpAddr, args: &str) -> Dig {
    dig(server, &format!("-b {source} {args}")).await
}

/// Answer lines of a transfer as (owner, type, rdata), SOA and TSIG left out, sorted.
fn records(d: &Dig) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = d
        .raw
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 5 && f[3] != "SOA" && f[3] != "TSIG")
                .then(|| (f[0].to_lowercase(), f[3].to_owned(), f[4..].join(" ")))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// SOA lines of a transfer (the first and the last, for a full one).
fn soas(d: &Dig) -> Vec<String> {
    d.raw
        .lines()
        .filter(|l| !l.starts_with(';') && l.split_whitespace().nth(3) == Some("SOA"))
        .map(str::to_owned)
        .collect()
}

fn serial_of(soa_line: &str) -> u32 {
    soa_line.split_whitespace().nth(6).unwrap().parse().unwrap()
}

/// A zone with transfers allowed to `allow`, two clusters on the block's .1 and .2
/// under failover, and `zone_extra` lines in the `[[zone]]`.
fn xfr_config(block: &Block, port: u16, zone_extra: &str) -> String {
    config_with_zone(
        zone_extra,
        &format!(
            r#"
{clusters}
[[app]]
name = "tke-demo.cn"
ttl = 5
probe = {{ kind = "http", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}

[[app]]
name = "all.tke-demo.cn"
policy = "round-robin"
ttl = 5
probe = {{ kind = "http", port = {port}, interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}
"#,
            clusters = two_clusters(block),
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn axfr_gives_allowed_clients_the_zone_that_queries_get_and_refuses_others() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let allowed = block.ip(50);
    let other = block.ip(60);
    let gslb = Gslb::start(&xfr_config(
        &block,
        port,
        &format!(r#"allow_transfer = ["{allowed}/32"]"#),
    ))
    .await;
    eventually(LIMIT, "failover to answer the primary alone", || async {
        (gslb.dig("tke-demo.cn A").await.rdata("A") == vec![block.ip(1).to_string()]).then_some(())
    })
    .await;

    let axfr = transfer(gslb.dns, allowed, "tke-demo.cn AXFR").await;
    let soa = soas(&axfr);
    assert_eq!(
        soa.len(),
        2,
        "a full transfer opens and closes with the SOA:\n{}",
        axfr.raw
    );
    assert_eq!(soa[0], soa[1]);
    let served_soa = gslb.dig("tke-demo.cn SOA").await.answer;
    assert_eq!(serial_of(&soa[0]), serial_of(&served_soa[0]));
    // Every record set transferred is what a query for it gets (a rotating set whole).
    let got = records(&axfr);
    for (name, rtype) in [
        ("tke-demo.cn.", "A"),
        ("tke-demo.cn.", "NS"),
        ("tke-demo.cn.", "MX"),
        ("all.tke-demo.cn.", "A"),
        ("ns1.tke-demo.cn.", "A"),
        ("mail.tke-demo.cn.", "A"),
        ("info.tke-demo.cn.", "TXT"),
        ("www.tke-demo.cn.", "CNAME"),
    ] {
        let mut queried = gslb.dig(&format!("{name} {rtype}")).await.rdata(rtype);
        queried.sort();
        let mut transferred: Vec<String> = got
            .iter()
            .filter(|(n, t, _)| n == name && t == rtype)
            .map(|(_, _, r)| r.clone())
            .collect();
        transferred.sort();
        assert!(!queried.is_empty(), "{name} {rtype} answers");
        assert_eq!(transferred, queried, "{name} {rtype}");
    }
    assert_eq!(got.len(), 9, "nothing else is transferred: {got:?}");
    assert_eq!(
        got.iter()
            .filter(|(n, t, _)| n == "all.tke-demo.cn." && t == "A")
            .count(),
        2,
        "the round-robin app: both VIPs in one set"
    );
    // IXFR at the current serial: the SOA alone; from a serial the journal never held
    // (gslb's serials are the Unix time of a change): the whole zone.
    let serial = serial_of(&soa[0]);
    let ixfr = transfer(gslb.dns, allowed, &format!("tke-demo.cn IXFR={serial}")).await;
    assert_eq!(soas(&ixfr).len(), 1, "{}", ixfr.raw);
    assert!(records(&ixfr).is_empty(), "{}", ixfr.raw);
    let ixfr = transfer(
        gslb.dns,
        allowed,
        &format!("tke-demo.cn IXFR={}", serial - 100_000),
    )
    .await;
    assert_eq!(records(&ixfr), got, "{}", ixfr.raw);

    // Anyone else: refused, over TCP and UDP alike.
    let refused = transfer(gslb.dns, other, "tke-demo.cn AXFR").await;
    assert!(
        records(&refused).is_empty() && soas(&refused).is_empty(),
        "{}",
        refused.raw
    );
    assert!(refused.raw.contains("Transfer failed"), "{}", refused.raw);
    let udp = transfer(
        gslb.dns,
        other,
        &format!("tke-demo.cn IXFR={} +notcp +comments", serial - 100_000),
    )
    .await;
    assert_eq!(udp.status, "REFUSED", "{}", udp.raw);
    // AXFR over UDP, even from an allowed address (dig always uses TCP for it).
    let query = {
        let mut m = hickory_proto::op::Message::query();
        m.add_query(hickory_proto::op::Query::query(
            hickory_proto::rr::Name::from_ascii("tke-demo.cn.").unwrap(),
            hickory_proto::rr::RecordType::AXFR,
        ));
        m.to_vec().unwrap()
    };
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(allowed, 0))
        .await
        .unwrap();
    socket.send_to(&query, gslb.dns).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(LIMIT, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = hickory_proto::op::Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(
        answer.metadata.response_code,
        hickory_proto::op::ResponseCode::Refused
    );
    assert!(answer.answers.is_empty());

    let metrics = gslb.get("/metrics").await.1;
    for series in [
        r#"gslb_zone_transfers_total{kind="axfr",result="full",zone="tke-demo.cn."} 1"#,
        r#"gslb_zone_transfers_total{kind="axfr",result="refused",zone="tke-demo.cn."} 2"#,
        r#"gslb_zone_transfers_total{kind="ixfr",result="current",zone="tke-demo.cn."} 1"#,
        r#"gslb_zone_transfers_total{kind="ixfr",result="refused",zone="tke-demo.cn."} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tsig_is_required_checked_and_every_message_is_signed() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("xfr.key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    // Enough TXT records for several messages, so that the chained signatures are checked.
    let txt: String = (0..400)
        .map(|i| {
            format!(
                r#"{{ name = "t{i}", type = "TXT", value = "record {i} {}" }},"#,
                "x".repeat(60)
            )
        })
        .collect();
    let config_text = xfr_config(
        &block,
        port,
        &format!(
            r#"allow_transfer = ["127.0.0.0/8"]
tsig_key_name = "gslb-xfr"
tsig_key_file = "{}"
"#,
            key.display()
        ),
    )
    .replacen("records = [", &format!("records = [\n{txt}"), 1);
    let gslb = Gslb::start(&config_text).await;
    let source = block.ip(50);

    let signed = transfer(
        gslb.dns,
        source,
        &format!("tke-demo.cn AXFR -y hmac-sha256:gslb-xfr:{SECRET}"),
    )
    .await;
    assert_eq!(soas(&signed).len(), 2, "{}", signed.raw);
    assert_eq!(
        records(&signed)
            .iter()
            .filter(|(_, t, _)| t == "TXT")
            .count(),
        401
    );
    let messages: usize = signed
        .raw
        .lines()
        .find_map(|l| l.split("messages ").nth(1)?.split(',').next()?.parse().ok())
        .unwrap_or_else(|| panic!("dig's XFR size line:\n{}", signed.raw));
    assert!(messages > 1, "{messages} message(s)");
    // dig checks every message's TSIG and says so when one fails.
    let tsig_lines = signed
        .raw
        .lines()
        .filter(|l| l.split_whitespace().nth(3) == Some("TSIG"))
        .count();
    assert_eq!(
        tsig_lines, messages,
        "every message signed:\n{}",
        signed.raw
    );
    assert!(!signed.raw.contains("failure"), "{}", signed.raw);

    let unsigned = transfer(gslb.dns, source, "tke-demo.cn AXFR").await;
    assert!(soas(&unsigned).is_empty(), "{}", unsigned.raw);
    let wrong = "d3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmctd3Jvbmc=";
    let bad = transfer(
        gslb.dns,
        source,
        &format!("tke-demo.cn AXFR -y hmac-sha256:gslb-xfr:{wrong}"),
    )
    .await;
    assert!(soas(&bad).is_empty(), "{}", bad.raw);
    let other_key = transfer(
        gslb.dns,
        source,
        &format!("tke-demo.cn AXFR -y hmac-sha256:other-key:{SECRET}"),
    )
    .await;
    assert!(soas(&other_key).is_empty(), "{}", other_key.raw);
    // IXFR over UDP answers NOTAUTH, which dig shows.
    let udp = transfer(gslb.dns, source, "tke-demo.cn IXFR=1 +notcp +comments").await;
    assert_eq!(udp.status, "NOTAUTH", "{}", udp.raw);

    let metrics = gslb.get("/metrics").await.1;
    assert!(
        metrics.contains(
            r#"gslb_zone_transfers_total{kind="axfr",result="notauth",zone="tke-demo.cn."} 3"#
        ),
        "{metrics}"
    );
    gslb.stop().await;
}

/// A Knot DNS secondary (`knotd`) in a temporary folder, serving on `listen`.
struct Knot {
    child: tokio::process::Child,
    listen: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Knot {
    /// Starts knotd as a secondary of `zone` transferring from `primary`, accepting
    /// NOTIFY from loopback; with `key` (name, base64 secret), transfers and NOTIFYs
    /// must be signed with it.
    async fn start(
        listen: SocketAddr,
        zone: &str,
        primary: SocketAddr,
        key: Option<(&str, &str)>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (keys, key_line) = match key {
            Some((name, secret)) => (
                format!("key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
                format!("\n    key: {name}"),
            ),
            None => (String::new(), String::new()),
        };
        let conf = format!(
            r#"server:
    rundir: "{d}"
    listen: {ip}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: info
database:
    storage: "{d}"
{keys}remote:
  - id: gslb
    address: {pip}@{pport}{key_line}
acl:
  - id: notify-from-gslb
    address: 127.0.0.0/8
    action: notify{key_line}
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: none
zone:
  - domain: {zone}
    master: gslb
    acl: notify-from-gslb
"#,
            ip = listen.ip(),
            port = listen.port(),
            pip = primary.ip(),
            pport = primary.port(),
        );
        let path = dir.path().join("knot.conf");
        std::fs::write(&path, conf).unwrap();
        let child = tokio::process::Command::new("knotd")
            .arg("-c")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("knot.log")).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run knotd ({e}): install it with `apt-get install -y knot`")
            });
        Self {
            child,
            listen,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("knot.log")).unwrap_or_default()
    }

    async fn a(&self, name: &str) -> Vec<String> {
        let mut a = dig(self.listen, &format!("{name} A")).await.rdata("A");
        a.sort();
        a
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_knot_secondary_serves_the_answers_and_follows_a_failover_through_notify() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let knot_addr = SocketAddr::new(block.ip(53), free_port());
    let gslb = Gslb::start(&xfr_config(
        &block,
        port,
        &format!(
            r#"allow_transfer = ["127.0.0.0/8"]
notify = ["{knot_addr}"]"#
        ),
    ))
    .await;
    let primary = vec![block.ip(1).to_string()];
    let secondary = vec![block.ip(2).to_string()];
    eventually(LIMIT, "gslb to answer the primary alone", || async {
        (gslb.dig("tke-demo.cn A").await.rdata("A") == primary).then_some(())
    })
    .await;
    let knot = Knot::start(knot_addr, "tke-demo.cn", gslb.dns, None).await;
    eventually(LIMIT, "knot to serve the primary", || async {
        (knot.a("tke-demo.cn").await == primary).then_some(())
    })
    .await;
    // The same answers as gslb's, for every name (a rotating set whole).
    let mut both = vec![block.ip(1).to_string(), block.ip(2).to_string()];
    both.sort();
    assert_eq!(knot.a("all.tke-demo.cn").await, both);
    for (name, rtype) in [
        ("info.tke-demo.cn", "TXT"),
        ("www.tke-demo.cn", "CNAME"),
        ("tke-demo.cn", "MX"),
    ] {
        assert_eq!(
            dig(knot.listen, &format!("{name} {rtype}"))
                .await
                .rdata(rtype),
            gslb.dig(&format!("{name} {rtype}")).await.rdata(rtype),
            "{name} {rtype}"
        );
    }
    let serial = |d: Dig| d.answer.first().map(|l| serial_of(l));
    assert_eq!(
        serial(dig(knot.listen, "tke-demo.cn SOA").await),
        serial(gslb.dig("tke-demo.cn SOA").await)
    );

    let before = serial(gslb.dig("tke-demo.cn SOA").await).unwrap();

    // Failover: the primary's ingress dies; knot hears of it by NOTIFY (its SOA refresh
    // is an hour away) and serves the secondary.
    ingresses[0].stop();
    eventually(LIMIT, "gslb to fail over", || async {
        (gslb.dig("tke-demo.cn A").await.rdata("A") == secondary).then_some(())
    })
    .await;
    eventually(LIMIT, "knot to serve the failover", || async {
        (knot.a("tke-demo.cn").await == secondary).then_some(())
    })
    .await;
    assert_eq!(knot.a("all.tke-demo.cn").await, secondary);
    assert_eq!(
        serial(dig(knot.listen, "tke-demo.cn SOA").await),
        serial(gslb.dig("tke-demo.cn SOA").await)
    );
    // Knot asked for the changes since its serial (IXFR) and got them alone.
    eventually(LIMIT, "knot to log an incremental transfer", || async {
        knot.log().contains("IXFR, incoming").then_some(())
    })
    .await;
    let ixfr = dig(gslb.dns, &format!("tke-demo.cn IXFR={before}")).await;
    let soa_lines = soas(&ixfr);
    assert!(
        soa_lines.len() >= 4,
        "an incremental transfer:\n{}",
        ixfr.raw
    );
    assert_eq!(serial_of(&soa_lines[1]), before, "{}", ixfr.raw);
    let changed = records(&ixfr);
    assert!(
        changed.contains(&("tke-demo.cn.".into(), "A".into(), block.ip(1).to_string())),
        "{}",
        ixfr.raw
    );
    assert!(
        changed.contains(&("tke-demo.cn.".into(), "A".into(), block.ip(2).to_string())),
        "{}",
        ixfr.raw
    );
    assert!(
        !changed.iter().any(|(_, t, _)| t == "TXT" || t == "MX"),
        "only what changed:\n{}",
        ixfr.raw
    );
    let metrics = gslb.get("/metrics").await.1;
    assert!(
        metrics.contains(
            r#"gslb_zone_transfers_total{kind="ixfr",result="incremental",zone="tke-demo.cn."}"#
        ),
        "{metrics}"
    );
    let answered = metrics
        .lines()
        .find(|l| l.starts_with(r#"gslb_notify_total{result="answered",zone="tke-demo.cn."}"#))
        .and_then(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        answered >= 1,
        "knot answered a NOTIFY:\n{metrics}\n{}",
        knot.log()
    );
    assert!(knot.log().contains("notify, incoming"), "{}", knot.log());
    drop(knot.child);
    gslb.stop().await;
}

/// The SOA serial of `tke-demo.cn` that `gslb serve` answers.
async fn served_serial(dns: SocketAddr) -> u32 {
    let d = dig(dns, "tke-demo.cn SOA").await;
    serial_of(d.answer.first().unwrap_or_else(|| panic!("{}", d.raw)))
}

fn write_state(path: &Path, serial: u32) {
    std::fs::write(
        path,
        format!(
            r#"{{"format":1,"saved_at":"2026-11-29T00:00:00Z","zones":{{"tke-demo.cn.":{{"serial":{serial},"digest":1}}}}}}"#
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_serial_survives_restarts_and_only_moves_up_when_the_zone_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gslb.toml");
    let state = dir.path().join("state.json");
    let server_extra = format!("state_file = \"{}\"", state.display());
    let zone = config("");
    // A serial far ahead of the clock (as after a burst of changes, or a clock set back):
    // the content differs from the saved digest, so the next serial is one more.
    write_state(&state, 3_000_000_000);
    let gslb = ServeProcess::start(&path, &server_extra, &zone).await;
    let first = served_serial(gslb.dns).await;
    assert_eq!(first, 3_000_000_001);
    assert!(gslb.terminate().await);
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("3000000001"), "{saved}");

    // Same content after a restart: same serial (secondaries transfer nothing new).
    ServeProcess::write_config(&path, &server_extra, &zone);
    let gslb = ServeProcess::spawn(&path).await;
    assert_eq!(served_serial(gslb.dns).await, first);
    assert!(gslb.terminate().await);

    // A changed zone: the serial moves up, and stays up after another restart.
    let changed = config("").replacen(
        "records = [",
        r#"records = [
  { name = "new", type = "TXT", value = "added" },"#,
        1,
    );
    ServeProcess::write_config(&path, &server_extra, &changed);
    let gslb = ServeProcess::spawn(&path).await;
    let second = served_serial(gslb.dns).await;
    assert_eq!(second, first + 1);
    gslb.kill9().await;
    ServeProcess::write_config(&path, &server_extra, &changed);
    let gslb = ServeProcess::spawn(&path).await;
    assert_eq!(served_serial(gslb.dns).await, second);
    assert!(gslb.terminate().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_knot_secondary_requiring_tsig_transfers_and_takes_signed_notifies() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("xfr.key");
    std::fs::write(&key, SECRET).unwrap();
    let knot_addr = SocketAddr::new(block.ip(53), free_port());
    let gslb = Gslb::start(&xfr_config(
        &block,
        port,
        &format!(
            r#"allow_transfer = ["127.0.0.0/8"]
notify = ["{knot_addr}"]
tsig_key_name = "gslb-xfr"
tsig_key_file = "{}""#,
            key.display()
        ),
    ))
    .await;
    let primary = vec![block.ip(1).to_string()];
    eventually(LIMIT, "gslb to answer the primary alone", || async {
        (gslb.dig("tke-demo.cn A").await.rdata("A") == primary).then_some(())
    })
    .await;
    let knot = Knot::start(
        knot_addr,
        "tke-demo.cn",
        gslb.dns,
        Some(("gslb-xfr", SECRET)),
    )
    .await;
    eventually(LIMIT, "knot to transfer with the key", || async {
        (knot.a("tke-demo.cn").await == primary).then_some(())
    })
    .await;
    ingresses[0].stop();
    let secondary = vec![block.ip(2).to_string()];
    eventually(LIMIT, "knot to serve the failover", || async {
        (knot.a("tke-demo.cn").await == secondary).then_some(())
    })
    .await;
    // Knot's ACL takes only NOTIFYs signed with the key: this one was.
    let log = knot.log();
    assert!(log.contains("notify, incoming"), "{log}");
    assert!(!log.contains("denied"), "{log}");
    gslb.stop().await;
}
