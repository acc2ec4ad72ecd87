//! The command line: `gslb serve | check-config | status | demo`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::raw::DEFAULT_ADMIN_LISTEN;

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
    /// Print the targets and answers of a running gslb, from its admin API.
    Status {
        /// Base URL of the admin API.
        #[arg(long, env = "GSLB_ADMIN", default_value_t = format!("http://{DEFAULT_ADMIN_LISTEN}"))]
        admin: String,
        /// Print the raw JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a self-contained demo: stand-in ingresses on 127.0.1.1 and 127.0.1.2 and DNS for
    /// tke-demo.cn on 127.0.0.1:15353. No cluster and no config needed.
    Demo,
}
