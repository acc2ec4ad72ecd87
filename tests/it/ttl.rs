//! TTL that follows health, as `dig` sees it: an app with `adaptive_ttl` answers with a
//! short TTL while a cluster's probes fail short of `fall`, while it is down and while it
//! recovers, and with its `ttl` once every cluster is up and steady; an app without it
//! keeps its `ttl` throughout.

use std::time::Duration;

use gslb::admin::{explain::Explanation, status::StatusReport};

use crate::harness::{Block, Gslb, config, eventually, stand_ins, two_clusters};

/// Generous: the steps below take about a second each; a loaded machine is slower.
const LIMIT: Duration = Duration::from_secs(20);

/// `(addresses, TTLs)` of `name A`, asked of gslb directly.
async fn a_with_ttl(gslb: &Gslb, name: &str) -> (Vec<String>, Vec<u32>) {
    let d = gslb.dig(&format!("{name} A")).await;
    let ttls = d
        .answer
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    (d.rdata("A"), ttls)
}

async fn status(gslb: &Gslb) -> StatusReport {
    serde_json::from_str(&gslb.get("/api/v1/status").await.1).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn adaptive_ttl_is_short_while_a_cluster_fails_and_full_once_steady() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    // fall = 6 at a recheck pace of 1 s: once the primary stops, its probes fail for about
    // 5 s before it goes down, a window long enough to watch.
    let probe = format!(
        r#"probe = {{ kind = "http", port = {port}, interval = "1s", timeout = "500ms", recheck_interval = "1s", rise = 2, fall = 6 }}"#
    );
    let gslb = Gslb::start(&config(&format!(
        r#"
{clusters}
[[app]]
name = "tke-demo.cn"
ttl = 30
adaptive_ttl = {{ min = 2 }}
{probe}

[[app]]
name = "plain.tke-demo.cn"
ttl = 30
{probe}
"#,
        clusters = two_clusters(&block),
    )))
    .await;
    let (one, two) = (block.ip(1).to_string(), block.ip(2).to_string());

    // Steady: every probe passes, both apps answer with their ttl.
    eventually(
        LIMIT,
        "the full ttl once every cluster is probed",
        || async {
            (a_with_ttl(&gslb, "tke-demo.cn").await == (vec![one.clone()], vec![30])).then_some(())
        },
    )
    .await;
    assert_eq!(
        a_with_ttl(&gslb, "plain.tke-demo.cn").await,
        (vec![one.clone()], vec![30])
    );

    // Degrading: the primary's probes fail, short of `fall`; it is still answered, with a
    // TTL of the time until it could go down (5 s after the first failure, then less),
    // never below the minimum.
    ingresses[0].stop();
    let ttl = eventually(LIMIT, "a short TTL while the primary degrades", || async {
        let (ips, ttls) = a_with_ttl(&gslb, "tke-demo.cn").await;
        (ips == vec![one.clone()] && ttls[0] < 30).then_some(ttls[0])
    })
    .await;
    assert!((2..=5).contains(&ttl), "ttl {ttl}");
    let s = status(&gslb).await;
    let primary = &s.targets[0];
    // (Read after the dig: it may have gone down since; it has a failure run either way.)
    if primary.state == "up" {
        assert!(primary.vips[0].streak > 0, "{primary:?}");
        assert!(
            s.apps[0].ttl_unsteady && s.apps[0].ttl < 30,
            "{:?}",
            s.apps[0]
        );
        assert!(
            s.apps[0].ttl_why.contains("is failing its probes"),
            "{}",
            s.apps[0].ttl_why
        );
    }
    // The app without adaptive_ttl is untouched.
    assert_eq!(
        a_with_ttl(&gslb, "plain.tke-demo.cn").await.1,
        vec![30],
        "no adaptive_ttl: always the ttl"
    );

    // Down: answers from the standby, at the minimum (a pass may come at any probe).
    eventually(LIMIT, "failover to guangzhou-02", || async {
        (a_with_ttl(&gslb, "tke-demo.cn").await.0 == vec![two.clone()]).then_some(())
    })
    .await;
    assert_eq!(
        a_with_ttl(&gslb, "tke-demo.cn").await,
        (vec![two.clone()], vec![2])
    );
    // The other app probes the same cluster on its own schedule: it goes down within a
    // probe round of the first, always at the full ttl.
    eventually(LIMIT, "the plain app on guangzhou-02 too", || async {
        (a_with_ttl(&gslb, "plain.tke-demo.cn").await == (vec![two.clone()], vec![30]))
            .then_some(())
    })
    .await;
    let s = status(&gslb).await;
    assert_eq!((s.apps[0].ttl, s.apps[0].ttl_unsteady), (2, true));
    assert_eq!((s.apps[1].ttl, s.apps[1].ttl_unsteady), (30, false));
    let text = gslb::admin::status::render(&s);
    assert!(
        text.contains("SHORT TTL")
            && text.contains(&format!("tke-demo.cn 2s: guangzhou-01 {one} is down")),
        "{text}"
    );
    let e: Explanation =
        serde_json::from_str(&gslb.get("/api/v1/explain?name=tke-demo.cn&type=A").await.1).unwrap();
    let app = e.app.as_ref().unwrap();
    assert_eq!(
        (app.ttl, app.ttl_now, app.adaptive_ttl_min),
        (30, 2, Some(2))
    );
    let text = gslb::admin::explain::render(&e);
    assert!(
        text.contains("app: policy failover, ttl 2s (adaptive, 2s to 30s)")
            && text.contains(&format!("tke-demo.cn. 2 IN A {two}")),
        "{text}"
    );

    // Back: once the primary has passed `rise` probes it is answered again, and with no
    // failure since, at the full ttl.
    ingresses[0].resume().await.unwrap();
    eventually(LIMIT, "the primary back, at the full ttl", || async {
        (a_with_ttl(&gslb, "tke-demo.cn").await == (vec![one.clone()], vec![30])).then_some(())
    })
    .await;
    let s = status(&gslb).await;
    assert_eq!((s.apps[0].ttl, s.apps[0].ttl_unsteady), (30, false));
    assert!(
        s.apps[0]
            .ttl_why
            .starts_with("every cluster is up and steady"),
        "{}",
        s.apps[0].ttl_why
    );
    gslb.stop().await;
}
