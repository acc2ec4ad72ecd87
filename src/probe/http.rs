//! The HTTP(S) probe: GET the app's path from one VIP, with the app's Host header (and,
//! for HTTPS, its SNI), and check the status and optionally the body.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::health::Outcome;
use crate::model::ProbeKind;

/// Most of the body read when looking for `body_contains`.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct HttpCheck {
    client: reqwest::Client,
    url: String,
    expect: RangeInclusive<u16>,
    body_contains: Option<String>,
}

impl HttpCheck {
    pub fn new(
        kind: &ProbeKind,
        vip: IpAddr,
        timeout: Duration,
        source: Option<IpAddr>,
    ) -> anyhow::Result<Self> {
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
        let scheme = if *https { "https" } else { "http" };
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            // A fresh connection every time: a probe must see what a new client sees.
            .pool_max_idle_per_host(0)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("gslb-probe/", env!("CARGO_PKG_VERSION")))
            .tls_danger_accept_invalid_certs(!tls_verify)
            .local_address(source);
        // Connect to the VIP while speaking to the app's host name: the Host header and SNI
        // carry the name, the socket goes to the VIP. The port must be in the URL.
        // A host written as an address cannot be redirected by `resolve`: connect to the
        // VIP itself and send the host as the Host header.
        let url_host = if host.parse::<IpAddr>().is_ok() {
            let header = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&header) {
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(reqwest::header::HOST, v);
                builder = builder.default_headers(headers);
            }
            match vip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            }
        } else {
            builder = builder.resolve(host, SocketAddr::new(vip, *port));
            host.clone()
        };
        Ok(Self {
            client: builder.build()?,
            url: format!("{scheme}://{url_host}:{port}{path}"),
            expect: expect_status.clone(),
            body_contains: body_contains.clone(),
        })
    }

    pub async fn run(&self) -> (Outcome, String) {
        let response = match self.client.get(&self.url).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (Outcome::Timeout, super::root_cause(&e)),
            Err(e) => return (Outcome::Failure, super::root_cause(&e)),
        };
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
        let mut response = response;
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= MAX_BODY {
                        body.truncate(MAX_BODY);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return (Outcome::Timeout, super::root_cause(&e)),
                Err(e) => return (Outcome::Failure, super::root_cause(&e)),
            }
        }
        if String::from_utf8_lossy(&body).contains(needle.as_str()) {
            (Outcome::Success, format!("HTTP {status}, body matched"))
        } else {
            (
                Outcome::Failure,
                format!("HTTP {status}, body lacks {needle:?}"),
            )
        }
    }
}
