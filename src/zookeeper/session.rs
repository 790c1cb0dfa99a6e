//! Client sessions and their watches.
//!
//! A session outlives its connection: a client may reconnect with the session id and password
//! until the negotiated timeout has passed without hearing from it. Watches belong to the
//! connection, as in ZooKeeper: they are dropped when it goes, and the client re-registers them
//! with setWatches on reconnect. A watch fires once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::jute::{self, EventType};
use super::tree::Event;

/// ZooKeeper's bounds with its default tickTime of 2 s: 2 and 20 ticks.
const MIN_TIMEOUT_MS: i32 = 4_000;
const MAX_TIMEOUT_MS: i32 = 40_000;

pub fn negotiate_timeout(requested_ms: i32) -> i32 {
    requested_ms.clamp(MIN_TIMEOUT_MS, MAX_TIMEOUT_MS)
}

/// The connection a session is attached to: frames sent here are written to the client.
/// Dropping the sender (session closed, expired or taken over) ends that connection.
pub struct Attachment {
    pub connection: u64,
    pub frames: UnboundedSender<Vec<u8>>,
}

struct Session {
    passwd: [u8; 16],
    timeout: Duration,
    last_heard: Instant,
    attached: Option<Attachment>,
}

pub struct Sessions {
    sessions: HashMap<i64, Session>,
    next_id: i64,
    /// getData and exists watches (exists on a missing node waits for its creation).
    data_watches: HashMap<String, HashSet<i64>>,
    child_watches: HashMap<String, HashSet<i64>>,
}

impl Sessions {
    pub fn new() -> Sessions {
        // Ids start from the clock so a restarted broker does not hand out an id a client may
        // still hold; the top byte stays clear, as ephemeralOwner needs positive session ids.
        let base = (crate::api::now_ms() & 0xFF_FFFF_FFFF) << 16;
        Sessions { sessions: HashMap::new(), next_id: base.max(1), data_watches: HashMap::new(), child_watches: HashMap::new() }
    }

    /// Starts a session; returns its id and password.
    pub fn open(&mut self, timeout_ms: i32, attachment: Attachment) -> (i64, [u8; 16]) {
        let id = self.next_id;
        self.next_id += 1;
        let passwd = *uuid::Uuid::new_v4().as_bytes();
        let session = Session {
            passwd,
            timeout: Duration::from_millis(timeout_ms as u64),
            last_heard: Instant::now(),
            attached: Some(attachment),
        };
        self.sessions.insert(id, session);
        (id, passwd)
    }

    /// Moves a live session to a new connection; false if it is unknown, expired or the
    /// password does not match.
    pub fn resume(&mut self, id: i64, passwd: &[u8], timeout_ms: i32, attachment: Attachment) -> bool {
        let Some(session) = self.sessions.get_mut(&id).filter(|s| s.passwd == passwd) else {
            return false;
        };
        session.timeout = Duration::from_millis(timeout_ms as u64);
        session.last_heard = Instant::now();
        if session.attached.replace(attachment).is_some() {
            self.drop_watches(id);
        }
        true
    }

    /// Notes that the client was heard from; false if its session is gone.
    pub fn touch(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) => {
                s.last_heard = Instant::now();
                true
            }
            None => false,
        }
    }

    /// The connection went away; the session lives on until its timeout.
    pub fn detach(&mut self, id: i64, connection: u64) {
        let Some(session) = self.sessions.get_mut(&id) else { return };
        if session.attached.as_ref().is_some_and(|a| a.connection == connection) {
            session.attached = None;
            session.last_heard = Instant::now();
            self.drop_watches(id);
        }
    }

    /// Ends a session (closed or expired); its connection, if any, is closed.
    pub fn remove(&mut self, id: i64) {
        if self.sessions.remove(&id).is_some() {
            self.drop_watches(id);
        }
    }

    /// Sessions not heard from within their timeout.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        self.sessions.iter().filter(|(_, s)| now.duration_since(s.last_heard) > s.timeout).map(|(&id, _)| id).collect()
    }

    pub fn watch_data(&mut self, id: i64, path: &str) {
        self.data_watches.entry(path.to_string()).or_default().insert(id);
    }

    pub fn watch_children(&mut self, id: i64, path: &str) {
        self.child_watches.entry(path.to_string()).or_default().insert(id);
    }

    fn drop_watches(&mut self, id: i64) {
        for watches in [&mut self.data_watches, &mut self.child_watches] {
            watches.retain(|_, ids| {
                ids.remove(&id);
                !ids.is_empty()
            });
        }
    }

    /// Sends the event to the sessions watching for it, once each, and clears those watches.
    pub fn notify(&mut self, event: &Event) {
        let mut ids = HashSet::new();
        let data = matches!(event.kind, EventType::Created | EventType::Deleted | EventType::DataChanged);
        let child = matches!(event.kind, EventType::Deleted | EventType::ChildrenChanged);
        if data {
            ids.extend(self.data_watches.remove(&event.path).unwrap_or_default());
        }
        if child {
            ids.extend(self.child_watches.remove(&event.path).unwrap_or_default());
        }
        if !ids.is_empty() {
            let frame = jute::watch_event(event.kind, &event.path);
            for id in ids {
                self.send(id, frame.clone());
            }
        }
    }

    /// Queues a frame for the session's connection; dropped if it has none.
    pub fn send(&self, id: i64, frame: Vec<u8>) {
        if let Some(a) = self.sessions.get(&id).and_then(|s| s.attached.as_ref()) {
            let _ = a.frames.send(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    #[test]
    fn watches_fire_once_and_go_with_the_connection() {
        let mut sessions = Sessions::new();
        let (tx, mut rx) = unbounded_channel();
        let (id, passwd) = sessions.open(30_000, Attachment { connection: 1, frames: tx });
        sessions.watch_data(id, "/a");
        sessions.watch_children(id, "/a");
        sessions.notify(&Event { kind: EventType::Deleted, path: "/a".into() });
        sessions.notify(&Event { kind: EventType::Created, path: "/a".into() });
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "one event per session, and the watches are gone");

        sessions.watch_data(id, "/b");
        sessions.detach(id, 1);
        let (tx, mut rx) = unbounded_channel();
        assert!(!sessions.resume(id, &[0; 16], 30_000, Attachment { connection: 2, frames: tx.clone() }));
        assert!(sessions.resume(id, &passwd, 30_000, Attachment { connection: 2, frames: tx }));
        sessions.notify(&Event { kind: EventType::DataChanged, path: "/b".into() });
        assert!(rx.try_recv().is_err());
        assert_eq!(negotiate_timeout(100), 4_000);
    }
}
