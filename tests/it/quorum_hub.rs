//! Multi-vantage quorum through the hub: three gslb instances on loopback share one
//! stand-in hub API server (`apiserver.rs`: no real API server can run here), each
//! writing its view to a ConfigMap there and watching the others'. One instance cannot
//! reach a stand-in ingress; the ingress really fails; the hub goes down and comes back.

use std::time::Duration;

use serde_json::Value;

use crate::apiserver::FakeApi;
use crate::harness::{Block, Gslb, eventually, gslb_cli, metric, stand_ins, two_cluster_app};
use crate::quorum::{answer, target};

const LIMIT: Duration = Duration::from_secs(20);
const CONFIGMAPS: &str = "api/v1/configmaps";

/// Three instances `gslb-1..3` on `block.instance_ip(1..=3)`, each probing from its own
/// address, with the stand-in `hub` as a Clusternet source and `[quorum] hub` on it.
async fn three_instances(
    block: &Block,
    port: u16,
    hub: &FakeApi,
    dir: &std::path::Path,
) -> Vec<Gslb> {
    let kubeconfig = FakeApi::kubeconfig(dir, &[("hub", hub)]);
    let mut all = Vec::new();
    for k in 1u8..=3 {
        let ip = block.instance_ip(k);
        let text = format!(
            r#"
[server]
dns_listen = ["{ip}:0"]
admin_listen = "{ip}:0"
probe_source = "{ip}"

[[source]]
name = "hub"
kind = "clusternet"
kubeconfig = "{kc}"

[quorum]
instance = "gslb-{k}"
hub = "hub"
namespace = "gslb"
fresh_within = "1s"
{app}"#,
            kc = kubeconfig.display(),
            app = two_cluster_app(block, port, "failover", ""),
        );
        all.push(Gslb::start_as_written(&text).await);
    }
    all
}

async fn status(gslb: &Gslb) -> Value {
    let (code, body) = gslb.get("/api/v1/status").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until every instance counts three fresh views (its own and both others').
async fn three_fresh_views(all: &[Gslb]) {
    for g in all {
        eventually(LIMIT, "three fresh views", || async {
            metric(g, "gslb_quorum_views{fresh=\"true\"} 3")
                .await
                .then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_hub_a_blind_instance_is_outvoted_and_all_switch_when_the_ingress_fails() {
    let block = Block::new();
    let (mut ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    ins[0].refuse_from(block.instance_ip(3), true);
    let hub = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let all = three_instances(&block, port, &hub, dir.path()).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());

    // gslb-3 sees guangzhou-01 down on its own; the views of the two others, read from
    // the hub, outvote it.
    let st = eventually(LIMIT, "gslb-3 outvoted through the hub", || async {
        let s = status(&all[2]).await;
        let t = target(&s, "guangzhou-01");
        (t["own"] == "down" && t["state"] == "up" && t["vips"][0]["votes"]["views"] == 3)
            .then_some(s)
    })
    .await;
    let vip = &target(&st, "guangzhou-01")["vips"][0];
    assert_eq!(vip["votes"]["down"], 1, "{vip}");
    assert_eq!(vip["votes"]["needed"], 2, "{vip}");
    // Its peers are the two other instances' objects on the hub, not itself.
    let q = &st["quorum"];
    assert_eq!(q["fresh_views"], 3, "{q}");
    assert_eq!(q["fallback"], false, "{q}");
    let mut peers: Vec<(String, String, String)> = q["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["instance"].as_str().unwrap_or("").to_owned(),
                p["via"].as_str().unwrap().to_owned(),
                p["url"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    peers.sort();
    let base = format!("http://{}/api/v1/namespaces/gslb/configmaps", hub.addr);
    assert_eq!(
        peers,
        [
            (
                "gslb-1".into(),
                "hub".into(),
                format!("{base}/gslb-view-gslb-1")
            ),
            (
                "gslb-2".into(),
                "hub".into(),
                format!("{base}/gslb-view-gslb-2")
            ),
        ],
        "{q}"
    );
    assert_eq!(q["hub"]["object"], "gslb-view-gslb-3", "{q}");
    assert_eq!(q["hub"]["watching"], true, "{q}");
    assert!(q["hub"]["write_error"].is_null(), "{q}");
    assert!(q["hub"]["last_write"].is_string(), "{q}");
    let admin = format!("http://{}", all[2].admin);
    let (ok, out, _) = gslb_cli(&admin, &["status"], None).await;
    assert!(ok);
    assert!(out.contains("quorum as gslb-3: 3 fresh views"), "{out}");
    assert!(
        out.contains("views through the hub of source hub in namespace gslb: this view as gslb-view-gslb-3, written"),
        "{out}"
    );
    assert!(out.contains("; watch up"), "{out}");
    for g in &all {
        assert_eq!(answer(g).await, vec![one.clone()]);
    }

    // The objects on the hub: one ConfigMap per instance, labelled, the view in data.
    let objects = hub.objects(CONFIGMAPS);
    assert_eq!(
        objects.keys().collect::<Vec<_>>(),
        [
            "gslb/gslb-view-gslb-1",
            "gslb/gslb-view-gslb-2",
            "gslb/gslb-view-gslb-3"
        ]
    );
    let cm = &objects["gslb/gslb-view-gslb-3"];
    assert_eq!(cm["apiVersion"], "v1");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["app.kubernetes.io/name"], "gslb");
    assert_eq!(
        cm["metadata"]["labels"]["app.kubernetes.io/component"],
        "quorum-view"
    );
    assert_eq!(cm["metadata"]["managedFields"][0]["manager"], "gslb");
    let view: Value = serde_json::from_str(cm["data"]["view.json"].as_str().unwrap()).unwrap();
    assert_eq!(view["instance"], "gslb-3");
    let own = view["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cluster"] == "guangzhou-01")
        .unwrap();
    assert_eq!(
        (own["vip"].as_str(), own["state"].as_str()),
        (Some(one.as_str()), Some("down"))
    );
    // Written with server-side apply, always accepted, and renewed (a few times a
    // second with fresh_within 1s) even though nothing changed.
    let writes = hub.writes();
    assert!(
        writes.iter().all(|w| w.method == "PATCH"
            && w.path
                .starts_with("/api/v1/namespaces/gslb/configmaps/gslb-view-gslb-")
            && w.content_type == "application/apply-patch+yaml"
            && w.query.get("fieldManager").map(String::as_str) == Some("gslb")
            && w.query.get("force").map(String::as_str) == Some("true")
            && w.status < 300),
        "{writes:?}"
    );
    let rv = |api: &FakeApi| {
        api.objects(CONFIGMAPS)["gslb/gslb-view-gslb-1"]["metadata"]["resourceVersion"].clone()
    };
    let before = rv(&hub);
    eventually(LIMIT, "a renewal of gslb-1's view", || async {
        (rv(&hub) != before).then_some(())
    })
    .await;

    // The ingress really fails: all three switch; it returns: all three come back.
    ins[0].stop();
    for (k, g) in all.iter().enumerate() {
        eventually(LIMIT, &format!("gslb-{} to switch", k + 1), || async {
            (answer(g).await == [two.clone()]).then_some(())
        })
        .await;
    }
    ins[0].resume().await.unwrap();
    for (k, g) in all.iter().enumerate() {
        eventually(LIMIT, &format!("gslb-{} to return", k + 1), || async {
            (answer(g).await == [one.clone()]).then_some(())
        })
        .await;
    }
    assert!(
        metric(
            &all[0],
            "gslb_quorum_view_writes_total{result=\"too_large\"} 0"
        )
        .await
    );
    for g in all {
        g.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_hub_down_views_go_stale_each_instance_decides_alone_then_recovers() {
    let block = Block::new();
    let (ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    ins[0].refuse_from(block.instance_ip(3), true);
    let hub = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let all = three_instances(&block, port, &hub, dir.path()).await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());
    three_fresh_views(&all).await;
    // Once the others' views say up (not unknown), gslb-3 is outvoted.
    eventually(LIMIT, "gslb-3 outvoted", || async {
        (answer(&all[2]).await == [one.clone()]).then_some(())
    })
    .await;

    // The hub goes down: no view is renewed or read; after fresh_within every instance
    // decides from its own view, and the blind one leaves guangzhou-01 out.
    hub.set_down(true);
    for g in &all {
        eventually(LIMIT, "fallback to its own view", || async {
            let s = status(g).await;
            let q = &s["quorum"];
            (metric(g, "gslb_quorum_views{fresh=\"true\"} 1").await
                && metric(g, "gslb_quorum_views{fresh=\"false\"} 2").await
                && q["fallback"] == true
                && q["hub"]["watching"] == false
                && q["hub"]["watch_error"].is_string()
                && q["hub"]["write_error"].is_string())
            .then_some(())
        })
        .await;
    }
    let (ok, out, _) = gslb_cli(&format!("http://{}", all[0].admin), &["status"], None).await;
    assert!(ok);
    assert!(out.contains("NO FRESH PEER VIEW"), "{out}");
    assert!(out.contains("NOT WRITTEN: "), "{out}");
    assert!(out.contains("watch DOWN: "), "{out}");
    let (_, m) = all[0].get("/metrics").await;
    let errors = m
        .lines()
        .find_map(|l| l.strip_prefix("gslb_quorum_view_writes_total{result=\"error\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(errors >= 1, "{m}");
    eventually(LIMIT, "gslb-3 alone takes guangzhou-01 out", || async {
        (answer(&all[2]).await == [two.clone()]).then_some(())
    })
    .await;
    assert_eq!(answer(&all[0]).await, vec![one.clone()]);

    // The hub returns: writes and the watch resume, views are fresh again, and the
    // quorum brings gslb-3 back to guangzhou-01.
    hub.set_down(false);
    for g in &all {
        eventually(LIMIT, "three fresh views again", || async {
            let s = status(g).await;
            (metric(g, "gslb_quorum_views{fresh=\"true\"} 3").await
                && s["quorum"]["fallback"] == false
                && s["quorum"]["hub"]["watching"] == true
                && s["quorum"]["hub"]["write_error"].is_null())
            .then_some(())
        })
        .await;
    }
    eventually(LIMIT, "gslb-3 back on the quorum's answer", || async {
        (answer(&all[2]).await == [one.clone()]).then_some(())
    })
    .await;
    for g in all {
        g.stop().await;
    }
}

/// An instance that stops deletes its view object, and its peers forget it at once (it is
/// not left as a stale view, nor on the hub after a rollout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_instance_removes_its_view_and_the_others_forget_it() {
    let block = Block::new();
    let (_ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let hub = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut all = three_instances(&block, port, &hub, dir.path()).await;
    three_fresh_views(&all).await;
    let views = || {
        hub.objects("api/v1/configmaps")
            .into_keys()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        views(),
        [
            "gslb/gslb-view-gslb-1",
            "gslb/gslb-view-gslb-2",
            "gslb/gslb-view-gslb-3"
        ]
    );
    all.pop().unwrap().stop().await;
    assert_eq!(views(), ["gslb/gslb-view-gslb-1", "gslb/gslb-view-gslb-2"]);
    let deletes: Vec<_> = (hub.writes().into_iter())
        .filter(|w| w.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        (deletes[0].path.as_str(), deletes[0].status),
        ("/api/v1/namespaces/gslb/configmaps/gslb-view-gslb-3", 200)
    );
    // Only the version it wrote last: a successor's write under the same name is kept.
    assert!(deletes[0].precondition.is_some(), "{deletes:?}");
    // Forgotten, not stale: no view counts as stale, and gslb-3 is not among the peers.
    for g in &all {
        eventually(LIMIT, "gslb-3 forgotten", || async {
            let s = status(g).await;
            let peers = s["quorum"]["peers"].as_array().unwrap().clone();
            (metric(g, "gslb_quorum_views{fresh=\"true\"} 2").await
                && metric(g, "gslb_quorum_views{fresh=\"false\"} 0").await
                && peers.len() == 1
                && !peers[0]["url"]
                    .as_str()
                    .unwrap()
                    .ends_with("gslb-view-gslb-3"))
            .then_some(())
        })
        .await;
    }
    for g in all {
        g.stop().await;
    }
}

/// A view object deleted while the watch was broken sends no event: the relist that
/// follows shows it gone, and its peer is forgotten then (not kept as a stale view).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_deleted_during_a_watch_gap_is_forgotten_at_the_relist() {
    let block = Block::new();
    let (_ins, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let hub = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let all = three_instances(&block, port, &hub, dir.path()).await;
    three_fresh_views(&all).await;
    // A fourth instance's view, written as gslb-3's, by hand.
    let configmaps = "api/v1/configmaps";
    let mut ghost = hub.objects(configmaps)["gslb/gslb-view-gslb-3"].clone();
    ghost["metadata"]["name"] = "gslb-view-ghost".into();
    let view = ghost["data"]["view.json"].as_str().unwrap();
    let view = view.replace("\"gslb-3\"", "\"ghost\"");
    assert!(view.contains("\"ghost\""), "{view}");
    ghost["data"]["view.json"] = view.into();
    hub.put(configmaps, ghost);
    // Peers by the name of their view object, as each instance lists them.
    let peers = |s: Value| -> Vec<String> {
        (s["quorum"]["peers"].as_array().unwrap().iter())
            .map(|p| {
                p["url"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    for g in &all {
        eventually(LIMIT, "the ghost among the peers", || async {
            (peers(status(g).await).contains(&"gslb-view-ghost".to_owned())).then_some(())
        })
        .await;
    }
    hub.remove_unseen(configmaps, "gslb", "gslb-view-ghost");
    hub.expire_watches();
    for g in &all {
        eventually(LIMIT, "the ghost forgotten after the relist", || async {
            let listed = peers(status(g).await);
            (listed.len() == 2
                && !listed.contains(&"gslb-view-ghost".to_owned())
                && metric(g, "gslb_quorum_views{fresh=\"false\"} 0").await)
                .then_some(())
        })
        .await;
    }
    for g in all {
        g.stop().await;
    }
}
