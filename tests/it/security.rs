//! Security: reads behind the admin token (`admin_protect_reads`), request bodies bounded
//! in size, and no secret (the admin token, a kubeconfig's bearer token, a wrong token a
//! client presented) in logs, status, metrics, lists, the state file or the CLI's output.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::apiserver::FakeApi;
use crate::discovery::{app_config, clusternet_hub};
use crate::harness::{
    Block, Gslb, ServeProcess, dig, eventually, free_port, gslb_cli, stand_ins, two_cluster_app,
};

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

/// Runs a CLI command against `admin`; checks whether it succeeded and returns what it
/// printed, named `what`.
async fn run_cli(
    admin: &str,
    what: &str,
    args: &[&str],
    token: Option<&str>,
    expect_ok: bool,
) -> (String, String) {
    let (ok, out, err) = gslb_cli(admin, args, token).await;
    assert_eq!(ok, expect_ok, "{what}: {out}{err}");
    (what.to_owned(), format!("{out}{err}"))
}

/// gslb as a process, logging at debug level to a file, with an admin token (reads
/// protected too) and a Clusternet hub reached with a bearer token: operators set and
/// clear overrides, one presents a wrong token, a drill runs, the hub goes down and comes
/// back, the config is reloaded twice. Neither secret (nor the wrong token) may show
/// anywhere gslb writes or answers.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_logs_status_metrics_or_the_state_file() {
    const ADMIN_SECRET: &str = "adm1n-5ecret-7c1e0f9a2b44d8e3";
    const KUBE_SECRET: &str = "kube-5ecret-5d2b8a61e09f4c7a";
    const WRONG_SECRET: &str = "wr0ng-5ecret-0a9b8c7d6e5f4a3b";
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let (ip1, ip2) = (block.ip(1).to_string(), block.ip(2).to_string());
    let api = FakeApi::start().await;
    clusternet_hub(
        &api,
        &[
            ("guangzhou-01", "aaaa", &ip1),
            ("guangzhou-02", "bbbb", &ip2),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = FakeApi::kubeconfig_with_token(dir.path(), &[("hub", &api)], KUBE_SECRET);
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_SECRET}\n")).unwrap();
    let state = dir.path().join("state.json");
    let log = dir.path().join("gslb.log");
    let path = dir.path().join("gslb.toml");
    ServeProcess::write_config(
        &path,
        &format!(
            "admin_token_file = \"{}\"\nadmin_protect_reads = true\nstate_file = \"{}\"",
            token_file.display(),
            state.display()
        ),
        &app_config(&block, port, &kubeconfig, "clusternet", ""),
    );
    let gslb = ServeProcess::spawn_logged(&path, &log, "debug").await;
    let admin = gslb.admin_url();
    let tf = token_file.display().to_string();
    let read = |p: &str| {
        let url = format!("{admin}{p}");
        async move { get(&url, Some(ADMIN_SECRET)).await.1 }
    };

    eventually(
        Duration::from_secs(20),
        "the VIP read from the hub",
        || async {
            (dig(gslb.dns, "tke-demo.cn A").await.rdata("A") == vec![ip1.clone()]).then_some(())
        },
    )
    .await;
    // The kubeconfig's token is really in use.
    assert!(
        api.authorizations()
            .contains(&format!("Bearer {KUBE_SECRET}")),
        "the hub never saw the kubeconfig's token"
    );
    eventually(Duration::from_secs(20), "ready", || async {
        (get(&format!("{admin}/readyz"), None).await.0 == 200).then_some(())
    })
    .await;

    let mut outputs: Vec<(String, String)> = Vec::new();
    outputs.push(
        run_cli(
            &admin,
            "override set",
            &[
                "override",
                "set",
                "--cluster",
                "guangzhou-02",
                "--kind",
                "drain",
                "--reason",
                "patching",
                "--expires",
                "1h",
                "--token-file",
                &tf,
            ],
            None,
            true,
        )
        .await,
    );
    outputs.push(
        run_cli(
            &admin,
            "override clear with a wrong token",
            &["override", "clear", "--cluster", "guangzhou-02"],
            Some(WRONG_SECRET),
            false,
        )
        .await,
    );
    let (code, body) = post(
        &format!("{admin}/api/v1/overrides"),
        Some(WRONG_SECRET),
        DRAIN,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    outputs.push(("POST with a wrong token".to_owned(), body));
    outputs.push(
        run_cli(
            &admin,
            "override clear",
            &["override", "clear", "--cluster", "guangzhou-02"],
            Some(ADMIN_SECRET),
            true,
        )
        .await,
    );
    outputs.push(
        run_cli(
            &admin,
            "drill run",
            &["drill", "run", "--cluster", "guangzhou-01", "--hold", "1s"],
            Some(ADMIN_SECRET),
            true,
        )
        .await,
    );

    // The hub goes down and comes back: its errors reach status and the log.
    api.set_down(true);
    eventually(Duration::from_secs(20), "discovery down", || async {
        let metrics = read("/metrics").await;
        metrics
            .contains(r#"gslb_discovery_up{source="hub"} 0"#)
            .then_some(())
    })
    .await;
    outputs.push((
        "status while the hub is down".to_owned(),
        read("/api/v1/status").await,
    ));
    outputs.push(
        run_cli(
            &admin,
            "gslb status while the hub is down",
            &["status"],
            Some(ADMIN_SECRET),
            true,
        )
        .await,
    );
    api.set_down(false);
    eventually(Duration::from_secs(20), "discovery back", || async {
        let metrics = read("/metrics").await;
        metrics
            .contains(r#"gslb_discovery_up{source="hub"} 1"#)
            .then_some(())
    })
    .await;

    // Two reloads: through the API, and SIGHUP.
    let (code, body) = post(&format!("{admin}/api/v1/reload"), Some(ADMIN_SECRET), "").await;
    assert_eq!(code, 200, "{body}");
    outputs.push(("POST /api/v1/reload".to_owned(), body));
    let pid = gslb.child.id().unwrap().to_string();
    let hup = tokio::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await
        .unwrap();
    assert!(hup.success());
    eventually(Duration::from_secs(20), "two reloads", || async {
        let metrics = read("/metrics").await;
        metrics
            .contains(r#"gslb_config_reloads_total{result="success"} 2"#)
            .then_some(())
    })
    .await;

    for p in READS.iter().take(6) {
        outputs.push(((*p).to_owned(), read(p).await));
    }
    for args in CLI_READS {
        outputs.push(run_cli(&admin, &args.join(" "), args, Some(ADMIN_SECRET), true).await);
    }
    outputs.push(
        run_cli(
            &admin,
            "status --json",
            &["status", "--json"],
            Some(ADMIN_SECRET),
            true,
        )
        .await,
    );
    outputs.push(
        run_cli(
            &admin,
            "explain --json",
            &["explain", "tke-demo.cn", "--json"],
            Some(ADMIN_SECRET),
            true,
        )
        .await,
    );
    assert!(gslb.terminate().await, "gslb serve did not exit cleanly");

    let state_text = std::fs::read_to_string(&state).unwrap();
    assert!(state_text.contains("\"drills\""), "{state_text}");
    outputs.push(("the state file".to_owned(), state_text));
    let log_text = std::fs::read_to_string(&log).unwrap();
    // The log saw it all, at debug level (kube's own request lines included).
    for line in [
        "DEBUG",
        "requesting",
        "override set",
        "override cleared",
        "drill recorded",
        "discovery API unreachable",
        "config reloaded",
        "stopped",
    ] {
        assert!(log_text.contains(line), "the log lacks {line:?}");
    }
    outputs.push(("the log".to_owned(), log_text));
    for (what, text) in &outputs {
        for secret in [ADMIN_SECRET, KUBE_SECRET, WRONG_SECRET] {
            assert!(!text.contains(secret), "{what} shows the secret {secret}");
        }
    }
}

/// A kubeconfig that does not parse: the parser's message quotes the offending line, here
/// one with a token. gslb says where the problem is, in its log and its status, without
/// the line.
#[tokio::test(flavor = "multi_thread")]
async fn a_kubeconfig_that_does_not_parse_is_reported_without_its_lines() {
    const KUBE_SECRET: &str = "kube-5ecret-3e7f9a0c21b6d458";
    let block = Block::new();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("broken.kubeconfig");
    // `user` written as a string instead of a mapping.
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: hub\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: hub\n  context:\n    cluster: hub\n    user: me\ncurrent-context: hub\nusers:\n- name: me\n  user: \"token: {KUBE_SECRET}\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("gslb.log");
    let path = dir.path().join("gslb.toml");
    ServeProcess::write_config(
        &path,
        "",
        &app_config(&block, 80, &kubeconfig, "clusternet", ""),
    );
    let gslb = ServeProcess::spawn_logged(&path, &log, "debug").await;
    let status = format!("{}/api/v1/status", gslb.admin_url());
    let status = eventually(Duration::from_secs(20), "the source's error", || async {
        let (_, text) = get(&status, None).await;
        text.contains("last_error\":\"").then_some(text)
    })
    .await;
    assert!(status.contains("line 15"), "{status}");
    let (_, printed, _) = gslb_cli(&gslb.admin_url(), &["status"], None).await;
    assert!(gslb.terminate().await);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("cannot set up discovery"), "{log_text}");
    for (what, text) in [
        ("status", &status),
        ("gslb status", &printed),
        ("the log", &log_text),
    ] {
        assert!(
            !text.contains(KUBE_SECRET),
            "{what} quotes the kubeconfig: {text}"
        );
    }
}
