//! The test harness: gslb running in process on loopback with real sockets, stand-in
//! ingresses (real HTTP servers) on 127.x.y.z addresses, and `dig` as the DNS client.
//!
//! Every test takes its own 127.N.0.0/16 block, so tests run in parallel without sharing
//! an address; ports are picked by the OS.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Output;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use gslb::app::{self, Running};
use gslb::demo::StandIn;

static NEXT_BLOCK: AtomicU8 = AtomicU8::new(10);

/// A loopback block of our own: `ip(c)` is 127.N.1.c.
pub struct Block(u8);

impl Block {
    pub fn new() -> Self {
        Self(NEXT_BLOCK.fetch_add(1, Ordering::Relaxed))
    }
    pub fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, 1, host))
    }
    /// 127.N.2.host: addresses for gslb instances of the block, apart from its ingresses.
    pub fn instance_ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0, 2, host))
    }
}

/// Stand-in ingresses on `block.ip(1..=n)`, all on one port; returns them and the port.
pub async fn stand_ins(block: &Block, names: &[&str]) -> (Vec<StandIn>, u16) {
    'retry: for _ in 0..20 {
        let first = StandIn::start(names[0], SocketAddr::new(block.ip(1), 0))
            .await
            .unwrap();
        let port = first.addr.port();
        let mut all = vec![first];
        for (i, name) in names.iter().enumerate().skip(1) {
            match StandIn::start(name, SocketAddr::new(block.ip(i as u8 + 1), port)).await {
                Ok(s) => all.push(s),
                Err(_) => continue 'retry,
            }
        }
        return (all, port);
    }
    panic!("no common free port for the stand-in ingresses");
}

/// gslb serving `config_text` with DNS and admin on free loopback ports.
pub struct Gslb {
    pub running: Option<Running>,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
}

impl Gslb {
    pub async fn start(config_text: &str) -> Self {
        // GSLB_TEST_LOG=debug shows gslb's logs in failing tests.
        if let Ok(filter) = std::env::var("GSLB_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let mut config =
            gslb::config::parse(config_text, "test config").unwrap_or_else(|e| panic!("{e}"));
        config.server.dns_listen = vec!["127.0.0.1:0".parse().unwrap()];
        config.server.admin_listen = "127.0.0.1:0".parse().unwrap();
        let running = app::start(config).await.unwrap();
        Self {
            dns: running.dns_addrs[0],
            admin: running.admin_addr,
            running: Some(running),
        }
    }

    /// gslb serving `config_text` on the addresses it names (DNS port 0 is allowed).
    pub async fn start_as_written(config_text: &str) -> Self {
        let config =
            gslb::config::parse(config_text, "test config").unwrap_or_else(|e| panic!("{e}"));
        let running = app::start(config).await.unwrap();
        Self {
            dns: running.dns_addrs[0],
            admin: running.admin_addr,
            running: Some(running),
        }
    }

    /// `dig @127.0.0.1 -p PORT <args>`, parsed.
    pub async fn dig(&self, args: &str) -> Dig {
        dig(self.dns, args).await
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&format!("http://{}{path}", self.admin)).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// Whether `line` is a line of gslb's `/metrics`, exactly.
pub async fn metric(gslb: &Gslb, line: &str) -> bool {
    gslb.get("/metrics").await.1.lines().any(|l| l == line)
}

pub async fn http_get(url: &str) -> (u16, String) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// What a finished `gslb` command left: its exit code and output.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs the `gslb` binary with `args` (no admin API, no token in the environment).
pub async fn gslb_run<I, A>(args: I) -> Ran
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gslb"))
        .args(args)
        .env_remove("GSLB_TOKEN")
        .output()
        .await
        .unwrap();
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the `gslb` binary with `args --admin ADMIN`, with `GSLB_TOKEN` set to
/// `env_token` (else unset); returns (success, stdout, stderr).
pub async fn gslb_cli(
    admin: &str,
    args: &[&str],
    env_token: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gslb"));
    cmd.args(args)
        .args(["--admin", admin])
        .env_remove("GSLB_TOKEN");
    if let Some(t) = env_token {
        cmd.env("GSLB_TOKEN", t);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What dig printed, split into the parts a user reads.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    pub status: String,
    pub flags: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub edns_udp: Option<u16>,
    pub raw: String,
}

impl Dig {
    /// The RDATA of answer records of one type, e.g. `["127.0.1.1"]` for `A`.
    pub fn rdata(&self, rtype: &str) -> Vec<String> {
        self.answer
            .iter()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5 && f[3] == rtype).then(|| f[4..].join(" "))
            })
            .collect()
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// Runs `dig` against `server`; panics with a clear message if dig is missing.
pub async fn dig(server: SocketAddr, args: &str) -> Dig {
    let mut cmd = tokio::process::Command::new("dig");
    cmd.arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1"])
        .args(args.split_whitespace());
    let out: Output = match cmd.output().await {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run dig ({e}): install it with `apt-get install -y bind9-dnsutils`")
        }
    };
    parse_dig(&String::from_utf8_lossy(&out.stdout))
}

fn parse_dig(text: &str) -> Dig {
    let mut d = Dig {
        raw: text.to_owned(),
        ..Dig::default()
    };
    let mut section: Option<&str> = None;
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest
                .split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect();
        } else if let Some(rest) = line.split("udp: ").nth(1) {
            d.edns_udp = rest.trim().parse().ok();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = Some("answer");
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = Some("authority");
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = Some("additional");
        } else if line.trim().is_empty() || line.starts_with(';') {
            section = None;
        } else {
            match section {
                Some("answer") => d.answer.push(line.to_owned()),
                Some("authority") => d.authority.push(line.to_owned()),
                Some("additional") => d.additional.push(line.to_owned()),
                _ => {}
            }
        }
    }
    d
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A config: zone `tke-demo.cn` with glue and static records, plus `rest`.
pub fn config(rest: &str) -> String {
    config_with_zone("", rest)
}

/// [`config`] with `zone_extra` lines in the `[[zone]]` (transfers, keys).
pub fn config_with_zone(zone_extra: &str, rest: &str) -> String {
    format!(
        r#"
[[zone]]
name = "tke-demo.cn"
nameservers = ["ns1.tke-demo.cn"]
hostmaster = "hostmaster.tke-demo.cn"
negative_ttl = 45
records = [
  {{ name = "ns1", type = "A", value = "127.0.0.1" }},
  {{ name = "info", type = "TXT", value = "served by gslb" }},
  {{ name = "www", type = "CNAME", value = "tke-demo.cn" }},
  {{ name = "@", type = "MX", value = "10 mail.tke-demo.cn" }},
  {{ name = "mail", type = "A", value = "127.0.0.25" }},
]
{zone_extra}
{rest}
"#
    )
}

/// Clusters `guangzhou-01` (priority 1) and `guangzhou-02` (priority 2), one VIP each on
/// the block's .1 and .2.
pub fn two_clusters(block: &Block) -> String {
    format!(
        r#"
[[cluster]]
name = "guangzhou-01"
region = "ap-guangzhou"
vips = ["{a}"]
priority = 1

[[cluster]]
name = "guangzhou-02"
region = "ap-guangzhou"
vips = ["{b}"]
priority = 2
"#,
        a = block.ip(1),
        b = block.ip(2),
    )
}

/// Two clusters on the block's .1 and .2 with an HTTP probe on `port`, for `policy`.
pub fn two_cluster_app(block: &Block, port: u16, policy: &str, extra_app_keys: &str) -> String {
    config(&format!(
        r#"
{clusters}
[[app]]
name = "tke-demo.cn"
policy = "{policy}"
ttl = 5
clusters = ["guangzhou-01", "guangzhou-02"]
probe = {{ kind = "http", port = {port}, path = "/", interval = "200ms", timeout = "150ms", rise = 2, fall = 2 }}
{extra_app_keys}
"#,
        clusters = two_clusters(block),
    ))
}

/// A free loopback port (UDP and TCP both free at the time of asking).
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The `gslb` binary running `serve` as its own process, for restarts and kill -9.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
}

impl ServeProcess {
    /// Writes `[server]` (free ports, plus `server_extra` lines) and `rest` to `path`, and
    /// starts `gslb serve` on it.
    pub async fn start(path: &std::path::Path, server_extra: &str, rest: &str) -> Self {
        Self::write_config(path, server_extra, rest);
        Self::spawn(path).await
    }

    /// Writes `[server]` (free ports, plus `server_extra` lines) and `rest` to `path`.
    pub fn write_config(path: &std::path::Path, server_extra: &str, rest: &str) {
        let (dns, admin) = (free_port(), free_port());
        let text = format!(
            "[server]\ndns_listen = [\"127.0.0.1:{dns}\"]\nadmin_listen = \"127.0.0.1:{admin}\"\n{server_extra}\n{rest}"
        );
        std::fs::write(path, text).unwrap();
    }

    /// Starts `gslb serve` on an existing config file (with `[server]` lines as
    /// `write_config` writes them).
    pub async fn spawn(path: &std::path::Path) -> Self {
        Self::spawn_with(path, None).await
    }

    /// Starts `gslb serve` on an existing config file with `RUST_LOG=filter`, its stderr
    /// (the log) written to `log`.
    pub async fn spawn_logged(path: &std::path::Path, log: &std::path::Path, filter: &str) -> Self {
        Self::spawn_with(path, Some((log, filter))).await
    }

    async fn spawn_with(path: &std::path::Path, log: Option<(&std::path::Path, &str)>) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        let find = |key: &str| -> SocketAddr {
            let line = text.lines().find(|l| l.starts_with(key)).unwrap();
            line.split('"').nth(1).unwrap().parse().unwrap()
        };
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gslb"));
        cmd.arg("serve")
            .arg("--config")
            .arg(path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some((log, filter)) = log {
            cmd.env("RUST_LOG", filter)
                .stderr(std::fs::File::create(log).unwrap());
        }
        let child = cmd.spawn().unwrap();
        let s = Self {
            child,
            dns: find("dns_listen"),
            admin: find("admin_listen"),
        };
        let healthz = format!("http://{}/healthz", s.admin);
        eventually(Duration::from_secs(15), "gslb serve to start", || async {
            let ok = reqwest::Client::builder()
                .no_proxy()
                .build()
                .ok()?
                .get(&healthz)
                .send()
                .await
                .ok()?;
            ok.status().is_success().then_some(())
        })
        .await;
        s
    }

    pub async fn kill9(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, then waits for the exit; true if it exited 0.
    pub async fn terminate(mut self) -> bool {
        let pid = self.child.id().unwrap().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("gslb serve to exit after SIGTERM")
            .unwrap();
        status.success()
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }
}
