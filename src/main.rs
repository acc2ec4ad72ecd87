//! The `gslb` binary: parses the command line, starts logging, runs the command, and maps
//! failures to exit codes (64, EX_USAGE, for a bad config; 1 for anything else).

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use gslb::cli::{Cli, Command, LogFormat};
use gslb::{admin, app, config, demo};

/// sysexits.h EX_USAGE: the config (or command line) is wrong.
const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gslb: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::CheckConfig { config } => {
            return match config::load(&config) {
                Ok(c) => {
                    let inv = &c.inventory;
                    println!(
                        "{}: ok ({} zones, {} clusters, {} apps, {} probed endpoints)",
                        config.display(),
                        inv.zones.len(),
                        inv.clusters.len(),
                        inv.apps.len(),
                        inv.endpoints.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprint!("{e}");
                    ExitCode::from(EX_USAGE)
                }
            };
        }
        Command::Serve { config } => match config::load(&config) {
            Ok(c) => serve(c).await,
            Err(e) => {
                eprint!("{e}");
                return ExitCode::from(EX_USAGE);
            }
        },
        Command::Status { admin, json } => status(&admin, json).await,
        Command::Demo => demo::run(shutdown_signal()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gslb: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    let running = app::start(config).await?;
    shutdown_signal().await;
    running.shutdown().await
}

async fn status(admin: &str, json: bool) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/status", admin.trim_end_matches('/'));
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("cannot reach the admin API at {url}; is gslb running?"))?
        .error_for_status()?;
    let body = response.text().await?;
    if json {
        println!("{body}");
    } else {
        let report: admin::status::StatusReport =
            serde_json::from_str(&body).context("unexpected status JSON")?;
        print!("{}", admin::status::render(&report));
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn init_logging(format: LogFormat) {
    // hickory-server logs every request at info: keep it to warnings unless asked.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,hickory_server=warn,hickory_proto=warn,hickory_net=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
