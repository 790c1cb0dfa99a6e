//! The cluster a data directory belongs to, as `kafka-storage format` records it: a
//! `meta.properties` file (Kafka's keys `version`, `cluster.id`, `node.id`) written once, and
//! checked on every start, so a directory never joins another cluster or changes node id.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use uuid::Uuid;

const FILE: &str = "meta.properties";
/// Kafka's meta.properties version for KRaft directories.
const VERSION: &str = "1";
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A data directory's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    pub node_id: i32,
}

/// A random cluster id as Kafka writes one (`kafka-storage random-uuid`): 16 random bytes in
/// URL-safe base64 without padding, 22 characters. Like Kafka's, it never starts with `-`,
/// which a command line would take for an option.
pub fn random_uuid() -> String {
    loop {
        let bytes = Uuid::new_v4().into_bytes();
        let mut out = String::with_capacity(22);
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(BASE64URL[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        if !out.starts_with('-') {
            return out;
        }
    }
}

/// A cluster id Kafka would accept: 22 URL-safe base64 characters.
fn check_cluster_id(id: &str) -> Result<()> {
    if id.len() != 22 || !id.bytes().all(|b| BASE64URL.contains(&b)) {
        bail!("cluster id {id:?} is not 22 URL-safe base64 characters; make one with `gregor random-uuid`");
    }
    Ok(())
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The identity recorded in `dir`, if it is formatted.
pub fn read(dir: &Path) -> Result<Option<Identity>> {
    let file = path(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let value = |key: &str| {
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| l.split_once('=').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string()))
    };
    let version = value("version").unwrap_or_default();
    if version != VERSION {
        bail!("{}: version {version:?}, this Gregor reads version {VERSION}", file.display());
    }
    let cluster_id = value("cluster.id").with_context(|| format!("{} has no cluster.id", file.display()))?;
    let node_id = value("node.id").and_then(|v| v.parse().ok()).with_context(|| format!("{} has no valid node.id", file.display()))?;
    Ok(Some(Identity { cluster_id, node_id }))
}

/// `gregor format`: records `identity` in `dir`. Formatting again with the same identity is a
/// no-op; with another one it is refused, since the data belongs to the first.
pub fn format(dir: &Path, identity: &Identity) -> Result<()> {
    check_cluster_id(&identity.cluster_id)?;
    if let Some(existing) = read(dir)? {
        if existing == *identity {
            return Ok(());
        }
        bail!(
            "{} is already formatted for cluster {} as node {}; use an empty directory to format it anew",
            dir.display(),
            existing.cluster_id,
            existing.node_id
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = format!("#\n#Written by gregor format\nversion={VERSION}\ncluster.id={}\nnode.id={}\n", identity.cluster_id, identity.node_id);
    // Written whole, then renamed: a crash never leaves half a file.
    let temporary = dir.join(format!("{FILE}.tmp"));
    std::fs::write(&temporary, text).and_then(|_| std::fs::rename(&temporary, path(dir))).with_context(|| format!("cannot write {}", path(dir).display()))
}

/// The identity to start with: the recorded one, which must have this `node_id`. An
/// unformatted directory is formatted at once only when `auto_format` gives a cluster id to
/// use (a lone node with no voters configured); otherwise the operator must format it.
pub fn check_at_start(dir: &Path, node_id: i32, auto_format: Option<&dyn Fn() -> Result<String>>) -> Result<Identity> {
    match (read(dir)?, auto_format) {
        (Some(identity), _) if identity.node_id != node_id => bail!(
            "{} belongs to node {} but node.id is {node_id}: a node keeps its id; set node.id={} or use another data directory",
            path(dir).display(),
            identity.node_id,
            identity.node_id
        ),
        (Some(identity), _) => Ok(identity),
        (None, Some(cluster_id)) => {
            let identity = Identity { cluster_id: cluster_id()?, node_id };
            format(dir, &identity)?;
            tracing::info!(cluster_id = identity.cluster_id, "formatted {} for a one-node cluster", dir.display());
            Ok(identity)
        }
        (None, None) => bail!(
            "{} is not formatted: with controller.quorum.voters set, run `gregor format --cluster-id <id>` with this node's settings first (the same id on every node; `gregor random-uuid` makes one)",
            dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_kafka_shaped() {
        let id = random_uuid();
        check_cluster_id(&id).unwrap();
        assert_ne!(id, random_uuid());
        // One in 64 would start with '-' if drawn plainly.
        assert!((0..2000).all(|_| !random_uuid().starts_with('-')));
        assert!(check_cluster_id("not-an-id").is_err());
    }

    #[test]
    fn formatted_once_and_checked_on_every_start() {
        let dir = tempfile::tempdir().unwrap();
        let one = Identity { cluster_id: random_uuid(), node_id: 1 };
        assert!(check_at_start(dir.path(), 1, None).unwrap_err().to_string().contains("not formatted"));
        format(dir.path(), &one).unwrap();
        format(dir.path(), &one).unwrap();
        assert!(format(dir.path(), &Identity { cluster_id: random_uuid(), node_id: 1 }).unwrap_err().to_string().contains("already formatted"));
        assert_eq!(check_at_start(dir.path(), 1, None).unwrap(), one);
        assert!(check_at_start(dir.path(), 2, None).unwrap_err().to_string().contains("belongs to node 1"));
        let fresh = tempfile::tempdir().unwrap();
        let kept = "abcdefabcdefabcdefabcd".to_string();
        let auto = || Ok(kept.clone());
        assert_eq!(check_at_start(fresh.path(), 3, Some(&auto)).unwrap().cluster_id, kept);
        assert_eq!(read(fresh.path()).unwrap().unwrap().node_id, 3);
    }
}
