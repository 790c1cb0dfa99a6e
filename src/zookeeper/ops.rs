//! ZooKeeper's operations: the checks and answers of each request, on the tree; paths that
//! belong to the Kafka view are handed to it.

use super::jute::{op, Create, CreateMode, ErrorCode, EventType, ReadKind, Request, Stat, WriteOp, Writer};
use super::kafka::{self, Kind, KafkaView};
use super::session::Sessions;
use super::tree::{parent, ttl_owner, valid_path, Tree, Txn, Znode, CONTAINER_OWNER};
use crate::cluster::Cluster;

pub struct State {
    pub tree: Tree,
    pub view: KafkaView,
    pub sessions: Sessions,
}

/// A reply frame, and whether the connection ends after it.
pub struct Handled {
    pub reply: Vec<u8>,
    pub close: bool,
}

/// What a successful write returns.
enum Written {
    Created { path: String, stat: Stat },
    Deleted,
    Set(Stat),
    Checked,
}

impl Written {
    /// The response body: create answers with the path (create2 and the container and TTL
    /// variants add the stat), setData with the stat, delete and check with nothing.
    fn write(&self, opcode: i32, w: &mut Writer) {
        match self {
            Written::Created { path, stat } => {
                w.string(path);
                if opcode != op::CREATE {
                    w.stat(stat);
                }
            }
            Written::Set(stat) => {
                w.stat(stat);
            }
            Written::Deleted | Written::Checked => {}
        }
    }
}

impl State {
    pub async fn handle(&mut self, cluster: &Cluster, session: i64, xid: i32, request: Request) -> Handled {
        if !self.sessions.touch(session) {
            return Handled { reply: reply(xid, self.tree.zxid(), Err(ErrorCode::SessionExpired)), close: true };
        }
        // Topics made or deleted through Kafka since the last request show up now.
        self.sync_view(cluster).await;
        let mut close = false;
        let result = match request {
            Request::Ping => Ok(Vec::new()),
            Request::Close => {
                self.close_session(session).await;
                close = true;
                Ok(Vec::new())
            }
            Request::Read { kind, path, watch } => self.read(session, kind, &path, watch),
            Request::GetAcl { path } => existing(&self.tree, &path).map(|_| {
                let mut w = Writer::default();
                w.open_acl().stat(&self.tree.stat(&path).expect("node exists"));
                w.into_inner()
            }),
            // ACLs are not kept: setACL only checks the version.
            Request::SetAcl { path, version } => existing(&self.tree, &path)
                .and_then(|n| check_version(n.aversion, version))
                .map(|_| stat_body(&self.tree, &path)),
            Request::Sync { path } => {
                let mut w = Writer::default();
                w.string(&path);
                Ok(w.into_inner())
            }
            Request::Write(op) => self.write(cluster, session, &op).await,
            Request::Multi(ops) => Ok(self.multi(cluster, session, &ops).await),
            Request::SetWatches { relative_zxid, data, exist, child } => {
                self.set_watches(session, relative_zxid, &data, &exist, &child);
                Ok(Vec::new())
            }
            Request::Unsupported(opcode) => {
                tracing::debug!("unsupported operation {opcode}");
                Err(ErrorCode::Unimplemented)
            }
        };
        Handled { reply: reply(xid, self.tree.zxid(), result), close }
    }

    /// Applies the cluster's topic changes to the view.
    pub async fn sync_view(&mut self, cluster: &Cluster) {
        let mut txn = self.tree.begin();
        self.view.sync(&mut txn, cluster);
        // A storage error is logged by finish; there is no client to tell.
        let _ = finish(txn, &mut self.view, &mut self.sessions, true).await;
    }

    /// Deletes the session's ephemeral nodes and forgets it.
    pub async fn close_session(&mut self, session: i64) {
        let mut txn = self.tree.begin();
        for path in txn.tree().ephemerals_of(session) {
            txn.delete(&path);
        }
        // A storage error is logged by finish; there is no client to tell.
        let _ = finish(txn, &mut self.view, &mut self.sessions, true).await;
        self.sessions.remove(session);
    }

    /// Deletes TTL nodes whose time is up.
    pub async fn expire_ttl_nodes(&mut self, now_ms: i64) {
        let expired = self.tree.expired_ttl_nodes(now_ms);
        if expired.is_empty() {
            return;
        }
        let mut txn = self.tree.begin();
        for path in expired {
            txn.delete(&path);
        }
        // A storage error is logged by finish; there is no client to tell.
        let _ = finish(txn, &mut self.view, &mut self.sessions, true).await;
    }

    fn read(&mut self, session: i64, kind: ReadKind, path: &str, watch: bool) -> Result<Vec<u8>, ErrorCode> {
        if kind == ReadKind::Exists && watch && valid_path(path) {
            // An exists watch on a missing node waits for it to be created.
            self.sessions.watch_data(session, path);
        }
        let node = existing(&self.tree, path)?;
        let mut w = Writer::default();
        match kind {
            ReadKind::Exists => {}
            ReadKind::GetData => {
                w.buffer(&node.data);
                if watch {
                    self.sessions.watch_data(session, path);
                }
            }
            ReadKind::GetChildren | ReadKind::GetChildren2 => {
                w.strings(self.tree.children(path).iter());
                if watch {
                    self.sessions.watch_children(session, path);
                }
            }
        }
        if kind != ReadKind::GetChildren {
            w.stat(&self.tree.stat(path).expect("node exists"));
        }
        Ok(w.into_inner())
    }

    async fn write(&mut self, cluster: &Cluster, session: i64, op: &WriteOp) -> Result<Vec<u8>, ErrorCode> {
        let mut txn = self.tree.begin();
        let result = apply(&mut txn, &mut self.view, cluster, session, op, true).await;
        finish(txn, &mut self.view, &mut self.sessions, result.is_ok()).await?;
        let mut w = Writer::default();
        result?.write(op.opcode(), &mut w);
        Ok(w.into_inner())
    }

    /// All or nothing: on the first failing op every change is undone, ops before it report
    /// OK, the failing one its error, the rest RUNTIMEINCONSISTENCY.
    async fn multi(&mut self, cluster: &Cluster, session: i64, ops: &[WriteOp]) -> Vec<u8> {
        let mut txn = self.tree.begin();
        let mut results = Vec::with_capacity(ops.len());
        let mut failed = None;
        for (i, op) in ops.iter().enumerate() {
            match apply(&mut txn, &mut self.view, cluster, session, op, false).await {
                Ok(written) => results.push(written),
                Err(e) => {
                    failed = Some((i, e));
                    break;
                }
            }
        }
        let committed = finish(txn, &mut self.view, &mut self.sessions, failed.is_none()).await;
        let failed = failed.or(committed.err().map(|e| (0, e)));
        let mut w = Writer::default();
        match failed {
            None => {
                for (op, written) in ops.iter().zip(results) {
                    w.int(op.opcode()).bool(false).int(0);
                    written.write(op.opcode(), &mut w);
                }
            }
            Some((at, error)) => {
                for i in 0..ops.len() {
                    let code = match i.cmp(&at) {
                        std::cmp::Ordering::Less => ErrorCode::Ok,
                        std::cmp::Ordering::Equal => error,
                        std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                    } as i32;
                    w.int(op::ERROR).bool(false).int(code).int(code);
                }
            }
        }
        w.int(op::ERROR).bool(true).int(-1);
        w.into_inner()
    }

    /// Re-registers a reconnecting client's watches, firing at once those whose change it
    /// missed since `relative_zxid`.
    fn set_watches(&mut self, session: i64, relative_zxid: i64, data: &[String], exist: &[String], child: &[String]) {
        let fire = |sessions: &Sessions, kind, path: &str| sessions.send(session, super::jute::watch_event(kind, path));
        for path in data {
            match self.tree.node(path) {
                None => fire(&self.sessions, EventType::Deleted, path),
                Some(n) if n.mzxid > relative_zxid => fire(&self.sessions, EventType::DataChanged, path),
                Some(_) => self.sessions.watch_data(session, path),
            }
        }
        for path in exist {
            match self.tree.node(path) {
                Some(_) => fire(&self.sessions, EventType::Created, path),
                None => self.sessions.watch_data(session, path),
            }
        }
        for path in child {
            match self.tree.node(path) {
                None => fire(&self.sessions, EventType::Deleted, path),
                Some(n) if n.pzxid > relative_zxid => fire(&self.sessions, EventType::ChildrenChanged, path),
                Some(_) => self.sessions.watch_children(session, path),
            }
        }
    }
}

/// Commits (and sends the watch events) or rolls back. A rolled-back change may have been
/// the view's, so the view re-renders in full next time.
async fn finish(txn: Txn<'_>, view: &mut KafkaView, sessions: &mut Sessions, ok: bool) -> Result<(), ErrorCode> {
    if !ok {
        if txn.rollback() {
            view.invalidate();
        }
        return Ok(());
    }
    match txn.commit().await {
        Ok(events) => {
            for event in &events {
                sessions.notify(event);
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!("cannot store znode changes: {e:#}");
            view.invalidate();
            Err(ErrorCode::SystemError)
        }
    }
}

fn reply(xid: i32, zxid: i64, result: Result<Vec<u8>, ErrorCode>) -> Vec<u8> {
    let mut w = Writer::frame();
    match result {
        Ok(body) => w.reply_header(xid, zxid, ErrorCode::Ok).raw(&body),
        Err(e) => w.reply_header(xid, zxid, e),
    };
    w.finish()
}

fn stat_body(tree: &Tree, path: &str) -> Vec<u8> {
    let mut w = Writer::default();
    w.stat(&tree.stat(path).expect("node exists"));
    w.into_inner()
}

fn existing<'t>(tree: &'t Tree, path: &str) -> Result<&'t Znode, ErrorCode> {
    if !valid_path(path) {
        return Err(ErrorCode::BadArguments);
    }
    tree.node(path).ok_or(ErrorCode::NoNode)
}

/// -1 matches any version.
fn check_version(actual: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected == -1 || expected == actual {
        Ok(())
    } else {
        Err(ErrorCode::BadVersion)
    }
}

fn read_only(path: &str) -> ErrorCode {
    tracing::info!("refusing to change {path}: it shows the broker's state");
    ErrorCode::BadArguments
}

/// Topic changes cannot be rolled back, so a multi may not make them.
fn not_in_multi(path: &str) -> ErrorCode {
    tracing::info!("refusing to change {path} inside a multi: topic changes cannot be undone");
    ErrorCode::BadArguments
}

/// One write. `kafka_effects` is false inside a multi, where topic changes are refused.
async fn apply(txn: &mut Txn<'_>, view: &mut KafkaView, cluster: &Cluster, session: i64, op: &WriteOp, kafka_effects: bool) -> Result<Written, ErrorCode> {
    match op {
        WriteOp::Create(c) => create(txn, view, cluster, session, c, kafka_effects).await,
        WriteOp::Delete { path, version } => {
            let node = existing(txn.tree(), path)?;
            check_version(node.version, *version)?;
            if txn.tree().has_children(path) {
                return Err(ErrorCode::NotEmpty);
            }
            let plain = matches!(kafka::classify(path), Kind::Generic | Kind::TopicConfig(_)) && !node.managed;
            if !plain {
                return Err(read_only(path));
            }
            txn.delete(path);
            Ok(Written::Deleted)
        }
        WriteOp::SetData { path, data, version } => {
            let node = existing(txn.tree(), path)?;
            check_version(node.version, *version)?;
            match kafka::classify(path) {
                Kind::Generic if !node.managed => txn.set_data(path, data.clone()),
                Kind::TopicConfig(name) if !node.managed => {
                    kafka::check_pending_configs(cluster, name, data)?;
                    txn.set_data(path, data.clone());
                }
                Kind::TopicConfig(_) | Kind::Topic(_) if !kafka_effects => return Err(not_in_multi(path)),
                Kind::TopicConfig(name) => view.set_configs(txn, cluster, name, data).await?,
                Kind::Topic(name) => view.set_assignment(txn, cluster, name, data).await?,
                Kind::Generic | Kind::TopicDetail | Kind::DeleteMarker(_) => return Err(read_only(path)),
            }
            Ok(Written::Set(txn.tree().stat(path).ok_or(ErrorCode::NoNode)?))
        }
        WriteOp::Check { path, version } => {
            check_version(existing(txn.tree(), path)?.version, *version)?;
            Ok(Written::Checked)
        }
    }
}

async fn create(txn: &mut Txn<'_>, view: &mut KafkaView, cluster: &Cluster, session: i64, c: &Create, kafka_effects: bool) -> Result<Written, ErrorCode> {
    let (mode, sequential) = c.mode().ok_or(ErrorCode::BadArguments)?;
    // A sequential name may end in '/': the suffix completes it.
    let checked = if sequential { format!("{}0", c.path) } else { c.path.clone() };
    if c.path == "/" || !valid_path(&checked) {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = parent(&checked);
    let parent_node = txn.tree().node(parent_path).ok_or(ErrorCode::NoNode)?;
    let path = if sequential { format!("{}{:010}", c.path, parent_node.cversion) } else { c.path.clone() };
    let ephemeral_parent = parent_node.session().is_some();
    if txn.tree().node(&path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if ephemeral_parent {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let kind = kafka::classify(&path);
    if kind != Kind::Generic && (mode != CreateMode::Persistent || sequential) {
        tracing::info!("{path} can only be created as a plain persistent node");
        return Err(ErrorCode::BadArguments);
    }
    match kind {
        Kind::Generic => {
            let owner = match mode {
                CreateMode::Persistent => 0,
                CreateMode::Ephemeral => session,
                CreateMode::Container => CONTAINER_OWNER,
                CreateMode::Ttl(ttl) => ttl_owner(ttl),
            };
            txn.create(&path, c.data.clone(), owner, false);
        }
        Kind::TopicConfig(name) => {
            kafka::check_pending_configs(cluster, name, &c.data)?;
            txn.create(&path, c.data.clone(), 0, false);
        }
        Kind::Topic(_) | Kind::DeleteMarker(_) if !kafka_effects => return Err(not_in_multi(&path)),
        Kind::Topic(name) => view.create_topic(txn, cluster, name, &c.data).await?,
        Kind::DeleteMarker(name) => {
            if cluster.topic(name).is_none() {
                return Err(ErrorCode::NoNode);
            }
            view.delete_topic(txn, cluster, name).await?;
            // The marker is gone as soon as it is made; report it as created all the same.
            let stat = Stat { czxid: txn.zxid(), mzxid: txn.zxid(), ctime: txn.now(), mtime: txn.now(), pzxid: txn.zxid(), ..Stat::default() };
            return Ok(Written::Created { path, stat });
        }
        Kind::TopicDetail => return Err(read_only(&path)),
    }
    let stat = txn.tree().stat(&path).ok_or(ErrorCode::SystemError)?;
    Ok(Written::Created { path, stat })
}
