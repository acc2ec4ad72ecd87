//! The admin API: readiness, status, and metrics checked by Prometheus' own tools.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::{Block, Gslb, eventually, free_port, stand_ins, two_cluster_app};

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_status() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    assert_eq!(gslb.get("/healthz").await.0, 200);
    eventually(Duration::from_secs(10), "ready", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    let (code, body) = gslb.get("/api/v1/status").await;
    assert_eq!(code, 200);
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["ready"], true);
    let t = &s["targets"][0];
    assert_eq!(t["app"], "tke-demo.cn");
    assert_eq!(t["cluster"], "guangzhou-01");
    assert_eq!(t["state"], "up");
    assert_eq!(t["vips"][0]["vip"], block.ip(1).to_string());
    assert_eq!(t["vips"][0]["last_probe"]["result"], "success");
    assert!(t["vips"][0]["last_probe"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(
        s["apps"][0]["answer"],
        serde_json::json!([block.ip(1).to_string()])
    );
    assert_eq!(s["apps"][0]["policy"], "failover");
    assert_eq!(gslb.get("/nope").await.0, 404);
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_hold_every_contract_name() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    eventually(Duration::from_secs(10), "ready", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    gslb.dig("tke-demo.cn A").await;
    gslb.dig("+tcp nope.tke-demo.cn AAAA").await;
    let (_, text) = gslb.get("/metrics").await;
    for name in [
        r#"gslb_target_up{app="tke-demo.cn",cluster="guangzhou-01"} 1"#,
        r#"gslb_probe_duration_seconds_bucket{app="tke-demo.cn",cluster="guangzhou-01",kind="http""#,
        r#"gslb_probes_total{app="tke-demo.cn",cluster="guangzhou-02",result="success"}"#,
        r#"gslb_health_transitions_total{app="tke-demo.cn",cluster="guangzhou-01",to="up"} 1"#,
        r#"gslb_app_fail_open{app="tke-demo.cn"} 0"#,
        r#"gslb_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"} 1"#,
        r#"gslb_dns_queries_total{qtype="AAAA",rcode="NXDOMAIN",transport="tcp"} 1"#,
        r#"gslb_build_info{version=""#,
        "# TYPE gslb_answer_changes_total counter",
    ] {
        assert!(text.contains(name), "missing {name} in:\n{text}");
    }
    let mut promtool = match tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            panic!("cannot run promtool ({e}): install it with `apt-get install -y prometheus`")
        }
    };
    let mut stdin = promtool.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = promtool.wait_with_output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics:\n{report}"
    );
    gslb.stop().await;
}

/// A real Prometheus server scrapes gslb and sees the target go down.
#[tokio::test(flavor = "multi_thread")]
async fn a_prometheus_server_scrapes_health_changes() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: gslb\n    static_configs:\n      - targets: ['{}']\n",
            gslb.admin
        ),
    )
    .unwrap();
    let child = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let _child = match child {
        Ok(c) => c,
        Err(e) => {
            panic!("cannot run prometheus ({e}): install it with `apt-get install -y prometheus`")
        }
    };
    let query = |q: &'static str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query?query={q}");
        async move {
            let r = reqwest::Client::builder()
                .no_proxy()
                .build()
                .ok()?
                .get(&url)
                .send()
                .await
                .ok()?;
            let v: serde_json::Value = r.json_or_text().await?;
            let value = v["data"]["result"].as_array()?.first()?["value"][1]
                .as_str()?
                .to_owned();
            Some(value)
        }
    };
    let up = r#"gslb_target_up%7Bcluster%3D%22guangzhou-01%22%7D"#;
    let seen = eventually(
        Duration::from_secs(30),
        "prometheus to scrape gslb_target_up=1",
        || async { query(up).await.filter(|v| v == "1") },
    )
    .await;
    assert_eq!(seen, "1");
    ingresses[0].stop();
    eventually(
        Duration::from_secs(30),
        "prometheus to see gslb_target_up=0",
        || async { query(up).await.filter(|v| v == "0") },
    )
    .await;
    gslb.stop().await;
}

/// reqwest here is built without its `json` feature; parse the text ourselves.
trait JsonOrText {
    async fn json_or_text(self) -> Option<serde_json::Value>;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.text().await.ok()?).ok()
    }
}
