"""Secured clusters whose partition leaders check who their followers are:

- SASL_SSL between brokers, logging in with PLAIN from their listener's JAAS config, and a
  controller quorum speaking mutual TLS, with the authorizer on and the brokers' user in
  super.users: acks=all records survive the kill of their partition leader, ACLs and SCRAM
  users made on one node hold on the others, and a broker with a wrong inter-broker password
  never joins the ISR and logs why.
- SASL_PLAINTEXT between brokers with SCRAM-SHA-512: the brokers' SCRAM user does not exist at
  first, so the followers' logins are refused (logged) and the ISR is the leader alone; once
  an admin (logging in with PLAIN) creates it, the followers join the ISR, and acks=all
  records survive the kill of the leader.
- SSL between brokers with client certificates required and the authorizer on, nothing
  allowed without an ACL: with the broker certificate's subject in super.users, the followers
  fetch (CLUSTER_ACTION) and stay in the ISR, and acks=all records survive the kill of the
  leader; without it, the followers leave the ISR and stay out."""

from __future__ import annotations

import os
import signal
import time

from conftest import CLIENT_TIMEOUT_S, PLAIN_JAAS, PLAIN_USERS, ScriptCluster, certificate_principal, ck_drain, wait_until

BROKER_PASSWORD = "broker-secret"
# Every node's: a follower that cannot fetch leaves the ISR within the tests' waits...
REPLICA_LAG_MS = 4000
# ...and has left it after this long.
LAG_WAIT_S = 5
AUTHORIZER = ["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"]


def write_properties(path: str, lines: list[str]) -> str:
    with open(path, "w") as f:
        f.write("\n".join([*lines, f"replica.lag.time.max.ms={REPLICA_LAG_MS}", ""]))
    return path


def jaas(password: str) -> str:
    """The SASL_SSL listener's PLAIN config: the broker logs in as `broker` with `password`;
    the user_ entries are whom it accepts."""
    users = " ".join(f'user_{u}="{p}"' for u, p in {"broker": BROKER_PASSWORD, **PLAIN_USERS}.items())
    return ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="broker" password="{password}" {users};')


def tls_keys(certs) -> list[str]:
    return ["ssl.keystore.type=PEM", f"ssl.keystore.location={certs['broker']}",
            "ssl.truststore.type=PEM", f"ssl.truststore.location={certs['ca']}"]


def sasl_ssl_properties(certs, path: str, broker_password: str) -> str:
    return write_properties(path, [
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        # The controller quorum over mutual TLS: each node shows its certificate.
        "listener.name.controller.ssl.client.auth=required",
        "inter.broker.listener.name=SASL_SSL",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas(broker_password)}",
        *tls_keys(certs),
        *AUTHORIZER,
        "super.users=User:broker;User:admin",
    ])


def client(certs, user="admin", password=PLAIN_USERS["admin"], mechanism="PLAIN", **more):
    return {"security.protocol": "SASL_SSL", "ssl.ca.location": certs["ca"], "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, "socket.timeout.ms": 10000, **more}


def three_nodes(listener: str, properties: str) -> ScriptCluster:
    """Three voters (nodes 1-3) whose client and inter-broker listener is `listener`."""
    return ScriptCluster(3, listener=listener, node_args={k: ["--config", properties] for k in (1, 2, 3)})


def wait_for_brokers(c: ScriptCluster, admin, ids: set[int]):
    def listed():
        try:
            return set(admin.list_topics(timeout=10).brokers) == ids
        except Exception:  # not serving yet
            return False

    wait_until(listed, timeout=CLIENT_TIMEOUT_S, message=lambda: f"brokers {sorted(ids)} listed\n{c.log()}")


def create_partition0(admin, topic: str, replicas: list[int]):
    from confluent_kafka.admin import NewTopic

    admin.create_topics([NewTopic(topic, 1, replica_assignment=[replicas])])[topic].result(30)


def partition0(admin, topic: str, isr: list[int]):
    """Partition 0 of `topic` if its ISR (sorted) is `isr`, else None."""
    p = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
    return p if p is not None and p.error is None and sorted(p.isrs) == isr else None


def wait_in_sync(c: ScriptCluster, admin, topic: str, isr: list[int]):
    return wait_until(lambda: partition0(admin, topic, isr), timeout=CLIENT_TIMEOUT_S,
                      message=lambda: f"{topic}'s ISR {isr}\n{c.log()}")


def logged(c: ScriptCluster, node: int, text: str) -> list[str]:
    """The log lines of `node` that hold `text`."""
    with open(c.log_path, errors="replace") as f:
        return [line for line in f if line.startswith(f"[node {node}]") and text in line]


def refusals(c: ScriptCluster, node: int, login: str) -> list[str]:
    """The log lines in which `node` says its inter-broker `login` ("SASL <MECH> login as <user>") was refused."""
    return logged(c, node, f"{login} refused")


def produce_acked(producer, topic: str, numbers: range, acked: list[bytes]):
    """Produces v<i> for i in `numbers` to partition 0, appending what was acknowledged to
    `acked`, which must then hold every record since v0."""
    for i in numbers:
        producer.produce(topic, value=f"v{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: acked.append(msg.value()) if err is None else None)
    assert producer.flush(30) == 0
    assert len(acked) == numbers.stop


def wait_for_leader(c: ScriptCluster, admin, topic: str, but: int = -1) -> int:
    """The leader of partition 0 the metadata names, once it names one other than `but`."""
    def leader():
        p = admin.list_topics(topic, timeout=10).topics[topic].partitions.get(0)
        return p.leader if p is not None and p.leader not in (-1, but) else None

    return wait_until(leader, timeout=CLIENT_TIMEOUT_S, message=lambda: f"a leader of {topic} but {but}\n{c.log()}")


def kill_leader(c: ScriptCluster, admin, topic: str, leader: int):
    """kill -9 `leader`, then waits until the metadata names another for partition 0."""
    os.kill(c.node_pid(leader), signal.SIGKILL)
    wait_for_leader(c, admin, topic, but=leader)


def assert_reads_back(config: dict, topic: str, acked: list[bytes]):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**config, "group.id": "secured-reader", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = [m.value() for m in ck_drain(consumer, len(acked))]
    consumer.close()
    assert seen == acked, f"read {len(seen)} of {len(acked)} acknowledged records"


def test_a_cluster_replicates_over_sasl_ssl_and_an_impostor_never_joins_the_isr(certs, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                       ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)

    good = sasl_ssl_properties(certs, str(tmp_path / "broker.properties"), BROKER_PASSWORD)
    impostor = sasl_ssl_properties(certs, str(tmp_path / "impostor.properties"), "not-the-password")
    # Nodes 1-3 are voters; node 4, a broker only, has the wrong inter-broker password.
    c = ScriptCluster(4, listener="SASL_SSL",
                      node_args={1: ["--config", good], 2: ["--config", good], 3: ["--config", good], 4: ["--config", impostor]})
    try:
        bootstrap = ",".join(c.bootstrap)
        admin = AdminClient(client(certs, **{"bootstrap.servers": bootstrap}))
        wait_for_brokers(c, admin, {1, 2, 3, 4})
        create_partition0(admin, "replicated", [1, 2, 3])
        create_partition0(admin, "with-impostor", [1, 2, 4])

        # Replicas 2 and 3 fetch from 1 over TLS, logged in as User:broker (CLUSTER_ACTION as a super user).
        p0 = wait_in_sync(c, admin, "replicated", [1, 2, 3])

        producer = Producer(client(certs, **{"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}))
        acked = []
        produce_acked(producer, "replicated", range(200), acked)

        # Security lives in the metadata quorum: made through node 1, effective on nodes 2 and 3.
        node = {k: AdminClient(client(certs, **{"bootstrap.servers": c.bootstrap[k - 1]})) for k in (1, 2, 3)}
        upsert = UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"dave-secret")
        for future in node[1].alter_user_scram_credentials([upsert]).values():
            future.result(CLIENT_TIMEOUT_S)
        acl = AclBinding(ResourceType.TOPIC, "replicated", ResourcePatternType.LITERAL, "User:dave", "*",
                         AclOperation.DESCRIBE, AclPermissionType.ALLOW)
        node[1].create_acls([acl])[acl].result(CLIENT_TIMEOUT_S)

        def dave_sees_the_topic_through_node_2():
            dave = AdminClient(client(certs, "dave", "dave-secret", "SCRAM-SHA-256", **{"bootstrap.servers": c.bootstrap[1]}))
            try:
                return "replicated" in dave.list_topics(timeout=10).topics
            except Exception:  # the credential has not reached node 2 yet
                return False

        wait_until(dave_sees_the_topic_through_node_2, timeout=CLIENT_TIMEOUT_S,
                   message=lambda: f"dave's SCRAM login and ACL on node 2\n{c.log()}")
        everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                      AclOperation.ANY, AclPermissionType.ANY)
        assert [b.principal for b in node[3].describe_acls(everything).result(CLIENT_TIMEOUT_S)] == ["User:dave"]

        # The impostor is refused by the leader: it leaves the ISR it started in (after
        # replica.lag.time.max.ms) and never returns; it says why, once per 30 s.
        wait_until(lambda: refusals(c, 4, "SASL PLAIN login as broker"), timeout=CLIENT_TIMEOUT_S,
                   message=lambda: f"node 4 to log its refused login\n{c.log()}")
        wait_in_sync(c, admin, "with-impostor", [1, 2])
        time.sleep(3)
        assert partition0(admin, "with-impostor", [1, 2]) is not None, "node 4 stays out of the ISR"
        assert len(refusals(c, 4, "SASL PLAIN login as broker")) <= 2, refusals(c, 4, "SASL PLAIN login as broker")

        kill_leader(c, admin, "replicated", p0.leader)
        produce_acked(producer, "replicated", range(200, 250), acked)
        assert_reads_back(client(certs, **{"bootstrap.servers": bootstrap}), "replicated", acked)
    finally:
        c.stop()


def test_brokers_log_in_to_each_other_with_scram_once_their_user_exists(tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    scram_jaas = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                  f'username="broker" password="{BROKER_PASSWORD}";')
    properties = write_properties(str(tmp_path / "broker.properties"), [
        "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
        # PLAIN for the test's admin; the brokers log in with SCRAM.
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
        "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
        f"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram_jaas}",
    ])
    c = three_nodes("SASL_PLAINTEXT", properties)
    try:
        config = {"bootstrap.servers": ",".join(c.bootstrap), "security.protocol": "SASL_PLAINTEXT",
                  "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": PLAIN_USERS["admin"],
                  "socket.timeout.ms": 10000}
        admin = AdminClient(config)
        wait_for_brokers(c, admin, {1, 2, 3})
        create_partition0(admin, "replicated", [1, 2, 3])

        # No SCRAM user `broker` yet: the leader refuses the followers, which leave the ISR. (The
        # leader is node 1 unless node 1 was still fenced, catching up, when the topic was made.)
        leader = wait_for_leader(c, admin, "replicated")
        login = "SASL SCRAM-SHA-512 login as broker"
        for follower in {1, 2, 3} - {leader}:
            wait_until(lambda: refusals(c, follower, login), timeout=CLIENT_TIMEOUT_S,
                       message=lambda: f"node {follower} to log its refused login\n{c.log()}")
        p0 = wait_in_sync(c, admin, "replicated", [leader])

        upsert = UserScramCredentialUpsertion("broker", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                              BROKER_PASSWORD.encode())
        for future in admin.alter_user_scram_credentials([upsert]).values():
            future.result(CLIENT_TIMEOUT_S)
        wait_in_sync(c, admin, "replicated", [1, 2, 3])

        producer = Producer({**config, "acks": "all", "enable.idempotence": True})
        acked = []
        produce_acked(producer, "replicated", range(200), acked)
        kill_leader(c, admin, "replicated", p0.leader)
        assert_reads_back(config, "replicated", acked)
    finally:
        c.stop()


def mutual_tls_cluster(certs, tmp_path, super_users: list[str]) -> tuple[ScriptCluster, dict]:
    """Three nodes on an SSL listener that requires client certificates, with the authorizer on
    and nothing allowed without an ACL but to `super_users`; and the config of a client showing
    the client certificate."""
    properties = write_properties(str(tmp_path / "broker.properties"), [
        "listener.security.protocol.map=SSL:SSL,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name=SSL",
        "listener.name.ssl.ssl.client.auth=required",
        *tls_keys(certs),
        *AUTHORIZER,
        "allow.everyone.if.no.acl.found=false",
        f"super.users={';'.join(super_users)}",
    ])
    c = three_nodes("SSL", properties)
    return c, {"bootstrap.servers": ",".join(c.bootstrap), "security.protocol": "SSL",
               "ssl.ca.location": certs["ca"], "ssl.certificate.location": certs["client_cert"],
               "ssl.key.location": certs["client_key"], "socket.timeout.ms": 10000}


def test_brokers_are_known_by_their_certificate_subject_between_mutual_tls_listeners(certs, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    c, config = mutual_tls_cluster(certs, tmp_path, [certificate_principal(certs["broker"]),
                                                     certificate_principal(certs["client_cert"])])
    try:
        admin = AdminClient(config)
        wait_for_brokers(c, admin, {1, 2, 3})
        create_partition0(admin, "replicated", [1, 2, 3])
        producer = Producer({**config, "acks": "all", "enable.idempotence": True})
        acked = []
        produce_acked(producer, "replicated", range(200), acked)
        # The followers show the broker certificate; the leader lets them fetch (CLUSTER_ACTION)
        # as its subject, a super user, so they stay in the ISR they started in.
        time.sleep(LAG_WAIT_S)
        p0 = partition0(admin, "replicated", [1, 2, 3])
        assert p0 is not None, f"the followers stay in the ISR\n{c.log()}"
        kill_leader(c, admin, "replicated", p0.leader)
        assert_reads_back(config, "replicated", acked)
    finally:
        c.stop()


def test_brokers_whose_certificate_subject_lacks_cluster_action_stay_out_of_the_isr(certs, tmp_path):
    from confluent_kafka.admin import AdminClient

    c, config = mutual_tls_cluster(certs, tmp_path, [certificate_principal(certs["client_cert"])])
    try:
        admin = AdminClient(config)
        wait_for_brokers(c, admin, {1, 2, 3})
        create_partition0(admin, "replicated", [1, 2, 3])
        # The leader (node 1 unless it was still fenced then) refuses the others' fetches.
        leader = wait_for_leader(c, admin, "replicated")
        wait_in_sync(c, admin, "replicated", [leader])
        time.sleep(LAG_WAIT_S)
        assert partition0(admin, "replicated", [leader]) is not None, f"the followers stay out\n{c.log()}"
        # Each follower says why, at most once per 30 s.
        for node in {1, 2, 3} - {leader}:
            said = logged(c, node, "needs CLUSTER_ACTION on the cluster")
            assert 1 <= len(said) <= 2, f"node {node} logged {said}\n{c.log()}"
    finally:
        c.stop()
