//! What a leader knows of its followers (Kafka's Replica state on the leader): each one's log
//! end and when it was last caught up, from which the ISR changes and the high watermark follow.

use std::collections::HashMap;

use super::{PartitionState, ReplicaState};
use crate::log::{LogStore, PartitionId};

/// A follower as its leader sees it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// The offset of its last fetch; -1 until it fetches at this leader epoch.
    log_end: i64,
    /// The last time its log end reached the leader's (Kafka's lastCaughtUpTimeMs).
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    /// The leader's log end at that last fetch.
    last_fetch_leader_end: i64,
}

impl Follower {
    /// A follower is presumed caught up when its leader starts, so it is not shrunk out at once.
    fn new(now_ms: i64) -> Follower {
        Follower { log_end: -1, last_caught_up_ms: now_ms, last_fetch_ms: now_ms, last_fetch_leader_end: -1 }
    }
}

pub(super) struct LeaderState {
    /// The log end when this node became leader: a follower joins the ISR only past it.
    epoch_start_offset: i64,
    followers: HashMap<i32, Follower>,
    /// The ISR sent to the controller and not yet answered.
    pub(super) pending: Option<Vec<i32>>,
}

impl LeaderState {
    pub(super) fn new(state: &PartitionState, node_id: i32, log_end: i64, now_ms: i64) -> LeaderState {
        let followers = state.replicas.iter().filter(|&&r| r != node_id).map(|&r| (r, Follower::new(now_ms))).collect();
        LeaderState { epoch_start_offset: log_end, followers, pending: None }
    }

    /// A new partition epoch at the same leader epoch: the replicas may have changed, and a
    /// pending ISR change is superseded by the controller's state.
    pub(super) fn update_assignment(&mut self, state: &PartitionState, node_id: i32, now_ms: i64) {
        self.followers.retain(|r, _| state.replicas.contains(r));
        for &r in state.replicas.iter().filter(|&&r| r != node_id) {
            self.followers.entry(r).or_insert_with(|| Follower::new(now_ms));
        }
        self.pending = None;
    }

    pub(super) fn has_follower(&self, id: i32) -> bool {
        self.followers.contains_key(&id)
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at `leader_end`.
    pub(super) fn record_fetch(&mut self, id: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        let Some(f) = self.followers.get_mut(&id) else { return };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end {
            // It has what the leader had at its previous fetch: caught up as of then.
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = fetch_offset;
        f.last_fetch_ms = now_ms;
        f.last_fetch_leader_end = leader_end;
    }

    /// The ISR with `id` added, once it has caught up to the high watermark and this leader's
    /// epoch; `None` if it is already in, or a change is pending.
    pub(super) fn expansion(&self, id: i32, isr: &[i32], high_watermark: i64) -> Option<Vec<i32>> {
        let f = self.followers.get(&id)?;
        let in_sync = f.log_end >= high_watermark && f.log_end >= self.epoch_start_offset;
        (self.pending.is_none() && !isr.contains(&id) && in_sync).then(|| isr.iter().copied().chain([id]).collect())
    }

    /// The ISR without the followers that have not caught up for `lag_max_ms`; `None` when all
    /// have, or a change is pending.
    pub(super) fn shrink(&self, isr: &[i32], node_id: i32, leader_end: i64, now_ms: i64, lag_max_ms: i64) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: &i32| self.followers.get(r).is_some_and(|f| f.log_end < leader_end && now_ms - f.last_caught_up_ms > lag_max_ms);
        let kept: Vec<i32> = isr.iter().copied().filter(|r| *r == node_id || !lagging(r)).collect();
        (kept.len() < isr.len()).then_some(kept)
    }

    /// The committed ISR plus any member a pending change adds (Kafka's maximal ISR): the high
    /// watermark waits for them all, so it is safe whichever way the controller answers.
    pub(super) fn maximal_isr(&self, isr: &[i32]) -> Vec<i32> {
        let mut all = isr.to_vec();
        for r in self.pending.iter().flatten() {
            if !all.contains(r) {
                all.push(*r);
            }
        }
        all
    }
}

/// Moves a leader's high watermark to the minimum log end over the maximal ISR (its own log
/// end included). With one replica the store moves it with the log end instead.
pub(super) fn advance_high_watermark(log: &LogStore, id: PartitionId, state: &mut ReplicaState) {
    let Some(leader) = &state.leader else { return };
    if state.applied.replicas.len() <= 1 {
        return;
    }
    let Ok(mut hw) = log.log_end_offset(id) else { return };
    for r in leader.maximal_isr(&state.applied.isr) {
        if let Some(f) = leader.followers.get(&r) {
            hw = hw.min(f.log_end);
        }
    }
    if hw >= 0 {
        // Fails only for a deleted partition, which has no high watermark left to move.
        let _ = log.set_high_watermark(id, hw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(now_ms: i64) -> LeaderState {
        let state = PartitionState { leader: 1, leader_epoch: 1, partition_epoch: 1, replicas: vec![1, 2, 3], isr: vec![1, 2, 3] };
        LeaderState::new(&state, 1, 10, now_ms)
    }

    #[test]
    fn a_follower_is_caught_up_when_it_reaches_the_log_end_or_what_it_was_at_its_last_fetch() {
        let mut l = leader(0);
        l.record_fetch(2, 10, 10, 100);
        assert_eq!(l.followers[&2].last_caught_up_ms, 100);
        // Behind the log end of now, but at the log end of its previous fetch: caught up as of then.
        l.record_fetch(2, 10, 15, 200);
        assert_eq!(l.followers[&2].last_caught_up_ms, 100);
        l.record_fetch(2, 15, 20, 300);
        assert_eq!(l.followers[&2].last_caught_up_ms, 200);
        // Behind both: no progress.
        l.record_fetch(2, 16, 25, 400);
        assert_eq!(l.followers[&2].last_caught_up_ms, 200);
        assert_eq!(l.followers[&2].log_end, 16);
    }

    #[test]
    fn the_isr_shrinks_by_the_lagging_followers_and_grows_by_those_caught_up() {
        let mut l = leader(0);
        l.record_fetch(2, 10, 10, 1000);
        // 3 never fetched: caught up as of the leader's start, 0.
        assert_eq!(l.shrink(&[1, 2, 3], 1, 10, 1500, 1000), Some(vec![1, 2]));
        assert_eq!(l.shrink(&[1, 2, 3], 1, 10, 900, 1000), None, "within the lag");
        l.pending = Some(vec![1, 2]);
        assert_eq!(l.shrink(&[1, 2, 3], 1, 10, 1500, 1000), None, "one change at a time");
        assert_eq!(l.maximal_isr(&[1, 3]), vec![1, 3, 2]);
        l.pending = None;

        l.record_fetch(3, 9, 12, 1600);
        assert_eq!(l.expansion(3, &[1, 2], 9), None, "below the leader's epoch start offset (10)");
        l.record_fetch(3, 12, 12, 1700);
        assert_eq!(l.expansion(3, &[1, 2], 13), None, "below the high watermark");
        assert_eq!(l.expansion(3, &[1, 2], 12), Some(vec![1, 2, 3]));
        assert_eq!(l.expansion(3, &[1, 2, 3], 12), None, "already in");
        assert_eq!(l.expansion(4, &[1, 2], 12), None, "not a replica");
    }
}
