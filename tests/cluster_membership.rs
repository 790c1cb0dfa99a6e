//! Three real nodes on one metadata quorum: every broker sees the others and the active
//! controller in Metadata; a killed broker is fenced after broker.session.timeout.ms and
//! disappears from Metadata; a killed active controller is replaced; a restarted node comes
//! back; a cleanly stopped one is fenced at once; misconfigured nodes are refused with a message saying what to fix.

mod cluster;
mod common;
mod ports;

use std::time::{Duration, Instant};

use cluster::{eventually, run_to_exit, TestCluster, FAST};
use common::Client;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::MetadataResponse;

const PATIENCE: Duration = Duration::from_secs(20);

/// Node `id`'s Metadata answer, or `None` while it does not serve.
async fn metadata(cluster: &TestCluster, id: i32) -> Option<MetadataResponse> {
    let addr = cluster.client_addr(id);
    tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
    let mut client = Client::connect_to(addr).await;
    Some(client.call(MetadataRequest::default().with_topics(None), 12).await)
}

/// (broker ids, controller id) as node `id` reports them.
async fn view(cluster: &TestCluster, id: i32) -> Option<(Vec<i32>, i32)> {
    let response = metadata(cluster, id).await?;
    let mut brokers: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort_unstable();
    Some((brokers, response.controller_id.0))
}

/// Waits until every running node reports exactly `brokers` and one same controller; returns it.
async fn agreed(cluster: &TestCluster, brokers: &[i32]) -> i32 {
    eventually(PATIENCE, &format!("every node to see brokers {brokers:?}"), || async {
        let mut controllers = Vec::new();
        for id in cluster.running() {
            let (seen, controller) = view(cluster, id).await?;
            if seen != brokers {
                return None;
            }
            controllers.push(controller);
        }
        controllers.dedup();
        (controllers.len() == 1 && brokers.contains(&controllers[0])).then(|| controllers[0])
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_fence_a_dead_broker_and_survive_their_controller() {
    let mut cluster = TestCluster::start(3, 0, FAST);
    let controller = agreed(&cluster, &[1, 2, 3]).await;
    let cluster_id = metadata(&cluster, 1).await.unwrap().cluster_id.unwrap().to_string();
    assert_eq!(cluster_id, cluster.cluster_id);

    // A broker that is not the controller dies: fenced within the session timeout (2 s).
    let victim = cluster.ids().find(|&id| id != controller).unwrap();
    let killed = Instant::now();
    cluster.kill(victim);
    let rest: Vec<i32> = cluster.ids().filter(|&id| id != victim).collect();
    assert_eq!(agreed(&cluster, &rest).await, controller);
    let fenced_after = killed.elapsed();
    eprintln!("broker {victim} fenced {fenced_after:?} after SIGKILL");
    assert!(cluster.log(controller).contains("broker fenced"), "{}", cluster.log(controller));

    // It comes back: registered again, unfenced once caught up.
    cluster.start_node(victim);
    agreed(&cluster, &[1, 2, 3]).await;

    // A clean stop asks the controller to fence it at once (controlled shutdown).
    cluster.stop(victim);
    let rest: Vec<i32> = cluster.ids().filter(|&id| id != victim).collect();
    agreed(&cluster, &rest).await;
    assert!(cluster.log(victim).contains("fenced for shutdown"), "{}", cluster.log(victim));
    cluster.start_node(victim);
    agreed(&cluster, &[1, 2, 3]).await;

    // The active controller dies: the other two elect one of them, which fences it.
    let killed = Instant::now();
    cluster.kill(controller);
    let rest: Vec<i32> = cluster.ids().filter(|&id| id != controller).collect();
    let successor = agreed(&cluster, &rest).await;
    assert_ne!(successor, controller);
    eprintln!("controller {controller} replaced by {successor} and fenced {:?} after SIGKILL", killed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_only_node_learns_the_metadata_log() {
    let cluster = TestCluster::start(1, 1, FAST);
    agreed(&cluster, &[1, 2]).await;
    assert!(cluster.log(2).contains("unfenced by the controller"), "{}", cluster.log(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_nodes_are_refused_saying_what_to_fix() {
    let mut cluster = TestCluster::start(1, 1, FAST);
    agreed(&cluster, &[1, 2]).await;
    let refused = |output: std::process::Output, why: &str| {
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(!output.status.success() && stderr.contains(why), "expected a refusal for {why:?}:\n{stderr}");
    };

    // Node 2 with a voter's id, a broker-only node with the voter id, another node id.
    refused(run_to_exit(cluster.command(2, &[], &[("node.id", "1")])), "is a voter in controller.quorum.voters");
    refused(run_to_exit(cluster.command(1, &[], &[("node.id", "5")])), "not in controller.quorum.voters");
    refused(run_to_exit(cluster.command(2, &[], &[("controller.quorum.voters", "1@127.0.0.1:1,1@127.0.0.1:2")])), "node id 1 appears twice");

    // A directory formatted for node 2, started as node 3 (broker-only, not a voter).
    cluster.kill(2);
    refused(run_to_exit(cluster.command(2, &[], &[("node.id", "3")])), "belongs to node 2 but node.id is 3");

    // Unformatted, with voters configured.
    std::fs::remove_dir_all(cluster.data_dir(2)).unwrap();
    refused(run_to_exit(cluster.command(2, &[], &[])), "is not formatted");

    // Formatted for another cluster: the controller refuses its registration, and it stops.
    let other = String::from_utf8(cluster::gregor().arg("random-uuid").output().unwrap().stdout).unwrap();
    let formatted = cluster.command(2, &["format", "--cluster-id", other.trim()], &[]).output().unwrap();
    assert!(formatted.status.success());
    cluster.start_node(2);
    let status = cluster.wait_exit(2, PATIENCE).expect("a node of another cluster stops by itself");
    assert!(!status.success());
    assert!(cluster.log(2).contains("format its data directory with the quorum's cluster id"), "{}", cluster.log(2));
}

/// A voter formatted for another cluster is refused at the first call on every connection
/// (the cluster id in the RPC's Hello): it gets no vote from the others and none of theirs,
/// so the two right voters form the quorum, and it stops saying what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_of_another_cluster_is_cut_off_from_the_quorum() {
    let mut cluster = TestCluster::formatted(3, 0, FAST);
    std::fs::remove_dir_all(cluster.data_dir(3)).unwrap();
    let other = String::from_utf8(cluster::gregor().arg("random-uuid").output().unwrap().stdout).unwrap();
    assert!(cluster.command(3, &["format", "--cluster-id", other.trim()], &[]).output().unwrap().status.success());
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let status = cluster.wait_exit(3, PATIENCE).expect("the voter of another cluster stops by itself");
    assert!(!status.success());
    agreed(&cluster, &[1, 2]).await;
    let log = cluster.log(3);
    assert!(log.contains("refused this node") && log.contains("format its data directory with the quorum's cluster id"), "{log}");
    assert!(cluster.log(1).contains(other.trim()) || cluster.log(2).contains(other.trim()), "the right voters say whom they refused");
}
