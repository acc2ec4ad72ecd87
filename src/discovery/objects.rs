//! Reading the engines' objects: pure functions from API JSON to what gslb needs.
//! Field paths follow the published CRD schemas (see `../shared/crds/`).

use std::net::IpAddr;

use serde_json::Value;

use super::Replicas;

/// `status.loadBalancer.ingress[].ip` of an Ingress or LoadBalancer Service status.
/// Hostnames (some clouds' load balancers) are not addresses and are skipped.
pub fn load_balancer_ips(status: &Value) -> Vec<IpAddr> {
    status["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str()?.parse().ok())
        .collect()
}

/// Ready and desired replicas of a Deployment or StatefulSet status.
pub fn replicas(status: &Value) -> Replicas {
    let n = |k: &str| {
        status[k]
            .as_u64()
            .map_or(0, |v| u32::try_from(v).unwrap_or(u32::MAX))
    };
    Replicas {
        ready: n("readyReplicas"),
        desired: n("replicas"),
    }
}

/// The `Ready` condition: `Some(true)`, `Some(false)`, or `None` when absent or `Unknown`
/// (heartbeats stopped: the hub does not know, which is no reason to fail over).
pub fn ready_condition(status: &Value) -> Option<bool> {
    let c = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    match c["status"].as_str()? {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

/// Whether a cluster's `spec.taints` (Karmada `Cluster`, Clusternet `ManagedCluster`)
/// hold a `NoExecute` taint, which evicts workloads from the cluster.
pub fn no_execute_taint(spec: &Value) -> bool {
    spec["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["effect"] == "NoExecute")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_lb_ips_replicas_and_readiness() {
        let s = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb.example"}, {"ip": "2001:db8::1"}]}});
        assert_eq!(
            load_balancer_ips(&s),
            vec![
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        assert!(load_balancer_ips(&json!({})).is_empty());
        assert_eq!(
            replicas(&json!({"replicas": 3, "readyReplicas": 2})),
            Replicas {
                ready: 2,
                desired: 3
            }
        );
        assert_eq!(
            replicas(&json!({"replicas": 2})),
            Replicas {
                ready: 0,
                desired: 2
            }
        );
        let cond = |s: &str| json!({"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": s}]});
        assert_eq!(ready_condition(&cond("True")), Some(true));
        assert_eq!(ready_condition(&cond("False")), Some(false));
        assert_eq!(ready_condition(&cond("Unknown")), None);
        assert_eq!(ready_condition(&json!({})), None);
        assert!(no_execute_taint(
            &json!({"taints": [{"key": "cluster.karmada.io/not-ready", "effect": "NoExecute"}]})
        ));
        assert!(!no_execute_taint(
            &json!({"taints": [{"key": "x", "effect": "NoSchedule"}]})
        ));
        assert!(!no_execute_taint(&json!({})));
    }
}
