//! Test fixtures: inventories from TOML and health snapshots set by hand.

use std::time::SystemTime;

use crate::health::{HealthSnapshot, State};
use crate::model::Inventory;

/// A zone `tke-demo.cn` with glue, static records, and the given clusters and apps.
pub fn inventory(clusters_and_apps: &str) -> Inventory {
    let text = format!(
        r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn", "ns.example.net"]
hostmaster = "hostmaster.tke-demo.cn"
ttl = 300
negative_ttl = 60
records = [
  {{ name = "ns1", type = "A", value = "127.0.0.1" }},
  {{ name = "info", type = "TXT", value = "served by gslb" }},
  {{ name = "www", type = "CNAME", value = "tke-demo.cn" }},
  {{ name = "out", type = "CNAME", value = "elsewhere.example.net" }},
  {{ name = "@", type = "MX", value = "10 mail.tke-demo.cn" }},
  {{ name = "mail", type = "AAAA", value = "2001:db8::25" }},
  {{ name = "deep.a.b", type = "TXT", value = "x" }},
  {{ name = "pool", type = "A", value = "192.0.2.1" }},
  {{ name = "pool", type = "A", value = "192.0.2.2" }},
]
{clusters_and_apps}
"#
    );
    crate::config::parse(&text, "fixture").unwrap().inventory
}

/// Two clusters, priorities 1 and 2, one IPv4 VIP each, and one app with `policy`.
pub fn two_clusters(policy: &str) -> Inventory {
    inventory(&format!(
        r#"
[[cluster]]
name = "gz-01"
vips = ["127.0.1.1"]
priority = 1
weight = 3
[[cluster]]
name = "gz-02"
vips = ["127.0.1.2"]
priority = 2
weight = 1
[[app]]
name = "tke-demo.cn"
policy = "{policy}"
probe = {{ kind = "tcp", port = 80 }}
"#
    ))
}

/// A snapshot where every endpoint has `states[i]`, and targets follow.
pub fn health(inv: &Inventory, states: &[State]) -> HealthSnapshot {
    let mut h = HealthSnapshot::initial(&std::sync::Arc::new(inv.clone()), SystemTime::UNIX_EPOCH);
    for (e, s) in h.endpoints.iter_mut().zip(states) {
        e.state = *s;
    }
    for (t, th) in h.targets.iter_mut().enumerate() {
        th.state = crate::health::target_state(
            inv.endpoints
                .iter()
                .zip(&h.endpoints)
                .filter(|(ep, _)| ep.target == t)
                .map(|(_, eh)| eh.state),
        );
    }
    h
}
