//! Multi-vantage quorum: three gslb instances on loopback (each on its own 127.N.2.k for
//! DNS, admin and the probes' source address), peers of each other through their admin
//! APIs. One of them cannot reach a stand-in ingress (the stand-in resets connections
//! from its address only); a peer is killed; the ingress really fails.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Block, Gslb, eventually, gslb_cli, stand_ins, two_cluster_app};

const TOKEN: &str = "quorum-test-token-0123456789";

/// Starts three instances `gslb-1..3` on `block.instance_ip(1..=3)`, each probing from its
/// own address, each listing all three admin APIs as peers (its own is recognized and
/// ignored). With `token`, every admin API needs it and peers send it.
async fn three_instances(block: &Block, port: u16, token: Option<&std::path::Path>) -> Vec<Gslb> {
    let admins: Vec<SocketAddr> = (1..=3)
        .map(|k| {
            let l = std::net::TcpListener::bind((block.instance_ip(k), 0)).unwrap();
            l.local_addr().unwrap()
        })
        .collect();
    let peers: Vec<String> = admins.iter().map(|a| format!("\"http://{a}\"")).collect();
    let mut all = Vec::new();
    for (k, admin) in (1u8..=3).zip(&admins) {
        let ip = block.instance_ip(k);
        let (server_token, quorum_token) = match token {
            Some(p) => (
                format!("admin_token_file = \"{}\"", p.display()),
                format!("token_file = \"{}\"", p.display()),
            ),
            None => (String::new(), String::new()),
        };
        let text = format!(
            r#"
[server]
dns_listen = ["{ip}:0"]
admin_listen = "{admin}"
probe_source = "{ip}"
{server_token}

[quorum]
instance = "gslb-{k}"
peers = [{peers}]
poll_interval = "100ms"
fresh_within = "1s"
{quorum_token}
{app}"#,
            peers = peers.join(", "),
            app = two_cluster_app(block, port, "failover", ""),
        );
        all.push(Gslb::start_as_written(&text).await);
    }
    all
}

async fn get_json(gslb: &Gslb, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{}{path}", gslb.admin));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// The status entry of `cluster`'s target.
pub(crate) fn target<'a>(status: &'a Value, cluster: &str) -> &'a Value {
    status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["cluster"] == cluster)
        .unwrap()
}

/// `promtool check metrics` accepts the exposition.
async fn promtool_accepts(text: &str) {
    use tokio::io::AsyncWriteExt;
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install -y prometheus)");
    let mut stdin = promtool.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The addresses gslb answers for the app.
pub(crate) async fn answer(gslb: &Gslb) -> Vec<String> {
    gslb.dig("tke-demo.cn A").await.rdata("A")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_reach_an_ingress_is_outvoted_and_all_switch_when_it_fails() {
    let block = Block::new();
    let (mut ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    // gslb-3 cannot reach guangzhou-01's ingress: its probes are reset.
    let blind = block.instance_ip(3);
    ins[0].refuse_from(blind, true);
    let all = three_instances(&block, port, None).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());

    // The blind instance sees guangzhou-01 down on its own, but the quorum says up.
    let status = eventually(Duration::from_secs(20), "gslb-3 outvoted", || async {
        let (_, s) = get_json(&all[2], "/api/v1/status", None).await;
        let t = target(&s, "guangzhou-01");
        let vip = &t["vips"][0];
        (t["own"] == "down" && t["probed"] == "up" && vip["votes"]["views"] == 3).then_some(s)
    })
    .await;
    let t = target(&status, "guangzhou-01");
    assert_eq!(t["state"], "up");
    let vip = &t["vips"][0];
    assert_eq!(
        (vip["own"].clone(), vip["state"].clone()),
        ("down".into(), "up".into()),
        "{t}"
    );
    assert_eq!(vip["votes"]["down"], 1, "{t}");
    assert_eq!(vip["votes"]["needed"], 2, "{t}");
    assert_eq!(status["quorum"]["fresh_views"], 3, "{status}");
    assert_eq!(status["quorum"]["fallback"], false);
    // Each peers list names the instance itself too: recognized, not counted.
    let selves: Vec<&Value> = status["quorum"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["is_self"] == true)
        .collect();
    assert_eq!(selves.len(), 1, "{status}");
    // Its own view, as its peers read it, says down.
    let (code, view) = get_json(&all[2], "/api/v1/view", None).await;
    assert_eq!(code, 200);
    assert_eq!(view["instance"], "gslb-3");
    let own = view["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["cluster"] == "guangzhou-01")
        .unwrap();
    assert_eq!(own["state"], "down", "{view}");
    // What an operator reads.
    let (ok, out, _) = gslb_cli(&format!("http://{}", all[2].admin), &["status"], None).await;
    assert!(ok);
    assert!(out.contains("quorum as gslb-3: 3 fresh views"), "{out}");
    assert!(
        out.contains(&format!(
            "guangzhou-01 {}: up by quorum (1 of 3 fresh views say down, 2 needed); own view down",
            block.ip(1)
        )),
        "{out}"
    );
    let (ok, out, _) = gslb_cli(
        &format!("http://{}", all[2].admin),
        &["explain", "tke-demo.cn"],
        None,
    )
    .await;
    assert!(ok);
    assert!(
        out.contains("up by quorum: 1 of 3 fresh views say down, 2 needed; own view down"),
        "{out}"
    );
    let (_, metrics) = all[2].get("/metrics").await;
    assert!(
        metrics.contains("gslb_quorum_views{fresh=\"true\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gslb_quorum_views{fresh=\"false\"} 0"),
        "{metrics}"
    );
    promtool_accepts(&metrics).await;
    // All three answer with the primary, the blind one included.
    for (k, g) in all.iter().enumerate() {
        let (_, st) = get_json(g, "/api/v1/status", None).await;
        assert_eq!(answer(g).await, vec![one.clone()], "gslb-{}: {st}", k + 1);
    }

    // The ingress really fails: all three switch.
    ins[0].stop();
    for (k, g) in all.iter().enumerate() {
        eventually(
            Duration::from_secs(20),
            &format!("gslb-{} to switch", k + 1),
            || async { (answer(g).await == [two.clone()]).then_some(()) },
        )
        .await;
    }
    // Each switched on a majority; soon every view says down.
    eventually(Duration::from_secs(20), "three views down", || async {
        let (_, s) = get_json(&all[0], "/api/v1/status", None).await;
        (target(&s, "guangzhou-01")["vips"][0]["votes"]["down"] == 3).then_some(())
    })
    .await;

    // It comes back for the two that can reach it: a quorum, so the blind one follows.
    ins[0].resume().await.unwrap();
    for (k, g) in all.iter().enumerate() {
        eventually(
            Duration::from_secs(20),
            &format!("gslb-{} to return", k + 1),
            || async { (answer(g).await == [one.clone()]).then_some(()) },
        )
        .await;
    }
    let (_, s) = get_json(&all[2], "/api/v1/status", None).await;
    assert_eq!(target(&s, "guangzhou-01")["own"], "down", "{s}");
    for g in all {
        g.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_peers_killed_the_others_still_decide_then_fall_back_to_their_own_view() {
    let block = Block::new();
    let (mut ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut all = three_instances(&block, port, Some(&token_file)).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());

    // Views are read with the token: without it, a view is refused.
    let (code, _) = get_json(&all[0], "/api/v1/view", None).await;
    assert_eq!(code, 401);
    let fresh = |n: u32, stale: u32| {
        (
            format!("gslb_quorum_views{{fresh=\"true\"}} {n}\n"),
            format!("gslb_quorum_views{{fresh=\"false\"}} {stale}\n"),
        )
    };
    let metrics = |g: &Gslb| {
        let url = format!("http://{}/metrics", g.admin);
        async move {
            reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap()
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let (f, s) = fresh(3, 0);
    eventually(Duration::from_secs(20), "three fresh views", || async {
        let m = metrics(&all[0]).await;
        (m.contains(&f) && m.contains(&s)).then_some(())
    })
    .await;

    // Kill gslb-3: its view turns stale; the two others decide together.
    all.pop().unwrap().stop().await;
    let (f, s) = fresh(2, 1);
    for g in &all {
        eventually(Duration::from_secs(20), "two fresh views", || async {
            let m = metrics(g).await;
            (m.contains(&f) && m.contains(&s)).then_some(())
        })
        .await;
    }
    ins[0].stop();
    for g in &all {
        eventually(Duration::from_secs(20), "a switch by two views", || async {
            (answer(g).await == [two.clone()]).then_some(())
        })
        .await;
    }
    // A view gslb-3 served while stopping may still arrive: wait for the steady state.
    eventually(Duration::from_secs(20), "two views, both down", || async {
        let (_, st) = get_json(&all[0], "/api/v1/status", Some(TOKEN)).await;
        let votes = target(&st, "guangzhou-01")["vips"][0]["votes"].clone();
        (votes["views"] == 2 && votes["down"] == 2).then_some(())
    })
    .await;

    // Kill gslb-2 too: gslb-1 falls back to its own view, says so, and still decides.
    all.pop().unwrap().stop().await;
    // Metric, status and `gslb status` all say so (polled together: a view gslb-2
    // served while stopping may still arrive and be fresh for a moment).
    let (f, s) = fresh(1, 2);
    let admin = format!("http://{}", all[0].admin);
    eventually(Duration::from_secs(20), "no fresh peer view", || async {
        let m = metrics(&all[0]).await;
        let (_, st) = get_json(&all[0], "/api/v1/status", Some(TOKEN)).await;
        let (ok, out, _) = gslb_cli(&admin, &["status"], Some(TOKEN)).await;
        (m.contains(&f)
            && m.contains(&s)
            && st["quorum"]["fallback"] == true
            && target(&st, "guangzhou-01")["vips"][0]["votes"].is_null()
            && ok
            && out.contains("NO FRESH PEER VIEW"))
        .then_some(())
    })
    .await;
    ins[0].resume().await.unwrap();
    eventually(
        Duration::from_secs(20),
        "a return on its own view",
        || async { (answer(&all[0]).await == [one.clone()]).then_some(()) },
    )
    .await;
    for g in all {
        g.stop().await;
    }
}
