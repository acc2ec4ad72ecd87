//! Security: request bodies bounded in size.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Block, Gslb, stand_ins, two_cluster_app};

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
