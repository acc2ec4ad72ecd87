//! The admin API client the CLI commands use to talk to a running gslb.

use anyhow::{Context, bail};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;

use super::drills::DrillPlanEntry;
use super::explain::Explanation;
use super::overrides::SetOverride;
use super::status::StatusReport;
use crate::drill::report::DrillRecord;
use crate::health::Override;

/// A connection to one gslb's admin API.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:19153`), with the admin token if there
    /// is one: it goes with every call, since a gslb with `admin_protect_reads` wants it
    /// for reads too (and one without ignores it there).
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authed(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, rb: RequestBuilder, path: &str) -> anyhow::Result<Response> {
        let response = rb.send().await.with_context(|| {
            format!(
                "cannot reach the admin API at {}; is gslb running?",
                self.url(path)
            )
        })?;
        let code = response.status();
        if code.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        match code {
            StatusCode::UNAUTHORIZED => bail!("{message}: pass --token-file or set GSLB_TOKEN"),
            _ => bail!("{message} (HTTP {})", code.as_u16()),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<T> {
        let r = self
            .send(
                self.authed(self.http.get(self.url(path)).query(query)),
                path,
            )
            .await?;
        r.json()
            .await
            .with_context(|| format!("unexpected answer from {path}"))
    }

    pub async fn status(&self) -> anyhow::Result<StatusReport> {
        self.get("/api/v1/status", &[]).await
    }

    pub async fn overrides(&self) -> anyhow::Result<Vec<Override>> {
        self.get("/api/v1/overrides", &[]).await
    }

    pub async fn set_override(&self, req: &SetOverride) -> anyhow::Result<Override> {
        let path = "/api/v1/overrides";
        let r = self
            .send(self.authed(self.http.post(self.url(path)).json(req)), path)
            .await?;
        Ok(r.json().await?)
    }

    pub async fn clear_override(
        &self,
        cluster: &str,
        app: Option<&str>,
    ) -> anyhow::Result<Vec<Override>> {
        let path = "/api/v1/overrides";
        let mut query = vec![("cluster", cluster)];
        query.extend(app.map(|a| ("app", a)));
        let r = self
            .send(
                self.authed(self.http.delete(self.url(path)).query(&query)),
                path,
            )
            .await?;
        Ok(r.json().await?)
    }

    /// `client`: who asks, for `geo` apps (`10.1.2.0/24` or `10.1.2.3`).
    pub async fn explain(
        &self,
        name: &str,
        qtype: &str,
        client: Option<&str>,
    ) -> anyhow::Result<Explanation> {
        let mut query = vec![("name", name), ("type", qtype)];
        if let Some(c) = client {
            query.push(("client", c));
        }
        self.get("/api/v1/explain", &query).await
    }

    pub async fn drills(&self) -> anyhow::Result<Vec<DrillRecord>> {
        self.get("/api/v1/drills", &[]).await
    }

    pub async fn record_drill(&self, drill: &DrillRecord) -> anyhow::Result<()> {
        let path = "/api/v1/drills";
        self.send(
            self.authed(self.http.post(self.url(path)).json(drill)),
            path,
        )
        .await?;
        Ok(())
    }

    pub async fn drill_plan(&self, cluster: &str) -> anyhow::Result<Vec<DrillPlanEntry>> {
        self.get("/api/v1/drills/plan", &[("cluster", cluster)])
            .await
    }
}
