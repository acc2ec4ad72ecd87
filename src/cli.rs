//! The command line: `gslb serve | check-config | status | explain | override | drill |
//! dnssec | demo`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::raw::DEFAULT_ADMIN_LISTEN;
use crate::health::OverrideKind;

/// Global traffic failover DNS for apps on several Kubernetes clusters.
#[derive(Debug, Parser)]
#[command(name = "gslb", version, about)]
pub struct Cli {
    /// Log format on stderr. The level comes from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How a command reaches a running gslb: the contract every such command shares.
#[derive(Debug, Clone, Args)]
pub struct Remote {
    /// Base URL of the admin API.
    #[arg(long, env = "GSLB_ADMIN", default_value_t = format!("http://{DEFAULT_ADMIN_LISTEN}"))]
    pub admin: String,
    /// File holding the admin bearer token (else the GSLB_TOKEN environment variable).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS for the zones and apps of a config file, probing every cluster.
    Serve {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 if it is good, else list every problem and exit 64.
    CheckConfig {
        /// The TOML config file.
        config: PathBuf,
    },
    /// Print the targets, answers and overrides of a running gslb.
    Status {
        #[command(flatten)]
        remote: Remote,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Explain why a name answers what it answers.
    Explain {
        /// The name, e.g. tke-demo.cn.
        name: String,
        /// The query type.
        #[arg(long = "type", default_value = "A")]
        qtype: String,
        /// Who asks, for `geo` apps: a subnet as EDNS Client Subnet carries it
        /// (10.1.2.0/24), or an address as a resolver's source (10.1.2.3).
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
    /// Take a cluster (or one app in it) out of answers, or put it back.
    #[command(subcommand)]
    Override(OverrideCommand),
    /// Rehearse a failover: take a cluster out, measure the switch, put it back.
    #[command(subcommand)]
    Drill(DrillCommand),
    /// DNSSEC keys: make one, or print the DS records to give the parent zone.
    #[command(subcommand)]
    Dnssec(DnssecCommand),
    /// Run a self-contained demo: stand-in ingresses on 127.0.1.1 and 127.0.1.2 and DNS for
    /// tke-demo.cn on 127.0.0.1:15353. No cluster and no config needed.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum DnssecCommand {
    /// Write a new private key (PKCS#8 PEM) for `[zone.dnssec] keys`.
    Keygen {
        /// ecdsa-p256 (algorithm 13) or ed25519 (algorithm 15).
        #[arg(long, default_value = "ecdsa-p256")]
        algorithm: String,
        /// The file to create (it must not exist; written readable by its owner only).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the DS records (SHA-256) of each signed zone's KSK or CSK, in zone-file form.
    Ds {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this zone (e.g. tke-demo.cn).
        #[arg(long)]
        zone: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OverrideCommand {
    /// Set an override: `drain` (maintenance) or `fail` (as if probes failed).
    Set {
        #[arg(long)]
        cluster: String,
        /// Only this app in the cluster (default: every app of the cluster).
        #[arg(long)]
        app: Option<String>,
        #[arg(long, value_enum)]
        kind: Kind,
        /// Why: shown in status, logs and the audit trail.
        #[arg(long)]
        reason: String,
        /// Lift it by itself after this long, e.g. 1h.
        #[arg(long)]
        expires: Option<String>,
        /// Apply even if an app is left with no healthy cluster.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the active overrides.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
    /// Clear the overrides of a cluster (or only the one of an app in it).
    Clear {
        #[arg(long)]
        cluster: String,
        #[arg(long)]
        app: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillMethod {
    Override,
    ScaleToZero,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Drain,
    Fail,
}

impl From<Kind> for OverrideKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Drain => OverrideKind::Drain,
            Kind::Fail => OverrideKind::Fail,
        }
    }
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Dry run: what every app answers now and would answer if the cluster failed.
    Plan {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
    /// Fail a cluster on purpose, measure the switch as a client sees it, and restore it.
    Run {
        #[arg(long)]
        cluster: String,
        /// Watch only this app (default: every app of the cluster).
        #[arg(long)]
        app: Option<String>,
        /// How long to keep the cluster out once the switch is seen.
        #[arg(long, default_value = "5s")]
        hold: String,
        /// Also watch the answer through this recursive resolver (ADDR:PORT).
        #[arg(long)]
        resolver: Option<SocketAddr>,
        /// Fail the drill if the answer has not switched within this long.
        #[arg(long, default_value = "30s")]
        expect_within: String,
        /// Go ahead even if an app would be left with no healthy cluster.
        #[arg(long)]
        force: bool,
        /// How to take the cluster out: a `fail` override in gslb, or a real fault:
        /// scale a workload of the cluster to zero replicas.
        #[arg(long, value_enum, default_value_t = DrillMethod::Override)]
        method: DrillMethod,
        /// For scale-to-zero: the workload, `NAMESPACE/NAME` (a Deployment unless
        /// --workload-kind says StatefulSet).
        #[arg(long, required_if_eq("method", "scale-to-zero"))]
        workload: Option<String>,
        #[arg(long, default_value = "Deployment")]
        workload_kind: String,
        /// For scale-to-zero: the kubeconfig holding the member cluster's context.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// For scale-to-zero: the member cluster's context (default: the cluster's name).
        #[arg(long)]
        context: Option<String>,
        /// Where a scale-to-zero drill records what to undo.
        #[arg(long)]
        undo_file: Option<PathBuf>,
        /// Query gslb's DNS at this address (default: where its status says it listens).
        #[arg(long)]
        dns: Option<SocketAddr>,
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
    /// Undo what an interrupted scale-to-zero drill changed (scale the workload back).
    Undo {
        #[arg(long)]
        undo_file: Option<PathBuf>,
    },
    /// Past drills with their timelines.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long)]
        json: bool,
    },
}
