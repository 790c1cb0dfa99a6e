//! Several listeners, Kafka style: each is bound, and a client is told the advertised address
//! of the listener it came in on (Metadata, FindCoordinator, DescribeCluster).

mod common;

use common::*;
use gregor::Broker;
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::protocol::StrBytes;

/// What Metadata, FindCoordinator and DescribeCluster tell this client about the broker.
async fn told(c: &mut Client) -> [(String, i32); 3] {
    let m = c.call(MetadataRequest::default(), 12).await;
    let f = c.call(FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g")]), 4).await;
    let d = c.call(DescribeClusterRequest::default(), 1).await;
    [
        (m.brokers[0].host.to_string(), m.brokers[0].port),
        (f.coordinators[0].host.to_string(), f.coordinators[0].port),
        (d.brokers[0].host.to_string(), d.brokers[0].port),
    ]
}

#[tokio::test]
async fn each_listener_is_bound_and_advertises_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config
        .set_all([
            ("listeners", "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT"),
            ("advertised.listeners", "INTERNAL://internal.example:19093"),
        ])
        .unwrap();
    let broker = Broker::start(config).await.unwrap();
    let (plain, internal) = (broker.local_addr(), broker.listener_addr("INTERNAL").unwrap());
    assert_eq!(broker.listener_addr("PLAINTEXT"), Some(plain));
    assert_ne!(plain, internal);

    let bound = ("127.0.0.1".to_string(), plain.port() as i32);
    assert_eq!(told(&mut Client::connect(&broker).await).await, [bound.clone(), bound.clone(), bound]);
    let advertised = ("internal.example".to_string(), 19093);
    assert_eq!(told(&mut Client::connect_to(internal).await).await, [advertised.clone(), advertised.clone(), advertised]);
    broker.shutdown().await;
}

#[tokio::test]
async fn listener_sets_kafka_refuses_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    let refused = |result: anyhow::Result<bool>| format!("{:#}", result.unwrap_err());
    assert!(refused(config.set("listeners", "PLAINTEXT://127.0.0.1:9,PLAINTEXT://127.0.0.1:10")).contains("appears twice"));
    let err = config.set_all([("listener.security.protocol.map", "A:PLAINTEXT,B:PLAINTEXT"), ("listeners", "A://127.0.0.1:9,B://127.0.0.1:9")]).unwrap_err();
    assert!(format!("{err:#}").contains("both use port 9"), "{err:#}");
    // Nothing of a refused change is kept.
    assert_eq!(config.listeners.len(), 1);
    // A listener already taken: the second broker's start names it.
    let first = Broker::start(common::config(dir.path())).await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let mut taken = common::config(other.path());
    taken
        .set_all([("listeners", &*format!("PLAINTEXT://127.0.0.1:0,INTERNAL://{}", first.local_addr())), ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT")])
        .unwrap();
    let err = Broker::start(taken).await.err().expect("the port is taken");
    assert!(format!("{err:#}").contains("listener INTERNAL"), "{err:#}");
    first.shutdown().await;
}
