//! The `geo` policy as `dig` sees it: clients placed by EDNS Client Subnet (`+subnet`) or
//! by the address a query comes from (`-b 127.x.y.z`), the echoed ECS with its scope,
//! FORMERR for a malformed option, the nearest region while a region's cluster is down,
//! and `gslb explain --client` saying where a subnet lands and why.

use std::time::Duration;

use crate::geo_regions;
use crate::harness::{Block, Gslb, config, dig, eventually, gslb_cli, stand_ins};
use crate::resolver::unbound_ecs_for;

const LIMIT: Duration = Duration::from_secs(20);

/// Three regions, each with one cluster on the block's .1, .2, .3; the block's own
/// 127.N.2.0/24 and 127.N.3.0/24 are in Guangzhou and Shanghai, so `dig -b` places
/// itself.
pub(crate) fn geo_config(block: &Block, port: u16) -> String {
    let n = match block.ip(0) {
        std::net::IpAddr::V4(v4) => v4.octets()[1],
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    let (gz, sh) = (format!("127.{n}.2.0/24"), format!("127.{n}.3.0/24"));
    let regions = geo_regions::regions([&[&gz], &[&sh], &[]]);
    let [a, b, c] = [1, 2, 3].map(|host| block.ip(host).to_string());
    let clusters = geo_regions::clusters([&a, &b, &c]);
    config(&format!(
        r#"
[geo]
ecs_ipv4_prefix = 24
{regions}
{clusters}
[[app]]
name = "tke-demo.cn"
policy = "geo"
probe = {{ kind = "http", port = {port}, interval = "500ms", timeout = "400ms", recheck_interval = "200ms", rise = 1, fall = 2 }}
"#
    ))
}

/// The addresses answered and the echoed `CLIENT-SUBNET` (as dig prints it:
/// `ADDRESS/SOURCE/SCOPE`), if any.
async fn ask(gslb: &Gslb, args: &str) -> (String, Vec<String>, Option<String>) {
    let d = gslb.dig(args).await;
    let ecs = d
        .raw
        .lines()
        .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_owned());
    (d.status.clone(), d.rdata("A"), ecs)
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_get_their_regions_clusters_and_the_scope_their_answer_depends_on() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["gz-01", "sh-01", "bj-01"]).await;
    let gslb = Gslb::start(&geo_config(&block, port)).await;
    let (gz, sh, bj) = (
        block.ip(1).to_string(),
        block.ip(2).to_string(),
        block.ip(3).to_string(),
    );
    let at = |h: u8| match block.ip(0) {
        std::net::IpAddr::V4(v4) => format!("127.{}.{h}.9", v4.octets()[1]),
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    eventually(LIMIT, "every cluster probed up", || async {
        let s = gslb.get("/api/v1/status").await.1;
        (s.matches("\"state\":\"up\"").count() >= 3).then_some(())
    })
    .await;

    for transport in ["+notcp", "+tcp"] {
        // ECS places the client; the scope is the matched /16.
        assert_eq!(
            ask(
                &gslb,
                &format!("tke-demo.cn A +subnet=10.1.2.0/24 {transport}")
            )
            .await,
            (
                "NOERROR".into(),
                vec![gz.clone()],
                Some("10.1.2.0/24/16".into())
            )
        );
        assert_eq!(
            ask(
                &gslb,
                &format!("tke-demo.cn A +subnet=10.2.7.0/24 {transport}")
            )
            .await,
            (
                "NOERROR".into(),
                vec![sh.clone()],
                Some("10.2.7.0/24/16".into())
            )
        );
        assert_eq!(
            ask(
                &gslb,
                &format!("tke-demo.cn A +subnet=10.3.0.0/24 {transport}")
            )
            .await,
            (
                "NOERROR".into(),
                vec![bj.clone()],
                Some("10.3.0.0/24/16".into())
            )
        );
    }
    // Longer than the cap (/24): believed as /24, and the scope says so.
    assert_eq!(
        ask(&gslb, "tke-demo.cn A +subnet=10.3.0.77/32").await,
        (
            "NOERROR".into(),
            vec![bj.clone()],
            Some("10.3.0.77/32/16".into())
        )
    );
    // In no region: failover order (gz-01 has priority 1), valid for the whole /24.
    assert_eq!(
        ask(&gslb, "tke-demo.cn A +subnet=192.0.2.0/24").await,
        (
            "NOERROR".into(),
            vec![gz.clone()],
            Some("192.0.2.0/24/24".into())
        )
    );
    // No ECS: the source address places the client, and no ECS comes back.
    assert_eq!(
        ask(&gslb, &format!("-b {} tke-demo.cn A", at(3))).await,
        ("NOERROR".into(), vec![sh.clone()], None)
    );
    assert_eq!(
        ask(&gslb, &format!("-b {} tke-demo.cn A +noedns", at(2))).await,
        ("NOERROR".into(), vec![gz.clone()], None)
    );
    // ECS /0 (the client opted out): the resolver's address decides, scope 0.
    assert_eq!(
        ask(
            &gslb,
            &format!("-b {} tke-demo.cn A +subnet=0.0.0.0/0", at(3))
        )
        .await,
        (
            "NOERROR".into(),
            vec![sh.clone()],
            Some("0.0.0.0/0/0".into())
        )
    );
    // Names whose answer does not depend on the client: scope 0, whatever the subnet.
    for q in [
        "info.tke-demo.cn TXT",
        "nothing.tke-demo.cn A",
        "tke-demo.cn SOA",
    ] {
        let (_, _, ecs) = ask(&gslb, &format!("{q} +subnet=10.2.7.0/24")).await;
        assert_eq!(ecs.as_deref(), Some("10.2.7.0/24/0"), "{q}");
    }
    // Through the CNAME: the geo answer, with its scope.
    let (_, _, ecs) = ask(&gslb, "www.tke-demo.cn A +subnet=10.2.7.0/24").await;
    assert_eq!(ecs.as_deref(), Some("10.2.7.0/24/16"));
    // Malformed options: too few address octets for /32; a bit set past /16.
    for bad in ["0001200a0a0102", "000110000a0180"] {
        let (status, answer, _) = ask(&gslb, &format!("tke-demo.cn A +ednsopt=8:{bad}")).await;
        assert_eq!((status.as_str(), answer.len()), ("FORMERR", 0), "{bad}");
    }

    // The metric counts answers per region, and per unmapped client.
    let metrics = gslb.get("/metrics").await.1;
    for region in ["guangzhou", "shanghai", "beijing", "unmapped"] {
        let line = format!("gslb_geo_answers_total{{app=\"tke-demo.cn\",region=\"{region}\"}}");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(&line) && !l.ends_with(" 0")),
            "{line} in\n{metrics}"
        );
    }
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_whose_cluster_fails_gets_the_nearest_one_and_explain_says_why() {
    let block = Block::new();
    let (mut ingresses, port) = stand_ins(&block, &["gz-01", "sh-01", "bj-01"]).await;
    let gslb = Gslb::start(&geo_config(&block, port)).await;
    let (gz, sh, bj) = (
        block.ip(1).to_string(),
        block.ip(2).to_string(),
        block.ip(3).to_string(),
    );
    let answer = |subnet: &'static str| {
        let gslb = &gslb;
        async move {
            ask(gslb, &format!("tke-demo.cn A +subnet={subnet}"))
                .await
                .1
        }
    };
    eventually(LIMIT, "every cluster probed up", || async {
        let s = gslb.get("/api/v1/status").await.1;
        (s.matches("\"state\":\"up\"").count() >= 3).then_some(())
    })
    .await;
    assert_eq!(answer("10.2.0.0/24").await, vec![sh.clone()]);

    // Shanghai's ingress stops: Shanghai clients go to Beijing (~1070 km), not Guangzhou
    // (~1210 km); the other regions keep their own.
    ingresses[1].stop();
    eventually(LIMIT, "Shanghai clients moved to Beijing", || async {
        (answer("10.2.0.0/24").await == vec![bj.clone()]).then_some(())
    })
    .await;
    assert_eq!(answer("10.1.0.0/24").await, vec![gz.clone()]);

    let admin = format!("http://{}", gslb.admin);
    let (ok, out, err) = gslb_cli(
        &admin,
        &["explain", "tke-demo.cn", "--client", "10.2.0.0/24"],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("client 10.2.0.0/24 (looked up as 10.2.0.0/24): region shanghai by rule subnet (10.2.0.0/16), ECS scope /16"),
        "{out}"
    );
    assert!(
        out.contains("answered with bj-01: nearest region with healthy clusters: beijing"),
        "{out}"
    );
    let (ok, out, _) = gslb_cli(
        &admin,
        &["explain", "tke-demo.cn", "--client", "192.0.2.1"],
        None,
    )
    .await;
    assert!(ok);
    assert!(out.contains("region none by rule unmapped"), "{out}");
    assert!(
        out.contains("answered with gz-01: in no region: failover order"),
        "{out}"
    );
    let (ok, _, err) = gslb_cli(
        &admin,
        &["explain", "tke-demo.cn", "--client", "10.2/x"],
        None,
    )
    .await;
    assert!(!ok && err.contains("not an address or a subnet"), "{err}");

    // Status lists every region's answer.
    let (ok, out, _) = gslb_cli(&admin, &["status"], None).await;
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.contains("region shanghai") && l.contains(&bj) && l.contains("nearest")),
        "{out}"
    );

    // Back: Shanghai clients return to their own cluster.
    ingresses[1].resume().await.unwrap();
    eventually(LIMIT, "Shanghai clients back on sh-01", || async {
        (answer("10.2.0.0/24").await == vec![sh.clone()]).then_some(())
    })
    .await;
    gslb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn through_an_ecs_resolver_clients_of_two_regions_get_their_own_answers() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["gz-01", "sh-01", "bj-01"]).await;
    let gslb = Gslb::start(&geo_config(&block, port)).await;
    let (gz, sh) = (block.ip(1).to_string(), block.ip(2).to_string());
    let n = match block.ip(0) {
        std::net::IpAddr::V4(v4) => v4.octets()[1],
        std::net::IpAddr::V6(_) => unreachable!(),
    };
    eventually(LIMIT, "every cluster probed up", || async {
        let s = gslb.get("/api/v1/status").await.1;
        (s.matches("\"state\":\"up\"").count() >= 3).then_some(())
    })
    .await;
    let (resolver, _child, _dir) = unbound_ecs_for(gslb.dns.port()).await;
    // unbound itself asks from 127.0.0.1, in no region: only the ECS it adds (each
    // client's /24) can tell the two clients apart. Each asks twice: the second answer
    // comes from unbound's cache, kept per scope.
    for _ in 0..2 {
        for (host, want) in [(2u8, &gz), (3u8, &sh)] {
            let from = format!("127.{n}.{host}.9");
            let d = eventually(LIMIT, &format!("unbound to answer {from}"), || {
                let from = from.clone();
                async move {
                    let d = dig(resolver, &format!("-b {from} tke-demo.cn A")).await;
                    (d.status == "NOERROR").then_some(d)
                }
            })
            .await;
            assert_eq!(&d.rdata("A"), &vec![want.clone()], "{from}: {}", d.raw);
        }
    }
    gslb.stop().await;
}
