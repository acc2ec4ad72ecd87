//! gslb: global traffic failover DNS for an app that runs on several Kubernetes clusters.
//!
//! Data flows one way:
//!
//! ```text
//! config (TOML) ─> inventory ─> probes ─> health ─> planner ─> answer table ─> dns
//!                                            │                     │
//!                                            └──── admin API <─────┘ (status, metrics)
//! ```
//!
//! - [`config`] reads and validates the TOML into a [`model::Inventory`]: zones, clusters,
//!   apps, and the numbered targets (app, cluster) and endpoints (target, VIP).
//! - [`discovery`] adds clusters, per-cluster ingress VIPs and workload readiness from
//!   Clusternet, Karmada or kubeconfig contexts (list+watch), merged into new
//!   inventories that [`app`] applies through health.
//! - [`probe`] runs one task per endpoint (HTTP(S) with the app's Host, or TCP) and sends
//!   each result, as data, to health.
//! - [`health`] feeds results to a pure rise/fall state machine per endpoint, derives each
//!   target's state, logs and counts transitions, and publishes immutable snapshots.
//! - [`answer`] plans each app's answer by its policy (failover, round-robin, weighted,
//!   fail-open) and lays out an immutable answer table, swapped in atomically by [`app`];
//!   each zone's SOA serial moves only with its content, and the table keeps an IXFR
//!   journal of recent changes.
//! - [`dns`] is the hickory-server handler: it reads the current table and never waits on
//!   probes, locks, or the disk. It also serves zone transfers (AXFR, IXFR, TSIG) to
//!   secondaries and sends them NOTIFY on each new serial (gslb as a hidden primary).
//! - [`admin`] serves metrics, liveness, readiness and the status API, and this
//!   instance's view (`/api/v1/view`) for its peers.
//! - [`quorum`] carries views between instances (`[quorum]`: the peers' admin APIs, or
//!   ConfigMaps on the hub's Kubernetes API) and hands the peers' to health, which
//!   decides a target down only when a quorum of the fresh views agree.
//! - [`redact`] says what went wrong without quoting credentials from kube errors.
//! - [`app`] is the only place that wires them together; [`demo`] runs it all on loopback.

pub mod admin;
pub mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod dns;
pub mod dnssec;
pub mod drill;
pub mod geodb;
pub mod health;
pub mod metrics;
pub mod model;
pub mod probe;
pub mod quorum;
pub mod redact;
pub mod rfc3339;
pub mod state;

/// Test databases for `[geo] database`, shared with the integration tests and the bench.
#[cfg(test)]
#[path = "../tests/support/mmdb_writer.rs"]
pub(crate) mod mmdb_writer;

/// The `geo` tests' regions and clusters, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/support/geo_regions.rs"]
pub(crate) mod geo_regions;
