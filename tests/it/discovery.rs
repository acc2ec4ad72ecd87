//! Kubernetes discovery against the stand-in API server (see `apiserver.rs`): clusters,
//! ingress VIPs and workload readiness from Clusternet, Karmada and plain kubeconfig
//! contexts, with watches that change, break, expire (410) and go down.

use std::time::Duration;

use serde_json::{Value, json};

use crate::apiserver::FakeApi;
use crate::harness::{Block, Gslb, config, eventually, gslb_run, metric, stand_ins};

const LIMIT: Duration = Duration::from_secs(20);

pub(crate) const MANAGED_CLUSTERS: &str = "apis/clusters.clusternet.io/v1beta1/managedclusters";
pub(crate) const DESCRIPTIONS: &str = "apis/apps.clusternet.io/v1alpha1/descriptions";
const KARMADA_CLUSTERS: &str = "apis/cluster.karmada.io/v1alpha1/clusters";
const BINDINGS: &str = "apis/work.karmada.io/v1alpha2/resourcebindings";

fn conditions(ready: &str) -> Value {
    json!([{"type": "Ready", "status": ready, "reason": "ManagedClusterReady", "message": "heartbeat", "lastTransitionTime": "2026-11-29T00:00:00Z"}])
}

/// A Clusternet `ManagedCluster` in its dedicated namespace, as the hub holds it.
pub(crate) fn managed_cluster(name: &str, id: &str, ready: &str) -> Value {
    json!({
        "apiVersion": "clusters.clusternet.io/v1beta1", "kind": "ManagedCluster",
        "metadata": {"name": format!("clusternet-cluster-{id}"), "namespace": format!("clusternet-{id}"),
            "labels": {"clusters.clusternet.io/cluster-id": id, "clusters.clusternet.io/cluster-name": name,
                       "topology.kubernetes.io/region": "ap-guangzhou"}},
        "spec": {"clusterId": id, "clusterType": "Dual", "syncMode": "Pull"},
        "status": {"conditions": conditions(ready), "k8sVersion": "v1.30.0", "healthz": true, "livez": true, "readyz": true}
    })
}

/// The `Description` Clusternet's agent keeps for the app in one cluster, with the
/// observed status of its Ingress and Deployment.
pub(crate) fn description(cluster: &str, id: &str, ip: &str, ready: u32) -> Value {
    json!({
        "apiVersion": "apps.clusternet.io/v1alpha1", "kind": "Description",
        "metadata": {"name": "qcbm-helm-or-raw", "namespace": format!("clusternet-{id}"),
            "labels": {"clusters.clusternet.io/cluster-id": id, "clusters.clusternet.io/cluster-name": cluster,
                       "apps.clusternet.io/subscription.name": "qcbm-subscription"}},
        "spec": {"deployer": "Generic", "raw": []},
        "status": {"phase": "Success", "manifestStatuses": [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": "qcbm", "name": "qcbm-ingress",
             "observedStatus": {"loadBalancer": {"ingress": [{"ip": ip}]}}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "qcbm", "name": "qcbm-gateway",
             "observedStatus": {"replicas": 2, "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": 1}}
        ]}
    })
}

/// A Clusternet hub holding each `(name, id, vip)` cluster Ready, with the app's ingress
/// on `vip` and 2 of 2 replicas ready.
pub(crate) fn clusternet_hub(api: &FakeApi, clusters: &[(&str, &str, &str)]) {
    for &(name, id, _) in clusters {
        api.put(MANAGED_CLUSTERS, managed_cluster(name, id, "True"));
    }
    for &(name, id, vip) in clusters {
        api.put(DESCRIPTIONS, description(name, id, vip, 2));
    }
}

fn karmada_cluster(name: &str, ready: &str) -> Value {
    json!({
        "apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name},
        "spec": {"syncMode": "Push", "apiEndpoint": "https://10.0.0.1:6443", "region": "ap-guangzhou"},
        "status": {"conditions": [{"type": "Ready", "status": ready, "reason": if ready == "True" { "ClusterReady" } else { "ClusterNotReady" }, "message": "", "lastTransitionTime": "2026-11-29T00:00:00Z"}]}
    })
}

/// Karmada's `ResourceBinding` of the app's Ingress, named `<name>-<kind>`.
fn ingress_binding(statuses: &[(&str, &str)]) -> Value {
    let agg: Vec<Value> = statuses
        .iter()
        .map(|(c, ip)| json!({"clusterName": c, "applied": true, "health": "Healthy", "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}))
        .collect();
    json!({
        "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
        "metadata": {"name": "qcbm-ingress-ingress", "namespace": "qcbm"},
        "spec": {"resource": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "namespace": "qcbm", "name": "qcbm-ingress"},
                 "clusters": statuses.iter().map(|(c, _)| json!({"name": c})).collect::<Vec<_>>()},
        "status": {"aggregatedStatus": agg}
    })
}

pub(crate) fn app_config(
    block: &Block,
    port: u16,
    kubeconfig: &std::path::Path,
    kind: &str,
    extra_source: &str,
) -> String {
    config(&format!(
        r#"
[[source]]
name = "hub"
kind = "{kind}"
kubeconfig = "{kc}"
{extra_source}

[[cluster]]
name = "guangzhou-01"
priority = 1

[[cluster]]
name = "guangzhou-02"
priority = 2

[[app]]
name = "tke-demo.cn"
policy = "failover"
ttl = 5
clusters = ["guangzhou-01", "guangzhou-02"]
ingress = {{ namespace = "qcbm", name = "qcbm-ingress" }}
workloads = [{{ namespace = "qcbm", kind = "Deployment", name = "qcbm-gateway", min_ready = 1 }}]
probe = {{ kind = "http", port = {port}, path = "/", interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}
"#,
        kc = kubeconfig.display(),
    ))
    .replace("{block}", &block.ip(0).to_string())
}

async fn wait_answer(gslb: &Gslb, want: &[&String], what: &str) {
    let mut want: Vec<String> = want.iter().map(|s| (*s).clone()).collect();
    want.sort();
    eventually(LIMIT, what, || {
        let want = want.clone();
        async move {
            let mut a = gslb.dig("tke-demo.cn A").await.rdata("A");
            a.sort();
            (a == want).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clusternet_vips_and_workloads_drive_the_answer() {
    let block = Block::new();
    let (_ingresses, port) =
        stand_ins(&block, &["guangzhou-01", "guangzhou-02", "guangzhou-01b"]).await;
    let (ip1, ip2, ip3) = (
        block.ip(1).to_string(),
        block.ip(2).to_string(),
        block.ip(3).to_string(),
    );
    let api = FakeApi::start().await;
    clusternet_hub(
        &api,
        &[
            ("guangzhou-01", "aaaa", &ip1),
            ("guangzhou-02", "bbbb", &ip2),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(dir.path(), &[("hub", &api)]);
    let gslb = Gslb::start(&app_config(&block, port, &kc, "clusternet", "")).await;

    // The VIPs come from the hub: the static clusters list none.
    wait_answer(&gslb, &[&ip1], "the discovered VIP of guangzhou-01").await;
    assert!(metric(&gslb, r#"gslb_discovery_up{source="hub"} 1"#).await);

    // Ready replicas drop to zero in guangzhou-01: it fails over before any probe fails.
    api.put(DESCRIPTIONS, description("guangzhou-01", "aaaa", &ip1, 0));
    wait_answer(&gslb, &[&ip2], "failover on zero ready replicas").await;
    let (_, status) = gslb.get("/api/v1/status").await;
    assert!(
        status.contains("NOT READY: Deployment qcbm/qcbm-gateway: 0/2 ready (min 1)"),
        "{status}"
    );
    api.put(DESCRIPTIONS, description("guangzhou-01", "aaaa", &ip1, 2));
    wait_answer(&gslb, &[&ip1], "back when replicas are ready").await;

    // The ingress VIP of guangzhou-01 changes: the new one is probed and answered.
    api.put(DESCRIPTIONS, description("guangzhou-01", "aaaa", &ip3, 2));
    wait_answer(&gslb, &[&ip3], "the new VIP").await;

    // guangzhou-01 goes NotReady on the hub.
    api.put(
        MANAGED_CLUSTERS,
        managed_cluster("guangzhou-01", "aaaa", "False"),
    );
    wait_answer(&gslb, &[&ip2], "failover on Ready=False").await;
    // Unknown (heartbeats stopped) is no reason to fail over: it comes back.
    api.put(
        MANAGED_CLUSTERS,
        managed_cluster("guangzhou-01", "aaaa", "Unknown"),
    );
    wait_answer(&gslb, &[&ip3], "Unknown keeps the cluster").await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_keeps_the_last_state_and_a_410_forces_a_relist() {
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
    let kc = FakeApi::kubeconfig(dir.path(), &[("hub", &api)]);
    let gslb = Gslb::start(&app_config(&block, port, &kc, "clusternet", "")).await;
    wait_answer(&gslb, &[&ip1], "the primary").await;

    api.set_down(true);
    eventually(LIMIT, "discovery_up to drop", || async {
        metric(&gslb, r#"gslb_discovery_up{source="hub"} 0"#)
            .await
            .then_some(())
    })
    .await;
    let (_, status) = gslb.get("/api/v1/status").await;
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["sources"][0]["name"], "hub");
    assert_eq!(
        status["sources"][0]["up"], false,
        "stale in status: {status}"
    );
    assert!(status["sources"][0]["last_sync"].is_string());
    // Nothing fails over because the API is gone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gslb.dig("tke-demo.cn A").await.rdata("A"),
        vec![ip1.clone()]
    );

    api.set_down(false);
    eventually(LIMIT, "discovery_up to return", || async {
        metric(&gslb, r#"gslb_discovery_up{source="hub"} 1"#)
            .await
            .then_some(())
    })
    .await;

    // Watches expire (410 Gone) and the change made meanwhile is seen after the relist.
    api.expire_watches();
    api.put(DESCRIPTIONS, description("guangzhou-01", "aaaa", &ip1, 0));
    wait_answer(&gslb, &[&ip2], "the change seen after a relist").await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn karmada_bindings_give_vips_and_cluster_readiness() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let (ip1, ip2) = (block.ip(1).to_string(), block.ip(2).to_string());
    let api = FakeApi::start().await;
    api.put(KARMADA_CLUSTERS, karmada_cluster("guangzhou-01", "True"));
    api.put(KARMADA_CLUSTERS, karmada_cluster("guangzhou-02", "True"));
    api.put(
        BINDINGS,
        ingress_binding(&[("guangzhou-01", &ip1), ("guangzhou-02", &ip2)]),
    );
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(dir.path(), &[("karmada-apiserver", &api)]);
    // No workloads for this app: VIPs and cluster readiness only.
    let text = app_config(&block, port, &kc, "karmada", "")
        .replace("workloads = [{ namespace = \"qcbm\", kind = \"Deployment\", name = \"qcbm-gateway\", min_ready = 1 }]\n", "");
    let gslb = Gslb::start(&text).await;
    wait_answer(&gslb, &[&ip1], "guangzhou-01 from the binding").await;
    api.put(KARMADA_CLUSTERS, karmada_cluster("guangzhou-01", "False"));
    wait_answer(&gslb, &[&ip2], "failover when the cluster is NotReady").await;
    api.put(KARMADA_CLUSTERS, karmada_cluster("guangzhou-01", "True"));
    wait_answer(&gslb, &[&ip1], "back when Ready").await;
    // A NoExecute taint (workloads evicted) takes the cluster out even while Ready.
    let mut tainted = karmada_cluster("guangzhou-01", "True");
    tainted["spec"]["taints"] =
        json!([{"key": "node.kubernetes.io/maintenance", "effect": "NoExecute"}]);
    api.put(KARMADA_CLUSTERS, tainted);
    wait_answer(&gslb, &[&ip2], "failover on a NoExecute taint").await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_contexts_read_each_member_cluster() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let (ip1, ip2) = (block.ip(1).to_string(), block.ip(2).to_string());
    let ingress = |ip: &str| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "qcbm-ingress", "namespace": "qcbm"},
        "spec": {"rules": [{"host": "tke-demo.cn"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
    };
    let deployment = |ready: u32| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "qcbm-gateway", "namespace": "qcbm"},
        "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": ready}})
    };
    let (gz1, gz2) = (FakeApi::start().await, FakeApi::start().await);
    for (api, ip) in [(&gz1, &ip1), (&gz2, &ip2)] {
        api.put("apis/networking.k8s.io/v1/ingresses", ingress(ip));
        api.put("apis/apps/v1/deployments", deployment(2));
        // Another object of the same kind, which the field selector must leave out.
        api.put("apis/apps/v1/deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "other", "namespace": "qcbm"}, "status": {"replicas": 1, "readyReplicas": 0}}));
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(
        dir.path(),
        &[("guangzhou-01", &gz1), ("guangzhou-02", &gz2)],
    );
    let gslb = Gslb::start(&app_config(&block, port, &kc, "kubeconfig", "")).await;
    wait_answer(&gslb, &[&ip1], "guangzhou-01 from its own API").await;
    gz1.put("apis/apps/v1/deployments", deployment(0));
    wait_answer(&gslb, &[&ip2], "failover on zero ready replicas").await;
    gslb.stop().await;
}

/// A drill with a real fault: the workload is scaled to zero in the member cluster,
/// discovery sees zero ready replicas, the answer switches, and the replicas come back.
#[tokio::test(flavor = "multi_thread")]
async fn a_scale_to_zero_drill_fails_over_and_restores_the_replicas() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let (ip1, ip2) = (block.ip(1).to_string(), block.ip(2).to_string());
    let (gz1, gz2) = (FakeApi::start().await, FakeApi::start().await);
    for (api, ip) in [(&gz1, &ip1), (&gz2, &ip2)] {
        api.put("apis/networking.k8s.io/v1/ingresses", json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "qcbm-ingress", "namespace": "qcbm"}, "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}));
        api.put("apis/apps/v1/deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "qcbm-gateway", "namespace": "qcbm"}, "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 3}}));
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(
        dir.path(),
        &[("guangzhou-01", &gz1), ("guangzhou-02", &gz2)],
    );
    let gslb = Gslb::start(&app_config(&block, port, &kc, "kubeconfig", "")).await;
    wait_answer(&gslb, &[&ip1], "guangzhou-01").await;

    let undo = dir.path().join("undo.json");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gslb"))
        .args([
            "drill",
            "run",
            "--cluster",
            "guangzhou-01",
            "--method",
            "scale-to-zero",
            "--workload",
            "qcbm/qcbm-gateway",
            "--hold",
            "200ms",
            "--json",
        ])
        .arg("--kubeconfig")
        .arg(&kc)
        .arg("--undo-file")
        .arg(&undo)
        .args(["--admin", &format!("http://{}", gslb.admin)])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let record: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(record["passed"], true);
    assert_eq!(record["during"][0]["addresses"], json!([ip2]));
    assert!(
        stderr.contains("scaled Deployment qcbm/qcbm-gateway in guangzhou-01 from 3 to 0"),
        "{stderr}"
    );
    assert!(stderr.contains("back to 3 replicas"), "{stderr}");
    assert!(!undo.exists(), "the undo record is removed once undone");
    wait_answer(&gslb, &[&ip1], "guangzhou-01 back").await;
    gslb.stop().await;
}

/// `gslb drill undo` puts back what a killed drill left behind.
#[tokio::test(flavor = "multi_thread")]
async fn drill_undo_restores_an_interrupted_scale() {
    let api = FakeApi::start().await;
    api.put("apis/apps/v1/deployments", json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "qcbm-gateway", "namespace": "qcbm"}, "spec": {"replicas": 0}, "status": {"replicas": 0, "readyReplicas": 0}}));
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(dir.path(), &[("guangzhou-01", &api)]);
    let undo = dir.path().join("undo.json");
    std::fs::write(&undo, serde_json::to_string(&json!({"target": {"kubeconfig": kc, "context": "guangzhou-01", "kind": "Deployment", "namespace": "qcbm", "name": "qcbm-gateway"}, "replicas": 2})).unwrap()).unwrap();
    let undo_args = [
        "drill".as_ref(),
        "undo".as_ref(),
        "--undo-file".as_ref(),
        undo.as_os_str(),
    ];
    let ran = gslb_run(undo_args).await;
    assert!(ran.ok(), "{}", ran.stderr);
    assert!(ran.stdout.contains("back to 2 replicas"), "{}", ran.stdout);
    assert!(!undo.exists());
    let again = gslb_run(undo_args).await;
    assert!(
        !again.ok() && again.stderr.contains("no drill to undo"),
        "{again:?}"
    );
}

/// Every gslb metric that the shipped Grafana dashboard and Prometheus alert rules query
/// is in a real scrape of a gslb that has discovery, quorum views through the hub, an
/// override and some queries.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_and_alerts_query_only_metrics_gslb_exports() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let api = FakeApi::start().await;
    let (ip1, ip2) = (block.ip(1).to_string(), block.ip(2).to_string());
    clusternet_hub(
        &api,
        &[
            ("guangzhou-01", "aaaa", &ip1),
            ("guangzhou-02", "bbbb", &ip2),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(dir.path(), &[("hub", &api)]);
    let quorum = "[quorum]\ninstance = \"gslb-0\"\nhub = \"hub\"\n";
    let gslb = Gslb::start(&app_config(&block, port, &kc, "clusternet", quorum)).await;
    wait_answer(&gslb, &[&block.ip(1).to_string()], "the primary").await;
    // The view object is written once health has decided: wait for the first write.
    eventually(LIMIT, "a quorum view write", || async {
        let (_, scrape) = gslb.get("/metrics").await;
        scrape
            .lines()
            .any(|l| l.starts_with(r#"gslb_quorum_view_writes_total{result="ok"}"#))
            .then_some(())
    })
    .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let set = http
        .post(format!("http://{}/api/v1/overrides", gslb.admin))
        .header("content-type", "application/json")
        .body(r#"{"cluster":"guangzhou-02","kind":"drain","reason":"metrics test"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 201);
    gslb.dig("tke-demo.cn A").await;
    let (_, scrape) = gslb.get("/metrics").await;
    let exported: std::collections::BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "deploy/grafana/gslb-dashboard.json",
        "deploy/prometheus/gslb-rules.yaml",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let mut queried = std::collections::BTreeSet::new();
        for (i, _) in text.match_indices("gslb_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            queried.insert(name);
        }
        assert!(!queried.is_empty(), "{file} queries no gslb metric?");
        for name in &queried {
            // A histogram's own name stands for its _bucket/_sum/_count series.
            let found = exported.contains(name.as_str())
                || exported.contains(format!("{name}_bucket").as_str());
            assert!(
                found,
                "{file} queries {name}, which gslb does not export:\n{scrape}"
            );
        }
    }
    gslb.stop().await;
}

/// Started while the API is down: discovery stays down (no flapping), gslb is not ready,
/// and both change once the API answers.
#[tokio::test(flavor = "multi_thread")]
async fn starting_while_the_api_is_down_waits_without_flapping() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let api = FakeApi::start().await;
    api.put(
        MANAGED_CLUSTERS,
        managed_cluster("guangzhou-01", "aaaa", "True"),
    );
    api.put(
        DESCRIPTIONS,
        description("guangzhou-01", "aaaa", &block.ip(1).to_string(), 2),
    );
    api.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let kc = FakeApi::kubeconfig(dir.path(), &[("hub", &api)]);
    let gslb = Gslb::start(&app_config(&block, port, &kc, "clusternet", "")).await;
    let before = api.lists(MANAGED_CLUSTERS);
    for _ in 0..60 {
        assert!(
            metric(&gslb, r#"gslb_discovery_up{source="hub"} 0"#).await,
            "discovery_up must stay 0 while the API is down"
        );
        assert_eq!(gslb.get("/readyz").await.0, 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // At least 6 s down: lists back off (0.8 s, doubling, with jitter: 4 or 5 attempts
    // at the most), rather than one a second. A slower machine only lists less.
    let retries = api.lists(MANAGED_CLUSTERS) - before;
    assert!(
        retries <= 5,
        "{retries} list attempts in 6 s of outage: the retries do not back off"
    );
    api.set_down(false);
    wait_answer(&gslb, &[&block.ip(1).to_string()], "the discovered VIP").await;
    eventually(LIMIT, "ready", || async {
        (gslb.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    assert!(metric(&gslb, r#"gslb_discovery_up{source="hub"} 1"#).await);
    gslb.stop().await;
}
