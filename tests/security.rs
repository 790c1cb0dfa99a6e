//! TLS and SASL listeners at the edges: garbage instead of a handshake, SASL requests out of
//! order, oversized tokens, and settings that refuse the start.

mod common;

use std::sync::Arc;

use bytes::BufMut;
use common::*;
use gregor::{Broker, BrokerHandle};
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="pw" user_admin="pw" user_alice="alice-pw";"#;

async fn sasl_broker(dir: &std::path::Path) -> BrokerHandle {
    let mut config = config(dir);
    config
        .set_all([
            ("listeners", "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap();
    Broker::start(config).await.expect("broker starts")
}

fn plain_token(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[tokio::test]
async fn plain_authenticates_then_serves_and_refuses_wrong_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sasl_broker(dir.path()).await;
    let addr = broker.listener_addr("SASL_PLAINTEXT").unwrap();

    let mut c = Client::connect_to(addr).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, 0);
    let handshake = c.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1).await;
    assert_eq!(handshake.error_code, 0);
    assert_eq!(handshake.mechanisms.iter().map(|m| m.as_str()).collect::<Vec<_>>(), ["PLAIN", "SCRAM-SHA-256"]);
    let auth = c.call(SaslAuthenticateRequest::default().with_auth_bytes(plain_token("alice", "alice-pw").into()), 2).await;
    assert_eq!(auth.error_code, 0);
    assert_eq!(c.call(MetadataRequest::default(), 12).await.brokers.len(), 1);

    let mut wrong = Client::connect_to(addr).await;
    wrong.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1).await;
    let auth = wrong.call(SaslAuthenticateRequest::default().with_auth_bytes(plain_token("alice", "guess").into()), 1).await;
    assert_eq!(auth.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(auth.error_message.unwrap().contains("Invalid username or password"));
    assert!(wrong.is_closed().await);

    // A mechanism the listener does not offer.
    let mut other = Client::connect_to(addr).await;
    let handshake = other.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")), 1).await;
    assert_eq!(handshake.error_code, ResponseError::UnsupportedSaslMechanism.code());
    assert!(other.is_closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn handshake_v0_takes_bare_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sasl_broker(dir.path()).await;
    let mut c = Client::connect_to(broker.listener_addr("SASL_PLAINTEXT").unwrap()).await;
    assert_eq!(c.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 0).await.error_code, 0);
    let token = plain_token("admin", "pw");
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&token);
    c.send_raw(&frame).await;
    assert_eq!(c.read_frame().await.expect("an empty final token").len(), 0);
    assert_eq!(c.call(MetadataRequest::default(), 12).await.brokers.len(), 1);
    broker.shutdown().await;
}

#[tokio::test]
async fn requests_out_of_order_or_too_big_close_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sasl_broker(dir.path()).await;
    let addr = broker.listener_addr("SASL_PLAINTEXT").unwrap();

    let mut before_auth = Client::connect_to(addr).await;
    before_auth.send(&MetadataRequest::default(), 12).await;
    assert!(before_auth.is_closed().await, "Metadata before authentication is cut off");

    let mut authenticate_first = Client::connect_to(addr).await;
    authenticate_first.send(&SaslAuthenticateRequest::default().with_auth_bytes(plain_token("admin", "pw").into()), 2).await;
    assert!(authenticate_first.is_closed().await, "SaslAuthenticate before SaslHandshake is cut off");

    let mut handshake_twice = Client::connect_to(addr).await;
    handshake_twice.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1).await;
    handshake_twice.send(&SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1).await;
    assert!(handshake_twice.is_closed().await, "a second handshake is cut off");

    let mut oversized = Client::connect_to(addr).await;
    oversized.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1).await;
    let mut frame = Vec::new();
    frame.put_i32(1 << 20);
    frame.extend_from_slice(&[0u8; 64]);
    oversized.send_raw(&frame).await;
    assert!(oversized.is_closed().await, "a 1 MiB frame before authentication is cut off");

    // The PLAINTEXT listener is unaffected.
    assert_eq!(Client::connect(&broker).await.call(MetadataRequest::default(), 12).await.brokers.len(), 1);
    broker.shutdown().await;
}

/// A SaslHandshake v1 and one PLAIN SaslAuthenticate v2 (SCRAM fails at the PLAIN token).
async fn login(c: &mut Client, mechanism: &'static str, user: &str, password: &str) -> kafka_protocol::messages::SaslAuthenticateResponse {
    assert_eq!(c.call(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)), 1).await.error_code, 0);
    c.call(SaslAuthenticateRequest::default().with_auth_bytes(plain_token(user, password).into()), 2).await
}

#[tokio::test]
async fn sessions_expire_unless_the_client_reauthenticates() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config
        .set_all([
            ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
            ("connections.max.reauth.ms", "1500"),
        ])
        .unwrap();
    let broker = Broker::start(config).await.expect("broker starts");
    let addr = broker.listener_addr("SASL_PLAINTEXT").unwrap();
    // Re-authenticating as the same principal before the expiry keeps the connection serving.
    let mut c = Client::connect_to(addr).await;
    let auth = login(&mut c, "PLAIN", "alice", "alice-pw").await;
    assert_eq!((auth.error_code, auth.session_lifetime_ms), (0, 1500));
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        assert_eq!(login(&mut c, "PLAIN", "alice", "alice-pw").await.error_code, 0);
        assert_eq!(c.call(MetadataRequest::default(), 12).await.brokers.len(), 1);
    }

    // A client that lets its session run out is cut off at its next request.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    c.send(&MetadataRequest::default(), 12).await;
    assert!(c.is_closed().await, "a request after the session's expiry closes the connection");

    // The principal may not change, nor the mechanism.
    let mut other = Client::connect_to(addr).await;
    assert_eq!(login(&mut other, "PLAIN", "alice", "alice-pw").await.error_code, 0);
    let auth = login(&mut other, "PLAIN", "admin", "pw").await;
    assert_eq!(auth.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(auth.error_message.unwrap().contains("Cannot change principals"));
    assert!(other.is_closed().await);
    let mut other = Client::connect_to(addr).await;
    assert_eq!(login(&mut other, "PLAIN", "alice", "alice-pw").await.error_code, 0);
    let auth = login(&mut other, "SCRAM-SHA-256", "alice", "alice-pw").await;
    assert_eq!(auth.error_code, ResponseError::SaslAuthenticationFailed.code());
    assert!(auth.error_message.unwrap().contains("not supported for re-authentication"));
    assert!(other.is_closed().await);
    broker.shutdown().await;
}

/// A TLS client that trusts the CA `gregor certs` wrote in `dir`.
fn tls_connector(dir: &std::path::Path) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn garbage_instead_of_a_tls_handshake_closes_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    gregor::security::certs::write_dev_certs(&certs, &["localhost".to_string()]).unwrap();
    let mut config = config(&dir.path().join("data"));
    config
        .set_all([
            ("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0"),
            ("ssl.keystore.location", certs.join("broker.pem").to_str().unwrap()),
        ])
        .unwrap();
    let broker = Broker::start(config).await.expect("broker starts");
    let addr = broker.listener_addr("SSL").unwrap();

    let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
    garbage.write_all(b"\x00\x00\x00\x10 this is not TLS at all").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(TIMEOUT, garbage.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the broker closed the connection");

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tls_connector(&certs).connect("localhost".try_into().unwrap(), tcp).await.expect("TLS handshake");
    // ApiVersions v0: api key 18, version 0, correlation id 5, no client id.
    tls.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 5, 0xff, 0xff]).await.unwrap();
    let size = tls.read_i32().await.unwrap();
    let mut response = vec![0; size as usize];
    tls.read_exact(&mut response).await.unwrap();
    assert_eq!(&response[..6], &[0, 0, 0, 5, 0, 0], "correlation id 5, no error");
    broker.shutdown().await;
}

/// Why a broker with these settings does not start.
async fn refused(data: &std::path::Path, settings: &[(&str, String)]) -> String {
    let mut config = config(data);
    config.set_all(settings.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
    format!("{:#}", Broker::start(config).await.err().expect("refused"))
}

#[tokio::test]
async fn bad_security_settings_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    gregor::security::certs::write_dev_certs(&certs, &["localhost".to_string()]).unwrap();
    let broker_pem = certs.join("broker.pem").to_str().unwrap().to_string();
    let ssl = ("listeners", "SSL://127.0.0.1:0".to_string());
    let sasl = ("listeners", "SASL_PLAINTEXT://127.0.0.1:0".to_string());
    let cases = [
        (vec![ssl.clone()], "needs ssl.keystore.location"),
        (vec![ssl.clone(), ("ssl.keystore.type", "PKCS12".into()), ("ssl.keystore.location", broker_pem.clone())], "reads PEM only"),
        (vec![ssl.clone(), ("ssl.keystore.location", "/nonexistent/broker.pem".into())], "ssl.keystore.location: cannot read /nonexistent/broker.pem"),
        (vec![ssl.clone(), ("listener.name.ssl.ssl.keystore.location", "/nonexistent/x.pem".into())], "cannot read /nonexistent/x.pem"),
        (vec![ssl.clone(), ("ssl.keystore.location", broker_pem.clone()), ("ssl.client.auth", "required".into())], "set ssl.truststore.location"),
        (vec![ssl.clone(), ("ssl.keystore.location", broker_pem.clone()), ("ssl.enabled.protocols", "TLSv1.1".into())], "enables neither"),
        (vec![sasl.clone()], "set sasl.enabled.mechanisms"),
        (vec![sasl.clone(), ("sasl.enabled.mechanisms", "GSSAPI".into())], "GSSAPI is not offered"),
        (vec![sasl.clone(), ("sasl.enabled.mechanisms", "PLAIN".into())], "PLAIN needs its users"),
        (vec![sasl.clone(), ("sasl.enabled.mechanisms", "SCRAM-SHA-512".into()), ("connections.max.reauth.ms", "soon".into())], "connections.max.reauth.ms=soon is not a number"),
    ];
    for (case, (settings, expected)) in cases.into_iter().enumerate() {
        let why = refused(&dir.path().join(format!("data-{case}")), &settings).await;
        assert!(why.contains(expected), "{settings:?}: {why}");
    }
    // The controller quorum speaks PLAINTEXT or SSL, not SASL.
    let mut config = config(&dir.path().join("data"));
    let err = config
        .set_all([
            ("listeners", "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0"),
            ("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_SSL"),
        ])
        .unwrap_err();
    assert!(format!("{err:#}").contains("controller quorum speaks PLAINTEXT or SSL"), "{err:#}");
}

/// KIP-430's authorized operations come from the ACLs, and DescribeTopicPartitions (the Java
/// admin's describeTopics) hides a topic the principal may not describe, as Metadata does.
#[tokio::test]
async fn authorized_operations_and_topic_descriptions_follow_the_acls() {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{CreateAclsRequest, DescribeClusterRequest, DescribeTopicPartitionsRequest};
    const READ: i32 = 1 << 3;
    const DESCRIBE: i32 = 1 << 8;

    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(
        dir.path(),
        &[("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer"), ("allow.everyone.if.no.acl.found", "true")],
    )
    .await;
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("open", 1).await, 0);
    assert_eq!(c.create_topic("hidden", 1).await, 0);
    // (resource type, name, operation, permission) for User:ANONYMOUS, LITERAL, any host.
    let acl = |kind: i8, name: &'static str, operation: i8, permission: i8| {
        AclCreation::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_static_str(name))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_static_str("User:ANONYMOUS"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(operation)
            .with_permission_type(permission)
    };
    let created = c.call(CreateAclsRequest::default().with_creations(vec![acl(2, "open", 3, 3), acl(2, "hidden", 8, 2), acl(4, "kafka-cluster", 8, 3)]), 3).await;
    assert!(created.results.iter().all(|r| r.error_code == 0), "{created:?}");

    let metadata = c
        .call(
            MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("open")))]))
                .with_include_topic_authorized_operations(true),
            12,
        )
        .await;
    assert_eq!(metadata.topics[0].topic_authorized_operations, READ | DESCRIBE, "READ implies DESCRIBE, nothing else");
    let cluster = c.call(DescribeClusterRequest::default().with_include_cluster_authorized_operations(true), 1).await;
    assert_eq!(cluster.cluster_authorized_operations, DESCRIBE);

    let all = c.call(DescribeTopicPartitionsRequest::default().with_response_partition_limit(100), 0).await;
    let names: Vec<_> = all.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.as_str())).collect();
    assert_eq!(names, ["open"]);
    assert_eq!(all.topics[0].topic_authorized_operations, READ | DESCRIBE);
    let named = c
        .call(DescribeTopicPartitionsRequest::default().with_topics(vec![TopicRequest::default().with_name(name("hidden"))]).with_response_partition_limit(100), 0)
        .await;
    assert_eq!(named.topics[0].error_code, ResponseError::TopicAuthorizationFailed.code());
    assert!(named.topics[0].partitions.is_empty());
    broker.shutdown().await;
}
