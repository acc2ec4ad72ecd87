//! Who may change and read things: the bearer token of admin calls.
//!
//! With `admin_token_file` set, every mutating call must carry `Authorization: Bearer
//! <token>`: 401 without it, 403 with a wrong one, compared in constant time. Without a
//! token, mutating calls are open on a loopback listener (local users only, as for the
//! demo) and disabled on any other address.
//!
//! Reads are open unless `admin_protect_reads` is set: then every call but `/healthz` and
//! `/readyz` (whose callers, kubelets and load balancers, carry no token) needs the same
//! token, with the same answers.

use std::fmt;
use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};

/// A secret that never prints.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    pub fn new(s: &str) -> Self {
        Self(s.trim().to_owned())
    }

    /// The secret itself, to send it (to a peer, `[quorum] token_file`); never log it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The policy for mutating calls.
#[derive(Debug, Clone)]
pub enum Mutations {
    /// A token is configured and required.
    Token(Token),
    /// No token, loopback listener: open to local users.
    OpenOnLoopback,
    /// No token, non-loopback listener: refused.
    Disabled,
}

impl Mutations {
    pub fn new(token: Option<Token>, listen: SocketAddr) -> Self {
        match token {
            Some(t) => Mutations::Token(t),
            None if listen.ip().is_loopback() => Mutations::OpenOnLoopback,
            None => Mutations::Disabled,
        }
    }

    /// Checks a mutating request's headers.
    ///
    /// # Errors
    ///
    /// The status and message to answer with.
    pub fn authorize(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        match self {
            Mutations::OpenOnLoopback => Ok(()),
            Mutations::Disabled => Err((
                StatusCode::FORBIDDEN,
                "mutating calls are disabled: the admin API listens beyond loopback and no admin_token_file is set".to_owned(),
            )),
            Mutations::Token(token) => token.check(headers),
        }
    }
}

impl Mutations {
    /// Checks a read of this instance's view (`/api/v1/view`): it needs the token
    /// whenever one is configured, with or without `admin_protect_reads`, since peers
    /// act on it.
    ///
    /// # Errors
    ///
    /// The status and message to answer with.
    pub fn authorize_view(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        match self {
            Mutations::Token(token) => token.check(headers),
            Mutations::OpenOnLoopback | Mutations::Disabled => Ok(()),
        }
    }
}

/// The policy for reads: every call but the probes' `/healthz` and `/readyz`.
#[derive(Debug, Clone)]
pub enum Reads {
    /// Anyone who can connect may read (the default).
    Open,
    /// `admin_protect_reads`: the admin token is required, as for mutating calls.
    Token(Token),
}

impl Reads {
    /// Paths served to anyone whatever the policy: liveness and readiness probes carry
    /// no token.
    pub const PROBES: [&'static str; 2] = ["/healthz", "/readyz"];

    /// Checks a request to `path`.
    ///
    /// # Errors
    ///
    /// The status and message to answer with.
    pub fn authorize(&self, path: &str, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        match self {
            Reads::Token(token) if !Self::PROBES.contains(&path) => token.check(headers),
            _ => Ok(()),
        }
    }
}

impl Token {
    /// `Authorization: Bearer <token>`: 401 when absent, 403 when wrong.
    fn check(&self, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            None => Err((
                StatusCode::UNAUTHORIZED,
                "a bearer token is required".to_owned(),
            )),
            Some(p) if constant_time_eq(p.trim().as_bytes(), self.0.as_bytes()) => Ok(()),
            Some(_) => Err((StatusCode::FORBIDDEN, "wrong token".to_owned())),
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of the
/// token matched (only whether the lengths differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_token_is_enforced() {
        let m = Mutations::new(
            Some(Token::new("s3cret-s3cret-s3cret\n")),
            "0.0.0.0:1".parse().unwrap(),
        );
        assert_eq!(
            m.authorize(&headers(None)).unwrap_err().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            m.authorize(&headers(Some("Bearer nope"))).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert!(
            m.authorize(&headers(Some("Bearer s3cret-s3cret-s3cret")))
                .is_ok()
        );
        assert!(!format!("{m:?}").contains("s3cret"));
    }

    #[test]
    fn without_a_token_only_loopback_may_mutate() {
        assert!(
            Mutations::new(None, "127.0.0.1:1".parse().unwrap())
                .authorize(&headers(None))
                .is_ok()
        );
        assert!(
            Mutations::new(None, "[::1]:1".parse().unwrap())
                .authorize(&headers(None))
                .is_ok()
        );
        let m = Mutations::new(None, "0.0.0.0:1".parse().unwrap());
        assert_eq!(
            m.authorize(&headers(Some("Bearer x"))).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn protected_reads_spare_only_the_probes() {
        let r = Reads::Token(Token::new("s3cret-s3cret-s3cret"));
        for path in ["/api/v1/status", "/metrics", "/api/v1/explain", "/nope"] {
            assert_eq!(
                r.authorize(path, &headers(None)).unwrap_err().0,
                StatusCode::UNAUTHORIZED,
                "{path}"
            );
            assert_eq!(
                r.authorize(path, &headers(Some("Bearer nope")))
                    .unwrap_err()
                    .0,
                StatusCode::FORBIDDEN
            );
            assert!(
                r.authorize(path, &headers(Some("Bearer s3cret-s3cret-s3cret")))
                    .is_ok()
            );
        }
        for path in Reads::PROBES {
            assert!(r.authorize(path, &headers(None)).is_ok(), "{path}");
        }
        assert!(Reads::Open.authorize("/metrics", &headers(None)).is_ok());
        assert!(!format!("{r:?}").contains("s3cret"));
    }
}
