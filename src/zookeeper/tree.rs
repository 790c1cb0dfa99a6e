//! The znode tree: every node in memory, the persistent ones also in the `meta` column family
//! (`zn<path>` -> stat, flags and data; `zx` -> the last zxid). Changes go through a [`Txn`],
//! which gives them one zxid, can be rolled back as a whole (multi), and on commit writes
//! the touched nodes in one batch and reports the watch events they cause.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};

use super::jute::{EventType, Reader, Stat, Writer};
use crate::log::Meta;

const NODE_PREFIX: &[u8] = b"zn";
const ZXID_KEY: &[u8] = b"zx";

/// ephemeralOwner of a container node (ZooKeeper's encoding).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// ephemeralOwner of a TTL node is this mask with the TTL in the low bits.
const TTL_MASK: i64 = 0xFF00_0000_0000_0000_u64 as i64;

pub fn ttl_owner(ttl_ms: i64) -> i64 {
    TTL_MASK | ttl_ms
}

#[derive(Debug, Clone, PartialEq)]
pub struct Znode {
    pub data: Vec<u8>,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    /// A session id for ephemeral nodes; [`CONTAINER_OWNER`] or a TTL encoding; else 0.
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    /// Rendered from Gregor's state by the Kafka view rather than written by a client.
    pub managed: bool,
}

impl Znode {
    /// The session that owns this node, if it is ephemeral.
    pub fn session(&self) -> Option<i64> {
        (self.ephemeral_owner > 0).then_some(self.ephemeral_owner)
    }

    pub fn is_container(&self) -> bool {
        self.ephemeral_owner == CONTAINER_OWNER
    }

    fn ttl(&self) -> Option<i64> {
        (self.ephemeral_owner & TTL_MASK == TTL_MASK).then_some(self.ephemeral_owner & !TTL_MASK)
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.stat(&self.stat(0)).bool(self.managed);
        let mut bytes = w.into_inner();
        bytes.extend_from_slice(&self.data);
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Znode> {
        let mut r = Reader::new(bytes);
        let s = Stat::read(&mut r).context("znode record too short")?;
        let managed = r.bool().context("znode record too short")?;
        Ok(Znode {
            data: r.rest().to_vec(),
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            pzxid: s.pzxid,
            managed,
        })
    }

    pub fn stat(&self, num_children: usize) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data.len() as i32,
            num_children: num_children as i32,
            pzxid: self.pzxid,
        }
    }
}

/// The parent of a valid path other than `/`.
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid path.
fn name(path: &str) -> &str {
    &path[path.rfind('/').map_or(0, |i| i + 1)..]
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// ZooKeeper's path rules: absolute, no empty, `.` or `..` segments, no trailing slash, no NUL.
pub fn valid_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains('\0')
        && path[1..].split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

/// A watch event a change causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub path: String,
}

pub struct Tree {
    nodes: HashMap<String, Znode>,
    children: HashMap<String, BTreeSet<String>>,
    /// Ephemeral nodes by owning session, so a closing session finds its nodes at once.
    ephemerals: HashMap<i64, BTreeSet<String>>,
    ttl_nodes: BTreeSet<String>,
    zxid: i64,
    meta: Meta,
}

impl Tree {
    /// Loads the persisted nodes (parents sort before their children, so they come first).
    pub fn load(meta: Meta) -> Result<Tree> {
        let zxid = match meta.get(ZXID_KEY)? {
            Some(v) => i64::from_be_bytes(v.as_slice().try_into().context("bad zxid record")?),
            None => 0,
        };
        let stored = meta.scan(NODE_PREFIX)?;
        let mut tree = Tree {
            nodes: HashMap::new(),
            children: HashMap::new(),
            ephemerals: HashMap::new(),
            ttl_nodes: BTreeSet::new(),
            zxid,
            meta,
        };
        tree.put("/", Znode { managed: true, ..empty_node() });
        for (key, value) in stored {
            let path = String::from_utf8(key[NODE_PREFIX.len()..].to_vec()).context("znode path is not UTF-8")?;
            let node = Znode::decode(&value).with_context(|| format!("znode {path}"))?;
            if path != "/" && !tree.nodes.contains_key(parent(&path)) {
                tracing::warn!("dropping stored znode {path}: its parent is missing");
                continue;
            }
            tree.put(&path, node);
        }
        Ok(tree)
    }

    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes.get(path).map(|n| n.stat(self.children.get(path).map_or(0, BTreeSet::len)))
    }

    pub fn children(&self, path: &str) -> &BTreeSet<String> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        self.children.get(path).unwrap_or(&NONE)
    }

    pub fn has_children(&self, path: &str) -> bool {
        self.children.get(path).is_some_and(|c| !c.is_empty())
    }

    /// Every node under `path` (not `path` itself), children before their parents. Iterative,
    /// as clients can make trees deeper than the stack.
    pub fn descendants(&self, path: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![path.to_string()];
        while let Some(p) = pending.pop() {
            for name in self.children(&p) {
                let child = join(&p, name);
                found.push(child.clone());
                pending.push(child);
            }
        }
        // Each node was found after its parent.
        found.reverse();
        found
    }

    pub fn managed_paths(&self) -> Vec<String> {
        self.nodes.iter().filter(|(_, n)| n.managed).map(|(p, _)| p.clone()).collect()
    }

    pub fn ephemerals_of(&self, session: i64) -> Vec<String> {
        self.ephemerals.get(&session).into_iter().flatten().cloned().collect()
    }

    /// TTL nodes unmodified and childless for longer than their TTL.
    pub fn expired_ttl_nodes(&self, now_ms: i64) -> Vec<String> {
        self.ttl_nodes
            .iter()
            .filter(|p| {
                let expired = self.nodes.get(p.as_str()).and_then(|n| Some(n.mtime.saturating_add(n.ttl()?) < now_ms));
                expired == Some(true) && !self.has_children(p)
            })
            .cloned()
            .collect()
    }

    pub fn begin(&mut self) -> Txn<'_> {
        let zxid = self.zxid + 1;
        Txn { tree: self, zxid, now: crate::api::now_ms(), undo: Vec::new(), touched: HashSet::new(), events: Vec::new() }
    }

    /// Inserts or replaces a node, keeping the indexes right.
    fn put(&mut self, path: &str, node: Znode) {
        let (session, ttl) = (node.session(), node.ttl().is_some());
        match self.nodes.insert(path.to_string(), node) {
            Some(old) => self.unindex(path, &old),
            None if path != "/" => {
                self.children.entry(parent(path).to_string()).or_default().insert(name(path).to_string());
            }
            None => {}
        }
        if let Some(s) = session {
            self.ephemerals.entry(s).or_default().insert(path.to_string());
        }
        if ttl {
            self.ttl_nodes.insert(path.to_string());
        }
    }

    fn remove(&mut self, path: &str) {
        let Some(old) = self.nodes.remove(path) else { return };
        self.unindex(path, &old);
        self.children.remove(path);
        if let Some(siblings) = self.children.get_mut(parent(path)) {
            siblings.remove(name(path));
        }
    }

    fn unindex(&mut self, path: &str, node: &Znode) {
        if let Some(s) = node.session() {
            if let Some(paths) = self.ephemerals.get_mut(&s) {
                paths.remove(path);
                if paths.is_empty() {
                    self.ephemerals.remove(&s);
                }
            }
        }
        if node.ttl().is_some() {
            self.ttl_nodes.remove(path);
        }
    }
}

fn empty_node() -> Znode {
    Znode {
        data: Vec::new(),
        czxid: 0,
        mzxid: 0,
        ctime: 0,
        mtime: 0,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        pzxid: 0,
        managed: false,
    }
}

/// A set of changes made under one zxid. The primitives here keep the tree consistent
/// (parents' cversion and pzxid, events); ZooKeeper's request checks are the caller's.
pub struct Txn<'a> {
    tree: &'a mut Tree,
    zxid: i64,
    now: i64,
    /// Each touched path's node before the first change, in the order first touched.
    undo: Vec<(String, Option<Znode>)>,
    touched: HashSet<String>,
    events: Vec<Event>,
}

impl Txn<'_> {
    pub fn tree(&self) -> &Tree {
        self.tree
    }

    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    fn snapshot(&mut self, path: &str) {
        if self.touched.insert(path.to_string()) {
            self.undo.push((path.to_string(), self.tree.nodes.get(path).cloned()));
        }
    }

    fn event(&mut self, kind: EventType, path: &str) {
        self.events.push(Event { kind, path: path.to_string() });
    }

    fn update(&mut self, path: &str, change: impl FnOnce(&mut Znode, i64, i64)) {
        self.snapshot(path);
        let (zxid, now) = (self.zxid, self.now);
        if let Some(mut node) = self.tree.nodes.get(path).cloned() {
            change(&mut node, zxid, now);
            self.tree.put(path, node);
        }
    }

    fn child_changed(&mut self, parent: &str) {
        self.update(parent, |p, zxid, _| {
            p.cversion = p.cversion.wrapping_add(1);
            p.pzxid = zxid;
        });
        self.event(EventType::ChildrenChanged, parent);
    }

    /// Adds a node; its parent must exist and it must not.
    pub fn create(&mut self, path: &str, data: Vec<u8>, ephemeral_owner: i64, managed: bool) {
        self.snapshot(path);
        let node = Znode {
            data,
            czxid: self.zxid,
            mzxid: self.zxid,
            ctime: self.now,
            mtime: self.now,
            ephemeral_owner,
            pzxid: self.zxid,
            managed,
            ..empty_node()
        };
        self.tree.put(path, node);
        self.event(EventType::Created, path);
        self.child_changed(parent(path));
    }

    pub fn set_data(&mut self, path: &str, data: Vec<u8>) {
        self.update(path, |n, zxid, now| {
            n.data = data;
            n.version = n.version.wrapping_add(1);
            n.mzxid = zxid;
            n.mtime = now;
        });
        self.event(EventType::DataChanged, path);
    }

    pub fn set_managed(&mut self, path: &str) {
        self.update(path, |n, _, _| n.managed = true);
    }

    /// Removes a childless node. A container left empty goes with it, as ZooKeeper's
    /// container reaper would remove it.
    pub fn delete(&mut self, path: &str) {
        self.snapshot(path);
        self.tree.remove(path);
        self.event(EventType::Deleted, path);
        let parent = parent(path);
        self.child_changed(parent);
        if self.tree.nodes.get(parent).is_some_and(Znode::is_container) && !self.tree.has_children(parent) {
            self.delete(parent);
        }
    }

    /// Removes a node and everything under it.
    pub fn delete_subtree(&mut self, path: &str) {
        for p in self.tree.descendants(path) {
            if self.tree.nodes.contains_key(&p) {
                self.delete(&p);
            }
        }
        if self.tree.nodes.contains_key(path) {
            self.delete(path);
        }
    }

    /// Makes the changes durable and returns the events they cause; an empty transaction
    /// uses no zxid. On a storage error the tree is left as it was.
    pub async fn commit(self) -> Result<Vec<Event>> {
        if self.undo.is_empty() {
            return Ok(Vec::new());
        }
        let mut puts: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(self.undo.len() + 1);
        for (path, _) in &self.undo {
            let key = [NODE_PREFIX, path.as_bytes()].concat();
            // Ephemeral nodes die with their session, so they never outlive a restart.
            let value = self.tree.nodes.get(path).filter(|n| n.session().is_none()).map(Znode::encode);
            puts.push((key, value));
        }
        puts.push((ZXID_KEY.to_vec(), Some(self.zxid.to_be_bytes().to_vec())));
        let batch: Vec<(&[u8], Option<&[u8]>)> = puts.iter().map(|(k, v)| (k.as_slice(), v.as_deref())).collect();
        if let Err(e) = self.tree.meta.write(&batch).await {
            self.rollback();
            return Err(e);
        }
        self.tree.zxid = self.zxid;
        Ok(self.events)
    }

    /// Puts every touched node back as it was, last touched first; false if there was
    /// nothing to undo.
    pub fn rollback(self) -> bool {
        let changed = !self.undo.is_empty();
        for (path, before) in self.undo.into_iter().rev() {
            match before {
                Some(node) => self.tree.put(&path, node),
                None => self.tree.remove(&path),
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> Tree {
        let log = crate::log::LogStore::open(dir).unwrap();
        Tree::load(log.meta()).unwrap()
    }

    #[test]
    fn paths() {
        assert!(valid_path("/") && valid_path("/a/b") && valid_path("/a b/c.d"));
        for bad in ["", "a", "/a/", "//a", "/a//b", "/./a", "/a/..", "/a\0"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b"), "/a");
    }

    #[tokio::test]
    async fn commit_persists_and_rollback_restores() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = open(dir.path());
        let mut txn = tree.begin();
        txn.create("/a", b"x".to_vec(), 0, false);
        txn.create("/a/b", vec![], 0, false);
        txn.create("/e", vec![], 42, false);
        let events = txn.commit().await.unwrap();
        assert_eq!(events.len(), 6);
        assert_eq!(tree.zxid(), 1);
        assert_eq!(tree.stat("/a").unwrap().num_children, 1);
        assert_eq!(tree.stat("/").unwrap().cversion, 2);
        assert_eq!(tree.ephemerals_of(42), vec!["/e".to_string()]);

        let mut txn = tree.begin();
        txn.delete("/a/b");
        txn.set_data("/a", b"y".to_vec());
        txn.delete("/a");
        txn.rollback();
        assert_eq!(tree.node("/a").unwrap().data, b"x");
        assert_eq!(tree.children("/a").iter().collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(tree.zxid(), 1);
        drop(tree);

        let tree = open(dir.path());
        assert_eq!(tree.zxid(), 1);
        assert_eq!(tree.node("/a").unwrap().data, b"x");
        assert!(tree.node("/a/b").is_some());
        assert!(tree.node("/e").is_none(), "ephemeral nodes are not persisted");
    }

    #[tokio::test]
    async fn empty_container_goes_with_its_last_child() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = open(dir.path());
        let mut txn = tree.begin();
        txn.create("/c", vec![], CONTAINER_OWNER, false);
        txn.create("/c/x", vec![], 0, false);
        txn.commit().await.unwrap();
        let mut txn = tree.begin();
        txn.delete("/c/x");
        txn.commit().await.unwrap();
        assert!(tree.node("/c").is_none());
    }
}
