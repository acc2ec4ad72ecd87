use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};

use super::*;
use crate::metrics::Metrics;

fn inventory() -> Arc<Inventory> {
    let text = r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns.example.net"]
hostmaster = "hostmaster.tke-demo.cn"
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1", "127.0.1.11"]
[[cluster]]
name = "gz-02"
vips = ["127.0.1.2"]
[[app]]
name = "tke-demo.cn"
probe = { kind = "tcp", port = 80, rise = 2, fall = 2 }
"#;
    Arc::new(crate::config::parse(text, "t").unwrap().inventory)
}

fn report(endpoint: usize, ok: bool) -> ProbeReport {
    ProbeReport {
        endpoint,
        outcome: if ok {
            Outcome::Success
        } else {
            Outcome::Failure
        },
        detail: String::new(),
        latency: Duration::from_millis(1),
        at: SystemTime::now(),
    }
}

#[test]
fn a_target_stays_up_while_any_vip_passes() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    // endpoints 0 and 1 are gz-01's two VIPs, 2 is gz-02's.
    assert_eq!(book.observe(report(0, true)).map(|t| t.to), Some(State::Up));
    assert_eq!(
        book.observe(report(1, false)),
        None,
        "still up through VIP 0"
    );
    assert_eq!(book.snapshot().endpoints[1].state, State::Down);
    assert_eq!(
        book.observe(report(0, false)),
        None,
        "one failure is not enough (fall 2)"
    );
    let t = book.observe(report(0, false)).unwrap();
    assert_eq!((t.target, t.from, t.to), (0, State::Up, State::Down));
    assert_eq!(book.snapshot().targets[0].state, State::Down);
    assert_eq!(book.snapshot().targets[1].state, State::Unknown);
}

#[test]
fn version_moves_only_on_state_changes() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    book.observe(report(2, true));
    let v = book.snapshot().version;
    book.observe(report(2, true));
    book.observe(report(2, false));
    assert_eq!(book.snapshot().version, v);
    assert!(book.snapshot().endpoints[2].last.is_some());
    book.observe(report(2, false));
    assert!(book.snapshot().version > v);
}

#[test]
fn all_probed_once_every_endpoint_reported() {
    let mut book = HealthBook::new(inventory(), SystemTime::now());
    for e in 0..3 {
        assert!(!book.snapshot().all_probed());
        book.observe(report(e, e != 1));
    }
    assert!(book.snapshot().all_probed());
}

#[tokio::test]
async fn run_publishes_snapshots_and_counts_transitions() {
    let inv = inventory();
    let book = HealthBook::new(inv.clone(), SystemTime::now());
    let (tx, rx) = mpsc::channel(16);
    let (pub_tx, mut pub_rx) = watch::channel(Arc::new(book.snapshot().clone()));
    let metrics = Arc::new(Metrics::new());
    let task = tokio::spawn(run(book, rx, pub_tx, metrics.clone()));
    tx.send(report(2, true)).await.unwrap();
    pub_rx.changed().await.unwrap();
    assert_eq!(pub_rx.borrow_and_update().targets[1].state, State::Up);
    for _ in 0..2 {
        tx.send(report(2, false)).await.unwrap();
    }
    drop(tx);
    task.await.unwrap();
    assert_eq!(pub_rx.borrow().targets[1].state, State::Down);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"gslb_health_transitions_total{app="tke-demo.cn",cluster="gz-02",to="down"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"gslb_target_up{app="tke-demo.cn",cluster="gz-02"} 0"#),
        "{text}"
    );
    assert!(
        text.contains(r#"gslb_probes_total{app="tke-demo.cn",cluster="gz-02",result="failure"} 2"#),
        "{text}"
    );
}
