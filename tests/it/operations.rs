//! Operations: overrides, the guard rail, tokens, restarts (kill -9 included), explain,
//! and drills measured through gslb and through a real recursive resolver.

use std::time::Duration;

use crate::harness::{
    Block, Gslb, ServeProcess, dig, eventually, gslb_cli, http_get, stand_ins, two_cluster_app,
};

async fn answer(server: std::net::SocketAddr) -> Vec<String> {
    let mut a = dig(server, "tke-demo.cn A").await.rdata("A");
    a.sort();
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_reports_switch_and_return_and_leaves_nothing_behind() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let path = dir.path().join("gslb.toml");
    let gslb = ServeProcess::start(
        &path,
        &format!("state_file = \"{}\"", state.display()),
        &two_cluster_app(&block, port, "failover", ""),
    )
    .await;
    let admin = gslb.admin_url();
    eventually(Duration::from_secs(10), "the primary", || async {
        (answer(gslb.dns).await == vec![block.ip(1).to_string()]).then_some(())
    })
    .await;

    let (ok, plan, err) = gslb_cli(
        &admin,
        &["drill", "plan", "--cluster", "guangzhou-01"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        plan.contains(&format!("[{}] -> [{}]", block.ip(1), block.ip(2)))
            && plan.contains("fails over"),
        "{plan}"
    );

    let (ok, out, err) = gslb_cli(
        &admin,
        &[
            "drill",
            "run",
            "--cluster",
            "guangzhou-01",
            "--hold",
            "500ms",
            "--expect-within",
            "10s",
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{out}\n{err}");
    let record: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["passed"], true, "{out}");
    for key in [
        "injected_at",
        "gslb_switched_at",
        "restored_at",
        "returned_at",
    ] {
        assert!(record[key].is_string(), "{key} missing: {out}");
    }
    assert_eq!(
        record["during"][0]["addresses"],
        serde_json::json!([block.ip(2).to_string()])
    );
    assert!(err.contains("gslb switched after"), "live progress: {err}");

    // Nothing left behind: no override, the primary answers again.
    let (_, overrides) = http_get(&format!("{admin}/api/v1/overrides")).await;
    assert_eq!(overrides, "[]");
    assert_eq!(answer(gslb.dns).await, vec![block.ip(1).to_string()]);
    // The drill is kept (state file) and counted.
    let (ok, list, _) = gslb_cli(&admin, &["drill", "list"], None).await;
    assert!(
        ok && list.contains("drill of cluster guangzhou-01") && list.contains("PASSED"),
        "{list}"
    );
    let (_, metrics) = http_get(&format!("{admin}/metrics")).await;
    assert!(
        metrics.contains(r#"gslb_drills_total{result="passed"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("gslb_drill_switch_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_rail_refuses_a_drill_that_empties_an_app() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let admin = format!("http://{}", gslb.admin);
    ingresses[1].stop();
    eventually(Duration::from_secs(10), "guangzhou-02 down", || async {
        let (_, s) = gslb.get("/api/v1/status").await;
        let v: serde_json::Value = serde_json::from_str(&s).ok()?;
        (v["targets"][1]["state"] == "down").then_some(())
    })
    .await;
    let (ok, out, err) =
        gslb_cli(&admin, &["drill", "run", "--cluster", "guangzhou-01"], None).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains("would leave `tke-demo.cn` with no healthy cluster")
            && err.contains("--force"),
        "{err}"
    );
    let (_, overrides) = gslb.get("/api/v1/overrides").await;
    assert_eq!(overrides, "[]", "a refused drill leaves no override");
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()]
    );
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_is_enforced_on_mutating_calls() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "correct-horse-battery-staple\n").unwrap();
    let gslb = ServeProcess::start(
        &dir.path().join("gslb.toml"),
        &format!("admin_token_file = \"{}\"", token_file.display()),
        &two_cluster_app(&block, port, "failover", ""),
    )
    .await;
    let url = format!("{}/api/v1/overrides", gslb.admin_url());
    let body = r#"{"cluster":"guangzhou-02","kind":"drain","reason":"patching"}"#;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |auth: Option<&'static str>| {
        let mut rb = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            rb = rb.header("authorization", a);
        }
        async move { rb.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("Bearer wrong")).await, 403);
    assert_eq!(post(Some("Bearer correct-horse-battery-staple")).await, 201);
    // Reading needs no token.
    assert_eq!(http_get(&url).await.0, 200);
    // The CLI: without a token it says how to give one; --token-file and GSLB_TOKEN work.
    let admin = gslb.admin_url();
    let (ok, _, err) = gslb_cli(
        &admin,
        &["override", "clear", "--cluster", "guangzhou-02"],
        None,
    )
    .await;
    assert!(!ok && err.contains("--token-file"), "{err}");
    let tf = token_file.display().to_string();
    let (ok, out, err) = gslb_cli(
        &admin,
        &[
            "override",
            "clear",
            "--cluster",
            "guangzhou-02",
            "--token-file",
            &tf,
        ],
        None,
    )
    .await;
    assert!(ok && out.contains("cleared drain override"), "{out}{err}");
    let (ok, _, err) = gslb_cli(
        &admin,
        &[
            "override",
            "set",
            "--cluster",
            "guangzhou-02",
            "--kind",
            "drain",
            "--reason",
            "x",
        ],
        Some("correct-horse-battery-staple"),
    )
    .await;
    assert!(ok, "{err}");
    // The token never shows in status or metrics.
    for path in ["/api/v1/status", "/metrics", "/api/v1/overrides"] {
        let (_, text) = http_get(&format!("{admin}{path}")).await;
        assert!(!text.contains("correct-horse"), "{path} leaks the token");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overrides_and_health_survive_kill_9() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let path = dir.path().join("gslb.toml");
    // Slow to change its mind (rise 3 at 1 s) so a restored state is visible after restart.
    let app = two_cluster_app(&block, port, "round-robin", "").replace(
        r#"interval = "200ms", timeout = "150ms", rise = 2"#,
        r#"interval = "1s", timeout = "500ms", rise = 3"#,
    );
    let gslb = ServeProcess::start(
        &path,
        &format!("state_file = \"{}\"", state.display()),
        &app,
    )
    .await;
    let admin = gslb.admin_url();
    let both = vec![block.ip(1).to_string(), block.ip(2).to_string()];
    eventually(Duration::from_secs(10), "both clusters", || async {
        (answer(gslb.dns).await == both).then_some(())
    })
    .await;
    let (ok, _, err) = gslb_cli(
        &admin,
        &[
            "override",
            "set",
            "--cluster",
            "guangzhou-02",
            "--kind",
            "drain",
            "--reason",
            "kernel upgrade",
            "--expires",
            "1h",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    ingresses[0].stop();
    eventually(Duration::from_secs(15), "guangzhou-01 down", || async {
        let (_, s) = http_get(&format!("{admin}/api/v1/status")).await;
        s.contains(r#""cluster":"guangzhou-01","region":"ap-guangzhou","state":"down""#)
            .then_some(())
    })
    .await;
    gslb.kill9().await;

    // Back up with the ingress healthy again: probes alone would answer guangzhou-01 at once.
    ingresses[0].resume().await.unwrap();
    let gslb = ServeProcess::spawn(&path).await;
    let admin = gslb.admin_url();
    let (_, list) = http_get(&format!("{admin}/api/v1/overrides")).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["cluster"], "guangzhou-02");
    assert_eq!(list[0]["reason"], "kernel upgrade");
    assert!(list[0]["expires_at"].is_string());
    // Last known health is served at once: guangzhou-01 was down, guangzhou-02 drained,
    // so the app fails open on both rather than answering a stale "healthy" cluster.
    let (_, s) = http_get(&format!("{admin}/api/v1/status")).await;
    let s: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(
        s["targets"][0]["state"], "down",
        "restored, not unknown: {s}"
    );
    assert_eq!(s["targets"][1]["override"]["kind"], "drain");
    // And once guangzhou-01 passes rise probes, it alone is answered (02 stays drained).
    eventually(Duration::from_secs(15), "guangzhou-01 back", || async {
        (answer(gslb.dns).await == vec![block.ip(1).to_string()]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_state_file_does_not_stop_the_server() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, b"{\"format\": 1, \"saved_at\": trunc").unwrap();
    let gslb = ServeProcess::start(
        &dir.path().join("gslb.toml"),
        &format!("state_file = \"{}\"", state.display()),
        &two_cluster_app(&block, port, "failover", ""),
    )
    .await;
    eventually(Duration::from_secs(10), "answers from probes", || async {
        (answer(gslb.dns).await == vec![block.ip(1).to_string()]).then_some(())
    })
    .await;
    assert!(
        dir.path().join("state.json.corrupt").exists(),
        "the bad file is kept aside"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_override_expires_by_itself() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let admin = format!("http://{}", gslb.admin);
    let (ok, _, err) = gslb_cli(
        &admin,
        &[
            "override",
            "set",
            "--cluster",
            "guangzhou-01",
            "--kind",
            "fail",
            "--reason",
            "short",
            "--expires",
            "1s",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![block.ip(2).to_string()]
    );
    eventually(
        Duration::from_secs(10),
        "the override to lift itself",
        || async {
            (gslb.dig("tke-demo.cn A").await.rdata("A") == vec![block.ip(1).to_string()])
                .then_some(())
        },
    )
    .await;
    assert_eq!(gslb.get("/api/v1/overrides").await.1, "[]");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_says_why_each_cluster_is_in_or_out() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let admin = format!("http://{}", gslb.admin);
    eventually(Duration::from_secs(10), "ready", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (ok, out, err) = gslb_cli(&admin, &["explain", "tke-demo.cn"], None).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("+ guangzhou-01") && out.contains("best healthy priority tier"),
        "{out}"
    );
    assert!(
        out.contains("- guangzhou-02") && out.contains("standby"),
        "{out}"
    );
    assert!(
        out.contains(&format!("tke-demo.cn. 5 IN A {}", block.ip(1))),
        "{out}"
    );
    ingresses[0].stop();
    eventually(
        Duration::from_secs(10),
        "explain to show the failure",
        || async {
            let (_, out, _) = gslb_cli(&admin, &["explain", "tke-demo.cn", "--json"], None).await;
            let v: serde_json::Value = serde_json::from_str(&out).ok()?;
            let c = &v["app"]["clusters"][0];
            (c["in_answer"] == false && c["vips"][0]["last_probe"].as_str()?.contains("refused"))
                .then_some(())
        },
    )
    .await;
    let (_, out, _) = gslb_cli(
        &admin,
        &["explain", "nothing.tke-demo.cn", "--type", "AAAA"],
        None,
    )
    .await;
    assert!(out.contains("nxdomain") && out.contains("SOA"), "{out}");
    gslb.stop().await;
}

/// A drill watched through unbound: the resolver holds the answer no longer than the
/// app's TTL, and the report says when the resolver switched, never before gslb did.
/// (How long the switch takes is measured by `bench/ttl_failover.sh`, not asserted here.)
#[tokio::test(flavor = "multi_thread")]
async fn a_drill_through_a_resolver_reports_the_resolver_switch_after_gslb() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let ttl = 2;
    let gslb = Gslb::start(
        &two_cluster_app(&block, port, "failover", "").replace("ttl = 5", &format!("ttl = {ttl}")),
    )
    .await;
    let (resolver, _unbound, _dir) = crate::resolver::unbound_for(gslb.dns.port()).await;
    eventually(Duration::from_secs(15), "unbound to answer", || async {
        (dig(resolver, "tke-demo.cn A").await.rdata("A") == vec![block.ip(1).to_string()])
            .then_some(())
    })
    .await;
    // What unbound hands to clients is capped by the app's TTL: that is what bounds the
    // time a client stays on a dead cluster.
    let cached = dig(resolver, "tke-demo.cn A").await;
    for line in &cached.answer {
        let left: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(
            left <= ttl,
            "the resolver holds it longer than the TTL: {line}"
        );
    }
    let admin = format!("http://{}", gslb.admin);
    let (ok, out, err) = gslb_cli(
        &admin,
        &[
            "drill",
            "run",
            "--cluster",
            "guangzhou-01",
            "--hold",
            "0s",
            "--resolver",
            &resolver.to_string(),
            "--json",
        ],
        None,
    )
    .await;
    assert!(ok, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    let at = |k: &str| {
        gslb::rfc3339::parse(r[k].as_str().unwrap_or_else(|| panic!("{k}: {out}"))).unwrap()
    };
    let injected = at("injected_at");
    let gslb_switch = at("gslb_switched_at").duration_since(injected).unwrap();
    let resolver_switch = at("resolver_switched_at").duration_since(injected).unwrap();
    assert!(resolver_switch >= gslb_switch, "{out}");
    eprintln!("resolver switched {resolver_switch:?} after the fault, gslb {gslb_switch:?}");
    assert!(r["resolver_returned_at"].is_string(), "{out}");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_never_touches_an_operator_override() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "round-robin", "")).await;
    let admin = format!("http://{}", gslb.admin);
    let (ok, _, err) = gslb_cli(
        &admin,
        &[
            "override",
            "set",
            "--cluster",
            "guangzhou-02",
            "--kind",
            "drain",
            "--reason",
            "node upgrade",
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = gslb_cli(&admin, &["drill", "run", "--cluster", "guangzhou-02"], None).await;
    assert!(!ok && err.contains("already has a drain override"), "{err}");
    let (_, list) = gslb.get("/api/v1/overrides").await;
    assert!(
        list.contains("node upgrade"),
        "the drain is still there: {list}"
    );
    gslb.stop().await;
}
