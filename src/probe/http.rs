//! The HTTP(S) probe: GET the app's path from one VIP, with the app's Host header (and,
//! for HTTPS, its SNI), and check the status and optionally the body.
//!
//! Every probe opens a fresh connection, as a new client would, speaks HTTP/1.1 on it with
//! `Connection: close`, and closes it with a reset (no TIME_WAIT left behind, as the TCP
//! probe does). Nothing is kept per endpoint but the address, the request line and the
//! expectations: the TLS client settings (crypto provider, the platform's root store) are
//! built once per process and shared by every probe, so that thousands of HTTPS targets
//! do not each load the root certificates.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{CONNECTION, HOST, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::health::Outcome;
use crate::model::ProbeKind;

/// Most of the body read when looking for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

const AGENT: &str = concat!("gslb-probe/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct HttpCheck {
    addr: SocketAddr,
    /// The local address to connect from (`[server] probe_source`).
    source: Option<IpAddr>,
    /// For HTTPS: the client settings and the name sent as SNI and checked in the
    /// certificate.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The Host header: the app's name, with the port when it is not the scheme's own.
    host: HeaderValue,
    path: String,
    expect: RangeInclusive<u16>,
    body_contains: Option<String>,
}

impl HttpCheck {
    /// Prepares the check of `vip`.
    ///
    /// # Errors
    ///
    /// When `kind` is not an HTTP probe, the host cannot be a Host header or an SNI name,
    /// or the TLS settings cannot be built (the platform's root store cannot be read).
    pub fn new(kind: &ProbeKind, vip: IpAddr, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let ProbeKind::Http {
            https,
            port,
            path,
            host,
            expect_status,
            body_contains,
            tls_verify,
        } = kind
        else {
            anyhow::bail!("not an HTTP probe");
        };
        // Connect to the VIP while speaking to the app's host name: the Host header and
        // SNI carry the name, the socket goes to the VIP.
        let default_port = if *https { 443 } else { 80 };
        let literal = host.parse::<IpAddr>().ok();
        let mut authority = match literal {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host.clone(),
        };
        if *port != default_port {
            authority = format!("{authority}:{port}");
        }
        let tls = if *https {
            let name = ServerName::try_from(host.clone())
                .map_err(|e| anyhow::anyhow!("{host:?} cannot be sent as SNI: {e}"))?;
            Some((tls_config(*tls_verify)?, name))
        } else {
            None
        };
        Ok(Self {
            addr: SocketAddr::new(vip, *port),
            source,
            tls,
            host: HeaderValue::from_str(&authority)
                .map_err(|e| anyhow::anyhow!("{authority:?} cannot be a Host header: {e}"))?,
            path: path.clone(),
            expect: expect_status.clone(),
            body_contains: body_contains.clone(),
        })
    }

    /// One probe. The caller bounds it with the probe's timeout.
    pub async fn run(&self) -> (Outcome, String) {
        let stream = match super::tcp::connect(self.addr, self.source).await {
            Ok(s) => s,
            Err(e) => return (Outcome::Failure, e.to_string()),
        };
        // Reset on close, as the TCP probe does; Nagle would only delay the request.
        let _ = stream.set_zero_linger();
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => self.exchange(stream).await,
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                match connector.connect(name.clone(), stream).await {
                    Ok(tls) => self.exchange(tls).await,
                    Err(e) => (Outcome::Failure, super::root_cause(&e)),
                }
            }
        }
    }

    /// Sends the GET on an open connection and judges the response.
    async fn exchange<S>(&self, io: S) -> (Outcome, String)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = match hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(
            TokioIo::new(io),
        )
        .await
        {
            Ok(pair) => pair,
            Err(e) => return (Outcome::Failure, super::root_cause(&e)),
        };
        let request = hyper::Request::get(self.path.as_str())
            .header(HOST, self.host.clone())
            .header(USER_AGENT, AGENT)
            .header(CONNECTION, "close")
            .body(Empty::new());
        let request = match request {
            Ok(r) => r,
            Err(e) => return (Outcome::Failure, format!("bad request: {e}")),
        };
        let judged = async {
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) => return (Outcome::Failure, super::root_cause(&e)),
            };
            self.judge(response).await
        };
        // The connection is driven here, next to the request, rather than in a task of its
        // own: it ends with the exchange, and dropping it closes the socket.
        let mut conn = std::pin::pin!(conn);
        let mut judged = std::pin::pin!(judged);
        let mut conn_done = false;
        loop {
            tokio::select! {
                biased;
                result = &mut judged => return result,
                end = &mut conn, if !conn_done => {
                    conn_done = true;
                    if let Err(e) = end {
                        return (Outcome::Failure, super::root_cause(&e));
                    }
                }
            }
        }
    }

    async fn judge(&self, response: hyper::Response<hyper::body::Incoming>) -> (Outcome, String) {
        let status = response.status().as_u16();
        if !self.expect.contains(&status) {
            return (
                Outcome::Failure,
                format!(
                    "HTTP {status}, expected {}-{}",
                    self.expect.start(),
                    self.expect.end()
                ),
            );
        }
        let Some(needle) = &self.body_contains else {
            return (Outcome::Success, format!("HTTP {status}"));
        };
        let mut body = response.into_body();
        let mut seen = Vec::new();
        while seen.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        seen.extend_from_slice(data);
                    }
                }
                Some(Err(e)) => return (Outcome::Failure, super::root_cause(&e)),
                None => break,
            }
        }
        seen.truncate(MAX_BODY);
        if String::from_utf8_lossy(&seen).contains(needle.as_str()) {
            (Outcome::Success, format!("HTTP {status}, body matched"))
        } else {
            (
                Outcome::Failure,
                format!("HTTP {status}, body lacks {needle:?}"),
            )
        }
    }
}

/// The process's TLS client settings for probes, verifying certificates against the
/// platform's roots or (with `tls_verify = false`) accepting any certificate; built on
/// first use and shared by every probe.
fn tls_config(verify: bool) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    static VERIFYING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    static TRUSTING: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let cell = if verify { &VERIFYING } else { &TRUSTING };
    cell.get_or_init(|| build_tls_config(verify).map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot set up TLS for probes: {e}"))
}

fn build_tls_config(verify: bool) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = if verify {
        let verifier = rustls_platform_verifier::Verifier::new(provider)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// `tls_verify = false`: any certificate is accepted (the handshake signatures are still
/// checked, so the connection is TLS with whoever holds the presented key).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(https: bool, port: u16, host: &str) -> ProbeKind {
        ProbeKind::Http {
            https,
            port,
            path: "/healthz".into(),
            host: host.into(),
            expect_status: 200..=399,
            body_contains: None,
            tls_verify: true,
        }
    }

    fn host_header(https: bool, port: u16, host: &str) -> String {
        let check = HttpCheck::new(&kind(https, port, host), "127.0.1.1".parse().unwrap(), None);
        check.unwrap().host.to_str().unwrap().to_owned()
    }

    #[test]
    fn the_host_header_names_the_port_only_when_it_is_not_the_schemes_own() {
        assert_eq!(host_header(false, 80, "tke-demo.cn"), "tke-demo.cn");
        assert_eq!(host_header(false, 8080, "tke-demo.cn"), "tke-demo.cn:8080");
        assert_eq!(host_header(true, 443, "tke-demo.cn"), "tke-demo.cn");
        assert_eq!(host_header(true, 80, "tke-demo.cn"), "tke-demo.cn:80");
        assert_eq!(host_header(false, 80, "2001:db8::1"), "[2001:db8::1]");
        assert_eq!(host_header(false, 81, "192.0.2.1"), "192.0.2.1:81");
    }

    #[test]
    fn every_https_probe_shares_one_tls_setup() {
        let a = HttpCheck::new(
            &kind(true, 443, "a.test"),
            "127.0.1.1".parse().unwrap(),
            None,
        );
        let b = HttpCheck::new(
            &kind(true, 443, "b.test"),
            "127.0.1.2".parse().unwrap(),
            None,
        );
        let (a, b) = (a.unwrap().tls.unwrap(), b.unwrap().tls.unwrap());
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a.1.to_str(), "a.test");
    }

    #[test]
    fn a_host_that_cannot_be_a_header_is_refused_with_its_name() {
        let err = HttpCheck::new(
            &kind(false, 80, "bad\nhost"),
            "127.0.1.1".parse().unwrap(),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Host header"), "{err}");
    }
}
