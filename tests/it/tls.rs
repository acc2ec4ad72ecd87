//! HTTPS probes: the probe connects to the VIP but speaks to the app's name, so SNI and
//! the Host header carry the name. A TLS stand-in ingress answers 200 only when both do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::harness::{Block, Gslb, config, eventually, two_clusters};

/// Serves HTTPS on `addr` with a self-signed certificate for `name`; answers 200 when SNI
/// and Host are both `name`, 421 (misdirected) otherwise.
async fn tls_ingress(
    addr: SocketAddr,
    name: &'static str,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while n < buf.len() {
                    match tls.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                let host_ok = request.lines().any(|l| {
                    l.trim() == format!("host: {name}:{}", bound.port())
                        || l.trim() == format!("host: {name}")
                });
                let status = if sni.as_deref() == Some(name) && host_ok {
                    "200 OK"
                } else {
                    "421 Misdirected Request"
                };
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (bound, task)
}

fn https_app(block: &Block, port: u16, host: &str, tls_verify: bool) -> String {
    config(&format!(
        r#"
{clusters}
[[app]]
name = "tke-demo.cn"
probe = {{ kind = "https", port = {port}, host = "{host}", tls_verify = {tls_verify}, interval = "200ms", timeout = "190ms", rise = 1, fall = 1 }}
"#,
        clusters = two_clusters(block),
    ))
}

async fn last_probe(gslb: &Gslb, target: usize) -> Option<(String, String)> {
    let (_, body) = gslb.get("/api/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let p = &v["targets"][target]["vips"][0]["last_probe"];
    Some((
        p["result"].as_str()?.to_owned(),
        p["detail"].as_str()?.to_owned(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn https_probes_send_the_app_name_as_sni_and_host() {
    let block = Block::new();
    let (addr, _t) = tls_ingress(SocketAddr::new(block.ip(1), 0), "tke-demo.cn").await;
    let gslb = Gslb::start(&https_app(&block, addr.port(), "tke-demo.cn", false)).await;
    let (result, detail) = eventually(Duration::from_secs(10), "an HTTPS probe result", || async {
        last_probe(&gslb, 0).await
    })
    .await;
    assert_eq!((result.as_str(), detail.as_str()), ("success", "HTTP 200"));
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_host_name_is_a_failed_probe() {
    let block = Block::new();
    let (addr, _t) = tls_ingress(SocketAddr::new(block.ip(1), 0), "tke-demo.cn").await;
    let gslb = Gslb::start(&https_app(&block, addr.port(), "other.example", false)).await;
    let (result, detail) = eventually(Duration::from_secs(10), "an HTTPS probe result", || async {
        last_probe(&gslb, 0).await
    })
    .await;
    assert_eq!(result, "failure");
    assert!(detail.contains("421"), "{detail}");
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_verified_by_default() {
    let block = Block::new();
    let (addr, _t) = tls_ingress(SocketAddr::new(block.ip(1), 0), "tke-demo.cn").await;
    let gslb = Gslb::start(&https_app(&block, addr.port(), "tke-demo.cn", true)).await;
    let (result, detail) = eventually(Duration::from_secs(10), "an HTTPS probe result", || async {
        last_probe(&gslb, 0).await
    })
    .await;
    assert_eq!(
        result, "failure",
        "a self-signed certificate must not pass: {detail}"
    );
    assert!(detail.to_lowercase().contains("certificate"), "{detail}");
    gslb.stop().await;
}
