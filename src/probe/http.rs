//! The HTTP(S) probe: GET the app's path from one VIP, with the app's Host header (and,
//! for HTTPS, its SNI), and check the status and optionally the body.
//!
//! Every probe opens a fresh connection, as a new client would, speaks HTTP/1.1 on it with
//! `Connection: close`, and closes it with a reset (no TIME_WAIT left behind, as the TCP
//! probe does). Nothing is kept per endpoint but the address, the request's bytes and the
//! expectations: the TLS client settings (crypto provider, the platform's root store) are
//! built once per process and shared by every probe, so that thousands of HTTPS targets
//! do not each load the root certificates.
//!
//! The exchange is one request written whole and one response read: the head is parsed
//! with `httparse` (hyper's parser), informational (1xx) heads skipped, and the body read
//! only to look for `body_contains`, framed by `Transfer-Encoding: chunked`,
//! `Content-Length` or the end of the connection (RFC 9112 section 6.3). A full HTTP
//! client (hyper's, used before) set up a dispatch channel and 8 KiB buffers for every
//! probe: five times the instructions of this, most of them in the allocator.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::health::Outcome;
use crate::model::ProbeKind;

/// Most of the body read when looking for `body_contains`.
const MAX_BODY: usize = 64 * 1024;
/// Most of a response head read: the status line and headers, with any 1xx heads before
/// them.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in one response head (hyper's limit too).
const MAX_HEADERS: usize = 100;

const AGENT: &str = concat!("gslb-probe/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct HttpCheck {
    addr: SocketAddr,
    /// The local address to connect from (`[server] probe_source`).
    source: Option<IpAddr>,
    /// For HTTPS: the client settings and the name sent as SNI and checked in the
    /// certificate.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The whole request: `GET`, the path, and the Host (the app's name, with the port
    /// when it is not the scheme's own), User-Agent and Connection headers.
    request: Arc<[u8]>,
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
            request: request(path, &authority)?,
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
    async fn exchange<S>(&self, mut io: S) -> (Outcome, String)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let sent = async {
            io.write_all(&self.request).await?;
            io.flush().await
        };
        if let Err(e) = sent.await {
            return (Outcome::Failure, super::root_cause(&e));
        }
        let mut buf = Vec::with_capacity(1024);
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() >= MAX_HEAD => {
                    let limit = MAX_HEAD / 1024;
                    return (Outcome::Failure, format!("response head over {limit} KiB"));
                }
                Ok(None) => {}
                Err(e) => return (Outcome::Failure, e),
            }
            match read_more(&mut io, &mut buf, MAX_HEAD).await {
                Ok(0) => {
                    let what = "connection closed before a complete response head";
                    return (Outcome::Failure, what.to_owned());
                }
                Ok(_) => {}
                Err(e) => return (Outcome::Failure, super::root_cause(&e)),
            }
        };
        let status = head.status;
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
        buf.drain(..head.end);
        let seen = match read_body(&mut io, buf, head.framing).await {
            Ok(body) => body,
            Err(e) => return (Outcome::Failure, format!("HTTP {status}, {e}")),
        };
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

/// The bytes of the probe's request, written once per probe.
fn request(path: &str, authority: &str) -> anyhow::Result<Arc<[u8]>> {
    // Validation keeps the path to visible ASCII; this is the last line of defence
    // against a request split by a line break.
    anyhow::ensure!(
        path.bytes().all(|b| b.is_ascii_graphic()),
        "{path:?} cannot be a request path: visible ASCII only (percent-encode the rest)"
    );
    anyhow::ensure!(
        authority.bytes().all(|b| b.is_ascii_graphic()),
        "{authority:?} cannot be a Host header"
    );
    let text = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {AGENT}\r\nConnection: close\r\n\r\n"
    );
    Ok(Arc::from(text.into_bytes()))
}

/// A response's final head: its status, where it ends in the bytes read, and how its
/// body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    status: u16,
    end: usize,
    framing: Framing,
}

/// How a response body ends (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// 101, 204 and 304: no body.
    Empty,
    Chunked,
    Length(u64),
    /// Neither chunked nor a length: the body runs to the end of the connection.
    UntilClose,
}

/// Parses the response head in `buf`, past any informational (1xx) heads: `None` while
/// it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut start = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let len = match response.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("invalid HTTP response: {e}")),
        };
        let status = response.code.unwrap_or_default();
        if (100..200).contains(&status) && status != 101 {
            // 100 Continue, 103 Early Hints: the final response follows.
            start += len;
            continue;
        }
        let framing = framing(status, response.headers)?;
        return Ok(Some(Head {
            status,
            end: start + len,
            framing,
        }));
    }
}

/// How the body of a response with `status` and `fields` is framed.
fn framing(status: u16, fields: &[httparse::Header<'_>]) -> Result<Framing, String> {
    // 101 Switching Protocols ends HTTP on the connection: no body either.
    if matches!(status, 101 | 204 | 304) {
        return Ok(Framing::Empty);
    }
    let values = |name: &'static str| {
        fields
            .iter()
            .filter(move |f| f.name.eq_ignore_ascii_case(name))
            .flat_map(|f| f.value.split(|&b| b == b','))
            .map(|v| v.trim_ascii())
            .filter(|v| !v.is_empty())
    };
    if let Some(last) = values("transfer-encoding").next_back() {
        // Chunked only as the final coding; otherwise the body runs to the close.
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut length = None;
    for v in values("content-length") {
        let n = std::str::from_utf8(v)
            .ok()
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<u64>().ok());
        match (n, length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(m)) if n == m => {}
            _ => return Err("invalid HTTP response: bad Content-Length".to_owned()),
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Reads more of the response into `buf`, at most up to `limit` bytes in all: the count
/// read, 0 at the end of the connection. The buffer grows by doubling from 1 KiB, so the
/// usual response head is read into one small allocation.
async fn read_more<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<usize> {
    let room = limit
        .saturating_sub(buf.len())
        .clamp(1, buf.len().max(1024));
    buf.reserve(room);
    let mut window = (&mut *io).take(room as u64);
    window.read_buf(buf).await
}

/// The first [`MAX_BODY`] bytes of the body, decoded, given the bytes already read past
/// the head (`raw`).
async fn read_body<S: AsyncRead + Unpin>(
    io: &mut S,
    mut raw: Vec<u8>,
    framing: Framing,
) -> Result<Vec<u8>, String> {
    const CUT: &str = "connection closed before the end of the body";
    let io_error = |e: std::io::Error| super::root_cause(&e);
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Length(n) => {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(MAX_BODY);
            while raw.len() < want {
                if read_more(io, &mut raw, want).await.map_err(io_error)? == 0 {
                    return Err(CUT.to_owned());
                }
            }
            raw.truncate(want);
            Ok(raw)
        }
        Framing::UntilClose => {
            while raw.len() < MAX_BODY {
                match read_more(io, &mut raw, MAX_BODY).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    // A TLS peer that closes without close_notify: for a body that runs
                    // to the close, that is its end (a probe is not a download to trust).
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(io_error(e)),
                }
            }
            raw.truncate(MAX_BODY);
            Ok(raw)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut chunks = Chunks::default();
            loop {
                if chunks.decode(&mut raw, &mut body)? || body.len() >= MAX_BODY {
                    body.truncate(MAX_BODY);
                    return Ok(body);
                }
                // What is left undecoded is at most a chunk-size line and a CRLF.
                if raw.len() > MAX_HEAD {
                    return Err("invalid chunked body: chunk-size line too long".to_owned());
                }
                let limit = raw.len() + 16 * 1024;
                if read_more(io, &mut raw, limit).await.map_err(io_error)? == 0 {
                    return Err(CUT.to_owned());
                }
            }
        }
    }
}

/// Decoding of a chunked body, fed the bytes as they arrive.
#[derive(Debug, Default)]
struct Chunks {
    /// Bytes of the current chunk still to come, then its CRLF; `None` between chunks.
    left: Option<u64>,
}

impl Chunks {
    /// Moves what can be decoded from `raw` into `body` (consuming it from `raw`): true
    /// once the last chunk has been read.
    fn decode(&mut self, raw: &mut Vec<u8>, body: &mut Vec<u8>) -> Result<bool, String> {
        let bad = |what: &str| format!("invalid chunked body: {what}");
        let mut pos = 0;
        let done = loop {
            match self.left {
                None => match httparse::parse_chunk_size(&raw[pos..]) {
                    // httparse reads a line without digits as 0: that is no last chunk.
                    Ok(httparse::Status::Complete((_, 0))) if !raw[pos].is_ascii_hexdigit() => {
                        return Err(bad("bad chunk size"));
                    }
                    Ok(httparse::Status::Complete((used, 0))) => {
                        pos += used;
                        break true; // the last chunk; trailers are not read
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        pos += used;
                        self.left = Some(size);
                    }
                    Ok(httparse::Status::Partial) => break false,
                    Err(_) => return Err(bad("bad chunk size")),
                },
                Some(0) => {
                    if raw.len() - pos < 2 {
                        break false;
                    }
                    if raw[pos..pos + 2] != *b"\r\n" {
                        return Err(bad("no line break after a chunk"));
                    }
                    pos += 2;
                    self.left = None;
                }
                Some(left) => {
                    let available = raw.len() - pos;
                    if available == 0 || body.len() >= MAX_BODY {
                        break false;
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(available);
                    body.extend_from_slice(&raw[pos..pos + take]);
                    pos += take;
                    self.left = Some(left - take as u64);
                }
            }
        };
        raw.drain(..pos);
        Ok(done)
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
        let request = String::from_utf8(check.unwrap().request.to_vec()).unwrap();
        let line = request.lines().find(|l| l.starts_with("Host: ")).unwrap();
        line["Host: ".len()..].to_owned()
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

    /// An HTTP check of `tke-demo.cn` on port 8080, looking for `needle` in the body.
    fn check(needle: Option<&str>) -> HttpCheck {
        let mut c = HttpCheck::new(
            &kind(false, 8080, "tke-demo.cn"),
            "127.0.1.1".parse().unwrap(),
            None,
        )
        .unwrap();
        c.body_contains = needle.map(str::to_owned);
        c
    }

    /// Runs `check`'s exchange against a server that reads the request head, then writes
    /// `response` in pieces of `piece` bytes (each flushed, so the client sees them
    /// separately) and closes. Returns the result and the request the server read.
    async fn exchange(check: &HttpCheck, response: &[u8], piece: usize) -> (String, String) {
        let (client, mut server) = tokio::io::duplex(256);
        let response = response.to_vec();
        let server = tokio::spawn(async move {
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if server.read_exact(&mut byte).await.is_err() {
                    break;
                }
                request.push(byte[0]);
            }
            for part in response.chunks(piece) {
                if server.write_all(part).await.is_err() {
                    break; // the client has what it needed and hung up
                }
                let _ = server.flush().await;
                tokio::task::yield_now().await;
            }
            String::from_utf8(request).unwrap()
        });
        let (outcome, detail) = check.exchange(client).await;
        let request = server.await.unwrap();
        (format!("{}: {detail}", outcome.as_str()), request)
    }

    #[tokio::test]
    async fn one_get_is_sent_with_the_apps_host_and_the_status_decides() {
        let (result, request) = exchange(
            &check(None),
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n",
            1024,
        )
        .await;
        assert_eq!(result, "failure: HTTP 503, expected 200-399");
        assert_eq!(
            request,
            format!(
                "GET /healthz HTTP/1.1\r\nHost: tke-demo.cn:8080\r\nUser-Agent: {AGENT}\r\nConnection: close\r\n\r\n"
            )
        );
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(
            exchange(&check(None), ok, 1024).await.0,
            "success: HTTP 200"
        );
        // HTTP/1.0, and a head that arrives a byte at a time.
        let old = b"HTTP/1.0 302 Found\r\nLocation: /login\r\n\r\n";
        assert_eq!(exchange(&check(None), old, 1).await.0, "success: HTTP 302");
    }

    #[tokio::test]
    async fn informational_heads_are_skipped() {
        let response = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        for piece in [1, 7, 1024] {
            let (result, _) = exchange(&check(Some("x")), response, piece).await;
            // 204 has no body, so there is nothing to match.
            assert_eq!(
                result, "failure: HTTP 204, body lacks \"x\"",
                "piece {piece}"
            );
        }
        let (result, _) = exchange(&check(None), response, 3).await;
        assert_eq!(result, "success: HTTP 204");
    }

    #[tokio::test]
    async fn the_body_is_read_as_framed_whichever_way_it_arrives() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nstat\r\n9\r\nus: ready\r\n0\r\nTrailer: x\r\n\r\n";
        let length = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nstatus: ready";
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nstatus: ready";
        for response in [&chunked[..], &length[..], &close[..]] {
            for piece in [1, 2, 5, 4096] {
                let shown = String::from_utf8_lossy(response);
                let (found, _) = exchange(&check(Some("status: ready")), response, piece).await;
                assert_eq!(
                    found, "success: HTTP 200, body matched",
                    "{shown:?} in {piece}"
                );
                let (lacks, _) = exchange(&check(Some("status: down")), response, piece).await;
                assert_eq!(
                    lacks, "failure: HTTP 200, body lacks \"status: down\"",
                    "{shown:?}"
                );
            }
        }
        // The chunk-size digits themselves are not body.
        let (result, _) = exchange(&check(Some("stat9")), chunked, 3).await;
        assert!(result.contains("body lacks"), "{result}");
    }

    #[tokio::test]
    async fn only_the_first_64_kib_of_a_body_are_searched() {
        let mut body = vec![b'.'; MAX_BODY - 5];
        body.extend_from_slice(b"early");
        body.extend_from_slice(&vec![b'.'; 100_000]);
        body.extend_from_slice(b"late");
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
        let (early, _) = exchange(&check(Some("early")), &response, 8192).await;
        assert_eq!(early, "success: HTTP 200, body matched");
        let (late, _) = exchange(&check(Some("late")), &response, 8192).await;
        assert_eq!(late, "failure: HTTP 200, body lacks \"late\"");
    }

    #[tokio::test]
    async fn broken_responses_fail_the_probe_with_what_was_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (
                b"",
                "failure: connection closed before a complete response head",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-",
                "failure: connection closed before a complete response head",
            ),
            (
                b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
                "failure: invalid HTTP response: invalid HTTP version",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "failure: HTTP 200, connection closed before the end of the body",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                "failure: invalid HTTP response: bad Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "failure: HTTP 200, invalid chunked body: bad chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\ny\r\n\r\n1\r\nx\r\n0\r\n\r\n",
                "failure: HTTP 200, invalid chunked body: bad chunk size",
            ),
        ];
        for (response, want) in cases {
            let (result, _) = exchange(&check(Some("x")), response, 3).await;
            assert_eq!(result, want, "{:?}", String::from_utf8_lossy(response));
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-Filler-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        let (result, _) = exchange(&check(None), &many, 4096).await;
        assert_eq!(result, "failure: invalid HTTP response: too many headers");
        let huge = format!(
            "HTTP/1.1 200 OK\r\nX-Filler: {}\r\n\r\n",
            "y".repeat(MAX_HEAD)
        );
        let (result, _) = exchange(&check(None), huge.as_bytes(), 4096).await;
        assert_eq!(result, "failure: response head over 64 KiB");
    }

    #[test]
    fn a_path_that_would_split_the_request_is_refused() {
        let mut k = kind(false, 80, "tke-demo.cn");
        if let ProbeKind::Http { path, .. } = &mut k {
            *path = "/a b".into();
        }
        let err = HttpCheck::new(&k, "127.0.1.1".parse().unwrap(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("request path"), "{err}");
    }
}
