//! Validation of the Kubernetes parts of the config: `[[source]]` sections and each app's
//! `ingress`, `workloads` and `health`.

use super::raw::{RawApp, RawSource};
use super::{KeyPath, PathProblem, Source, SourceKind};
use crate::model::{HealthFrom, KubeApp, ObjectRef, WorkloadRef};

pub(super) fn source(
    raw: &RawSource,
    at: &KeyPath,
    problems: &mut Vec<PathProblem>,
) -> Option<Source> {
    let kind = match raw.kind.as_str() {
        "clusternet" => SourceKind::Clusternet,
        "karmada" => SourceKind::Karmada,
        "kubeconfig" => SourceKind::Kubeconfig,
        other => {
            problems.push(PathProblem::new(
                at.then("kind"),
                format!("unknown source kind `{other}`, expected `clusternet`, `karmada` or `kubeconfig`"),
            ));
            return None;
        }
    };
    if raw.name.trim().is_empty() {
        problems.push(PathProblem::new(at.then("name"), "must not be empty"));
    }
    let kubeconfig = raw.kubeconfig.as_ref().map(std::path::PathBuf::from);
    if let Some(path) = &kubeconfig {
        if !path.is_file() {
            problems.push(PathProblem::new(
                at.then("kubeconfig"),
                format!("{} is not a readable file", path.display()),
            ));
        }
    }
    if raw.contexts.is_some() && kind != SourceKind::Kubeconfig {
        problems.push(PathProblem::new(
            at.then("contexts"),
            "applies only to `kubeconfig` sources; use `context` for a hub",
        ));
    }
    if raw.context.is_some() && kind == SourceKind::Kubeconfig {
        problems.push(PathProblem::new(
            at.then("context"),
            "a `kubeconfig` source reads one context per cluster: use `contexts`",
        ));
    }
    Some(Source {
        name: raw.name.clone(),
        kind,
        kubeconfig,
        context: raw.context.clone(),
        contexts: raw.contexts.clone(),
    })
}

/// The app's health mode and Kubernetes objects; `None` for the latter when it names none.
pub(super) fn app(
    raw: &RawApp,
    at: &KeyPath,
    has_sources: bool,
    problems: &mut Vec<PathProblem>,
) -> (HealthFrom, Option<KubeApp>) {
    let health = match raw.health.as_deref() {
        None | Some("both") => HealthFrom::Both,
        Some("probes") => HealthFrom::Probes,
        Some("workloads") => HealthFrom::Workloads,
        Some(other) => {
            problems.push(PathProblem::new(
                at.then("health"),
                format!("unknown health mode `{other}`, expected `both`, `probes` or `workloads`"),
            ));
            HealthFrom::Both
        }
    };
    let ingress = raw.ingress.as_ref().map(|i| {
        if i.kind != "Ingress" && i.kind != "Service" {
            problems.push(PathProblem::new(
                at.then("ingress").then("kind"),
                format!(
                    "`{}` cannot carry VIPs: use `Ingress` or a LoadBalancer `Service`",
                    i.kind
                ),
            ));
        }
        ObjectRef {
            kind: i.kind.clone(),
            namespace: i.namespace.clone(),
            name: i.name.clone(),
        }
    });
    let workloads: Vec<WorkloadRef> = raw
        .workloads
        .iter()
        .enumerate()
        .map(|(n, w)| {
            if !matches!(w.kind.as_str(), "Deployment" | "StatefulSet") {
                problems.push(PathProblem::new(
                    at.then("workloads").index(n).then("kind"),
                    format!(
                        "unsupported workload kind `{}`, expected `Deployment` or `StatefulSet`",
                        w.kind
                    ),
                ));
            }
            WorkloadRef {
                object: ObjectRef {
                    kind: w.kind.clone(),
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                },
                min_ready: w.min_ready,
            }
        })
        .collect();
    let kube =
        (ingress.is_some() || !workloads.is_empty()).then_some(KubeApp { ingress, workloads });
    if kube.is_some() && !has_sources {
        problems.push(PathProblem::new(
            at.then(if raw.ingress.is_some() {
                "ingress"
            } else {
                "workloads"
            }),
            "needs a [[source]] to read it from",
        ));
    }
    if health == HealthFrom::Workloads && raw.workloads.is_empty() {
        problems.push(PathProblem::new(
            at.then("health"),
            "`workloads` health needs a `workloads` list",
        ));
    }
    (health, kube)
}
