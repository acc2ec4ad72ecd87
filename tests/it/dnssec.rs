//! DNSSEC checked by a real validator: unbound, given the zone's DS (printed by
//! `gslb dnssec ds`) as its trust anchor, marks gslb's answers secure (AD) — positive,
//! missing names, NODATA, and the new answer after a failover — and a wrong anchor makes
//! the same answers bogus (SERVFAIL), which shows the checks can fail.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Block, Dig, Gslb, dig, eventually, gslb_run, stand_ins, two_cluster_app};
use crate::resolver::{validating_unbound_ecs_for, validating_unbound_for};

/// `gslb dnssec keygen` into `dir/name`.
async fn keygen(dir: &Path, name: &str, algorithm: &str) -> String {
    let path = dir.join(name);
    let path = path.to_str().unwrap().to_owned();
    let ran = gslb_run(["dnssec", "keygen", "--algorithm", algorithm, "--out", &path]).await;
    assert!(ran.ok(), "{}", ran.stderr);
    path
}

/// `gslb dnssec ds` for the config at `path`.
async fn ds(path: &Path) -> String {
    let ran = gslb_run([
        "dnssec".as_ref(),
        "ds".as_ref(),
        "--zone".as_ref(),
        "tke-demo.cn".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
    ])
    .await;
    assert!(ran.ok(), "{}", ran.stderr);
    ran.stdout
}

/// The two-cluster failover app with the zone signed by `keys` (TOML array items).
fn signed_config(block: &Block, port: u16, keys: &str) -> String {
    two_cluster_app(block, port, "failover", "")
        .replace("ttl = 5", "ttl = 1")
        .replacen(
            "[[cluster]]",
            &format!("[zone.dnssec]\nkeys = [{keys}]\n\n[[cluster]]"),
            1,
        )
}

async fn secure(resolver: std::net::SocketAddr, question: &str) -> Dig {
    let d = dig(resolver, &format!("{question} +dnssec")).await;
    assert!(
        d.has_flag("ad"),
        "{question}: not validated as secure:\n{}",
        d.raw
    );
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn unbound_validates_signed_answers_before_and_after_a_failover() {
    let block = Block::new();
    let dir = tempfile::tempdir().unwrap();
    let ksk = keygen(dir.path(), "ksk.pem", "ecdsa-p256").await;
    let zsk = keygen(dir.path(), "zsk.pem", "ed25519").await;
    let (mut ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let config = signed_config(
        &block,
        port,
        &format!(r#"{{ file = "{ksk}", role = "ksk" }}, {{ file = "{zsk}", role = "zsk" }}"#),
    );
    let config_path = dir.path().join("gslb.toml");
    std::fs::write(&config_path, &config).unwrap();
    let anchor = ds(&config_path).await;
    assert_eq!(anchor.lines().count(), 1, "one DS, for the KSK: {anchor}");
    let gslb = Gslb::start(&config).await;

    // Straight from gslb: signatures only for DO=1.
    let plain = gslb.dig("tke-demo.cn A").await;
    assert!(plain.rdata("RRSIG").is_empty(), "{}", plain.raw);
    let signed = gslb.dig("tke-demo.cn A +dnssec").await;
    assert_eq!(signed.rdata("RRSIG").len(), 1, "{}", signed.raw);

    let (resolver, _child, _udir) = validating_unbound_for(gslb.dns.port(), &anchor).await;
    let answer = |want: String| async move {
        eventually(
            Duration::from_secs(15),
            &format!("unbound to answer {want}, validated"),
            || {
                let want = want.clone();
                async move {
                    let d = dig(resolver, "tke-demo.cn A +dnssec").await;
                    (d.status == "NOERROR" && d.rdata("A") == vec![want.clone()]).then_some(d)
                }
            },
        )
        .await
    };
    let d = answer(block.ip(1).to_string()).await;
    assert!(d.has_flag("ad"), "positive answer not secure:\n{}", d.raw);
    // A name that does not exist: proven by an NSEC at the name (compact denial, so a
    // NOERROR without records), secure.
    let missing = secure(resolver, "nope.tke-demo.cn A").await;
    assert!(missing.answer.is_empty(), "{}", missing.raw);
    assert!(matches!(missing.status.as_str(), "NOERROR" | "NXDOMAIN"));
    // NODATA: the name exists without this type.
    let nodata = secure(resolver, "info.tke-demo.cn A").await;
    assert_eq!(nodata.status, "NOERROR");
    assert!(nodata.answer.is_empty(), "{}", nodata.raw);
    // Through a CNAME, and a static set.
    secure(resolver, "www.tke-demo.cn A").await;
    assert_eq!(
        secure(resolver, "info.tke-demo.cn TXT").await.rdata("TXT"),
        vec!["\"served by gslb\""]
    );

    // Failover: the new answer set is signed at once, and validates.
    ingresses[0].stop();
    let d = answer(block.ip(2).to_string()).await;
    assert!(
        d.has_flag("ad"),
        "answer after failover not secure:\n{}",
        d.raw
    );
    ingresses[0].resume().await.unwrap();
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_trust_anchor_makes_the_answers_bogus() {
    let block = Block::new();
    let dir = tempfile::tempdir().unwrap();
    let csk = keygen(dir.path(), "csk.pem", "ed25519").await;
    let other = keygen(dir.path(), "other.pem", "ed25519").await;
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let config = signed_config(&block, port, &format!(r#"{{ file = "{csk}" }}"#));
    // The anchor of another key, as if the parent held a stale DS.
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        signed_config(&block, port, &format!(r#"{{ file = "{other}" }}"#)),
    )
    .unwrap();
    let anchor = ds(&wrong).await;
    let gslb = Gslb::start(&config).await;
    let (resolver, _child, _udir) = validating_unbound_for(gslb.dns.port(), &anchor).await;
    let d = eventually(
        Duration::from_secs(15),
        "unbound to answer",
        || async move {
            let d = dig(resolver, "tke-demo.cn A +dnssec").await;
            (!d.status.is_empty()).then_some(d)
        },
    )
    .await;
    assert_eq!(d.status, "SERVFAIL", "{}", d.raw);
    assert_eq!(
        dig(resolver, "nope.tke-demo.cn A +dnssec").await.status,
        "SERVFAIL"
    );
    gslb.stop().await;
}

/// A secondary's copy (AXFR) of a signed zone carries the signatures and an NSEC chain,
/// and `ldns-verify-zone` finds it valid; IXFR sends the whole zone too.
#[tokio::test(flavor = "multi_thread")]
async fn a_transferred_copy_of_a_signed_zone_verifies() {
    let block = Block::new();
    let dir = tempfile::tempdir().unwrap();
    let ksk = keygen(dir.path(), "ksk.pem", "ed25519").await;
    let zsk = keygen(dir.path(), "zsk.pem", "ecdsa-p256").await;
    let (_ingresses, port) = stand_ins(&block, &["guangzhou-01", "guangzhou-02"]).await;
    let config = signed_config(
        &block,
        port,
        &format!(r#"{{ file = "{ksk}", role = "ksk" }}, {{ file = "{zsk}", role = "zsk" }}"#),
    )
    .replacen(
        "[zone.dnssec]",
        "allow_transfer = [\"127.0.0.0/8\"]\n[zone.dnssec]",
        1,
    );
    let gslb = Gslb::start(&config).await;
    let copy = dig(gslb.dns, "tke-demo.cn AXFR").await.raw;
    for rtype in ["RRSIG", "NSEC", "DNSKEY"] {
        assert!(
            copy.contains(&format!("\t{rtype}\t")),
            "no {rtype} in\n{copy}"
        );
    }
    let file = dir.path().join("copy.zone");
    std::fs::write(&file, &copy).unwrap();
    let out = tokio::process::Command::new("ldns-verify-zone")
        .arg(&file)
        .output()
        .await
        .expect("ldns-verify-zone runs: apt-get install -y ldnsutils");
    assert!(
        out.status.success(),
        "ldns-verify-zone: {}{}\n{copy}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A damaged copy fails the same check: it can fail.
    let damaged = copy.replacen("\tA\t127.0.0.1", "\tA\t127.0.0.9", 1);
    assert_ne!(damaged, copy);
    std::fs::write(&file, &damaged).unwrap();
    let out = tokio::process::Command::new("ldns-verify-zone")
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "a damaged copy verified");
    gslb.stop().await;
}

/// Key problems are config errors naming the key; `dnssec ds` refuses a config without a
/// signed zone; keygen does not overwrite a key.
#[tokio::test]
async fn bad_keys_and_unsigned_configs_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let csk = keygen(dir.path(), "csk.pem", "ecdsa-p256").await;
    let again = gslb_run(["dnssec", "keygen", "--out", &csk]).await;
    assert!(!again.ok(), "keygen overwrote a key");
    let base = crate::harness::config("");
    let path = dir.path().join("gslb.toml");
    let run = |args: Vec<String>| async move {
        let ran = gslb_run(args).await;
        (ran.code, ran.stderr)
    };
    let p = path.to_str().unwrap().to_owned();
    std::fs::write(&path, &base).unwrap();
    let (code, err) = run(vec![
        "dnssec".into(),
        "ds".into(),
        "--config".into(),
        p.clone(),
    ])
    .await;
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("no signed zone"), "{err}");

    let missing = dir.path().join("missing.pem");
    std::fs::write(
        &path,
        format!(
            "{base}\n[zone.dnssec]\nkeys = [{{ file = {:?}, role = \"ksk\" }}, {{ file = {csk:?}, role = \"zsk\" }}, {{ file = {csk:?}, role = \"big\" }}]\nsignature_validity = \"1h\"\n",
            missing.to_str().unwrap()
        ),
    )
    .unwrap();
    let (code, err) = run(vec!["check-config".into(), p.clone()]).await;
    assert_eq!(code, Some(64), "{err}");
    for want in [
        "zone[0].dnssec.keys[0].file: cannot read a PKCS#8 PEM private key",
        "zone[0].dnssec.keys[2].role: `big` is not a key role",
        "zone[0].dnssec.signature_validity: 1h is too short",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
}

/// A `geo` app in a signed zone through a validating unbound that sends each client's
/// subnet (ECS): clients of two regions get their own region's answer, marked secure —
/// each region's set carries its own RRSIG — fresh and from unbound's cache.
#[tokio::test(flavor = "multi_thread")]
async fn unbound_validates_each_regions_answer_of_a_geo_app() {
    let block = Block::new();
    let dir = tempfile::tempdir().unwrap();
    let csk = keygen(dir.path(), "csk.pem", "ecdsa-p256").await;
    let (_ingresses, port) = stand_ins(&block, &["gz-01", "sh-01", "bj-01"]).await;
    let config = crate::geo::geo_config(&block, port).replacen(
        "[geo]",
        &format!("[zone.dnssec]\nkeys = [{{ file = \"{csk}\" }}]\n\n[geo]"),
        1,
    );
    let config_path = dir.path().join("gslb.toml");
    std::fs::write(&config_path, &config).unwrap();
    let anchor = ds(&config_path).await;
    let gslb = Gslb::start(&config).await;
    eventually(
        Duration::from_secs(20),
        "every cluster probed up",
        || async {
            let s = gslb.get("/api/v1/status").await.1;
            (s.matches("\"state\":\"up\"").count() >= 3).then_some(())
        },
    )
    .await;
    let (gz, sh) = (block.ip(1).to_string(), block.ip(2).to_string());

    // Straight from gslb: DO=1 with ECS gets the region's set, its RRSIG, and the echo.
    let d = gslb.dig("tke-demo.cn A +dnssec +subnet=10.2.7.0/24").await;
    assert_eq!(d.rdata("A"), vec![sh.clone()], "{}", d.raw);
    assert_eq!(d.rdata("RRSIG").len(), 1, "{}", d.raw);
    assert!(d.raw.contains("CLIENT-SUBNET: 10.2.7.0/24/16"), "{}", d.raw);

    let n = match block.ip(0) {
        std::net::IpAddr::V4(v4) => v4.octets()[1],
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    let (resolver, _child, _udir) = validating_unbound_ecs_for(gslb.dns.port(), &anchor).await;
    for _ in 0..2 {
        for (host, want) in [(2u8, &gz), (3u8, &sh)] {
            let from = format!("127.{n}.{host}.9");
            let d = eventually(
                Duration::from_secs(15),
                &format!("unbound to answer {from}"),
                || {
                    let from = from.clone();
                    async move {
                        let d = dig(resolver, &format!("-b {from} tke-demo.cn A +dnssec")).await;
                        (d.status == "NOERROR").then_some(d)
                    }
                },
            )
            .await;
            assert_eq!(&d.rdata("A"), &vec![want.clone()], "{from}: {}", d.raw);
            assert!(d.has_flag("ad"), "{from}: not secure:\n{}", d.raw);
        }
    }
    gslb.stop().await;
}
