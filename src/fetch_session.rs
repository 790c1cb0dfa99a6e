//! Incremental fetch sessions (KIP-227), as Kafka's FetchSessionCache serves them.
//!
//! A consumer of many partitions would otherwise name every partition in every Fetch and get
//! every partition back. A full fetch with epoch 0 (INITIAL) asks for a session: the broker
//! caches the partitions and what it last told the client about each (high watermark, log
//! start offset), and answers with the session id. Later requests carry (id, epoch) and name
//! only the partitions whose fetch position or limits changed, plus `forgotten_topics_data`;
//! the broker reads every partition of the session and answers only those with something new
//! (records, a moved high watermark or log start, an error). Epoch -1 (FINAL) closes a session.
//!
//! The cache holds at most `max.incremental.fetch.session.cache.slots` sessions. When it is
//! full, a new session takes the slot of one that has been unused for [`EVICTION`], else of
//! the least valuable evictable one, as Kafka ranks them: a follower's session (privileged)
//! over a consumer's, then more partitions over fewer; a session is evictable by any newcomer
//! once it is older than [`EVICTION`], and by a privileged newcomer at any age if it is not
//! privileged itself. Kafka splits the slots into 8 shards that evict independently (a lock
//! contention measure); here one lock guards them all, which clients cannot tell apart.
//! Sessions live in memory only: after a restart a client's next incremental fetch gets
//! FETCH_SESSION_ID_NOT_FOUND and it starts a new session, as with a restarted Kafka broker.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use kafka_protocol::ResponseError;
use uuid::Uuid;

/// The session id of a request or response that has no session.
pub const NO_SESSION: i32 = 0;
/// The epoch of a full fetch that asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full fetch that wants no session (and closes the one it names).
pub const FINAL_EPOCH: i32 = -1;

/// A session unused this long may be evicted by any new one; a younger one only by a more
/// valuable newcomer (Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS).
pub const EVICTION: Duration = Duration::from_millis(120_000);

/// How a request names a topic: by name up to Fetch v12, by topic id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(Arc<str>),
    Id(Uuid),
}

/// One partition of a fetch: its topic and index.
pub type PartitionKey = (TopicKey, i32);

/// What a client asks of one partition; a session keeps the last one it was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    /// A follower's (Fetch v12+): where its log diverges is checked against it; -1 if unknown.
    pub last_fetched_epoch: i32,
}

/// What a response said about one partition, as far as sessions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub has_records: bool,
    pub high_watermark: i64,
    pub log_start: i64,
    pub error: bool,
}

/// The session side of a fetch request's header.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest {
    pub id: i32,
    pub epoch: i32,
    /// From a follower (replica id >= 0): its session outranks consumers' in the cache.
    pub privileged: bool,
    /// Fetch v13+ names topics by id; a session keeps the naming it was created with.
    pub uses_topic_ids: bool,
}

/// How to serve one fetch request.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchContext {
    /// Answer the request's partitions, with no session (FINAL epoch, or an incremental fetch
    /// that forgot the session's last partition).
    Sessionless,
    /// Answer every requested partition, then try to cache them as a new session.
    Full,
    /// Answer from all of the session's partitions (listed here, in the session's order, with
    /// their positions) those that changed.
    Incremental { id: i32, epoch: i32, partitions: Vec<(PartitionKey, FetchPosition)> },
}

struct CachedPartition {
    position: FetchPosition,
    /// What the client was last told; -1 until it is told anything, and after an error, so
    /// the next answer goes out.
    high_watermark: i64,
    log_start: i64,
}

impl CachedPartition {
    fn new(position: FetchPosition) -> CachedPartition {
        CachedPartition { position, high_watermark: -1, log_start: -1 }
    }

    /// Whether the client must hear about this answer (Kafka's maybeUpdateResponseData), and
    /// remembers what it hears.
    fn must_respond(&mut self, answer: &Answer) -> bool {
        let changed = answer.has_records || answer.error || self.high_watermark != answer.high_watermark || self.log_start != answer.log_start;
        self.high_watermark = if answer.error { -1 } else { answer.high_watermark };
        self.log_start = answer.log_start;
        changed
    }
}

struct Session {
    privileged: bool,
    uses_topic_ids: bool,
    /// The epoch the next incremental request must carry.
    epoch: i32,
    created: Instant,
    last_used: Instant,
    /// In the order they are read: partitions that got records move to the end, so that one
    /// busy partition cannot take a response's byte budget on every fetch.
    partitions: IndexMap<PartitionKey, CachedPartition>,
}

impl Session {
    fn positions(&self) -> Vec<(PartitionKey, FetchPosition)> {
        self.partitions.iter().map(|(k, p)| (k.clone(), p.position)).collect()
    }
}

/// Kafka's epoch sequence: 1, 2, ... i32::MAX, then 1 again.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// The broker's fetch sessions.
pub struct FetchSessions {
    slots: usize,
    sessions: Mutex<HashMap<i32, Session>>,
}

impl FetchSessions {
    /// A cache of at most `slots` sessions; 0 turns sessions off.
    pub fn new(slots: usize) -> FetchSessions {
        FetchSessions { slots, sessions: Mutex::new(HashMap::new()) }
    }

    /// Sessions in the cache now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().expect("fetch sessions lock")
    }

    /// Decides how to serve a request (Kafka's FetchManager.newContext). A full request closes
    /// the session it names; an incremental one must name a live session at its expected
    /// epoch, and updates it: `fetch` adds or changes partitions, `forget` drops them.
    pub fn context(&self, request: SessionRequest, fetch: &IndexMap<PartitionKey, FetchPosition>, forget: &[PartitionKey], now: Instant) -> Result<FetchContext, ResponseError> {
        let mut sessions = self.lock();
        if request.epoch == INITIAL_EPOCH || request.epoch == FINAL_EPOCH {
            if request.id != NO_SESSION && sessions.remove(&request.id).is_some() {
                tracing::debug!("fetch session {} closed by a full fetch", request.id);
            }
            return Ok(if request.epoch == FINAL_EPOCH { FetchContext::Sessionless } else { FetchContext::Full });
        }
        let Some(session) = sessions.get_mut(&request.id) else {
            tracing::debug!("fetch session {} not found", request.id);
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        if session.epoch != request.epoch {
            tracing::debug!("fetch session {}: expected epoch {}, got {}", request.id, session.epoch, request.epoch);
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        if session.uses_topic_ids != request.uses_topic_ids {
            tracing::debug!("fetch session {}: the request names topics differently from the session", request.id);
            return Err(ResponseError::FetchSessionTopicIdError);
        }
        let before = session.partitions.len();
        for (key, position) in fetch {
            session.partitions.entry(key.clone()).and_modify(|p| p.position = *position).or_insert_with(|| CachedPartition::new(*position));
        }
        let added = session.partitions.len() - before;
        if !forget.is_empty() {
            let forget: HashSet<&PartitionKey> = forget.iter().collect();
            session.partitions.retain(|k, _| !forget.contains(k));
        }
        if session.partitions.is_empty() {
            sessions.remove(&request.id);
            tracing::debug!("fetch session {} closed: no partitions left", request.id);
            return Ok(FetchContext::Sessionless);
        }
        session.last_used = now;
        session.epoch = next_epoch(session.epoch);
        tracing::debug!(
            "incremental fetch session {} epoch {}: {} partitions named ({added} new), {} forgotten, {} in the session",
            request.id,
            request.epoch,
            fetch.len(),
            forget.len(),
            session.partitions.len()
        );
        Ok(FetchContext::Incremental { id: request.id, epoch: session.epoch, partitions: session.positions() })
    }

    /// After a full fetch: caches its partitions, with what the response told about each, as
    /// a new session if there is room or a slot can be taken. Returns the session id, or
    /// [`NO_SESSION`].
    pub fn create(&self, request: SessionRequest, answered: impl IntoIterator<Item = (PartitionKey, FetchPosition, Answer)>, now: Instant) -> i32 {
        let mut partitions = IndexMap::new();
        for (key, position, answer) in answered {
            partitions.entry(key).or_insert_with(|| CachedPartition::new(position)).must_respond(&answer);
        }
        let mut sessions = self.lock();
        if sessions.len() >= self.slots && !evict(&mut sessions, request.privileged, partitions.len(), now) {
            tracing::debug!("no fetch session created for {} partitions: the cache is full", partitions.len());
            return NO_SESSION;
        }
        let id = loop {
            // Random, so a client holding a session id from before a restart cannot land in
            // another client's session.
            let id = (Uuid::new_v4().as_u128() as i32) & i32::MAX;
            if id != NO_SESSION && !sessions.contains_key(&id) {
                break id;
            }
        };
        let naming = if request.uses_topic_ids { "id" } else { "name" };
        tracing::debug!("fetch session {id} created with {} partitions (topics by {naming})", partitions.len());
        let session = Session { privileged: request.privileged, uses_topic_ids: request.uses_topic_ids, epoch: next_epoch(INITIAL_EPOCH), created: now, last_used: now, partitions };
        sessions.insert(id, session);
        id
    }

    /// After an incremental fetch read `answers` (one per partition of its context, in that
    /// order): which of them the response carries. The session remembers what they say.
    /// Fails if the session was closed, or moved on to another request's epoch, meanwhile.
    pub fn respond(&self, id: i32, epoch: i32, answers: &[Answer]) -> Result<Vec<bool>, ResponseError> {
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(&id) else {
            return Err(ResponseError::FetchSessionIdNotFound);
        };
        // The partitions are as the context listed them unless another request changed the
        // session, and that request moved the epoch on.
        if session.epoch != epoch || session.partitions.len() != answers.len() {
            tracing::info!("fetch session {id}: another request changed it meanwhile (a duplicate request?)");
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        let send: Vec<bool> = session.partitions.values_mut().zip(answers).map(|(p, a)| p.must_respond(a)).collect();
        if answers.iter().any(|a| a.has_records) {
            let fed: Vec<_> = std::mem::take(&mut session.partitions).into_iter().zip(answers).collect();
            let (idle, fed): (Vec<_>, Vec<_>) = fed.into_iter().partition(|(_, a)| !a.has_records);
            session.partitions = idle.into_iter().chain(fed).map(|(p, _)| p).collect();
        }
        tracing::debug!("fetch session {id}: answering {} of {} partitions", send.iter().filter(|s| **s).count(), send.len());
        Ok(send)
    }
}

/// Frees a slot for a new session of `size` partitions, if Kafka's rules allow (see the
/// module comment). True if one was evicted.
fn evict(sessions: &mut HashMap<i32, Session>, privileged: bool, size: usize, now: Instant) -> bool {
    let idle = |s: &Session| now.saturating_duration_since(s.last_used) > EVICTION;
    let old = |s: &Session| now.saturating_duration_since(s.created) > EVICTION;
    let Some((&stalest, session)) = sessions.iter().min_by_key(|(id, s)| (s.last_used, **id)) else {
        return false;
    };
    let victim = if idle(session) {
        Some(stalest)
    } else {
        sessions
            .iter()
            .filter(|(_, s)| old(s) || (privileged && !s.privileged))
            .min_by_key(|(id, s)| (s.privileged, s.partitions.len(), **id))
            .filter(|(_, s)| (privileged, size) > (s.privileged, s.partitions.len()))
            .map(|(id, _)| *id)
    };
    victim.map(|id| {
        sessions.remove(&id);
        tracing::debug!("fetch session {id} evicted for a new one");
    }).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        (TopicKey::Name(topic.into()), partition)
    }

    fn position(offset: i64) -> FetchPosition {
        FetchPosition { fetch_offset: offset, max_bytes: 1 << 20, current_leader_epoch: -1, last_fetched_epoch: -1 }
    }

    fn quiet(high_watermark: i64) -> Answer {
        Answer { has_records: false, high_watermark, log_start: 0, error: false }
    }

    fn consumer(id: i32, epoch: i32) -> SessionRequest {
        SessionRequest { id, epoch, privileged: false, uses_topic_ids: false }
    }

    /// A new session of `n` partitions of topic `t`, all at offset 0 with high watermark 0.
    fn session(cache: &FetchSessions, request: SessionRequest, t: &str, n: i32, now: Instant) -> i32 {
        cache.create(request, (0..n).map(|p| (key(t, p), position(0), quiet(0))), now)
    }

    #[test]
    fn incremental_requests_update_forget_and_answer_only_changes() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = session(&cache, consumer(0, INITIAL_EPOCH), "t", 3, now);
        assert_ne!(id, NO_SESSION);
        // Partition 1 moves on, partition 3 joins, partition 0 is forgotten.
        let fetch = IndexMap::from([(key("t", 1), position(5)), (key("t", 3), position(0))]);
        let context = cache.context(consumer(id, 1), &fetch, &[key("t", 0)], now).unwrap();
        let FetchContext::Incremental { epoch, partitions, .. } = context else { panic!("{context:?}") };
        assert_eq!(epoch, 2);
        assert_eq!(partitions, vec![(key("t", 1), position(5)), (key("t", 2), position(0)), (key("t", 3), position(0))]);
        // Only partition 3 (new to the client) and 2 (new high watermark) are answered.
        let send = cache.respond(id, epoch, &[quiet(0), quiet(7), quiet(0)]).unwrap();
        assert_eq!(send, vec![false, true, true]);
        // The same answers again: nothing new.
        let FetchContext::Incremental { epoch, .. } = cache.context(consumer(id, 2), &IndexMap::new(), &[], now).unwrap() else { panic!() };
        assert_eq!(cache.respond(id, epoch, &[quiet(0), quiet(7), quiet(0)]).unwrap(), vec![false, false, false]);
    }

    #[test]
    fn partitions_with_records_move_to_the_end_and_errors_are_always_answered() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let id = session(&cache, consumer(0, INITIAL_EPOCH), "t", 3, now);
        let FetchContext::Incremental { epoch, .. } = cache.context(consumer(id, 1), &IndexMap::new(), &[], now).unwrap() else { panic!() };
        let fed = Answer { has_records: true, ..quiet(0) };
        let failed = Answer { error: true, ..quiet(0) };
        assert_eq!(cache.respond(id, epoch, &[fed, quiet(0), failed]).unwrap(), vec![true, false, true]);
        let FetchContext::Incremental { epoch, partitions, .. } = cache.context(consumer(id, epoch), &IndexMap::new(), &[], now).unwrap() else { panic!() };
        let order: Vec<i32> = partitions.iter().map(|((_, p), _)| *p).collect();
        assert_eq!(order, vec![1, 2, 0]);
        // The error is gone: the partition is answered once more, with its offsets.
        assert_eq!(cache.respond(id, epoch, &[quiet(0), quiet(0), quiet(0)]).unwrap(), vec![false, true, false]);
    }

    #[test]
    fn epochs_ids_and_closing() {
        let cache = FetchSessions::new(10);
        let now = Instant::now();
        let none = IndexMap::new();
        assert_eq!(cache.context(consumer(0, FINAL_EPOCH), &none, &[], now), Ok(FetchContext::Sessionless));
        assert_eq!(cache.context(consumer(0, INITIAL_EPOCH), &none, &[], now), Ok(FetchContext::Full));
        assert_eq!(cache.context(consumer(12345, 1), &none, &[], now), Err(ResponseError::FetchSessionIdNotFound));
        assert_eq!(cache.context(consumer(NO_SESSION, 1), &none, &[], now), Err(ResponseError::FetchSessionIdNotFound));
        let id = session(&cache, consumer(0, INITIAL_EPOCH), "t", 1, now);
        assert_eq!(cache.context(consumer(id, 2), &none, &[], now), Err(ResponseError::InvalidFetchSessionEpoch));
        let by_id = SessionRequest { uses_topic_ids: true, ..consumer(id, 1) };
        assert_eq!(cache.context(by_id, &none, &[], now), Err(ResponseError::FetchSessionTopicIdError));
        assert!(matches!(cache.context(consumer(id, 1), &none, &[], now), Ok(FetchContext::Incremental { epoch: 2, .. })));
        // A duplicate of the request that used epoch 1 is refused.
        assert_eq!(cache.context(consumer(id, 1), &none, &[], now), Err(ResponseError::InvalidFetchSessionEpoch));
        // A second request took epoch 2 while the first waited: the first cannot answer.
        assert!(matches!(cache.context(consumer(id, 2), &none, &[], now), Ok(FetchContext::Incremental { epoch: 3, .. })));
        assert_eq!(cache.respond(id, 2, &[quiet(0)]), Err(ResponseError::InvalidFetchSessionEpoch));
        // FINAL closes.
        assert_eq!(cache.context(consumer(id, FINAL_EPOCH), &none, &[], now), Ok(FetchContext::Sessionless));
        assert_eq!(cache.context(consumer(id, 3), &none, &[], now), Err(ResponseError::FetchSessionIdNotFound));
        // Forgetting every partition closes too.
        let id = session(&cache, consumer(0, INITIAL_EPOCH), "t", 1, now);
        assert_eq!(cache.context(consumer(id, 1), &none, &[key("t", 0)], now), Ok(FetchContext::Sessionless));
        assert!(cache.is_empty());
        assert_eq!(next_epoch(i32::MAX), 1);
    }

    #[test]
    fn a_full_cache_evicts_as_kafka_does() {
        let cache = FetchSessions::new(2);
        let start = Instant::now();
        let small = session(&cache, consumer(0, INITIAL_EPOCH), "a", 2, start);
        let big = session(&cache, consumer(0, INITIAL_EPOCH), "b", 5, start);
        // Young sessions are safe from consumers, even bigger ones.
        assert_eq!(session(&cache, consumer(0, INITIAL_EPOCH), "c", 9, start), NO_SESSION);
        // A follower's session evicts the smallest consumer session at any age.
        let follower = SessionRequest { privileged: true, ..consumer(0, INITIAL_EPOCH) };
        let f = session(&cache, follower, "f", 1, start);
        assert_ne!(f, NO_SESSION);
        assert_eq!(cache.context(consumer(small, 1), &IndexMap::new(), &[], start), Err(ResponseError::FetchSessionIdNotFound));
        // Once old (but still in use), a consumer session goes for a bigger one, not for one of
        // its size; the follower's session outranks both.
        let later = start + EVICTION + Duration::from_secs(1);
        cache.context(consumer(big, 1), &IndexMap::new(), &[], later).unwrap();
        cache.context(SessionRequest { privileged: true, ..consumer(f, 1) }, &IndexMap::new(), &[], later).unwrap();
        assert_eq!(session(&cache, consumer(0, INITIAL_EPOCH), "d", 5, later), NO_SESSION);
        let bigger = session(&cache, consumer(0, INITIAL_EPOCH), "e", 6, later);
        assert_ne!(bigger, NO_SESSION);
        assert!(cache.context(consumer(big, 2), &IndexMap::new(), &[], later).is_err());
        // A session unused for the eviction time goes for anyone.
        let idle = later + EVICTION + Duration::from_secs(1);
        cache.context(consumer(bigger, 1), &IndexMap::new(), &[], idle).unwrap();
        assert_ne!(session(&cache, consumer(0, INITIAL_EPOCH), "g", 1, idle), NO_SESSION);
        assert_eq!(cache.len(), 2);
        assert!(cache.context(SessionRequest { privileged: true, ..consumer(f, 2) }, &IndexMap::new(), &[], idle).is_err(), "the idle follower session went");
        // No slots: no sessions.
        let off = FetchSessions::new(0);
        assert_eq!(session(&off, consumer(0, INITIAL_EPOCH), "a", 1, start), NO_SESSION);
    }
}
