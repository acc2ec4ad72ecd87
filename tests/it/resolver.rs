//! gslb behind a real recursive resolver (unbound), the way users reach it: the resolver
//! is told (stub-zone) that gslb is authoritative for the zone.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Block, Gslb, dig, eventually, free_port, stand_ins, two_cluster_app};

/// Starts unbound on a free loopback port with a stub zone for tke-demo.cn pointing at
/// gslb's DNS port. Keep the child and the folder alive as long as it is used.
pub async fn unbound_for(gslb_port: u16) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    unbound_for_many(&[gslb_port]).await
}

/// The same with a stub zone listing several gslb instances.
pub async fn unbound_for_many(
    gslb_ports: &[u16],
) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    unbound_with(gslb_ports, r#"module-config: "iterator""#).await
}

/// Unbound with EDNS Client Subnet on (its `subnetcache` module): it sends each client's
/// address, cut to /24, to the authorities on loopback, and caches answers by the scope
/// they come back with.
pub async fn unbound_ecs_for(
    gslb_port: u16,
) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    unbound_with(
        &[gslb_port],
        &format!("module-config: \"subnetcache iterator\"\n{ECS}"),
    )
    .await
}

/// The `server:` lines that make unbound send client subnets to authorities on loopback.
const ECS: &str = "  send-client-subnet: 127.0.0.0/8\n  max-client-subnet-ipv4: 24";

/// A validating unbound (DNSSEC) whose trust anchor for the zone is `anchor`, a DS or
/// DNSKEY record in zone-file form.
pub async fn validating_unbound_for(
    gslb_port: u16,
    anchor: &str,
) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    let server = format!(
        "module-config: \"validator iterator\"\n  trust-anchor: \"{}\"\n  val-log-level: 2",
        anchor.trim()
    );
    unbound_with(&[gslb_port], &server).await
}

/// A validating unbound that also sends client subnets (`subnetcache` before the
/// validator, as unbound wants them).
pub async fn validating_unbound_ecs_for(
    gslb_port: u16,
    anchor: &str,
) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    let server = format!(
        "module-config: \"subnetcache validator iterator\"\n  trust-anchor: \"{}\"\n  val-log-level: 2\n{ECS}",
        anchor.trim()
    );
    unbound_with(&[gslb_port], &server).await
}

/// unbound with a stub zone for tke-demo.cn at `gslb_ports`, and `server` (lines of its
/// `server:` section: the modules, a trust anchor).
async fn unbound_with(
    gslb_ports: &[u16],
    server: &str,
) -> (SocketAddr, tokio::process::Child, tempfile::TempDir) {
    let stub_addrs: String = gslb_ports
        .iter()
        .map(|p| format!("  stub-addr: 127.0.0.1@{p}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let uport = free_port();
    let conf = dir.path().join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            r#"server:
  interface: 127.0.0.1
  port: {uport}
  do-not-query-localhost: no
  chroot: ""
  username: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  {server}
remote-control:
  control-enable: no
stub-zone:
  name: "tke-demo.cn"
{stub_addrs}"#,
            dir = dir.path().display(),
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new("unbound")
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot run unbound ({e}): install it with `apt-get install -y unbound`"),
    };
    (format!("127.0.0.1:{uport}").parse().unwrap(), child, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_of_unbound_fail_over_too() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb =
        Gslb::start(&two_cluster_app(&block, port, "failover", "").replace("ttl = 5", "ttl = 1"))
            .await;
    let (resolver, _child, _dir) = unbound_for(gslb.dns.port()).await;
    let via = |want: String| async move {
        eventually(
            Duration::from_secs(15),
            &format!("unbound to answer {want}"),
            || {
                let want = want.clone();
                async move {
                    let d = dig(resolver, "tke-demo.cn A").await;
                    (d.status == "NOERROR" && d.rdata("A") == vec![want]).then_some(d)
                }
            },
        )
        .await
    };
    let d = via(block.ip(1).to_string()).await;
    assert!(
        d.has_flag("ra") && !d.has_flag("aa"),
        "a resolver's answer: {}",
        d.raw
    );
    assert_eq!(dig(resolver, "nope.tke-demo.cn A").await.status, "NXDOMAIN");

    ingresses[0].stop();
    via(block.ip(2).to_string()).await;
    ingresses[0].resume().await.unwrap();
    via(block.ip(1).to_string()).await;
    gslb.stop().await;
}
