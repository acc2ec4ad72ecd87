//! Randomized robustness, bounded in count: mutated and random bytes into the DNS
//! listener, the config parser and the state file loader. Nothing may panic, and the
//! server must keep answering. (Coverage-guided fuzzing needs a nightly toolchain for
//! cargo-fuzz, which this project's machines do not have; these property runs are the
//! stand-in and their seeds are printed on failure by proptest.)

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::harness::{Block, Gslb, stand_ins, two_cluster_app};

fn valid_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    for l in ["www", "tke-demo", "cn"] {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

/// A valid query with some bytes flipped, cut or extended.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((0usize..64, any::<u8>()), 0..6),
        0usize..80,
        proptest::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(flips, cut, tail)| {
            let mut q = valid_query();
            for (at, b) in flips {
                if let Some(x) = q.get_mut(at) {
                    *x ^= b;
                }
            }
            q.truncate(cut.max(1));
            q.extend(tail);
            q
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn random_and_mutated_packets_never_stop_the_server() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let gslb = Gslb::start(&two_cluster_app(&block, port, "failover", "")).await;
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        ..Config::default()
    });
    let strategy = prop_oneof![mutated(), proptest::collection::vec(any::<u8>(), 0..600)];
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = gslb.dns;
    runner
        .run(&strategy, |packet| {
            sock.send_to(&packet, dns).unwrap();
            Ok(())
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = gslb.dig("tke-demo.cn A").await;
    assert_eq!(d.rdata("A"), vec![block.ip(1).to_string()], "{}", d.raw);
    gslb.stop().await;
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    /// Any text: the config loader returns Ok or problems, never panics.
    #[test]
    fn the_config_parser_never_panics(text in "\\PC{0,400}") {
        let _ = gslb::config::parse(&text, "fuzz");
    }

    /// Mangled versions of a real config: problems carry a line within the file.
    #[test]
    fn config_problems_point_inside_the_file(cut in 0usize..2000, junk in "[\\[\\]={}\",a-z0-9 \n]{0,40}") {
        let good = gslb::demo::CONFIG;
        let at = cut.min(good.len());
        let at = (0..=at).rev().find(|i| good.is_char_boundary(*i)).unwrap_or(0);
        let text = format!("{}{}{}", &good[..at], junk, &good[at..]);
        if let Err(e) = gslb::config::parse(&text, "fuzz") {
            let lines = text.lines().count().max(1);
            for p in e.problems {
                if let Some(l) = p.line {
                    prop_assert!(l >= 1 && l <= lines + 1, "line {l} of {lines}");
                }
            }
        }
    }

    /// Any bytes as a state file: opened as fresh, loaded or corrupt, never a panic.
    #[test]
    fn the_state_file_loader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, &bytes).unwrap();
        let _ = gslb::state::StateStore::open(&path);
    }
}
