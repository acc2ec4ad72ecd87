use super::*;

/// The config of the foundation issue, verbatim: its keys are a contract.
const CONTRACT: &str = r#"
[server]
dns_listen = ["127.0.0.1:15353"]     # UDP and TCP on each address
admin_listen = "127.0.0.1:19153"

[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
records = [
  { name = "ns1", type = "A", value = "127.0.0.1" },
  { name = "info", type = "TXT", value = "served by gslb" },
]

[[cluster]]
name = "guangzhou-01"
region = "ap-guangzhou"
vips = ["127.0.1.1"]
priority = 1

[[cluster]]
name = "guangzhou-02"
region = "ap-guangzhou"
vips = ["127.0.1.2"]
priority = 2

[[app]]
name = "tke-demo.cn"
policy = "failover"
ttl = 30
clusters = ["guangzhou-01", "guangzhou-02"]
probe = { kind = "http", port = 18080, path = "/", host = "tke-demo.cn", interval = "1s", timeout = "800ms", rise = 2, fall = 2 }
"#;

fn problems(text: &str) -> Vec<Problem> {
    parse(text, "test.toml").unwrap_err().problems
}

#[test]
fn the_contract_config_is_accepted_as_written() {
    let c = parse(CONTRACT, "contract.toml").unwrap();
    assert_eq!(
        c.server.dns_listen,
        vec!["127.0.0.1:15353".parse().unwrap()]
    );
    assert_eq!(c.server.admin_listen, "127.0.0.1:19153".parse().unwrap());
    let inv = &c.inventory;
    assert_eq!(inv.zones[0].origin.to_ascii(), "tke-demo.cn.");
    assert_eq!(inv.zones[0].records.len(), 2);
    assert_eq!(inv.clusters.len(), 2);
    let app = &inv.apps[0];
    assert_eq!(app.probe.interval, Duration::from_secs(1));
    assert_eq!(app.probe.timeout, Duration::from_millis(800));
    assert_eq!((app.probe.rise, app.probe.fall), (2, 2));
    assert!(
        matches!(&app.probe.kind, crate::model::ProbeKind::Http { port: 18080, host, .. } if host == "tke-demo.cn")
    );
    // two targets, one VIP each
    assert_eq!(inv.targets.len(), 2);
    assert_eq!(inv.endpoints.len(), 2);
}

#[test]
fn the_embedded_demo_config_is_valid() {
    crate::demo::config().unwrap();
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let text = CONTRACT.replace("ttl = 30", "ttl = 30\nweight = 3");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "app[0].weight");
    let line = text.lines().position(|l| l == "weight = 3").unwrap() + 1;
    assert_eq!(p[0].line, Some(line));
    assert!(
        p[0].message.contains("unknown field `weight`"),
        "{}",
        p[0].message
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = CONTRACT
        .replace(r#"vips = ["127.0.1.2"]"#, r#"vips = ["127.0.1.300"]"#)
        .replace(r#""guangzhou-02"]"#, r#""guangzhou-03"]"#)
        .replace(r#"timeout = "800ms""#, r#"timeout = "2s""#);
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"cluster[1].vips[0]"), "{keys:?}");
    assert!(keys.contains(&"app[0].clusters[1]"), "{keys:?}");
    assert!(keys.contains(&"app[0].probe.timeout"), "{keys:?}");
    assert!(p.iter().all(|p| p.line.is_some()), "{p:?}");
    // Reported in file order.
    let lines: Vec<usize> = p.iter().map(|p| p.line.unwrap()).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn a_type_error_in_one_section_does_not_hide_another() {
    let text = CONTRACT
        .replace("priority = 1", r#"priority = "first""#)
        .replace(r#"policy = "failover""#, r#"policy = "fastest""#);
    let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
    assert!(keys.contains(&"cluster[0].priority".to_owned()), "{keys:?}");
    assert!(keys.contains(&"app[0].policy".to_owned()), "{keys:?}");
}

#[test]
fn a_syntax_error_names_its_line() {
    let text = CONTRACT.replace("ttl = 30", "ttl = = 30");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].line,
        Some(text.lines().position(|l| l == "ttl = = 30").unwrap() + 1)
    );
}

#[test]
fn durations_need_units() {
    let p = problems(&CONTRACT.replace(r#"interval = "1s""#, r#"interval = "1""#));
    assert_eq!(p[0].key, "app[0].probe.interval");
}

#[test]
fn an_in_zone_name_server_needs_glue() {
    let p =
        problems(&CONTRACT.replace(r#"{ name = "ns1", type = "A", value = "127.0.0.1" },"#, ""));
    assert_eq!(p[0].key, "zone[0].nameservers[0]");
    assert!(p[0].message.contains("glue"), "{}", p[0].message);
}

#[test]
fn an_app_outside_every_zone_is_rejected() {
    let p = problems(&CONTRACT.replace(
        r#"name = "tke-demo.cn"
policy"#,
        r#"name = "example.com"
policy"#,
    ));
    assert_eq!(p[0].key, "app[0].name");
    assert!(p[0].message.contains("none of the configured zones"));
}

#[test]
fn a_static_address_on_an_app_name_is_rejected() {
    let text = CONTRACT.replace(
        r#"{ name = "info""#,
        r#"{ name = "@", type = "A", value = "10.0.0.1" },
  { name = "info""#,
    );
    assert!(
        problems(&text)
            .iter()
            .any(|p| p.key == "app[0].name" && p.message.contains("static A"))
    );
}

#[test]
fn record_names_are_relative_unless_absolute() {
    let text = CONTRACT.replace(
        r#"{ name = "info""#,
        r#"{ name = "mail.tke-demo.cn", type = "MX", value = "10 mx.example.net" },
  { name = "www", type = "CNAME", value = "tke-demo.cn" },
  { name = "info""#,
    );
    let c = parse(&text, "t").unwrap();
    let names: Vec<String> = c.inventory.zones[0]
        .records
        .iter()
        .map(|r| r.name.to_ascii())
        .collect();
    assert!(names.contains(&"mail.tke-demo.cn.".to_owned()), "{names:?}");
    assert!(names.contains(&"www.tke-demo.cn.".to_owned()), "{names:?}");
}

#[test]
fn the_message_names_file_line_and_key() {
    let e = parse(&CONTRACT.replace("rise = 2", "rise = 0"), "cfg/app.toml").unwrap_err();
    let text = e.to_string();
    let line = CONTRACT
        .lines()
        .position(|l| l.starts_with("probe = "))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!(
            "cfg/app.toml:{line}: app[0].probe.rise: must be at least 1"
        )),
        "{text}"
    );
}

#[test]
fn an_unreadable_file_is_one_problem() {
    let e = load(Path::new("/nonexistent/gslb.toml")).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert!(e.to_string().contains("/nonexistent/gslb.toml"));
}

#[test]
fn defaults_fill_what_is_left_out() {
    let text = r#"
[[zone]]
name = "example.org"
nameservers = ["ns.example.net"]
hostmaster = "admin@example.org"

[[cluster]]
name = "a"
vips = ["192.0.2.1", "2001:db8::1"]

[[app]]
name = "www.example.org"
probe = { kind = "tcp", port = 443 }
"#;
    let c = parse(text, "t").unwrap();
    assert_eq!(
        c.server.dns_listen,
        vec![raw::DEFAULT_DNS_LISTEN.parse().unwrap()]
    );
    let app = &c.inventory.apps[0];
    assert_eq!(app.policy, crate::model::Policy::Failover);
    assert_eq!(app.ttl, 30);
    assert_eq!(
        app.adaptive_ttl, None,
        "TTL that follows health is off unless asked for"
    );
    assert!(app.fail_open);
    assert_eq!(app.clusters, vec![0]);
    assert_eq!(app.probe.interval, duration(raw::DEFAULT_INTERVAL).unwrap());
    assert_eq!(
        app.probe.recheck_interval,
        duration(raw::DEFAULT_RECHECK_INTERVAL).unwrap()
    );
    assert_eq!(
        (app.probe.rise, app.probe.fall),
        (raw::DEFAULT_RISE, raw::DEFAULT_FALL)
    );
    assert_eq!(
        c.inventory.zones[0].hostmaster.to_ascii(),
        "admin.example.org."
    );
    assert_eq!(c.inventory.endpoints.len(), 2);
}

#[test]
fn a_zero_tcp_idle_timeout_is_refused() {
    let p = problems(&CONTRACT.replace(
        "admin_listen = \"127.0.0.1:19153\"",
        "admin_listen = \"127.0.0.1:19153\"\ntcp_idle_timeout = \"0s\"",
    ));
    assert_eq!(p[0].key, "server.tcp_idle_timeout");
}

#[test]
fn protected_reads_need_a_token_file() {
    let with = |extra: &str| {
        CONTRACT.replace(
            "admin_listen = \"127.0.0.1:19153\"",
            &format!("admin_listen = \"127.0.0.1:19153\"\n{extra}"),
        )
    };
    let p = problems(&with("admin_protect_reads = true"));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "server.admin_protect_reads");
    assert!(
        p[0].message.contains("admin_token_file"),
        "{}",
        p[0].message
    );
    assert!(!parse(CONTRACT, "t").unwrap().server.admin_protect_reads);

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
    let c = parse(
        &with(&format!(
            "admin_protect_reads = true\nadmin_token_file = \"{}\"",
            token.display()
        )),
        "t",
    )
    .unwrap();
    assert!(c.server.admin_protect_reads);
}

#[test]
fn a_probe_path_or_host_that_cannot_go_in_a_request_is_named() {
    for (key, bad) in [
        ("path", r#"path = "/health check""#),
        ("path", r#"path = "/santé""#),
        ("host", r#"host = "tke demo.cn""#),
    ] {
        let text = CONTRACT
            .replace(
                r#"path = "/""#,
                if key == "path" { bad } else { r#"path = "/""# },
            )
            .replace(
                r#"host = "tke-demo.cn""#,
                if key == "host" {
                    bad
                } else {
                    r#"host = "tke-demo.cn""#
                },
            );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert_eq!(p[0].key, format!("app[0].probe.{key}"), "{bad}");
        assert!(p[0].message.contains("visible ASCII"), "{}", p[0].message);
    }
    let ok = CONTRACT.replace(r#"path = "/""#, r#"path = "/health%20check?full=1""#);
    parse(&ok, "t").unwrap();
}

#[test]
fn recheck_interval_lies_between_its_minimum_and_the_interval() {
    for bad in ["2s", "10ms"] {
        let p = problems(&CONTRACT.replace(
            r#"interval = "1s""#,
            &format!(r#"interval = "1s", recheck_interval = "{bad}""#),
        ));
        assert_eq!(p[0].key, "app[0].probe.recheck_interval", "{bad}");
    }
    let c = parse(
        &CONTRACT.replace(
            r#"interval = "1s""#,
            r#"interval = "1s", recheck_interval = "500ms""#,
        ),
        "t",
    )
    .unwrap();
    assert_eq!(
        c.inventory.apps[0].probe.recheck_interval,
        Duration::from_millis(500)
    );
    // A short interval caps the default.
    let c = parse(
        &CONTRACT.replace(
            r#"interval = "1s", timeout = "800ms""#,
            r#"interval = "150ms", timeout = "100ms""#,
        ),
        "t",
    )
    .unwrap();
    assert_eq!(
        c.inventory.apps[0].probe.recheck_interval,
        Duration::from_millis(150)
    );
}

#[test]
fn adaptive_ttl_min_lies_between_one_and_the_ttl() {
    let c = parse(
        &CONTRACT.replace("ttl = 30", "ttl = 30\nadaptive_ttl = { min = 5 }"),
        "t",
    )
    .unwrap();
    assert_eq!(
        c.inventory.apps[0].adaptive_ttl,
        Some(crate::model::AdaptiveTtl { min: 5 })
    );
    for bad in ["0", "31"] {
        let text = CONTRACT.replace(
            "ttl = 30",
            &format!("ttl = 30\nadaptive_ttl = {{ min = {bad} }}"),
        );
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "app[0].adaptive_ttl.min", "{bad}");
        assert!(p[0].message.contains("at most the app's ttl (30)"), "{p:?}");
        let line = text
            .lines()
            .position(|l| l.starts_with("adaptive_ttl"))
            .unwrap()
            + 1;
        assert_eq!(p[0].line, Some(line));
    }
    // A table with one required key: a duration string or a stray key is an error.
    let p = problems(&CONTRACT.replace("ttl = 30", "ttl = 30\nadaptive_ttl = { min = \"5s\" }"));
    assert_eq!(p.len(), 1, "{p:?}");
    let p =
        problems(&CONTRACT.replace("ttl = 30", "ttl = 30\nadaptive_ttl = { min = 5, max = 9 }"));
    assert!(p[0].message.contains("unknown field `max`"), "{p:?}");
}

#[test]
fn transfer_keys_are_parsed_and_their_secret_read() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("xfr.key");
    std::fs::write(&key, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\n").unwrap();
    let text = CONTRACT.replace(
        r#"hostmaster = "hostmaster.tke-demo.cn""#,
        &format!(
            r#"hostmaster = "hostmaster.tke-demo.cn"
allow_transfer = ["192.0.2.7", "10.1.2.3/8", "2001:db8::/32"]
notify = ["192.0.2.7", "192.0.2.8:5353"]
tsig_key_name = "gslb-xfr"
tsig_key_file = "{}""#,
            key.display()
        ),
    );
    let c = parse(&text, "test.toml").unwrap();
    let t = &c.inventory.zones[0].transfer;
    assert!(t.allows("192.0.2.7".parse().unwrap()));
    assert!(!t.allows("192.0.2.8".parse().unwrap()));
    assert!(t.allows("10.200.0.1".parse().unwrap()));
    assert!(t.allows("::ffff:10.0.0.1".parse().unwrap()));
    assert!(t.allows("2001:db8::53".parse().unwrap()));
    assert_eq!(
        t.notify,
        vec![
            "192.0.2.7:53".parse().unwrap(),
            "192.0.2.8:5353".parse().unwrap()
        ]
    );
    let tsig = t.tsig.as_ref().unwrap();
    assert_eq!(tsig.name.to_ascii(), "gslb-xfr.");
    assert_eq!(tsig.secret, b"secret-secret-secret-secret!");
    assert!(
        !format!("{c:?}").contains("secret-secret"),
        "Debug withholds the secret"
    );
}

#[test]
fn bad_transfer_keys_are_each_reported() {
    let text = CONTRACT.replace(
        r#"hostmaster = "hostmaster.tke-demo.cn""#,
        r#"hostmaster = "hostmaster.tke-demo.cn"
allow_transfer = ["192.0.2.300", "10.0.0.0/40"]
notify = ["secondary.example"]
tsig_key_name = "gslb-xfr"
tsig_key_file = "/nonexistent/xfr.key"
tsig_algorithm = "hmac-md5""#,
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "zone[0].allow_transfer[0]",
        "zone[0].allow_transfer[1]",
        "zone[0].notify[0]",
        "zone[0].tsig_key_file",
        "zone[0].tsig_algorithm",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    // Secondaries notified but none allowed to transfer; a key without its file.
    let text = CONTRACT.replace(
        r#"hostmaster = "hostmaster.tke-demo.cn""#,
        r#"hostmaster = "hostmaster.tke-demo.cn"
notify = ["192.0.2.7"]
tsig_key_name = "gslb-xfr""#,
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|p| p.key == "zone[0].notify" && p.message.contains("allow_transfer")),
        "{p:?}"
    );
    assert!(p.iter().any(|p| p.key == "zone[0].tsig_key_file"), "{p:?}");
}

#[test]
fn a_quorum_section_is_read_with_its_defaults() {
    let c = parse(
        &format!("{CONTRACT}\n[quorum]\npeers = [\"http://10.0.0.2:19153/\", \"http://gslb-2.example:19153\"]\n"),
        "t",
    )
    .unwrap();
    let q = c.quorum.unwrap();
    assert_eq!(
        q.peers,
        ["http://10.0.0.2:19153", "http://gslb-2.example:19153"]
    );
    assert_eq!(q.instance, None);
    assert_eq!(q.rule.required, crate::model::Required::Majority);
    assert_eq!(q.rule.fresh_within, Duration::from_secs(3));
    assert_eq!(q.poll_interval, Duration::from_millis(500));
    assert!(parse(CONTRACT, "t").unwrap().quorum.is_none());
    let with = |required: &str| {
        parse(
            &format!("{CONTRACT}\n[quorum]\npeers = [\"http://a:1\", \"http://b:1\"]\nrequired = {required}\n"),
            "t",
        )
        .map(|c| c.quorum.unwrap().rule.required)
    };
    assert_eq!(with("2"), Ok(crate::model::Required::AtLeast(2)));
    assert_eq!(with("\"60%\""), Ok(crate::model::Required::Percent(60)));
    assert_eq!(with("\"majority\""), Ok(crate::model::Required::Majority));
    for bad in ["0", "4", "\"0%\"", "\"101%\"", "\"most\"", "1.5"] {
        let p = with(bad).unwrap_err().problems;
        assert_eq!(p[0].key, "quorum.required", "{bad}: {p:?}");
        assert!(p[0].message.contains("from 1 to 3"), "{}", p[0].message);
    }
}

#[test]
fn bad_quorum_keys_are_all_reported_with_their_lines() {
    let text = format!(
        "{CONTRACT}\n[quorum]\ninstance = \"has space\"\npeers = [\"10.0.0.2:19153\", \"http://a:1/api\", \"http://b:1\", \"http://b:1\"]\nfresh_within = \"500ms\"\npoll_interval = \"500ms\"\ntoken_file = \"/nonexistent/token\"\n"
    );
    let p = problems(&text);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "quorum.instance",
            "quorum.peers[0]",
            "quorum.peers[1]",
            "quorum.peers[3]",
            "quorum.fresh_within",
            "quorum.token_file"
        ],
        "{p:?}"
    );
    assert!(p.iter().all(|p| p.line.is_some()), "{p:?}");
    assert!(
        p[4].message.contains("at least twice poll_interval"),
        "{}",
        p[4].message
    );
    let p = problems(&format!("{CONTRACT}\n[quorum]\npeers = []\n"));
    assert_eq!(p[0].key, "quorum.peers");
    let p = problems(&format!(
        "{CONTRACT}\n[quorum]\npeers = [\"http://a:1\"]\npeer = 1\n"
    ));
    assert_eq!(p[0].key, "quorum.peer");
}

#[test]
fn a_probe_source_must_be_an_address() {
    let with = |v: &str| {
        CONTRACT.replace(
            "admin_listen = \"127.0.0.1:19153\"",
            &format!("admin_listen = \"127.0.0.1:19153\"\nprobe_source = \"{v}\""),
        )
    };
    assert_eq!(
        parse(&with("127.0.0.3"), "t").unwrap().server.probe_source,
        Some("127.0.0.3".parse().unwrap())
    );
    let p = problems(&with("127.0.0.3:80"));
    assert_eq!(p[0].key, "server.probe_source");
}

#[test]
fn the_geo_section_reads_into_regions() {
    let text = format!(
        "{CONTRACT}\n[geo]\necs_ipv4_prefix = 20\ndefault_region = \"south\"\n\
         [[geo.region]]\nname = \"south\"\nsubnets = [\"10.1.0.0/16\", \"2001:db8::/32\"]\nlat = 23.1\nlon = 113.3\n\
         [[geo.region]]\nname = \"north\"\nsubnets = [\"10.3.0.0/16\"]\n"
    )
    .replace("policy = \"failover\"", "policy = \"geo\"");
    let c = parse(&text, "geo.toml").unwrap();
    let geo = &c.inventory.geo;
    assert_eq!(c.inventory.apps[0].policy, crate::model::Policy::Geo);
    assert_eq!((geo.ecs_ipv4_prefix, geo.ecs_ipv6_prefix), (20, 56));
    assert_eq!(geo.default_region, Some(0));
    assert_eq!(geo.regions[0].subnets.len(), 2);
    assert_eq!(geo.regions[0].location, Some((23.1, 113.3)));
    assert_eq!(geo.regions[1].location, None);
}

#[test]
fn geo_mistakes_are_all_reported_with_their_keys() {
    let text = format!(
        "{CONTRACT}\n[geo]\necs_ipv4_prefix = 33\necs_ipv6_prefix = 0\ndefault_region = \"west\"\n\
         [[geo.region]]\nname = \"south\"\nsubnets = [\"10.1.2.3/16\", \"10.2.0.0\", \"10.3.0.0/40\"]\nlat = 95.0\nlon = 113.3\n\
         [[geo.region]]\nname = \"south\"\nsubnets = [\"10.9.0.0/16\", \"10.9.0.0/16\"]\nlon = 10.0\n"
    );
    let keys: Vec<(String, String)> = problems(&text)
        .into_iter()
        .map(|p| (p.key, p.message))
        .collect();
    let has = |key: &str, words: &str| {
        assert!(
            keys.iter().any(|(k, m)| k == key && m.contains(words)),
            "{key}: {words} in {keys:#?}"
        );
    };
    has("geo.ecs_ipv4_prefix", "1 to 32");
    has("geo.ecs_ipv6_prefix", "1 to 128");
    has("geo.default_region", "unknown region `west`");
    has("geo.region[0].subnets[0]", "write 10.1.0.0/16");
    has("geo.region[0].subnets[1]", "not a subnet");
    has("geo.region[0].subnets[2]", "0 to 32");
    has("geo.region[0].lat", "-90 to 90");
    has("geo.region[1].name", "duplicate region name `south`");
    has(
        "geo.region[1].subnets[1]",
        "already a subnet of region `south`",
    );
    has("geo.region[1].lon", "needs `lat` too");
    // A geo app without regions says what it needs.
    let text = CONTRACT.replace("policy = \"failover\"", "policy = \"geo\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "app[0].policy");
    assert!(p[0].message.contains("[[geo.region]]"));
    assert_eq!(p[0].line, Some(29));
}

/// `[[source]]`s `hub` (clusternet) and `members` (kubeconfig), then `[quorum]` with `keys`.
fn with_hub_quorum(keys: &str) -> String {
    format!(
        "{CONTRACT}\n[[source]]\nname = \"hub\"\nkind = \"clusternet\"\n\n[[source]]\nname = \"members\"\nkind = \"kubeconfig\"\n\n[quorum]\n{keys}\n"
    )
}

#[test]
fn a_hub_quorum_names_a_hub_source_and_a_namespace() {
    let c = parse(
        &with_hub_quorum("hub = \"hub\"\ninstance = \"gslb-gz01\""),
        "t",
    )
    .unwrap();
    let q = c.quorum.unwrap();
    assert!(q.peers.is_empty());
    let hub = q.hub.unwrap();
    assert_eq!(hub.source.name, "hub");
    assert_eq!(hub.source.kind, super::SourceKind::Clusternet);
    assert_eq!(hub.namespace, "gslb-quorum");
    // Through the hub the number of instances is not known: any count is accepted.
    let c = parse(
        &with_hub_quorum("hub = \"hub\"\nnamespace = \"gslb-quorum\"\nrequired = 5"),
        "t",
    )
    .unwrap();
    let q = c.quorum.unwrap();
    assert_eq!(q.hub.unwrap().namespace, "gslb-quorum");
    assert_eq!(q.rule.required, crate::model::Required::AtLeast(5));
    assert_eq!(
        super::view_object("gslb-gz01").as_deref(),
        Ok("gslb-view-gslb-gz01")
    );
}

#[test]
fn bad_hub_quorums_are_reported_with_their_keys() {
    let first = |keys: &str| {
        let p = problems(&with_hub_quorum(keys));
        (p[0].key.clone(), p[0].message.clone(), p[0].line.is_some())
    };
    let (key, msg, line) = first("hub = \"nowhere\"");
    assert_eq!(key, "quorum.hub");
    assert!(
        msg.contains("`nowhere`, which does not exist (sources: hub, members)"),
        "{msg}"
    );
    assert!(line);
    let (key, msg, _) = first("hub = \"members\"");
    assert_eq!(key, "quorum.hub");
    assert!(
        msg.contains("of kind `kubeconfig`, which has no hub"),
        "{msg}"
    );
    let (key, msg, _) = first("hub = \"hub\"\npeers = [\"http://a:1\"]");
    assert_eq!(key, "quorum.hub");
    assert!(
        msg.contains("`peers` and `hub` exclude each other"),
        "{msg}"
    );
    let (key, msg, _) = first("instance = \"a\"");
    assert_eq!(key, "quorum");
    assert!(msg.contains("needs `peers`"), "{msg}");
    let (key, _, _) = first("hub = \"hub\"\nnamespace = \"Not_A_Namespace\"");
    assert_eq!(key, "quorum.namespace");
    let (key, msg, _) = first("hub = \"hub\"\ninstance = \"GSLB_1\"");
    assert_eq!(key, "quorum.instance");
    assert!(msg.contains("gslb-view-GSLB_1"), "{msg}");
    let (key, _, _) = first("hub = \"hub\"\npoll_interval = \"1s\"");
    assert_eq!(key, "quorum.poll_interval");
    let (key, _, _) = first("peers = [\"http://a:1\"]\nnamespace = \"gslb\"");
    assert_eq!(key, "quorum.namespace");
    // No poll_interval with the hub: a short fresh_within is fine down to 150ms.
    assert!(
        parse(
            &with_hub_quorum("hub = \"hub\"\nfresh_within = \"500ms\""),
            "t"
        )
        .is_ok()
    );
    let (key, _, _) = first("hub = \"hub\"\nfresh_within = \"100ms\"");
    assert_eq!(key, "quorum.fresh_within");
    let (key, _, _) = first("hub = \"hub\"\nrequired = 0");
    assert_eq!(key, "quorum.required");
    // token_file is for the admin transport.
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("t");
    std::fs::write(&token, "0123456789abcdef0123").unwrap();
    let (key, _, _) = first(&format!(
        "hub = \"hub\"\ntoken_file = \"{}\"",
        token.display()
    ));
    assert_eq!(key, "quorum.token_file");
    // Without any source.
    let p = problems(&format!("{CONTRACT}\n[quorum]\nhub = \"hub\"\n"));
    assert_eq!(p[0].key, "quorum.hub");
    assert!(
        p[0].message.contains("there is no [[source]]"),
        "{}",
        p[0].message
    );
}

#[test]
fn the_geo_database_and_codes_read_into_regions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("GeoLite2-Country.mmdb");
    crate::mmdb_writer::Writer::countries(&[("10.1.0.0/16", Some("CN"), "AS")]).write(&path);
    let text = format!(
        "{CONTRACT}\n[geo]\ndatabase = {path:?}\n\
         [[geo.region]]\nname = \"asia\"\ncountries = [\"CN\", \"HK\"]\ncontinents = [\"AS\", \"OC\"]\n\
         [[geo.region]]\nname = \"europe\"\nsubnets = [\"10.3.0.0/16\"]\ncontinents = [\"EU\"]\n"
    )
    .replace("policy = \"failover\"", "policy = \"geo\"");
    let c = parse(&text, "geo.toml").unwrap();
    let geo = &c.inventory.geo;
    let names =
        |codes: &[crate::geodb::Code]| codes.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&geo.regions[0].countries), ["CN", "HK"]);
    assert_eq!(names(&geo.regions[0].continents), ["AS", "OC"]);
    assert_eq!(names(&geo.regions[1].continents), ["EU"]);
    let db = geo.database.as_ref().unwrap();
    assert_eq!(db.info().database_type, "GeoLite2-Country");
    assert_eq!(db.info().path, path.display().to_string());
}

#[test]
fn geo_database_mistakes_are_reported_with_their_keys() {
    use crate::mmdb_writer::{IpVersion, Value, Writer};
    let dir = tempfile::tempdir().unwrap();
    let region = "[[geo.region]]\nname = \"asia\"\ncountries = [\"CN\"]\n";
    let check = |database: &str, words: &str| {
        let text = format!("{CONTRACT}\n[geo]\ndatabase = {database:?}\n{region}");
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.key == "geo.database" && p.message.contains(words)),
            "{words} in {p:#?}"
        );
        assert_eq!(p.len(), 1, "{p:#?}");
    };
    let missing = dir.path().join("missing.mmdb");
    check(missing.to_str().unwrap(), "cannot read");
    let corrupt = dir.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"not a database").unwrap();
    check(
        corrupt.to_str().unwrap(),
        "is not a valid MaxMind DB (.mmdb) file",
    );
    let asn = dir.path().join("GeoLite2-ASN.mmdb");
    Writer::new("GeoLite2-ASN", IpVersion::V6)
        .insert(
            "10.0.0.0/8",
            Value::map([("autonomous_system_number", Value::U32(64512))]),
        )
        .write(&asn);
    check(asn.to_str().unwrap(), "`GeoLite2-ASN` database");

    // Bad codes, codes in two regions, and codes without a database.
    let text = format!(
        "{CONTRACT}\n[geo]\n\
         [[geo.region]]\nname = \"asia\"\ncountries = [\"cn\", \"CHN\", \"JP\"]\ncontinents = [\"XX\", \"AS\"]\n\
         [[geo.region]]\nname = \"east\"\ncountries = [\"JP\"]\ncontinents = [\"AS\"]\n"
    );
    let keys: Vec<(String, String)> = problems(&text)
        .into_iter()
        .map(|p| (p.key, p.message))
        .collect();
    let has = |key: &str, words: &str| {
        assert!(
            keys.iter().any(|(k, m)| k == key && m.contains(words)),
            "{key}: {words} in {keys:#?}"
        );
    };
    has(
        "geo.region[0].countries[0]",
        "`cn` must be two capital letters",
    );
    has(
        "geo.region[0].countries[1]",
        "`CHN` must be two capital letters",
    );
    has(
        "geo.region[0].continents[0]",
        "`XX` is not a continent code: expected one of AF, AN, AS, EU, NA, OC, SA",
    );
    has(
        "geo.region[1].countries[0]",
        "`JP` is already in region `asia`",
    );
    has(
        "geo.region[1].continents[0]",
        "`AS` is already in region `asia`",
    );
    has("geo.region[0].countries", "needs `[geo] database`");
    has("geo.region[1].continents", "needs `[geo] database`");
}
