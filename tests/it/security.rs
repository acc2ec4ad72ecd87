//! Security: reads behind the admin token (`admin_protect_reads`), and request bodies
//! bounded in size.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Block, Gslb, eventually, free_port, gslb_cli, stand_ins, two_cluster_app};

const TOKEN: &str = "reads-and-writes-token-0123456789";

/// Every read of the admin API, and a path that does not exist.
const READS: [&str; 7] = [
    "/api/v1/status",
    "/metrics",
    "/api/v1/overrides",
    "/api/v1/explain?name=tke-demo.cn&type=A",
    "/api/v1/drills",
    "/api/v1/drills/plan?cluster=guangzhou-01",
    "/nope",
];

/// The CLI commands that only read.
const CLI_READS: [&[&str]; 5] = [
    &["status"],
    &["explain", "tke-demo.cn"],
    &["override", "list"],
    &["drill", "plan", "--cluster", "guangzhou-01"],
    &["drill", "list"],
];

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut rb = http().get(url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(url: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut rb = http()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

const DRAIN: &str = r#"{"cluster":"guangzhou-02","kind":"drain","reason":"patching"}"#;

/// `[server]` with the admin token in a file of `dir`, and `admin_protect_reads`.
fn with_token(dir: &Path, protect_reads: bool, rest: &str) -> String {
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    format!(
        "[server]\nadmin_token_file = \"{}\"\nadmin_protect_reads = {protect_reads}\n{rest}",
        token_file.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_reads_need_the_token_and_probes_never_do() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let gslb = Gslb::start(&with_token(
        dir.path(),
        true,
        &two_cluster_app(&block, port, "failover", ""),
    ))
    .await;
    let base = format!("http://{}", gslb.admin);
    // Kubelets and load balancers carry no token.
    assert_eq!(get(&format!("{base}/healthz"), None).await.0, 200);
    eventually(
        Duration::from_secs(10),
        "ready, asked without a token",
        || {
            let url = format!("{base}/readyz");
            async move { (get(&url, None).await.0 == 200).then_some(()) }
        },
    )
    .await;
    for path in READS {
        let url = format!("{base}{path}");
        let (code, body) = get(&url, None).await;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(
            body.contains("a bearer token is required"),
            "{path}: {body}"
        );
        let (code, body) = get(&url, Some("not-the-token-not-the-token")).await;
        assert_eq!(code, 403, "{path}: {body}");
        let want = if path == "/nope" { 404 } else { 200 };
        assert_eq!(get(&url, Some(TOKEN)).await.0, want, "{path}");
    }
    // Mutating calls behave as before.
    let overrides = format!("{base}/api/v1/overrides");
    assert_eq!(post(&overrides, None, DRAIN).await.0, 401);
    assert_eq!(
        post(&overrides, Some("not-the-token-not-the-token"), DRAIN)
            .await
            .0,
        403
    );
    assert_eq!(post(&overrides, Some(TOKEN), DRAIN).await.0, 201);

    // The CLI: without a token it says how to give one; --token-file and GSLB_TOKEN work.
    let (ok, _, err) = gslb_cli(&base, &["status"], None).await;
    assert!(!ok && err.contains("--token-file"), "{err}");
    let token_file = dir.path().join("admin-token").display().to_string();
    for args in CLI_READS {
        let mut with_file = args.to_vec();
        with_file.extend(["--token-file", &token_file]);
        let (ok, out, err) = gslb_cli(&base, &with_file, None).await;
        assert!(ok, "{args:?} --token-file: {out}{err}");
        let (ok, out, err) = gslb_cli(&base, args, Some(TOKEN)).await;
        assert!(ok, "{args:?} with GSLB_TOKEN: {out}{err}");
    }
    let (_, status, _) = gslb_cli(&base, &["status"], Some(TOKEN)).await;
    assert!(status.contains("down(drain)"), "{status}");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_protected_reads_reads_stay_open() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let gslb = Gslb::start(&with_token(
        dir.path(),
        false,
        &two_cluster_app(&block, port, "failover", ""),
    ))
    .await;
    let base = format!("http://{}", gslb.admin);
    for path in READS {
        let url = format!("{base}{path}");
        let want = if path == "/nope" { 404 } else { 200 };
        assert_eq!(get(&url, None).await.0, want, "{path}");
        // A read ignores the header, whatever it holds.
        assert_eq!(get(&url, Some("not-the-token-not-the-token")).await.0, want);
        assert_eq!(get(&url, Some(TOKEN)).await.0, want, "{path}");
    }
    let overrides = format!("{base}/api/v1/overrides");
    assert_eq!(post(&overrides, None, DRAIN).await.0, 401);
    assert_eq!(post(&overrides, Some(TOKEN), DRAIN).await.0, 201);
    // The CLI sends its token on reads too, and that is fine here; without one it reads.
    for args in CLI_READS {
        let (ok, out, err) = gslb_cli(&base, args, Some(TOKEN)).await;
        assert!(ok, "{args:?} with a token: {out}{err}");
        let (ok, out, err) = gslb_cli(&base, args, None).await;
        assert!(ok, "{args:?} without a token: {out}{err}");
    }
    gslb.stop().await;
}

/// A real Prometheus scrapes a gslb with protected reads as the README says: with
/// `authorization.credentials_file`. A job without it gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_protected_metrics_with_a_credentials_file() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let dir = tempfile::tempdir().unwrap();
    let gslb = Gslb::start(&with_token(
        dir.path(),
        true,
        &two_cluster_app(&block, port, "failover", ""),
    ))
    .await;
    let prom_port = free_port();
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: gslb
    authorization:
      type: Bearer
      credentials_file: {token}
    static_configs:
      - targets: ['{admin}']
  - job_name: gslb-without-token
    static_configs:
      - targets: ['{admin}']
"#,
        token = dir.path().join("admin-token").display(),
        admin = gslb.admin,
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let _prometheus = tokio::process::Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run prometheus ({e}): install it with `apt-get install -y prometheus`")
        });
    let query = |q: &'static str| {
        let url = format!("http://127.0.0.1:{prom_port}/api/v1/query");
        async move {
            let r = http().get(&url).query(&[("query", q)]).send().await.ok()?;
            let v: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
            let value = v["data"]["result"].as_array()?.first()?["value"][1]
                .as_str()?
                .to_owned();
            Some(value)
        }
    };
    eventually(
        Duration::from_secs(30),
        "prometheus to scrape gslb_target_up with the token",
        || async {
            query(r#"gslb_target_up{job="gslb",cluster="guangzhou-01"}"#)
                .await
                .filter(|v| v == "1")
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the job without a token to fail its scrapes",
        || async {
            query(r#"up{job="gslb-without-token"}"#)
                .await
                .filter(|v| v == "0")
        },
    )
    .await;
    assert_eq!(
        query(r#"up{job="gslb"}"#).await.as_deref(),
        Some("1"),
        "the job with the token scrapes"
    );
    gslb.stop().await;
}

/// Sends `head` and then `body` on a fresh connection and returns the response (status
/// line, headers and body), read as far as its `Content-Length` says.
async fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let read = async {
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
                let length = headers
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if rest.len() >= length {
                    return text;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return text,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
    };
    // Not a time bound on gslb: only a guard so that a server waiting for the rest of
    // the body fails the test instead of hanging it.
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("an answer before the announced body was sent")
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_without_being_read() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let base = format!("http://{}", gslb.admin);
    for path in ["/api/v1/overrides", "/api/v1/drills", "/api/v1/reload"] {
        // 10 MiB announced, none of it sent: the answer comes from the headers alone.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: gslb\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            10 << 20
        );
        let response = raw_exchange(gslb.admin, &head, b"").await;
        assert!(response.starts_with("HTTP/1.1 413"), "{path}: {response}");
        assert!(response.contains("limited to 64 KiB"), "{path}: {response}");
    }
    for path in ["/api/v1/overrides", "/api/v1/drills"] {
        // No length announced (chunked): a chunk of 1 MiB, of which one byte more than
        // the limit is sent. It is refused once that byte is read.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: gslb\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            1 << 20
        );
        let body = vec![b' '; 64 * 1024 + 1];
        let response = raw_exchange(gslb.admin, &head, &body).await;
        assert!(response.starts_with("HTTP/1.1 413"), "{path}: {response}");
    }
    // Nothing was applied, and gslb serves as before.
    assert_eq!(get(&format!("{base}/api/v1/overrides"), None).await.1, "[]");
    assert_eq!(
        post(&format!("{base}/api/v1/overrides"), None, DRAIN)
            .await
            .0,
        201
    );
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![block.ip(1).to_string()]
    );
    gslb.stop().await;
}
