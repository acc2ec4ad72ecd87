//! The `gslb` binary: parses the command line, starts logging, runs the command, and maps
//! failures to exit codes: 64 (EX_USAGE) for a bad config, 2 for a bad command line
//! (clap's own), 1 for anything else, including a drill that did not pass.

use std::process::ExitCode;

#[cfg(all(not(target_env = "msvc"), not(miri)))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Context;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use gslb::admin::client::AdminClient;
use gslb::admin::overrides::SetOverride;
use gslb::admin::{explain, status};
use gslb::cli::{
    Cli, Command, DnssecCommand, DrillCommand, DrillMethod, LogFormat, OverrideCommand, Remote,
};
use gslb::drill::{self, DrillOptions};
use gslb::{app, config, demo};

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
                    if inv.geo.database_unused() {
                        eprintln!(
                            "{}: warning: {}",
                            config.display(),
                            gslb::model::UNUSED_DATABASE
                        );
                    }
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
        Command::Status { remote, json } => show_status(&remote, json).await,
        Command::Explain {
            name,
            qtype,
            client,
            remote,
            json,
        } => show_explain(&remote, &name, &qtype, client.as_deref(), json).await,
        Command::Override(cmd) => overrides(cmd).await,
        Command::Drill(cmd) => drills(cmd).await,
        Command::Dnssec(DnssecCommand::Ds { config, zone }) => {
            return match config::load(&config) {
                Ok(c) => print_ds(&c, zone.as_deref()),
                Err(e) => {
                    eprint!("{e}");
                    ExitCode::from(EX_USAGE)
                }
            };
        }
        Command::Dnssec(DnssecCommand::Keygen { algorithm, out }) => keygen(&algorithm, &out),
        Command::Demo => {
            raise_open_file_limit();
            demo::run(shutdown_signal()).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A drill's kube errors may quote a kubeconfig or an auth plugin's output.
            eprintln!("gslb: {}", gslb::redact::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Prints the DS records of every signed zone (or of `only`), one per line, as a parent
/// zone file writes them.
fn print_ds(config: &config::Config, only: Option<&str>) -> ExitCode {
    let wanted = only.map(|z| z.trim_end_matches('.').to_ascii_lowercase() + ".");
    let mut printed = 0;
    for zone in &config.inventory.zones {
        let origin = zone.origin.to_ascii().to_ascii_lowercase();
        if wanted.as_ref().is_some_and(|w| *w != origin) {
            continue;
        }
        let Some(signer) = &zone.dnssec else { continue };
        for ds in signer.ds_records(zone.ttl) {
            println!("{} {} IN DS {}", ds.name, ds.ttl, ds.data);
            printed += 1;
        }
    }
    if printed == 0 {
        eprintln!(
            "gslb: no signed zone{} in the config (add [zone.dnssec] keys)",
            only.map(|z| format!(" named {z}")).unwrap_or_default()
        );
        return ExitCode::from(EX_USAGE);
    }
    ExitCode::SUCCESS
}

/// Writes a new DNSSEC private key to `out`, owner-readable only, never over a file.
fn keygen(algorithm: &str, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let pem =
        gslb::dnssec::generate_pem(&algorithm.to_ascii_lowercase()).map_err(anyhow::Error::msg)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create {}", out.display()))?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: TCP clients must not be able
/// to starve probes of descriptors at a low default soft limit (1024 under systemd).
fn raise_open_file_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

async fn serve(config: config::Config) -> anyhow::Result<()> {
    raise_open_file_limit();
    let running = app::start(config).await?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    #[cfg(unix)]
    {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = hup.recv() => {
                    // The outcome is logged (and counted) by the reload itself.
                    let _ = running.reload().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    shutdown.await;
    running.shutdown().await
}

fn client(remote: &Remote) -> anyhow::Result<AdminClient> {
    let token = match &remote.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?,
        ),
        None => std::env::var("GSLB_TOKEN").ok(),
    };
    AdminClient::new(&remote.admin, token)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn show_status(remote: &Remote, json: bool) -> anyhow::Result<()> {
    let report = client(remote)?.status().await?;
    if json {
        return print_json(&report);
    }
    print!("{}", status::render(&report));
    Ok(())
}

async fn show_explain(
    remote: &Remote,
    name: &str,
    qtype: &str,
    asker: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let e = client(remote)?.explain(name, qtype, asker).await?;
    if json {
        return print_json(&e);
    }
    print!("{}", explain::render(&e));
    Ok(())
}

async fn overrides(cmd: OverrideCommand) -> anyhow::Result<()> {
    match cmd {
        OverrideCommand::Set {
            cluster,
            app,
            kind,
            reason,
            expires,
            force,
            remote,
        } => {
            let req = SetOverride {
                cluster,
                app,
                kind: kind.into(),
                reason,
                expires_in: expires,
                force,
                set_by: Some(std::env::var("USER").unwrap_or_else(|_| "gslb-cli".to_owned())),
            };
            let o = client(&remote)?.set_override(&req).await?;
            println!(
                "{} override set on {}/{}{}",
                o.kind.as_str(),
                o.cluster,
                o.app.as_deref().unwrap_or("*"),
                o.expires_at
                    .map(|t| format!(", lifts itself at {}", gslb::rfc3339::format(t)))
                    .unwrap_or_default()
            );
        }
        OverrideCommand::List { remote, json } => {
            let list = client(&remote)?.overrides().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no overrides");
            }
            for o in list {
                println!(
                    "{:<6} {}/{}  by {} at {}{}: {}",
                    o.kind.as_str(),
                    o.cluster,
                    o.app.as_deref().unwrap_or("*"),
                    o.set_by,
                    gslb::rfc3339::format(o.set_at),
                    o.expires_at
                        .map(|t| format!(", until {}", gslb::rfc3339::format(t)))
                        .unwrap_or_default(),
                    o.reason
                );
            }
        }
        OverrideCommand::Clear {
            cluster,
            app,
            remote,
        } => {
            let removed = client(&remote)?
                .clear_override(&cluster, app.as_deref())
                .await?;
            for o in removed {
                println!(
                    "cleared {} override on {}/{}",
                    o.kind.as_str(),
                    o.cluster,
                    o.app.as_deref().unwrap_or("*")
                );
            }
        }
    }
    Ok(())
}

async fn drills(cmd: DrillCommand) -> anyhow::Result<()> {
    match cmd {
        DrillCommand::Plan {
            cluster,
            remote,
            json,
        } => {
            let plan = client(&remote)?.drill_plan(&cluster).await?;
            if json {
                return print_json(&plan);
            }
            println!("if {cluster} failed:");
            for e in plan {
                let flag = if e.left_with_nothing {
                    "  <-- NO HEALTHY CLUSTER LEFT"
                } else if e.affected {
                    "  (fails over)"
                } else {
                    "  (unchanged)"
                };
                println!(
                    "  {}: [{}] -> [{}]{flag}",
                    e.app,
                    e.now.join(" "),
                    e.if_failed.join(" ")
                );
            }
        }
        DrillCommand::Undo { undo_file } => {
            let path = undo_file.unwrap_or_else(drill::fault::default_undo_file);
            println!("{}", drill::fault::undo(&path).await?);
        }
        DrillCommand::Run {
            cluster,
            app,
            hold,
            resolver,
            expect_within,
            force,
            method,
            workload,
            workload_kind,
            kubeconfig,
            context,
            undo_file,
            dns,
            remote,
            json,
        } => {
            let method = match method {
                DrillMethod::Override => drill::fault::Method::Override,
                DrillMethod::ScaleToZero => {
                    let workload = workload.unwrap_or_default();
                    let (namespace, name) = workload
                        .split_once('/')
                        .context("--workload must be NAMESPACE/NAME")?;
                    drill::fault::Method::ScaleToZero {
                        target: drill::fault::ScaleTarget {
                            kubeconfig,
                            context: context.unwrap_or_else(|| cluster.clone()),
                            kind: workload_kind,
                            namespace: namespace.to_owned(),
                            name: name.to_owned(),
                        },
                        undo_file: undo_file.unwrap_or_else(drill::fault::default_undo_file),
                    }
                }
            };
            let opts = DrillOptions {
                method,
                dns,
                cluster,
                app,
                hold: config::duration(&hold)
                    .map_err(anyhow::Error::msg)
                    .context("--hold")?,
                resolver,
                expect_within: config::duration(&expect_within)
                    .map_err(anyhow::Error::msg)
                    .context("--expect-within")?,
                force,
            };
            let client = client(&remote)?;
            let record =
                drill::run(&client, &opts, ctrl_c(), |line| eprintln!("drill: {line}")).await?;
            if json {
                print_json(&record)?;
            } else {
                print!("{}", record.render());
            }
            if !record.passed {
                anyhow::bail!(
                    "the drill did not pass: {}",
                    record.problem.as_deref().unwrap_or("see the report")
                );
            }
        }
        DrillCommand::List { remote, json } => {
            let list = client(&remote)?.drills().await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                println!("no drills recorded (drills are kept only with a state_file)");
            }
            for d in list {
                println!("{}", d.render());
            }
        }
    }
    Ok(())
}

async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
