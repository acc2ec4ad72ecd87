//! The faults a drill injects, and how each is undone.
//!
//! - `override`: a `fail` override through gslb's admin API (it also carries an expiry,
//!   so even a killed drill cannot leave it for good).
//! - `scale-to-zero`: a real fault in the member cluster: the workload's scale is patched
//!   to zero replicas and later back to what it was. What was changed is written to an
//!   undo file *before* the change, so `gslb drill undo` can put it back after a drill
//!   that was killed outright.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::{Deserialize, Serialize};

use crate::admin::client::AdminClient;
use crate::admin::overrides::SetOverride;
use crate::health::OverrideKind;

/// A workload in a member cluster to scale to zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleTarget {
    /// Default: `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The member cluster's context.
    pub context: String,
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// What `gslb drill undo` needs: the target and the replicas to put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRecord {
    pub target: ScaleTarget,
    pub replicas: i64,
}

/// How a drill takes the cluster out.
#[derive(Debug, Clone)]
pub enum Method {
    Override,
    ScaleToZero {
        target: ScaleTarget,
        undo_file: PathBuf,
    },
}

/// A fault in place, ready to be undone.
pub(super) enum Fault {
    Override {
        cluster: String,
        app: Option<String>,
    },
    Scale {
        record: UndoRecord,
        undo_file: PathBuf,
    },
}

impl Fault {
    /// Injects the fault; returns it and a line for the progress log.
    pub(super) async fn inject(
        method: &Method,
        client: &AdminClient,
        req: SetOverride,
    ) -> anyhow::Result<(Self, String)> {
        match method {
            Method::Override => {
                let expires = req.expires_in.clone().unwrap_or_default();
                client.set_override(&req).await?;
                Ok((
                    Fault::Override {
                        cluster: req.cluster.clone(),
                        app: req.app.clone(),
                    },
                    format!(
                        "injected: fail override on {} (lifts itself after {expires} at the latest)",
                        req.cluster
                    ),
                ))
            }
            Method::ScaleToZero { target, undo_file } => {
                if undo_file.exists() {
                    bail!(
                        "{} holds an earlier drill's change that was not undone: run `gslb drill undo` first",
                        undo_file.display()
                    );
                }
                let api = scale_api(target).await?;
                let scale = api
                    .get_scale(&target.name)
                    .await
                    .with_context(|| format!("cannot read the scale of {}", describe(target)))?;
                let replicas = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
                if replicas == 0 {
                    bail!(
                        "{} already has 0 replicas: nothing to take out",
                        describe(target)
                    );
                }
                let record = UndoRecord {
                    target: target.clone(),
                    replicas: i64::from(replicas),
                };
                write_undo(undo_file, &record)?;
                set_replicas(&api, target, 0).await?;
                Ok((
                    Fault::Scale {
                        record,
                        undo_file: undo_file.clone(),
                    },
                    format!(
                        "injected: scaled {} from {replicas} to 0 replicas (undo record in {})",
                        describe(target),
                        undo_file.display()
                    ),
                ))
            }
        }
    }

    /// Undoes the fault.
    pub(super) async fn restore(&self, client: &AdminClient) -> anyhow::Result<String> {
        match self {
            Fault::Override { cluster, app } => {
                client.clear_override(cluster, app.as_deref()).await?;
                Ok("restored: override lifted".to_owned())
            }
            Fault::Scale { record, undo_file } => undo_record(record, undo_file).await,
        }
    }
}

/// `gslb drill undo`: puts back what an interrupted scale-to-zero drill changed.
///
/// # Errors
///
/// No undo file, or the cluster cannot be reached.
pub async fn undo(undo_file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(undo_file)
        .with_context(|| format!("no drill to undo: cannot read {}", undo_file.display()))?;
    let record: UndoRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a drill undo record", undo_file.display()))?;
    undo_record(&record, undo_file).await
}

async fn undo_record(record: &UndoRecord, undo_file: &Path) -> anyhow::Result<String> {
    let api = scale_api(&record.target).await?;
    let replicas = i32::try_from(record.replicas).context("replica count out of range")?;
    set_replicas(&api, &record.target, replicas).await?;
    std::fs::remove_file(undo_file)
        .with_context(|| format!("scaled back, but cannot remove {}", undo_file.display()))?;
    Ok(format!(
        "restored: scaled {} back to {replicas} replicas",
        describe(&record.target)
    ))
}

/// The default undo file: `$XDG_STATE_HOME/gslb/drill-undo.json` (or under `~/.local/state`).
pub fn default_undo_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("gslb").join("drill-undo.json")
}

fn write_undo(path: &Path, record: &UndoRecord) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).ok();
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn describe(t: &ScaleTarget) -> String {
    format!("{} {}/{} in {}", t.kind, t.namespace, t.name, t.context)
}

async fn scale_api(t: &ScaleTarget) -> anyhow::Result<Api<DynamicObject>> {
    let options = KubeConfigOptions {
        context: Some(t.context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = match &t.kubeconfig {
        Some(path) => {
            kube::Config::from_custom_kubeconfig(Kubeconfig::read_from(path)?, &options).await?
        }
        None => kube::Config::from_kubeconfig(&options).await?,
    };
    let client = kube::Client::try_from(config)?;
    let ar = match t.kind.as_str() {
        "Deployment" => ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
        "StatefulSet" => ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "StatefulSet"),
            "statefulsets",
        ),
        other => bail!("cannot scale a `{other}`: only Deployment and StatefulSet"),
    };
    Ok(Api::namespaced_with(client, &t.namespace, &ar))
}

async fn set_replicas(
    api: &Api<DynamicObject>,
    t: &ScaleTarget,
    replicas: i32,
) -> anyhow::Result<()> {
    let patch = serde_json::json!({ "spec": { "replicas": replicas } });
    api.patch_scale(&t.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("cannot scale {} to {replicas}", describe(t)))?;
    Ok(())
}

/// The override request a drill sends (also used for its description).
pub(super) fn override_request(
    cluster: &str,
    app: Option<&str>,
    force: bool,
    expires: String,
    by: String,
) -> SetOverride {
    SetOverride {
        cluster: cluster.to_owned(),
        app: app.map(str::to_owned),
        kind: OverrideKind::Fail,
        reason: "failover drill".to_owned(),
        expires_in: Some(expires),
        force,
        set_by: Some(by),
    }
}
