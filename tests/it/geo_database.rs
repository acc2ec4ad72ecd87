//! The `geo` policy with `[geo] database`, as `dig` sees it from a `gslb serve` process:
//! clients of two countries (and a continent) get their regions' answers, the echoed ECS
//! scope is the length of the database network that placed them, a configured subnet
//! wins over the database; `explain --client` and `status` say what the database said;
//! a reload re-reads the file, and a corrupt file is refused while the old one serves.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Block, ServeProcess, config, dig, eventually, gslb_cli, gslb_run, stand_ins};
use crate::mmdb_writer::{IpVersion, Value, Writer};

const LIMIT: Duration = Duration::from_secs(20);

/// 10/8 in Germany but for China's 10.64/10; the US at 198.51.100/24; China at
/// 2001:db8::/32. `with_china` false gives 10.64/10 to Germany too (the database's next
/// release, say).
fn write_database(path: &Path, with_china: bool) {
    let mut networks = vec![("10.0.0.0/8", Some("DE"), "EU")];
    if with_china {
        networks.push(("10.64.0.0/10", Some("CN"), "AS"));
    }
    networks.extend([
        ("198.51.100.0/24", Some("US"), "NA"),
        ("2001:db8::/32", Some("CN"), "AS"),
    ]);
    Writer::countries(&networks).write(path);
}

/// Asia (CN) on the block's .1, Europe (its continent, and the subnet 10.70/16, inside
/// China's 10.64/10) on .2; Asia's cluster first in failover order.
fn database_config(block: &Block, port: u16, database: &Path) -> String {
    config(&format!(
        r#"
[geo]
database = {database:?}

[[geo.region]]
name = "asia"
countries = ["CN"]

[[geo.region]]
name = "europe"
subnets = ["10.70.0.0/16"]
continents = ["EU"]

[[cluster]]
name = "as-01"
region = "asia"
vips = ["{a}"]
priority = 1

[[cluster]]
name = "eu-01"
region = "europe"
vips = ["{b}"]
priority = 2

[[app]]
name = "tke-demo.cn"
policy = "geo"
probe = {{ kind = "http", port = {port}, interval = "500ms", timeout = "400ms" }}
"#,
        database = database.to_str().unwrap(),
        a = block.ip(1),
        b = block.ip(2),
    ))
}

/// Waits until both clusters are probed up.
async fn both_up(admin: &str) {
    eventually(LIMIT, "both clusters probed up", || async {
        let s = crate::harness::http_get(&format!("{admin}/api/v1/status"))
            .await
            .1;
        (s.matches("\"state\":\"up\"").count() >= 2).then_some(())
    })
    .await;
}

/// What `gslb explain tke-demo.cn --client CLIENT` prints.
async fn explain_client(admin: &str, client: &str) -> String {
    let (ok, out, err) =
        gslb_cli(admin, &["explain", "tke-demo.cn", "--client", client], None).await;
    assert!(ok, "{err}");
    out
}

/// `POST /api/v1/reload`: the status code and the body.
async fn reload(admin: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{admin}/api/v1/reload"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The addresses answered and the echoed `CLIENT-SUBNET` (`ADDRESS/SOURCE/SCOPE`).
async fn ask(dns: std::net::SocketAddr, args: &str) -> (Vec<String>, Option<String>) {
    let d = dig(dns, args).await;
    assert_eq!(d.status, "NOERROR", "{args}: {}", d.raw);
    let ecs = d
        .raw
        .lines()
        .find_map(|l| l.strip_prefix("; CLIENT-SUBNET: "))
        .map(|s| s.trim().to_owned());
    (d.rdata("A"), ecs)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_places_clients_of_two_countries_and_a_reload_rereads_it() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["as-01", "eu-01"]).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("GeoLite2-Country.mmdb");
    write_database(&database, true);
    let path = dir.path().join("gslb.toml");
    let gslb = ServeProcess::start(&path, "", &database_config(&block, port, &database)).await;
    let admin = gslb.admin_url();
    let (asia, europe) = (vec![block.ip(1).to_string()], vec![block.ip(2).to_string()]);
    both_up(&admin).await;

    for transport in ["+notcp", "+tcp"] {
        let q = |subnet: &str| format!("tke-demo.cn A +subnet={subnet} {transport}");
        // China: Asia. The network 10.64.0.0/10 holds Europe's 10.70/16, so the answer
        // holds for the /16 around the client, not the whole /10.
        assert_eq!(
            ask(gslb.dns, &q("10.64.5.0/24")).await,
            (asia.clone(), Some("10.64.5.0/24/16".into()))
        );
        // Germany: Europe by continent; the database network is 10.0.0.0/10.
        assert_eq!(
            ask(gslb.dns, &q("10.1.2.0/24")).await,
            (europe.clone(), Some("10.1.2.0/24/10".into()))
        );
        // The subnet wins over the database's China.
        assert_eq!(
            ask(gslb.dns, &q("10.70.1.0/24")).await,
            (europe.clone(), Some("10.70.1.0/24/16".into()))
        );
        // The US is in no region: failover order, scoped to its /24.
        assert_eq!(
            ask(gslb.dns, &q("198.51.100.0/24")).await,
            (asia.clone(), Some("198.51.100.0/24/24".into()))
        );
        // IPv6 China: Asia, scoped to the database's /32.
        assert_eq!(
            ask(gslb.dns, &q("2001:db8:1::/48")).await,
            (asia.clone(), Some("2001:db8:1::/48/32".into()))
        );
    }

    let out = explain_client(&admin, "10.64.5.0/24").await;
    assert!(
        out.contains("client 10.64.5.0/24 (looked up as 10.64.5.0/24): region asia by rule country (10.64.0.0/10), ECS scope /16"),
        "{out}"
    );
    assert!(
        out.contains("database: 10.64.0.0/10 country CN, continent AS"),
        "{out}"
    );
    let out = explain_client(&admin, "198.51.100.0/24").await;
    assert!(out.contains("region none by rule unmapped"), "{out}");
    assert!(
        out.contains("database: 198.51.100.0/24 country US, continent NA"),
        "{out}"
    );
    let (ok, out, _) = gslb_cli(&admin, &["status"], None).await;
    assert!(ok);
    assert!(
        out.contains(&format!(
            "geo database {}: GeoLite2-Country built",
            database.display()
        )),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("region asia") && l.contains("[countries CN]")),
        "{out}"
    );

    // The next release of the database gives 10.64/10 to Germany: a reload re-reads it.
    write_database(&database, false);
    let reload = || reload(&admin);
    let (code, body) = reload().await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("geo database"), "{body}");
    let q = "tke-demo.cn A +subnet=10.64.5.0/24";
    eventually(LIMIT, "10.64/10 in Europe after the reload", || async {
        (ask(gslb.dns, q).await.0 == europe).then_some(())
    })
    .await;
    // Now 10.0.0.0/8 holds Europe's subnet: the scope is its /16.
    assert_eq!(
        ask(gslb.dns, q).await,
        (europe.clone(), Some("10.64.5.0/24/16".into()))
    );

    // A file cut short in the middle of an update: refused, the loaded database serves on.
    let bytes = std::fs::read(&database).unwrap();
    std::fs::write(&database, &bytes[..bytes.len() / 3]).unwrap();
    let (code, body) = reload().await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("geo.database") && body.contains("is not a valid MaxMind DB (.mmdb) file"),
        "{body}"
    );
    assert_eq!(ask(gslb.dns, q).await.0, europe);
    assert_eq!(
        ask(gslb.dns, "tke-demo.cn A +subnet=2001:db8:1::/48")
            .await
            .0,
        asia
    );
    assert!(gslb.terminate().await);
}

/// `check-config` names the key and the file for a database that is not one of countries.
#[tokio::test(flavor = "multi_thread")]
async fn check_config_reports_a_database_of_the_wrong_kind() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("GeoLite2-ASN.mmdb");
    Writer::new("GeoLite2-ASN", IpVersion::V6)
        .insert(
            "10.0.0.0/8",
            Value::map([("autonomous_system_number", Value::U32(64512))]),
        )
        .write(&database);
    let block = Block::new();
    let path = dir.path().join("gslb.toml");
    std::fs::write(&path, database_config(&block, 80, &database)).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gslb"))
        .arg("check-config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("geo.database") && err.contains("`GeoLite2-ASN` database"),
        "{err}"
    );
}

/// A database that no region lists countries or continents for (a staged rollout: the
/// file is deployed before the regions name any) is loaded but never looked up: the
/// answers and their ECS scopes are those without a database; `check-config`, the log
/// (at start and on each reload), the reload's summary and `status` say it is unused.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_no_region_refers_to_is_loaded_but_unused() {
    let block = Block::new();
    let (_ingresses, port) = stand_ins(&block, &["as-01", "eu-01"]).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("GeoLite2-Country.mmdb");
    write_database(&database, true);
    let config = database_config(&block, port, &database)
        .replace("countries = [\"CN\"]", "subnets = [\"10.80.0.0/16\"]")
        .replace("continents = [\"EU\"]\n", "");
    assert!(!config.contains("countries") && !config.contains("continents"));
    let path = dir.path().join("gslb.toml");
    ServeProcess::write_config(&path, "", &config);
    let warning =
        "`[geo] database` is loaded but no region lists countries or continents, so it is unused";

    let checked = gslb_run([std::ffi::OsStr::new("check-config"), path.as_os_str()]).await;
    assert!(checked.ok(), "{}", checked.stderr);
    assert!(checked.stderr.contains(warning), "{}", checked.stderr);

    let log = dir.path().join("gslb.log");
    let gslb = ServeProcess::spawn_logged(&path, &log, "warn").await;
    let admin = gslb.admin_url();
    let warnings = || {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("WARN") && l.contains(warning))
            .count()
    };
    assert_eq!(warnings(), 1);
    let (asia, europe) = (vec![block.ip(1).to_string()], vec![block.ip(2).to_string()]);
    both_up(&admin).await;

    let q = |subnet: &str| format!("tke-demo.cn A +subnet={subnet}");
    // In the database's CN 10.64.0.0/10, in no subnet: failover order (Asia's cluster
    // first), for the client's /24, not for the /16 that a database placement would
    // have (10.64/10 less Europe's 10.70/16).
    assert_eq!(
        ask(gslb.dns, &q("10.64.5.0/24")).await,
        (asia.clone(), Some("10.64.5.0/24/24".into()))
    );
    // IPv6 in the database's CN 2001:db8::/32: the client's /48, not /32.
    assert_eq!(
        ask(gslb.dns, &q("2001:db8:1::/48")).await,
        (asia.clone(), Some("2001:db8:1::/48/48".into()))
    );
    // The subnets place clients as ever.
    assert_eq!(
        ask(gslb.dns, &q("10.70.1.0/24")).await,
        (europe.clone(), Some("10.70.1.0/24/16".into()))
    );

    let out = explain_client(&admin, "10.64.5.0/24").await;
    assert!(
        out.contains("client 10.64.5.0/24 (looked up as 10.64.5.0/24): region none by rule unmapped, ECS scope /24"),
        "{out}"
    );
    assert!(!out.contains("database:"), "{out}");
    let (ok, out, _) = gslb_cli(&admin, &["status"], None).await;
    assert!(ok);
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "geo database {}: GeoLite2-Country built",
            database.display()
        )) && l.ends_with("; unused: no region lists countries or continents")),
        "{out}"
    );
    let (_, json) = crate::harness::http_get(&format!("{admin}/api/v1/status")).await;
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["geo_database"]["used"], false, "{json}");

    let (code, body) = reload(&admin).await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("geo database")
            && body.contains(", unused: no region lists countries or continents"),
        "{body}"
    );
    eventually(LIMIT, "a second warning, from the reload", || async {
        (warnings() == 2).then_some(())
    })
    .await;
    assert!(gslb.terminate().await);
}
