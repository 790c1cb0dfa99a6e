//! A broker's calls to the active controller: made in-process when this node is the active
//! controller (so the one-node default needs no network), over the controller RPC otherwise,
//! following the quorum's redirections (Kafka's NodeToControllerChannelManager).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::brokers::{BrokerHeartbeat, HeartbeatReply, RegisterBroker};
use super::network::Peer;
use super::topics::{AlterTopicConfigs, CommittedPartition, CreatePartitions, CreateTopic, IsrChange};
use crate::cluster::metadata::{BrokerId, ProducerIdBlock};
use super::rpc::{Request, Response};
use super::{Controller, WriteError};

/// How long one call to a remote controller may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ControllerClient {
    local: Controller,
    /// The voters' controller addresses, tried in turn while no leader is known.
    voters: Vec<String>,
    next_voter: AtomicUsize,
    /// The connection to the last controller called.
    peer: tokio::sync::Mutex<Option<Peer>>,
}

impl ControllerClient {
    pub fn new(local: Controller, voters: Vec<String>) -> ControllerClient {
        ControllerClient { local, voters, next_voter: AtomicUsize::new(0), peer: Default::default() }
    }

    pub async fn register(&self, request: RegisterBroker) -> Result<(), WriteError> {
        match self.call(Request::RegisterBroker(request)).await? {
            Response::RegisterBroker(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn heartbeat(&self, heartbeat: BrokerHeartbeat) -> Result<HeartbeatReply, WriteError> {
        match self.call(Request::BrokerHeartbeat(heartbeat)).await? {
            Response::BrokerHeartbeat(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn create_topic(&self, request: CreateTopic) -> Result<Uuid, WriteError> {
        match self.call(Request::CreateTopic(request)).await? {
            Response::CreateTopic(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn delete_topic(&self, name: String) -> Result<(), WriteError> {
        match self.call(Request::DeleteTopic(name)).await? {
            Response::DeleteTopic(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn create_partitions(&self, request: CreatePartitions) -> Result<(), WriteError> {
        match self.call(Request::CreatePartitions(request)).await? {
            Response::CreatePartitions(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn alter_topic_configs(&self, request: AlterTopicConfigs) -> Result<(), WriteError> {
        match self.call(Request::AlterTopicConfigs(request)).await? {
            Response::AlterTopicConfigs(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn alter_partition(&self, change: IsrChange) -> Result<CommittedPartition, WriteError> {
        match self.call(Request::AlterPartition(change)).await? {
            Response::AlterPartition(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn allocate_producer_ids(&self, broker: BrokerId, at_least: i64) -> Result<ProducerIdBlock, WriteError> {
        match self.call(Request::AllocateProducerIds(broker, at_least)).await? {
            Response::AllocateProducerIds(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    /// One call to the active controller, redirected once if the node called is not it.
    async fn call(&self, request: Request) -> Result<Response, WriteError> {
        let local_leader = self.local.leader();
        if local_leader == Some(self.local.id()) || self.voters.is_empty() {
            return Ok(self.local.handle(request).await);
        }
        let mut address = local_leader.and_then(|l| self.local.address_of(l));
        let mut redirected = false;
        loop {
            let target = match address.take() {
                Some(a) => a,
                None => self.voters[self.next_voter.fetch_add(1, Ordering::Relaxed) % self.voters.len()].clone(),
            };
            let mut peer = self.peer.lock().await;
            if peer.as_ref().is_none_or(|p| p.addr != target) {
                *peer = Some(Peer::new(target));
            }
            let response = peer.as_ref().expect("set above").request(&request, CALL_TIMEOUT).await.map_err(WriteError::Unreachable)?;
            let not_leader = match response.error() {
                Some(WriteError::NotLeader { address, .. }) => Some(address.clone()),
                _ => None,
            };
            match not_leader {
                Some(Some(leader)) if !redirected => {
                    redirected = true;
                    address = Some(leader);
                }
                _ => return Ok(response),
            }
        }
    }
}

fn mismatch(response: Response) -> WriteError {
    WriteError::Unreachable(format!("the controller answered with another kind of response: {response:?}"))
}
