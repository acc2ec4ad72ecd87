//! Loading and validating the TOML config.
//!
//! Loading runs in three steps, and reports every problem it finds, not just the first:
//!
//! 1. the text is parsed as TOML (a syntax error stops here, with its line);
//! 2. each section (`[server]`, every `[[zone]]`, `[[cluster]]` and `[[app]]`) is
//!    deserialized on its own into the structs of [`raw`], so a bad key in one app does not
//!    hide a bad key in another;
//! 3. [`validate`] checks meaning across sections (names resolve, timeouts fit intervals,
//!    records are well-formed) and builds the [`Config`].
//!
//! Every problem carries a key path such as `app[0].probe.timeout`, which is resolved to a
//! line of the file through the spans of the parsed document.

mod kube;
pub mod raw;
mod validate;

pub use validate::duration;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};

use crate::model::Inventory;

/// A validated config, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    /// The statically configured inventory: what is served before (or without) discovery.
    pub inventory: Inventory,
    /// Where more clusters, VIPs and workload health come from.
    pub sources: Vec<Source>,
    /// Each app's `clusters` list as written (`None`: every cluster), names included
    /// that only discovery will know.
    pub app_clusters: Vec<Option<Vec<String>>>,
    /// The file it was read from (for reloads), if any.
    pub path: Option<std::path::PathBuf>,
    /// `[quorum]`: the peers whose views are combined with ours; `None` decides alone.
    pub quorum: Option<Quorum>,
}

/// A validated `[quorum]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    /// As configured; `None`: the host name.
    pub instance: Option<String>,
    /// Base URLs of the peers' admin APIs, without a trailing slash; empty with `hub`.
    pub peers: Vec<String>,
    /// Views travel through this hub's Kubernetes API instead of the peers' admin APIs.
    pub hub: Option<QuorumHub>,
    pub token_file: Option<std::path::PathBuf>,
    pub rule: crate::model::QuorumRule,
    pub poll_interval: Duration,
}

/// `[quorum] hub`: views are ConfigMaps in `namespace` of the hub of `source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumHub {
    /// The `[[source]]` named by `hub` (kind clusternet or karmada): its kubeconfig and
    /// context reach the hub.
    pub source: Source,
    pub namespace: String,
}

/// The name of the hub object that carries `instance`'s view: `gslb-view-<instance>`,
/// which must be a Kubernetes object name (lowercase letters, digits, `-` and `.`, at most
/// 253 characters, starting and ending with a letter or digit).
///
/// # Errors
///
/// When `instance` makes no valid object name, with the reason.
pub fn view_object(instance: &str) -> Result<String, String> {
    let name = format!("gslb-view-{instance}");
    let ok = name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(name)
    } else {
        Err(format!(
            "`{instance}` makes no Kubernetes object name for its view (`{name}`): with `hub`, an instance name is lowercase letters, digits, `-` and `.`, ends with a letter or digit, and is at most 243 characters"
        ))
    }
}

/// A validated `[[source]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub kubeconfig: Option<std::path::PathBuf>,
    pub context: Option<String>,
    pub contexts: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Clusternet,
    Karmada,
    Kubeconfig,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Clusternet => "clusternet",
            SourceKind::Karmada => "karmada",
            SourceKind::Kubeconfig => "kubeconfig",
        }
    }
}

/// Validated `[server]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub dns_listen: Vec<SocketAddr>,
    pub admin_listen: SocketAddr,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Every admin call but `/healthz` and `/readyz` needs the token (`admin_token_file`
    /// is then required).
    pub admin_protect_reads: bool,
    pub state_file: Option<std::path::PathBuf>,
    pub shutdown_delay: Duration,
    pub rate_limit: crate::dns::rrl::RrlConfig,
    /// The local address probes connect from, for VIPs of its family.
    pub probe_source: Option<std::net::IpAddr>,
}

/// Everything wrong with a config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// How the file was named to us (a path, or `<embedded demo>`).
    pub file: String,
    pub problems: Vec<Problem>,
}

/// One problem: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// 1-based line of the key (or of the closest enclosing section), if known.
    pub line: Option<usize>,
    /// Key path, e.g. `app[0].probe.timeout`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{} found",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match p.line {
                Some(line) => write!(f, "  {}:{line}: ", self.file)?,
                None => write!(f, "  {}: ", self.file)?,
            }
            if p.key.is_empty() {
                writeln!(f, "{}", p.message)?;
            } else {
                writeln!(f, "{}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a config file.
///
/// # Errors
///
/// A [`ConfigError`] naming the file, with one [`Problem`] per thing wrong (an unreadable
/// file is one problem).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, &file).map(|mut c| {
            c.path = Some(path.to_owned());
            c
        }),
        Err(e) => Err(ConfigError {
            file,
            problems: vec![Problem {
                line: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Parses and validates config text; `file` names it in errors.
///
/// # Errors
///
/// A [`ConfigError`] listing every problem found.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let fail = |problems| ConfigError {
        file: file.to_owned(),
        problems,
    };
    // Plain values, for serde. The spans, which only an error's line needs, are parsed
    // again for an error: at 10,000 clusters both at once were 90 MB at start-up, which
    // the allocator kept.
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let e: toml::de::Error = e;
            let line = e.span().map(|s| line_of(text, s.start));
            return Err(fail(vec![Problem {
                line,
                key: String::new(),
                message: format!("invalid TOML: {}", e.message()),
            }]));
        }
    };
    let mut sections = Sections::default();
    let mut problems = Vec::new();
    for (key, value) in &table {
        match key.as_str() {
            "server" => {
                sections.server = deserialize_at(value, KeyPath::key("server"), &mut problems)
            }
            "zone" => sections.zones = deserialize_list(value, "zone", &mut problems),
            "cluster" => sections.clusters = deserialize_list(value, "cluster", &mut problems),
            "app" => sections.apps = deserialize_list(value, "app", &mut problems),
            "source" => sections.sources = deserialize_list(value, "source", &mut problems),
            "quorum" => {
                let quorum = deserialize_at(value, KeyPath::key("quorum"), &mut problems);
                sections.quorum_failed = quorum.is_none();
                sections.quorum = quorum;
            }
            "geo" => {
                sections.geo = deserialize_at(value, KeyPath::key("geo"), &mut problems);
                sections.geo_failed = sections.geo.is_none();
            }
            other => problems.push(PathProblem::new(
                KeyPath::key(other),
                format!(
                    "unknown section `{other}`, expected one of `server`, `zone`, `cluster`, `app`, `source`, `quorum`, `geo`"
                ),
            )),
        }
    }
    drop(table);
    let config = validate::validate(sections, &mut problems);
    if problems.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    // It parsed above, so it parses here.
    let doc = DeTable::parse(text).ok();
    let mut located: Vec<Problem> = problems
        .into_iter()
        .map(|p| Problem {
            line: doc
                .as_ref()
                .and_then(|doc| p.path.locate(doc))
                .map(|offset| line_of(text, offset)),
            key: p.path.to_string(),
            message: p.message,
        })
        .collect();
    located.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Err(fail(located))
}

/// The sections that deserialized; `None` entries failed and are already reported.
#[derive(Debug, Default)]
pub(crate) struct Sections {
    pub server: Option<raw::RawServer>,
    pub zones: Vec<Option<raw::RawZone>>,
    pub clusters: Vec<Option<raw::RawCluster>>,
    pub apps: Vec<Option<raw::RawApp>>,
    pub sources: Vec<Option<raw::RawSource>>,
    pub quorum: Option<raw::RawQuorum>,
    /// `[quorum]` was written but did not deserialize (already reported).
    pub quorum_failed: bool,
    pub geo: Option<raw::RawGeo>,
    /// `[geo]` was written but did not deserialize (already reported).
    pub geo_failed: bool,
}

fn deserialize_list<T: DeserializeOwned>(
    value: &toml::Value,
    key: &str,
    problems: &mut Vec<PathProblem>,
) -> Vec<Option<T>> {
    match value {
        toml::Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| deserialize_at(item, KeyPath::key(key).index(i), problems))
            .collect(),
        _ => {
            problems.push(PathProblem::new(
                KeyPath::key(key),
                format!("must be an array of tables, written [[{key}]]"),
            ));
            Vec::new()
        }
    }
}

fn deserialize_at<T: DeserializeOwned>(
    value: &toml::Value,
    at: KeyPath,
    problems: &mut Vec<PathProblem>,
) -> Option<T> {
    match serde_path_to_error::deserialize(value.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            let mut path = at;
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Map { key } => path = path.key_owned(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                    _ => {}
                }
            }
            // An unknown field names itself; point at it rather than at its table.
            let message = e.into_inner().to_string();
            if let Some(field) = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split('`').next())
            {
                if path.0.last() != Some(&Seg::Key(field.to_owned())) {
                    path = path.key_owned(field.to_owned());
                }
            }
            problems.push(PathProblem::new(path, message));
            None
        }
    }
}

/// A problem found before lines are known.
#[derive(Debug)]
pub(crate) struct PathProblem {
    pub path: KeyPath,
    pub message: String,
}

impl PathProblem {
    pub fn new(path: KeyPath, message: impl Into<String>) -> Self {
        Self {
            path,
            message: message.into(),
        }
    }
}

/// A key path into the document: `app[0].probe.timeout`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KeyPath(Vec<Seg>);

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn key(k: &str) -> Self {
        Self(vec![Seg::Key(k.to_owned())])
    }
    pub fn key_owned(mut self, k: String) -> Self {
        self.0.push(Seg::Key(k));
        self
    }
    pub fn then(&self, k: &str) -> Self {
        self.clone().key_owned(k.to_owned())
    }
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }

    /// Byte offset of the deepest part of the path present in the document.
    fn locate(&self, doc: &toml::Spanned<DeTable<'_>>) -> Option<usize> {
        let mut found = None;
        let mut current: Option<&toml::Spanned<DeValue<'_>>> = None;
        for (n, seg) in self.0.iter().enumerate() {
            let next = match (n, seg) {
                (0, Seg::Key(k)) => doc.get_ref().get(k.as_str()),
                (_, Seg::Key(k)) => current.and_then(|v| v.get_ref().get(k.as_str())),
                (_, Seg::Index(i)) => current.and_then(|v| v.get_ref().get(*i)),
            };
            match next {
                Some(v) => {
                    found = Some(v.span().start);
                    current = Some(v);
                }
                None => break,
            }
        }
        found
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if n == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
