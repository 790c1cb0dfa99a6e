"""``ssl.principal.mapping.rules`` on a mutual-TLS listener, as Kafka applies them: the subject
of the client certificate (``CN=client,O=Gregor dev`` for the client ``gregor certs`` makes)
becomes the principal the authorizer checks, and a certificate that no rule matches is refused.
confluent-kafka is the client; ACLs are made with its admin client through the PLAINTEXT
listener.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, ResourcePatternType,
                                   ResourceType)

from conftest import (AUTHORIZER, ck_producer, kp_create_topic, log_since, refused_start, secure_addr,
                      start_secured_broker, unique_topic, wait_until)

# The client certificate's subject, mapped by the rule below to "CLIENT".
SUBJECT = "CN=client,O=Gregor dev"
RULES = "RULE:^CN=([^,]+),O=Gregor dev$/$1/U,DEFAULT"


def mtls(certs):
    return {"security.protocol": "SSL", "ssl.ca.location": certs["ca"],
            "ssl.certificate.location": certs["client_cert"], "ssl.key.location": certs["client_key"]}


def broker_with(certs, *properties):
    """A secured broker (its MTLS listener asks for client certificates) with the authorizer on."""
    return start_secured_broker(certs, ["allow.everyone.if.no.acl.found=true", *properties], AUTHORIZER)


def allow_writes(b, topic, principal):
    """ALLOW of WRITE and DESCRIBE on ``topic`` for ``principal`` alone."""
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*", operation,
                           AclPermissionType.ALLOW) for operation in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    for future in admin.create_acls(bindings).values():
        future.result(timeout=30)


def produce_outcomes(bootstrap, topics, **config):
    """{topic: 0 or the error code} of one record produced to each topic."""
    outcomes = {}
    producer = ck_producer(bootstrap, **config, **{"message.timeout.ms": 15000})
    for topic in topics:
        producer.produce(topic, b"v", on_delivery=lambda err, msg: outcomes.__setitem__(msg.topic(), err.code() if err else 0))
    assert producer.flush(30) == 0
    return outcomes


@pytest.mark.parametrize("rules, allowed", [(RULES, "User:CLIENT"), (None, f"User:{SUBJECT}")],
                         ids=["mapped by the rules", "subject kept by default"])
def test_the_rules_name_the_principal_the_acls_apply_to(certs, rules, allowed):
    """Two topics, one writable by ``User:CLIENT``, the other by ``User:CN=client,O=Gregor dev``:
    the client certificate may write only the one its mapped principal names."""
    b = broker_with(certs, *([f"listener.name.mtls.ssl.principal.mapping.rules={rules}"] if rules else []))
    try:
        for_mapped, for_subject = unique_topic("mapped"), unique_topic("subject")
        for topic, principal in ((for_mapped, "User:CLIENT"), (for_subject, f"User:{SUBJECT}")):
            kp_create_topic(b.bootstrap, topic, 1)
            allow_writes(b, topic, principal)
        denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
        expected = {for_mapped: 0, for_subject: denied} if allowed == "User:CLIENT" else {for_mapped: denied, for_subject: 0}
        assert produce_outcomes(secure_addr(b, "MTLS"), [for_mapped, for_subject], **mtls(certs)) == expected
        wait_until(lambda: f"TLS client certificate of {allowed}" in log_since(b, 0), timeout=10,
                   message=f"the broker to log the principal {allowed}")
    finally:
        b.cleanup()


def test_a_certificate_no_rule_matches_is_refused_and_others_are_served(certs):
    """Without DEFAULT, a subject no rule matches has no principal: the connection is closed
    with the reason logged, while the broker's other listeners serve on."""
    b = broker_with(certs, "listener.name.mtls.ssl.principal.mapping.rules=RULE:^CN=admin,.*$/admin/")
    try:
        errors = []
        producer = ck_producer(secure_addr(b, "MTLS"), **mtls(certs), error_cb=errors.append,
                               **{"message.timeout.ms": 5000})
        producer.produce(unique_topic("refused"), b"v")
        assert producer.flush(20) == 0
        assert errors, "the client was let in"
        wait_until(lambda: f"no rule of ssl.principal.mapping.rules matches the client certificate's subject {SUBJECT}"
                   in log_since(b, 0), timeout=10, message="the logged reason")
        topic = unique_topic("served")
        kp_create_topic(b.bootstrap, topic, 1)
        assert produce_outcomes(b.bootstrap, [topic]) == {topic: 0}
    finally:
        b.cleanup()


def test_malformed_rules_refuse_the_start(certs):
    """A pattern that is no regular expression refuses the start, naming the setting and the rule."""
    stderr = refused_start(f"ssl.keystore.type=PEM\nssl.keystore.location={certs['broker']}\n"
                           "ssl.principal.mapping.rules=DEFAULT,RULE:^CN=(.*$/$1/\n", "SSL")
    assert 'ssl.principal.mapping.rules: rule 2 ("RULE:^CN=(.*$/$1/") has a bad pattern' in stderr, stderr
