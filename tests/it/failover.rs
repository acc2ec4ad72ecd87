//! Failover and recovery as a client sees it: stand-in ingresses go away and come back,
//! and `dig` sees the answer follow.

use std::time::Duration;

use crate::harness::{Block, Gslb, eventually, stand_ins, two_cluster_app};

/// With interval 200ms and fall 2, failover takes well under a second; the limit is
/// generous so a loaded machine does not fail the test.
const LIMIT: Duration = Duration::from_secs(10);

async fn answer(gslb: &Gslb) -> Vec<String> {
    let mut a = gslb.dig("tke-demo.cn A").await.rdata("A");
    a.sort();
    a
}

async fn wait_for_answer(gslb: &Gslb, want: Vec<String>, what: &str) {
    eventually(LIMIT, what, || {
        let want = want.clone();
        async move { (answer(gslb).await == want).then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fails_over_when_the_primary_ingress_dies_and_comes_back() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());
    wait_for_answer(&gslb, vec![one.clone()], "the primary answered").await;

    ingresses[0].stop();
    wait_for_answer(&gslb, vec![two.clone()], "failover to guangzhou-02").await;
    // TCP sees the same answer: one table serves both transports.
    assert_eq!(
        gslb.dig("+tcp tke-demo.cn A").await.rdata("A"),
        vec![two.clone()]
    );

    ingresses[0].resume().await.unwrap();
    wait_for_answer(&gslb, vec![one.clone()], "recovery to guangzhou-01").await;

    let (_, metrics) = gslb.get("/metrics").await;
    assert!(
        metrics.contains(
            r#"gslb_health_transitions_total{app="tke-demo.cn",cluster="guangzhou-01",to="down"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gslb_answer_changes_total{app="tke-demo.cn"} 2"#),
        "{metrics}"
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http_error_status_takes_a_cluster_out() {
    let block = Block::new();
    let (ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    wait_for_answer(&gslb, vec![block.ip(1).to_string()], "the primary").await;
    ingresses[0].set_status(503);
    wait_for_answer(&gslb, vec![block.ip(2).to_string()], "failover on HTTP 503").await;
    let (_, status) = gslb.get("/api/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let probe = &status["targets"][0]["vips"][0]["last_probe"];
    assert_eq!(probe["result"], "failure");
    assert!(probe["detail"].as_str().unwrap().contains("503"), "{probe}");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_healthy_fails_open_and_says_so() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let both = vec![block.ip(1).to_string(), block.ip(2).to_string()];
    wait_for_answer(&gslb, vec![both[0].clone()], "the primary").await;
    for i in &mut ingresses {
        i.stop();
    }
    wait_for_answer(&gslb, both.clone(), "fail-open with every VIP").await;
    let (_, metrics) = gslb.get("/metrics").await;
    assert!(
        metrics.contains(r#"gslb_app_fail_open{app="tke-demo.cn"} 1"#),
        "{metrics}"
    );
    let (_, status) = gslb.get("/api/v1/status").await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["apps"][0]["fail_open"], true);
    assert_eq!(status["targets"][0]["state"], "down");

    ingresses[1].resume().await.unwrap();
    wait_for_answer(
        &gslb,
        vec![both[1].clone()],
        "fail-open ends when a cluster returns",
    )
    .await;
    let (_, metrics) = gslb.get("/metrics").await;
    assert!(
        metrics.contains(r#"gslb_app_fail_open{app="tke-demo.cn"} 0"#),
        "{metrics}"
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_can_be_turned_off() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(
        &block,
        port,
        "failover",
        "fail_open = false",
    ))
    .await;
    wait_for_answer(&gslb, vec![block.ip(1).to_string()], "the primary").await;
    for i in &mut ingresses {
        i.stop();
    }
    wait_for_answer(&gslb, vec![], "an empty answer").await;
    let d = gslb.dig("tke-demo.cn A").await;
    assert_eq!(d.status, "NOERROR", "NODATA, not an error: {}", d.raw);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_rotates_healthy_clusters_between_queries() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "round-robin", "")).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let a = gslb.dig("tke-demo.cn A").await.rdata("A");
        assert_eq!(a.len(), 2);
        firsts.push(a[0].clone());
    }
    assert!(
        firsts.contains(&one) && firsts.contains(&two),
        "order rotates: {firsts:?}"
    );
    ingresses[1].stop();
    wait_for_answer(&gslb, vec![one], "only the healthy cluster").await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_shares_answers_by_weight() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let text = two_cluster_app(&block, port, "weighted", "").replacen(
        "priority = 1",
        "priority = 1\nweight = 3",
        1,
    );
    let gslb = Gslb::start(&text).await;
    // Let health settle so the schedule does not restart mid-count.
    eventually(LIMIT, "readiness", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut one = 0;
    for _ in 0..40 {
        let a = gslb.dig("tke-demo.cn A").await.rdata("A");
        assert_eq!(a.len(), 1, "one cluster per answer");
        if a[0] == block.ip(1).to_string() {
            one += 1;
        }
    }
    assert!(
        (26..=34).contains(&one),
        "3:1 weights gave {one}/40 to the heavier cluster"
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_probes_follow_a_listener() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let text = two_cluster_app(&block, port, "failover", "")
        .replace(r#"kind = "http", port"#, r#"kind = "tcp", port"#)
        .replace(r#"path = "/", "#, "");
    let gslb = Gslb::start(&text).await;
    wait_for_answer(&gslb, vec![block.ip(1).to_string()], "the primary").await;
    ingresses[0].stop();
    wait_for_answer(
        &gslb,
        vec![block.ip(2).to_string()],
        "failover on refused connect",
    )
    .await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_probes_send_the_app_host_and_can_check_the_body() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    // The stand-in echoes the Host header it got; the probe passes only if it sent the app's.
    let text = two_cluster_app(&block, port, "failover", "").replace(
        r#"path = "/","#,
        &format!(r#"path = "/", body_contains = "host=tke-demo.cn:{port}","#),
    );
    let gslb = Gslb::start(&text).await;
    eventually(LIMIT, "a body match", || async {
        let (_, body) = gslb.get("/api/v1/status").await;
        body.contains("body matched").then_some(())
    })
    .await;
    gslb.stop().await;

    let text = two_cluster_app(&block, port, "failover", "").replace(
        r#"path = "/","#,
        r#"path = "/", body_contains = "no such text","#,
    );
    let gslb = Gslb::start(&text).await;
    wait_for_answer(
        &gslb,
        vec![block.ip(1).to_string(), block.ip(2).to_string()],
        "fail-open: no body matches",
    )
    .await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_written_as_an_address_still_probes_the_vip() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    // Nothing listens on 127.0.0.99: the probe must go to each VIP, with that Host header.
    let text = two_cluster_app(&block, port, "failover", "").replace(
        r#"path = "/","#,
        r#"path = "/", host = "127.0.0.99", body_contains = "host=127.0.0.99","#,
    );
    let gslb = Gslb::start(&text).await;
    eventually(LIMIT, "both VIPs to pass", || async {
        let (_, body) = gslb.get("/api/v1/status").await;
        (body.matches("body matched").count() == 2).then_some(())
    })
    .await;
    gslb.stop().await;
}

/// The value of `gslb_health_transitions_total` for guangzhou-01 going `to`.
async fn transitions(gslb: &Gslb, to: &str) -> u64 {
    let (_, metrics) = gslb.get("/metrics").await;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("gslb_health_transitions_total{")
                && l.contains("cluster=\"guangzhou-01\"")
                && l.contains(&format!("to=\"{to}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A backend that fails every other probe never fails `fall = 2` in a row: its state and
/// the answer never move, however long it flaps. Failing every probe does move them, so
/// the pattern, not luck, is what holds the state.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_failing_every_other_probe_never_changes_state() {
    let block = Block::new();
    let (ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());
    wait_for_answer(&gslb, vec![one.clone()], "the primary answered").await;
    let downs = transitions(&gslb, "down").await;

    ingresses[0].set_fail_every(2);
    // About 20 probes at interval 200ms (rechecks after each failure make it more).
    for _ in 0..40 {
        assert_eq!(answer(&gslb).await, vec![one.clone()], "the answer moved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(transitions(&gslb, "down").await, downs, "the state moved");

    ingresses[0].set_fail_every(1);
    wait_for_answer(&gslb, vec![two], "failover once every probe fails").await;
    assert!(transitions(&gslb, "down").await > downs);
    gslb.stop().await;
}
