//! Integration tests: gslb on loopback with real sockets, real HTTP stand-in ingresses,
//! and real clients nobody here wrote (`dig`, `promtool`, `prometheus`, `unbound`).
//!
//! System packages needed: bind9-dnsutils (dig), prometheus (prometheus, promtool),
//! unbound, knot (knotd, the secondary of the transfer tests). `.ci/run` installs them.

mod admin;
mod apiserver;
mod cli;
mod crash;
mod discovery;
mod dns;
mod dnssec;
mod failover;
mod flood;
mod fuzz;
mod geo;
mod geo_database;
mod harness;
mod hostile;
mod operations;
mod quorum;
mod quorum_hub;
mod resolver;
mod security;
mod tls;
mod ttl;
mod xfr;

#[path = "../support/mmdb_writer.rs"]
mod mmdb_writer;

#[path = "../support/geo_regions.rs"]
mod geo_regions;
