//! A broker's calls to the active controller: made in-process when this node is the active
//! controller (so the one-node default needs no network), over the controller RPC otherwise,
//! following the quorum's redirections (Kafka's NodeToControllerChannelManager).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::brokers::{BrokerHeartbeat, HeartbeatReply, RegisterBroker};
use super::network::Peer;
use super::topics::{AlterTopicConfigs, CommittedPartition, CreatePartitions, CreateTopic, IsrChange};
use crate::cluster::metadata::{BrokerId, ClientQuotaRecord, ProducerIdBlock, ScramCredentialRecord};
use crate::security::acl::{AclBinding, AclFilter};
use super::replicas::{AlterReassignments, ElectLeaders, PartitionResults};
use super::rpc::{Request, Response};
use super::{Controller, QuorumDescription, WriteError};

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

/// One method per controller call: the request variant out, the same response variant back.
macro_rules! calls {
    ($($name:ident($arg:ident: $input:ty) -> $output:ty = $variant:ident;)*) => {$(
        pub async fn $name(&self, $arg: $input) -> Result<$output, WriteError> {
            match self.call(Request::$variant($arg)).await? {
                Response::$variant(answer) => answer,
                other => Err(mismatch(other)),
            }
        }
    )*};
}

impl ControllerClient {
    pub fn new(local: Controller, voters: Vec<String>) -> ControllerClient {
        ControllerClient { local, voters, next_voter: AtomicUsize::new(0), peer: Default::default() }
    }

    calls! {
        register(request: RegisterBroker) -> () = RegisterBroker;
        heartbeat(heartbeat: BrokerHeartbeat) -> HeartbeatReply = BrokerHeartbeat;
        create_topic(request: CreateTopic) -> Uuid = CreateTopic;
        delete_topic(name: String) -> () = DeleteTopic;
        create_partitions(request: CreatePartitions) -> () = CreatePartitions;
        alter_topic_configs(request: AlterTopicConfigs) -> () = AlterTopicConfigs;
        alter_partition(change: IsrChange) -> CommittedPartition = AlterPartition;
        alter_reassignments(request: AlterReassignments) -> PartitionResults = AlterReassignments;
        elect_leaders(request: ElectLeaders) -> PartitionResults = ElectLeaders;
        alter_scram_credentials(changes: Vec<ScramCredentialRecord>) -> () = AlterScramCredentials;
        create_acls(acls: Vec<AclBinding>) -> () = CreateAcls;
        delete_acls(filters: Vec<AclFilter>) -> Vec<Vec<AclBinding>> = DeleteAcls;
        alter_client_quotas(changes: Vec<ClientQuotaRecord>) -> () = AlterClientQuotas;
    }

    pub async fn allocate_producer_ids(&self, broker: BrokerId, at_least: i64) -> Result<ProducerIdBlock, WriteError> {
        match self.call(Request::AllocateProducerIds(broker, at_least)).await? {
            Response::AllocateProducerIds(answer) => answer,
            other => Err(mismatch(other)),
        }
    }

    pub async fn describe_quorum(&self) -> Result<QuorumDescription, WriteError> {
        match self.call(Request::DescribeQuorum).await? {
            Response::DescribeQuorum(answer) => answer,
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
                *peer = Some(Peer::new(target, self.local.cluster_id().to_string(), self.local.tls.clone()));
            }
            let response = peer.as_ref().expect("set above").request(&request, CALL_TIMEOUT).await?;
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
