//! The `gslb` binary as a user runs it: check-config, serve, status and the demo.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::harness::{
    Block, Gslb, dig, eventually, free_port, http_get, stand_ins, two_cluster_app,
};

const GSLB: &str = env!("CARGO_BIN_EXE_gslb");

#[tokio::test]
async fn check_config_accepts_the_shipped_configs() {
    for file in ["config/demo.toml", "config/example.toml"] {
        let out = Command::new(GSLB)
            .args(["check-config", file])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    }
}

#[tokio::test]
async fn check_config_reports_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string("config/demo.toml")
        .unwrap()
        .replace(r#"timeout = "800ms""#, r#"timeout = "5s""#)
        .replace(r#"vips = ["127.0.1.2"]"#, r#"vips = ["not-an-ip"]"#);
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(GSLB)
        .arg("check-config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "EX_USAGE");
    let err = String::from_utf8_lossy(&out.stderr);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let file = path.display();
    assert!(
        err.contains(&format!(
            "{file}:{}: cluster[1].vips[0]: `not-an-ip`",
            line_of("not-an-ip")
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:{}: app[0].probe.timeout:",
            line_of("timeout = \"5s\"")
        )),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

#[tokio::test]
async fn serve_answers_and_stops_cleanly_on_sigterm() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let (dns_port, admin_port) = (free_port(), free_port());
    let text = format!(
        "[server]\ndns_listen = [\"127.0.0.1:{dns_port}\"]\nadmin_listen = \"127.0.0.1:{admin_port}\"\n{}",
        two_cluster_app(&block, port, "failover", "")
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gslb.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(GSLB)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let server = format!("127.0.0.1:{dns_port}").parse().unwrap();
    eventually(Duration::from_secs(15), "serve to answer", || async {
        (dig(server, "tke-demo.cn A").await.rdata("A") == vec![block.ip(1).to_string()])
            .then_some(())
    })
    .await;
    let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
    eventually(Duration::from_secs(10), "readiness", || async {
        (http_get(&readyz).await.0 == 200).then_some(())
    })
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}

#[tokio::test]
async fn serve_refuses_a_bad_config_with_ex_usage() {
    let out = Command::new(GSLB)
        .args(["serve", "--config", "/nonexistent.toml"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_prints_targets_and_answers() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    eventually(Duration::from_secs(10), "ready", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let out = Command::new(GSLB)
        .args(["status", "--admin", &format!("http://{}", gslb.admin)])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("guangzhou-01"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(" up ") && row.contains("success"), "{row}");
    let app = text
        .lines()
        .rev()
        .find(|l| l.starts_with("tke-demo.cn"))
        .unwrap();
    assert!(
        app.contains("failover") && app.ends_with(&block.ip(1).to_string()),
        "{app}"
    );
    gslb.stop().await;

    let down = Command::new(GSLB)
        .args(["status", "--admin", "http://127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("is gslb running?"));
}

/// The README's run command: the demo answers, and fails over when told from outside.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_fails_over_from_a_second_terminal() {
    let mut child = Command::new(GSLB)
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let server = "127.0.0.1:15353".parse().unwrap();
    eventually(
        Duration::from_secs(15),
        "the demo to answer 127.0.1.1",
        || async {
            (dig(server, "tke-demo.cn A").await.rdata("A") == vec!["127.0.1.1"]).then_some(())
        },
    )
    .await;
    let post = |path: &'static str| async move {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("http://127.0.0.1:19154{path}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(post("/ingress/guangzhou-01/stop").await, 200);
    eventually(Duration::from_secs(10), "the demo to fail over", || async {
        (dig(server, "tke-demo.cn A").await.rdata("A") == vec!["127.0.1.2"]).then_some(())
    })
    .await;
    assert_eq!(post("/ingress/guangzhou-01/start").await, 200);
    eventually(Duration::from_secs(10), "the demo to come back", || async {
        (dig(server, "tke-demo.cn A").await.rdata("A") == vec!["127.0.1.1"]).then_some(())
    })
    .await;
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let guide = String::from_utf8_lossy(&out.stdout);
    assert!(
        guide.contains("dig @127.0.0.1 -p 15353 tke-demo.cn A"),
        "{guide}"
    );
    assert!(guide.contains("/ingress/guangzhou-01/stop"), "{guide}");
}

/// SIGTERM drops readiness first, keeps answering DNS for `shutdown_delay`, then exits.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drops_readiness_before_dns_stops() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let gslb = crate::harness::ServeProcess::start(
        &dir.path().join("gslb.toml"),
        "shutdown_delay = \"3s\"",
        &two_cluster_app(&block, port, "failover", ""),
    )
    .await;
    let readyz = format!("{}/readyz", gslb.admin_url());
    eventually(Duration::from_secs(10), "ready", || async {
        (http_get(&readyz).await.0 == 200).then_some(())
    })
    .await;
    let pid = gslb.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    eventually(Duration::from_secs(2), "readiness to drop", || async {
        (http_get(&readyz).await.0 == 503).then_some(())
    })
    .await;
    // Not ready, yet still answering.
    assert_eq!(
        dig(gslb.dns, "tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()]
    );
    let mut child = gslb.child;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// SIGHUP and POST /api/v1/reload: a valid config is swapped in without a failed query;
/// an invalid one is rejected with its problems and the old one keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn reload_applies_a_good_config_and_rejects_a_bad_one() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gslb.toml");
    let app = two_cluster_app(&block, port, "failover", "");
    let gslb = crate::harness::ServeProcess::start(&path, "", &app).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let one = vec![block.ip(1).to_string()];
    eventually(Duration::from_secs(10), "the primary", || async {
        (dig(gslb.dns, "tke-demo.cn A").await.rdata("A") == one).then_some(())
    })
    .await;

    // Queries keep flowing while the config changes under them.
    let dns = gslb.dns;
    let load = tokio::spawn(async move {
        let mut failed = 0;
        for _ in 0..60 {
            if dig(dns, "tke-demo.cn A").await.status != "NOERROR" {
                failed += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        failed
    });
    // Swap the priorities and add an app: guangzhou-02 becomes the primary.
    let swapped = text
        .replacen("priority = 1", "priority = 9", 1)
        .replace(
            "[[app]]",
            &format!("[[app]]\nname = \"api.tke-demo.cn\"\npolicy = \"round-robin\"\nprobe = {{ kind = \"tcp\", port = {port} }}\n\n[[app]]"),
        );
    std::fs::write(&path, &swapped).unwrap();
    let pid = gslb.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let two = vec![block.ip(2).to_string()];
    eventually(
        Duration::from_secs(10),
        "the reloaded priorities",
        || async { (dig(gslb.dns, "tke-demo.cn A").await.rdata("A") == two).then_some(()) },
    )
    .await;
    let mut api = dig(gslb.dns, "api.tke-demo.cn A").await.rdata("A");
    api.sort();
    assert_eq!(api.len(), 2, "the new app answers: {api:?}");
    assert_eq!(load.await.unwrap(), 0, "no query failed during the reload");

    // A broken config: rejected over the admin API with its problems; nothing changes.
    std::fs::write(
        &path,
        swapped.replace("policy = \"failover\"", "policy = \"fastest\""),
    )
    .unwrap();
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/reload", gslb.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("unknown policy `fastest`"), "{body}");
    assert_eq!(dig(gslb.dns, "tke-demo.cn A").await.rdata("A"), two);
    let (_, metrics) = http_get(&format!("{}/metrics", gslb.admin_url())).await;
    assert!(
        metrics.contains(r#"gslb_config_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gslb_config_reloads_total{result="failure"} 1"#),
        "{metrics}"
    );
}
