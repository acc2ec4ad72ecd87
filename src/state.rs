//! The state file: overrides, the last known health of every endpoint, and past drills,
//! kept across restarts and crashes.
//!
//! Every save replaces the file atomically (write a temporary file in the same folder,
//! fsync it, rename it over the old one, fsync the folder), so a crash leaves either the
//! old file or the new one, never a mix. A file that cannot be read or parsed is moved
//! aside (`<path>.corrupt`) and reported; gslb then starts from probes.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::answer::Versions;
use crate::drill::report::DrillRecord;
use crate::health::{HealthSnapshot, Override, Persist, State};
use crate::model::Inventory;

/// The version of the file's format.
const FORMAT: u32 = 1;
/// Past drills kept.
const MAX_DRILLS: usize = 100;

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contents {
    pub format: u32,
    #[serde(with = "crate::rfc3339")]
    pub saved_at: SystemTime,
    #[serde(default)]
    pub overrides: Vec<Override>,
    #[serde(default)]
    pub endpoints: Vec<SavedEndpoint>,
    #[serde(default)]
    pub drills: Vec<DrillRecord>,
    /// The last SOA serial served for each zone and the digest of its content, so that
    /// serials keep increasing across restarts. Absent from files written before it.
    #[serde(default)]
    pub zones: Versions,
}

impl Default for Contents {
    fn default() -> Self {
        Self {
            format: FORMAT,
            saved_at: SystemTime::UNIX_EPOCH,
            overrides: Vec::new(),
            endpoints: Vec::new(),
            drills: Vec::new(),
            zones: Versions::new(),
        }
    }
}

/// The last known state of one endpoint, by names so it survives config changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEndpoint {
    pub app: String,
    pub cluster: String,
    pub vip: IpAddr,
    pub state: State,
}

impl Contents {
    /// The saved state of an endpoint, if any.
    pub fn endpoint_state(&self, app: &str, cluster: &str, vip: IpAddr) -> Option<State> {
        self.endpoints
            .iter()
            .find(|e| e.app == app && e.cluster == cluster && e.vip == vip)
            .map(|e| e.state)
    }
}

/// How opening the state file went.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened {
    /// No file yet: a first start.
    Fresh,
    Loaded,
    /// Unreadable or corrupt; moved aside to the given path (if that worked).
    Corrupt {
        reason: String,
        moved_to: Option<PathBuf>,
    },
}

/// The state file and its current contents.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    contents: Mutex<Contents>,
}

impl StateStore {
    /// Opens (and loads) the state file at `path`; never fails: a bad file is reported
    /// in [`Opened`] and replaced on the next save.
    pub fn open(path: &Path) -> (Self, Opened) {
        let (contents, opened) = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (Contents::default(), Opened::Fresh)
            }
            Err(e) => (
                Contents::default(),
                set_aside(path, format!("cannot read it: {e}")),
            ),
            Ok(bytes) => match serde_json::from_slice::<Contents>(&bytes) {
                Ok(c) if c.format == FORMAT => (c, Opened::Loaded),
                Ok(c) => (
                    Contents::default(),
                    set_aside(path, format!("unknown format {}", c.format)),
                ),
                Err(e) => (
                    Contents::default(),
                    set_aside(path, format!("not valid state JSON: {e}")),
                ),
            },
        };
        (
            Self {
                path: path.to_owned(),
                contents: Mutex::new(contents),
            },
            opened,
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of what the file holds now.
    pub fn contents(&self) -> Contents {
        self.lock().clone()
    }

    /// Appends a drill (keeping the last [`MAX_DRILLS`]) and saves.
    ///
    /// # Errors
    ///
    /// When the file cannot be written; the drill is then not kept.
    pub fn add_drill(&self, drill: DrillRecord) -> Result<(), String> {
        let mut c = self.lock();
        let mut next = c.clone();
        next.drills.push(drill);
        let excess = next.drills.len().saturating_sub(MAX_DRILLS);
        next.drills.drain(..excess);
        self.write(&mut next)?;
        *c = next;
        Ok(())
    }

    /// Records the zones' serials and saves, if they changed.
    ///
    /// # Errors
    ///
    /// When the file cannot be written.
    pub fn save_versions(&self, versions: &Versions) -> Result<(), String> {
        let mut c = self.lock();
        if c.zones == *versions {
            return Ok(());
        }
        let mut next = c.clone();
        next.zones = versions.clone();
        self.write(&mut next)?;
        *c = next;
        Ok(())
    }

    // The lock is never held across an await: every caller is synchronous (and runs off
    // the async runtime), and a poisoned lock still holds valid contents.
    fn lock(&self) -> std::sync::MutexGuard<'_, Contents> {
        self.contents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes atomically: temporary file, fsync, rename, fsync of the folder.
    fn write(&self, contents: &mut Contents) -> Result<(), String> {
        contents.saved_at = SystemTime::now();
        let json = serde_json::to_vec_pretty(contents).map_err(|e| e.to_string())?;
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", tmp.display());
        let mut f = std::fs::File::create(&tmp).map_err(|e| fail("cannot create", e))?;
        f.write_all(&json).map_err(|e| fail("cannot write", e))?;
        f.sync_all().map_err(|e| fail("cannot sync", e))?;
        drop(f);
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| format!("cannot replace {}: {e}", self.path.display()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Persist for StateStore {
    fn save(&self, inventory: &Inventory, snapshot: &HealthSnapshot) -> Result<(), String> {
        let mut c = self.lock();
        let mut next = c.clone();
        next.overrides = snapshot.overrides.clone();
        next.endpoints = inventory
            .endpoints
            .iter()
            .zip(&snapshot.endpoints)
            .map(|(e, h)| {
                let (app, cluster) = inventory.target_labels(e.target);
                SavedEndpoint {
                    app,
                    cluster: cluster.to_owned(),
                    vip: e.vip,
                    state: h.state,
                }
            })
            .collect();
        self.write(&mut next)?;
        *c = next;
        Ok(())
    }
}

fn set_aside(path: &Path, reason: String) -> Opened {
    let aside = PathBuf::from(format!("{}.corrupt", path.display()));
    let moved_to = std::fs::rename(path, &aside).ok().map(|()| aside);
    Opened::Corrupt { reason, moved_to }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (store, opened) = StateStore::open(&path);
        assert_eq!(opened, Opened::Fresh);
        let drill: DrillRecord = serde_json::from_str(
            r#"{"cluster":"a","apps":["x"],"passed":true,"vips":[],"before":[],"during":[],"injected_at":"2026-11-29T00:00:00Z"}"#,
        )
        .unwrap();
        store.add_drill(drill.clone()).unwrap();
        let (again, opened) = StateStore::open(&path);
        assert_eq!(opened, Opened::Loaded);
        assert_eq!(again.contents().drills, vec![drill]);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_file_without_zone_serials_loads_and_keeps_them_once_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // As written before serials were kept.
        std::fs::write(
            &path,
            br#"{"format":1,"saved_at":"2026-11-29T00:00:00Z","overrides":[],"endpoints":[],"drills":[]}"#,
        )
        .unwrap();
        let (store, opened) = StateStore::open(&path);
        assert_eq!(opened, Opened::Loaded);
        assert!(store.contents().zones.is_empty());
        let versions: Versions = [(
            "tke-demo.cn.".to_owned(),
            crate::answer::ZoneVersion {
                serial: 2026112901,
                digest: 42,
            },
        )]
        .into();
        store.save_versions(&versions).unwrap();
        let (again, opened) = StateStore::open(&path);
        assert_eq!(opened, Opened::Loaded);
        assert_eq!(again.contents().zones, versions);
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let (store, opened) = StateStore::open(&path);
        let Opened::Corrupt { reason, moved_to } = opened else {
            panic!("{opened:?}")
        };
        assert!(reason.contains("not valid state JSON"), "{reason}");
        assert_eq!(std::fs::read(moved_to.unwrap()).unwrap(), b"{ not json");
        assert!(store.contents().overrides.is_empty());
    }
}
