//! One consumer group's membership state machine (Kafka's classic group protocol):
//! Empty -> PreparingRebalance -> CompletingRebalance -> Stable, back to PreparingRebalance
//! whenever membership or subscriptions change.
//!
//! Pure logic over an explicit clock: the coordinator holds each group behind its own lock and
//! calls in with `now`; JoinGroup and SyncGroup answers that must wait are delivered through
//! oneshot channels when the rebalance moves on.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// Removed (deleted, or expired with its offsets): whoever still holds it must look again.
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Coordinator settings that shape every group.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub max_metadata_bytes: usize,
    /// `group.max.size`: most members a group admits.
    pub max_size: usize,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
}

impl GroupConfig {
    pub fn new(config: &crate::config::Config) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(config.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(config.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(config.group_max_session_timeout_ms),
            max_metadata_bytes: config.offset_metadata_max_bytes,
            max_size: config.group_max_size,
            offsets_retention_ms: config.offsets_retention_minutes as i64 * 60_000,
        }
    }
}

#[derive(Debug)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: an unknown member first gets an id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the response can tell a returning static leader to skip assigning.
    pub supports_skip_assignment: bool,
}

#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: (member id, instance id, metadata for the chosen protocol).
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// The leader need not compute an assignment: the current one stands (KIP-814).
    pub skip_assignment: bool,
}

impl JoinResult {
    fn error(e: ResponseError, member_id: &str) -> JoinResult {
        JoinResult { error: Some(e), generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

pub type SyncResult = Result<Bytes, ResponseError>;

/// Either the answer now, or a channel that delivers it when the rebalance progresses.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_seen: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    /// The subscription metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        self.protocols.iter().find(|(n, _)| Some(n.as_str()) == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    /// Wall-clock time of the commit, where offset retention starts for simple groups.
    pub commit_timestamp_ms: i64,
    /// OffsetCommit v2-v4 `retention_time_ms`: this offset expires then, whatever the group does.
    pub expire_timestamp_ms: Option<i64>,
}

/// Offsets one producer committed in its open transaction (TxnOffsetCommit), waiting for
/// its COMMIT or ABORT marker (Kafka's pending transactional offset commits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TxnOffsets {
    pub producer_epoch: i16,
    pub offsets: BTreeMap<(String, i32), Committed>,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Wall-clock time of the last state change (Kafka's currentStateTimestamp): an Empty
    /// group's offsets expire a retention period after it. `None` for groups stored before
    /// Gregor kept it; their offsets expire by commit time, as Kafka treats old records.
    pub state_timestamp_ms: Option<i64>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or expire.
    pending: HashMap<String, Instant>,
    /// Members of this generation that have not sent SyncGroup yet; by `sync_deadline` they
    /// are removed and the group rebalances, so a member that never syncs cannot stall it.
    pending_sync: HashSet<String>,
    sync_deadline: Instant,
    rebalance_deadline: Instant,
    initial_delay_until: Instant,
    /// The committed offsets, as OffsetFetch shows them: a commit enters only once written.
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// Per partition, the commit queued last and not yet written (Kafka's pending commits).
    pending_commits: HashMap<(String, i32), u64>,
    /// Per partition, the change `offsets` shows: writes complete in the order their changes
    /// were numbered, but their requests may come back to the group in another.
    shown: HashMap<(String, i32), u64>,
    /// The number of the latest change to a committed offset.
    changes: u64,
    /// Transactions' offsets by producer id, until their markers.
    pub txn_offsets: HashMap<i64, TxnOffsets>,
}

fn new_member_id(client_id: &str) -> String {
    format!("{client_id}-{}", uuid::Uuid::new_v4())
}

impl Group {
    pub fn new(id: &str, now: Instant) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            state_timestamp_ms: Some(crate::api::now_ms()),
            pending: HashMap::new(),
            pending_sync: HashSet::new(),
            sync_deadline: now,
            rebalance_deadline: now,
            initial_delay_until: now,
            offsets: BTreeMap::new(),
            pending_commits: HashMap::new(),
            shown: HashMap::new(),
            changes: 0,
            txn_offsets: HashMap::new(),
        }
    }

    /// Numbers a commit of `tp` about to be written.
    pub fn queue_commit(&mut self, tp: &(String, i32)) -> u64 {
        self.changes += 1;
        self.pending_commits.insert(tp.clone(), self.changes);
        self.changes
    }

    /// Commit `number` of `tp` was written (`committed`) or failed (`None`). A written one is
    /// the committed offset now, unless a later change of the partition is shown already.
    pub fn commit_done(&mut self, tp: (String, i32), number: u64, committed: Option<Committed>) {
        if self.pending_commits.get(&tp) == Some(&number) {
            self.pending_commits.remove(&tp);
        }
        let Some(committed) = committed else { return };
        if self.shown.get(&tp).is_none_or(|&shown| shown < number) {
            self.shown.insert(tp.clone(), number);
            self.offsets.insert(tp, committed);
        }
    }

    /// The partitions of `topic` with a committed offset or a commit being written.
    pub fn committed_partitions(&self, topic: &str) -> Vec<(String, i32)> {
        let range = (topic.to_string(), i32::MIN)..=(topic.to_string(), i32::MAX);
        let mut tps: BTreeSet<(String, i32)> = self.offsets.range(range).map(|(tp, _)| tp.clone()).collect();
        tps.extend(self.pending_commits.keys().filter(|(t, _)| t == topic).cloned());
        tps.into_iter().collect()
    }

    /// Drops a partition's committed offset; a commit of it still being written stays out.
    pub fn remove_offset(&mut self, tp: &(String, i32)) {
        self.changes += 1;
        self.shown.insert(tp.clone(), self.changes);
        self.pending_commits.remove(tp);
        self.offsets.remove(tp);
    }

    /// A group restored from disk: members must heartbeat within their session timeout.
    pub fn restore(&mut self, members: Vec<Member>, now: Instant) {
        for mut m in members {
            m.last_seen = now;
            self.members.insert(m.id.clone(), m);
        }
        self.state = if self.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    }

    /// A restored group larger than `group.max.size` (lowered since) rebalances, as Kafka does
    /// on load: members rejoin, and those beyond the limit are refused and removed.
    pub fn shed_over_capacity(&mut self, max_size: usize, now: Instant) {
        if self.members.len() > max_size {
            tracing::info!(group = %self.id, members = self.members.len(), max_size, "group over group.max.size");
            self.prepare_rebalance(now, Duration::ZERO, "over group.max.size");
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp_ms = Some(crate::api::now_ms());
    }

    /// Marks a group removed from the coordinator.
    pub fn kill(&mut self) {
        self.set_state(GroupState::Dead);
        self.offsets.clear();
        self.pending_commits.clear();
    }

    fn static_member(&self, instance_id: &str) -> Option<&str> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance_id)).map(|m| m.id.as_str())
    }

    fn supports(&self, req: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(req.protocol_type.as_str())
            && req.protocols.iter().any(|(name, _)| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name)))
    }

    fn awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.join_waiter.is_some()).count()
    }

    /// Kafka's acceptJoiningMember: known members always; new ones up to `group.max.size`,
    /// counting, while preparing a rebalance, only members that already rejoined (so the last
    /// to rejoin an oversized group are the ones turned away).
    fn accepts_joining(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(|m| m.join_waiter.is_some()) || self.awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.members.contains_key(member_id) || self.members.len() < max_size,
        }
    }

    pub fn join(&mut self, req: JoinRequest, now: Instant, cfg: &GroupConfig) -> Reply<JoinResult> {
        let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
        if session < cfg.min_session_timeout || session > cfg.max_session_timeout {
            return Reply::Now(JoinResult::error(ResponseError::InvalidSessionTimeout, &req.member_id));
        }
        if !self.accepts_joining(&req.member_id, cfg.max_size) {
            // A known member turned away (the group shrinks to its limit) leaves the group.
            if self.pending.remove(&req.member_id).is_none() && self.members.contains_key(&req.member_id) {
                self.remove_member(&req.member_id, now);
            }
            return Reply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
        }
        if self.state == GroupState::Dead {
            return Reply::Now(JoinResult::error(ResponseError::CoordinatorNotAvailable, &req.member_id));
        }
        if req.protocol_type.is_empty() || req.protocols.is_empty() || !self.supports(&req) {
            return Reply::Now(JoinResult::error(ResponseError::InconsistentGroupProtocol, &req.member_id));
        }
        if req.member_id.is_empty() {
            if let Some(old) = req.instance_id.as_deref().and_then(|i| self.static_member(i)).map(str::to_string) {
                return self.rejoin_static(old, req, now);
            }
            let id = new_member_id(&req.client_id);
            if req.require_known_member_id && req.instance_id.is_none() {
                self.pending.insert(id.clone(), now + session);
                return Reply::Now(JoinResult::error(ResponseError::MemberIdRequired, &id));
            }
            return self.add_member(id, req, now, cfg.initial_rebalance_delay);
        }
        if self.pending.remove(&req.member_id).is_some() {
            let id = req.member_id.clone();
            return self.add_member(id, req, now, cfg.initial_rebalance_delay);
        }
        if let Err(e) = self.validate_member(&req.member_id, req.instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(e, &req.member_id));
        }
        let member = self.members.get_mut(&req.member_id).expect("validated");
        let changed = member.protocols != req.protocols;
        update_member(member, &req, now);
        let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
        match self.state {
            // Rejoining with the same subscription: nothing to rebalance (except for a Stable
            // group's leader, which rejoins to reassign).
            GroupState::CompletingRebalance if !changed => Reply::Now(self.join_result(&req.member_id)),
            GroupState::Stable if !changed && !is_leader => Reply::Now(self.join_result(&req.member_id)),
            _ => self.rebalance_and_wait(&req.member_id, now, cfg.initial_rebalance_delay),
        }
    }

    /// Parks the member's JoinGroup until the rebalance completes (perhaps at once).
    fn rebalance_and_wait(&mut self, member_id: &str, now: Instant, initial_delay: Duration) -> Reply<JoinResult> {
        let rx = self.wait_for_join(member_id);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, initial_delay, &format!("member {member_id} joined or rejoined"));
        }
        self.try_complete_join(now);
        Reply::Later(rx)
    }

    /// A static member (group.instance.id) came back without its member id: it takes over its
    /// old entry and assignment under a new id, fencing the old one (KIP-345).
    fn rejoin_static(&mut self, old_id: String, req: JoinRequest, now: Instant) -> Reply<JoinResult> {
        let old_leader = self.leader.clone().unwrap_or_default();
        let mut member = self.members.shift_remove(&old_id).expect("static member exists");
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(Err(ResponseError::FencedInstanceId));
        }
        member.id = new_member_id(&req.client_id);
        update_member(&mut member, &req, now);
        let id = member.id.clone();
        if old_leader == old_id {
            self.leader = Some(id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(id.clone());
        }
        self.members.insert(id.clone(), member);
        // In a Stable group whose protocol stays the same, the member keeps its assignment and
        // no one rebalances. Since v9 a returning leader is told to skip assigning; before, it
        // is told the old id leads, so it acts as a follower and assigns nothing.
        if self.state == GroupState::Stable && self.choose_protocol() == self.protocol {
            let result = self.join_result(&id);
            return Reply::Now(if req.supports_skip_assignment {
                JoinResult { skip_assignment: result.leader == id, ..result }
            } else {
                JoinResult { leader: old_leader, members: Vec::new(), ..result }
            });
        }
        // Mid-rebalance the leader may already have the old id, so a new round starts (the
        // group has members, so the initial delay for new groups does not apply).
        self.rebalance_and_wait(&id, now, Duration::ZERO)
    }

    fn add_member(&mut self, id: String, req: JoinRequest, now: Instant, initial_delay: Duration) -> Reply<JoinResult> {
        let member = Member {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: Duration::ZERO,
            rebalance_timeout: Duration::ZERO,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            last_seen: now,
            join_waiter: None,
            sync_waiter: None,
        };
        self.members.insert(id.clone(), member);
        update_member(self.members.get_mut(&id).expect("just inserted"), &req, now);
        if self.members.len() == 1 {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        self.rebalance_and_wait(&id, now, initial_delay)
    }

    fn wait_for_join(&mut self, member_id: &str) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member = self.members.get_mut(member_id).expect("member exists");
        if let Some(old) = member.join_waiter.replace(tx) {
            let _ = old.send(JoinResult::error(ResponseError::UnknownMemberId, member_id));
        }
        rx
    }

    /// The group's rebalance timeout: the longest of its members'.
    fn rebalance_timeout(&self) -> Duration {
        self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default()
    }

    /// Starts a rebalance: every member must rejoin before the deadline.
    fn prepare_rebalance(&mut self, now: Instant, initial_delay: Duration, reason: &str) {
        tracing::info!(group = %self.id, state = ?self.state, generation = self.generation, "preparing to rebalance: {reason}");
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(Err(ResponseError::RebalanceInProgress));
                }
            }
        }
        self.pending_sync.clear();
        let timeout = self.rebalance_timeout();
        if self.state == GroupState::Empty {
            self.initial_delay_until = now + initial_delay.min(timeout);
        }
        self.rebalance_deadline = now + timeout;
        self.set_state(GroupState::PreparingRebalance);
    }

    /// Completes the join phase once every member has rejoined (after the initial delay for a
    /// new group), or when the rebalance timeout has passed.
    fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        if !((all_joined && now >= self.initial_delay_until) || now >= self.rebalance_deadline) {
            return;
        }
        // Dynamic members that did not rejoin in time are out; static ones keep their place
        // (and assignment) until their session times out (KIP-345).
        self.members.retain(|_, m| m.join_waiter.is_some() || m.instance_id.is_some());
        self.pending.clear();
        if !self.members.is_empty() && !self.elect_joined_leader() {
            tracing::info!(group = %self.id, "no member rejoined; waiting another rebalance timeout");
            self.rebalance_deadline = now + self.rebalance_timeout();
            return;
        }
        self.generation += 1;
        if self.members.is_empty() {
            // Like Kafka, an emptied group keeps its protocol type ("consumer"), so tools still
            // list it as a consumer group with committed offsets.
            self.set_state(GroupState::Empty);
            self.protocol = None;
            self.leader = None;
            return;
        }
        self.protocol = self.choose_protocol();
        self.set_state(GroupState::CompletingRebalance);
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), "rebalance joined; waiting for the leader's assignment");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in &ids {
            let result = self.join_result(id);
            let member = self.members.get_mut(id).expect("member exists");
            member.last_seen = now;
            if let Some(w) = member.join_waiter.take() {
                let _ = w.send(result);
            }
        }
        self.pending_sync = ids.into_iter().collect();
        self.sync_deadline = now + self.rebalance_timeout();
    }

    /// Keeps the leader if it rejoined, else makes a member that rejoined the leader; false
    /// when no member rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let leader_joined = self.leader.as_ref().and_then(|l| self.members.get(l)).is_some_and(|m| m.join_waiter.is_some());
        if !leader_joined {
            self.leader = self.members.values().find(|m| m.join_waiter.is_some()).map(|m| m.id.clone());
        }
        self.leader.is_some()
    }

    /// Each member votes for its most preferred protocol that every member supports.
    fn choose_protocol(&self) -> Option<String> {
        let common = |name: &str| self.members.values().all(|m| m.protocols.iter().any(|(n, _)| n == name));
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes.into_iter().find(|(_, v)| *v == best).map(|(n, _)| n.to_string())
    }

    fn join_result(&self, member_id: &str) -> JoinResult {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members.values().map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(self.protocol.as_deref()))).collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
        }
    }

    /// Kafka's validateMember: a static member is named by its instance id, and an older id
    /// of that instance is fenced.
    fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.static_member(instance) {
                None => return Err(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// Checks member id, instance id and generation, as SyncGroup and Heartbeat do.
    pub fn check_member(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// SyncGroup: the leader hands in every member's assignment; the others wait for theirs.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<SyncResult> {
        if let Err(e) = self.check_member(member_id, instance_id, generation) {
            return Reply::Now(Err(e));
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return Reply::Now(Err(ResponseError::InconsistentGroupProtocol));
        }
        self.members.get_mut(member_id).expect("checked").last_seen = now;
        match self.state {
            GroupState::Empty | GroupState::Dead => Reply::Now(Err(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => Reply::Now(Err(ResponseError::RebalanceInProgress)),
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                Reply::Now(Ok(self.members[member_id].assignment.clone()))
            }
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(member_id);
                let (tx, rx) = oneshot::channel();
                self.members.get_mut(member_id).expect("checked").sync_waiter = Some(tx);
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(Ok(m.assignment.clone()));
                        }
                    }
                    self.set_state(GroupState::Stable);
                    tracing::info!(group = %self.id, generation = self.generation, "stabilized with the leader's assignment");
                }
                Reply::Later(rx)
            }
        }
    }

    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: Instant) -> Result<(), ResponseError> {
        if matches!(self.state, GroupState::Empty | GroupState::Dead) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.check_member(member_id, instance_id, generation)?;
        self.members.get_mut(member_id).expect("checked").last_seen = now;
        match self.state {
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            _ => Ok(()),
        }
    }

    /// Kafka's validateOffsetCommit. A negative generation with no member is a "simple"
    /// commit (admin tools, manual assignment), allowed only while the group is Empty.
    pub fn check_commit(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), ResponseError> {
        match self.state {
            GroupState::Dead => return Err(ResponseError::CoordinatorNotAvailable),
            GroupState::Empty if generation < 0 => return Ok(()),
            _ => {}
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.check_member(member_id, instance_id, generation)?;
        } else if self.state != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }

    /// The topics a consumer group's members subscribe to, from their subscription metadata;
    /// `None` when that is unknown (not a consumer group, no protocol chosen yet, or metadata
    /// that does not parse).
    fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(subscription_topics(m.metadata(Some(protocol)))?);
        }
        Some(topics)
    }

    /// Kafka's isSubscribedToTopic: when the subscriptions are unknown, a consumer group counts
    /// as subscribed to everything, any other group to nothing.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match self.subscribed_topics() {
            Some(topics) => topics.contains(topic),
            None => self.protocol_type.as_deref() == Some("consumer"),
        }
    }

    /// Committed offsets past retention, as Kafka 2.1+ decides (KIP-211): in an Empty group a
    /// retention period after it emptied; in a simple group (no protocol type) a retention
    /// period after each commit; in a Stable consumer group, only offsets of topics no member
    /// subscribes to, by commit time. An offset committed with a retention time (OffsetCommit
    /// v2-v4) expires at that time instead.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let base: fn(&Group, &Committed) -> i64 = match (self.state, self.protocol_type.as_deref()) {
            (_, None) => |_, c| c.commit_timestamp_ms,
            (GroupState::Empty, Some(_)) => |g, c| g.state_timestamp_ms.unwrap_or(c.commit_timestamp_ms),
            (GroupState::Stable, Some("consumer")) if self.subscribed_topics().is_some() => |_, c| c.commit_timestamp_ms,
            _ => return Vec::new(),
        };
        let mut subscribed: HashMap<&str, bool> = HashMap::new();
        self.offsets
            .iter()
            .filter(|((topic, _), _)| !*subscribed.entry(topic).or_insert_with(|| self.is_subscribed_to(topic)))
            .filter(|(_, c)| match c.expire_timestamp_ms {
                Some(at) => now_ms >= at,
                None => now_ms - base(self, c) >= retention_ms,
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// LeaveGroup for one member, named by member id, instance id, or both.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, now: Instant) -> Result<(), ResponseError> {
        let id = match instance_id {
            Some(instance) => {
                let found = self.static_member(instance).ok_or(ResponseError::UnknownMemberId)?.to_string();
                if !member_id.is_empty() && member_id != found {
                    return Err(ResponseError::FencedInstanceId);
                }
                found
            }
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id, now);
        Ok(())
    }

    fn remove_member(&mut self, id: &str, now: Instant) {
        if let Some(mut m) = self.members.shift_remove(id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(Err(ResponseError::UnknownMemberId));
            }
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            self.prepare_rebalance(now, Duration::ZERO, &format!("member {id} left"));
        }
        self.try_complete_join(now);
    }

    /// Expires members whose session ran out, removes members that did not send SyncGroup
    /// within the rebalance timeout, and finishes rebalances whose deadline passed.
    pub fn tick(&mut self, now: Instant) {
        self.pending.retain(|_, expires| *expires > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none() && m.last_seen + m.session_timeout < now)
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "session timed out; removing member");
            self.remove_member(&id, now);
        }
        let syncing = matches!(self.state, GroupState::CompletingRebalance | GroupState::Stable);
        if syncing && !self.pending_sync.is_empty() && now >= self.sync_deadline {
            let late: Vec<String> = self.pending_sync.drain().collect();
            tracing::info!(group = %self.id, members = ?late, "no SyncGroup within the rebalance timeout; removing members");
            for id in late {
                self.remove_member(&id, now);
            }
        }
        self.try_complete_join(now);
    }

    /// True when nothing time-based can happen to this group (no members, no pending joins).
    pub fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }
}

fn update_member(member: &mut Member, req: &JoinRequest, now: Instant) {
    member.session_timeout = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    // JoinGroup v0 has no rebalance timeout; it then equals the session timeout.
    let rebalance = if req.rebalance_timeout_ms > 0 { req.rebalance_timeout_ms } else { req.session_timeout_ms };
    member.rebalance_timeout = Duration::from_millis(rebalance.max(0) as u64);
    member.protocols = req.protocols.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.last_seen = now;
}

/// A member rebuilt from its persisted form.
pub fn restored_member(
    id: String,
    instance_id: Option<String>,
    client: (String, String),
    timeouts: (Duration, Duration),
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    now: Instant,
) -> Member {
    Member {
        id,
        instance_id,
        client_id: client.0,
        client_host: client.1,
        session_timeout: timeouts.0,
        rebalance_timeout: timeouts.1,
        protocols,
        assignment,
        last_seen: now,
        join_waiter: None,
        sync_waiter: None,
    }
}

/// Decodes a consumer protocol message (version prefix, then the schema's fields). Every
/// version starts with v0's fields, so it is read as v0, as Kafka does.
fn consumer_protocol<T: kafka_protocol::protocol::Decodable>(mut bytes: Bytes) -> Option<T> {
    use bytes::Buf;
    if bytes.remaining() < 2 {
        return None;
    }
    bytes.get_i16();
    T::decode(&mut bytes, 0).ok()
}

/// The topics in a consumer protocol subscription.
fn subscription_topics(metadata: Bytes) -> Option<Vec<String>> {
    let subscription: kafka_protocol::messages::ConsumerProtocolSubscription = consumer_protocol(metadata)?;
    Some(subscription.topics.iter().map(|t| t.to_string()).collect())
}

/// The partitions of a consumer protocol assignment, by topic; `None` for another protocol's
/// (or an empty) assignment.
pub fn assigned_partitions(assignment: Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    let assignment: kafka_protocol::messages::ConsumerProtocolAssignment = consumer_protocol(assignment)?;
    Some(assignment.assigned_partitions.into_iter().map(|t| (t.topic.to_string(), t.partitions)).collect())
}
