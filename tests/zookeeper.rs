//! The ZooKeeper listener with hand-built jute frames: the handshake, the znodes Kafka 2.x
//! tools read and write (and the topics they become), plain znodes with ZooKeeper's
//! semantics, watches, and bad input that gets an error code or closes only its connection;
//! on a node of a cluster, the cluster's brokers, controller and partition states.

mod cluster;
mod common;
mod ports;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut};
use common::{name, Client, TIMEOUT};
use gregor::{Broker, BrokerHandle};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NONODE: i32 = -101;
const NODEEXISTS: i32 = -110;
const BADARGUMENTS: i32 = -8;
const BADVERSION: i32 = -103;
const NOTEMPTY: i32 = -111;
const UNIMPLEMENTED: i32 = -6;
const RUNTIMEINCONSISTENCY: i32 = -2;

const CREATE: i32 = 1;
const DELETE: i32 = 2;
const EXISTS: i32 = 3;
const GET_DATA: i32 = 4;
const SET_DATA: i32 = 5;
const GET_CHILDREN: i32 = 8;
const CHECK: i32 = 13;
const MULTI: i32 = 14;
const CREATE2: i32 = 15;

const NODE_CREATED: i32 = 1;
const NODE_DELETED: i32 = 2;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;

const EPHEMERAL: i32 = 1;
const SEQUENTIAL: i32 = 2;

async fn start_zk(dir: &Path) -> BrokerHandle {
    let mut config = common::config(dir);
    config.set("zookeeper.listener", "127.0.0.1:0").unwrap();
    Broker::start(config).await.expect("broker starts")
}

/// A jute record under construction.
#[derive(Default)]
struct Rec(Vec<u8>);

impl Rec {
    fn int(mut self, v: i32) -> Self {
        self.0.put_i32(v);
        self
    }
    fn long(mut self, v: i64) -> Self {
        self.0.put_i64(v);
        self
    }
    fn bool(mut self, v: bool) -> Self {
        self.0.put_u8(v as u8);
        self
    }
    fn buf(mut self, v: &[u8]) -> Self {
        self.0.put_i32(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    fn str(self, v: &str) -> Self {
        self.buf(v.as_bytes())
    }
    /// An open ACL: world:anyone, all permissions.
    fn acl(self) -> Self {
        self.int(1).int(31).str("world").str("anyone")
    }
    fn framed(self) -> Vec<u8> {
        let mut out = (self.0.len() as i32).to_be_bytes().to_vec();
        out.extend(self.0);
        out
    }
}

fn get_str(b: &mut &[u8]) -> String {
    let len = b.get_i32() as usize;
    let s = String::from_utf8(b[..len].to_vec()).unwrap();
    b.advance(len);
    s
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    czxid: i64,
    mzxid: i64,
    version: i32,
    cversion: i32,
    ephemeral_owner: i64,
    data_length: i32,
    num_children: i32,
    pzxid: i64,
}

fn get_stat(b: &mut &[u8]) -> Stat {
    let (czxid, mzxid, _ctime, _mtime) = (b.get_i64(), b.get_i64(), b.get_i64(), b.get_i64());
    let (version, cversion, _aversion) = (b.get_i32(), b.get_i32(), b.get_i32());
    let ephemeral_owner = b.get_i64();
    let (data_length, num_children, pzxid) = (b.get_i32(), b.get_i32(), b.get_i64());
    Stat { czxid, mzxid, version, cversion, ephemeral_owner, data_length, num_children, pzxid }
}

/// What the server answered to a connect request.
#[derive(Debug)]
struct Connected {
    timeout: i32,
    session: i64,
    passwd: Vec<u8>,
    read_only: Option<bool>,
}

struct Zk {
    stream: TcpStream,
    xid: i32,
    session: i64,
    /// Watch events (type, path) that arrived while waiting for a reply.
    events: VecDeque<(i32, String)>,
}

impl Zk {
    async fn connect(addr: SocketAddr) -> Zk {
        let (zk, c) = Zk::handshake(addr, 0, &[0; 16], 30_000, true).await;
        Zk { session: c.expect("session granted").session, ..zk }
    }

    /// Sends a connect request; `None` if the server closed without answering.
    async fn handshake(addr: SocketAddr, session: i64, passwd: &[u8], timeout: i32, read_only: bool) -> (Zk, Option<Connected>) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let mut zk = Zk { stream, xid: 0, session: 0, events: VecDeque::new() };
        let mut request = Rec::default().int(0).long(0).int(timeout).long(session).buf(passwd);
        if read_only {
            request = request.bool(false);
        }
        zk.stream.write_all(&request.framed()).await.unwrap();
        let Some(frame) = zk.read_frame().await else { return (zk, None) };
        let mut b = &frame[..];
        assert_eq!(b.get_i32(), 0, "protocol version");
        let (timeout, session) = (b.get_i32(), b.get_i64());
        let len = b.get_i32() as usize;
        let passwd = b[..len].to_vec();
        b.advance(len);
        let read_only = (!b.is_empty()).then(|| b.get_u8() != 0);
        assert!(b.is_empty());
        (zk, Some(Connected { timeout, session, passwd, read_only }))
    }

    async fn read_frame(&mut self) -> Option<Vec<u8>> {
        let read = async {
            let len = self.stream.read_i32().await.ok()?;
            let mut buf = vec![0; len as usize];
            self.stream.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        tokio::time::timeout(TIMEOUT, read).await.expect("server answered in time")
    }

    async fn is_closed(&mut self) -> bool {
        self.read_frame().await.is_none()
    }

    /// Sends a request and returns (err, zxid, body) of its reply, queueing events on the way.
    async fn call_xid(&mut self, xid: i32, opcode: i32, body: Rec) -> (i32, i64, Vec<u8>) {
        let frame = Rec::default().int(xid).int(opcode).0.into_iter().chain(body.0).collect();
        self.stream.write_all(&Rec(frame).framed()).await.unwrap();
        loop {
            let frame = self.read_frame().await.expect("a reply, not a closed connection");
            let mut b = &frame[..];
            let (got_xid, zxid, err) = (b.get_i32(), b.get_i64(), b.get_i32());
            if got_xid == -1 {
                let (kind, _state) = (b.get_i32(), b.get_i32());
                self.events.push_back((kind, get_str(&mut b)));
                continue;
            }
            assert_eq!(got_xid, xid, "replies come in request order");
            return (err, zxid, b.to_vec());
        }
    }

    async fn call(&mut self, opcode: i32, body: Rec) -> (i32, Vec<u8>) {
        self.xid += 1;
        let (err, _, body) = self.call_xid(self.xid, opcode, body).await;
        (err, body)
    }

    async fn create_mode(&mut self, path: &str, data: &[u8], flags: i32) -> Result<String, i32> {
        match self.call(CREATE, Rec::default().str(path).buf(data).acl().int(flags)).await {
            (0, body) => Ok(get_str(&mut &body[..])),
            (err, _) => Err(err),
        }
    }

    async fn create(&mut self, path: &str, data: &[u8]) -> Result<String, i32> {
        self.create_mode(path, data, 0).await
    }

    async fn delete(&mut self, path: &str, version: i32) -> i32 {
        self.call(DELETE, Rec::default().str(path).int(version)).await.0
    }

    async fn exists(&mut self, path: &str, watch: bool) -> Result<Stat, i32> {
        match self.call(EXISTS, Rec::default().str(path).bool(watch)).await {
            (0, body) => Ok(get_stat(&mut &body[..])),
            (err, _) => Err(err),
        }
    }

    async fn get(&mut self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), i32> {
        match self.call(GET_DATA, Rec::default().str(path).bool(watch)).await {
            (0, body) => {
                let mut b = &body[..];
                let len = b.get_i32().max(0) as usize;
                let data = b[..len].to_vec();
                b.advance(len);
                Ok((data, get_stat(&mut b)))
            }
            (err, _) => Err(err),
        }
    }

    async fn get_string(&mut self, path: &str) -> String {
        String::from_utf8(self.get(path, false).await.unwrap_or_else(|e| panic!("get {path}: {e}")).0).unwrap()
    }

    async fn set(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, i32> {
        match self.call(SET_DATA, Rec::default().str(path).buf(data).int(version)).await {
            (0, body) => Ok(get_stat(&mut &body[..])),
            (err, _) => Err(err),
        }
    }

    async fn children(&mut self, path: &str, watch: bool) -> Result<Vec<String>, i32> {
        match self.call(GET_CHILDREN, Rec::default().str(path).bool(watch)).await {
            (0, body) => {
                let mut b = &body[..];
                let mut names: Vec<String> = (0..b.get_i32()).map(|_| get_str(&mut b)).collect();
                names.sort();
                Ok(names)
            }
            (err, _) => Err(err),
        }
    }

    /// Runs a multi; returns each result's (type, err).
    async fn multi(&mut self, ops: Vec<(i32, Rec)>) -> Vec<(i32, i32)> {
        let mut body = Rec::default();
        for (opcode, op) in ops {
            body = body.int(opcode).bool(false).int(-1);
            body.0.extend(op.0);
        }
        let (err, reply) = self.call(MULTI, body.int(-1).bool(true).int(-1)).await;
        assert_eq!(err, 0, "a multi's own header reports success; results carry errors");
        let mut b = &reply[..];
        let mut results = vec![];
        loop {
            let (kind, done, err) = (b.get_i32(), b.get_u8() != 0, b.get_i32());
            if done {
                assert!(b.is_empty());
                return results;
            }
            match kind {
                CREATE => drop(get_str(&mut b)),
                SET_DATA => drop(get_stat(&mut b)),
                -1 => assert_eq!(b.get_i32(), err),
                _ => {}
            }
            results.push((kind, err));
        }
    }

    async fn close(mut self) {
        assert_eq!(self.call(-11, Rec::default()).await.0, 0);
        assert!(self.is_closed().await);
    }

    /// The next watch event, waiting for it if none has arrived yet.
    async fn next_event(&mut self) -> (i32, String) {
        if let Some(e) = self.events.pop_front() {
            return e;
        }
        let frame = self.read_frame().await.expect("a watch event");
        let mut b = &frame[..];
        assert_eq!((b.get_i32(), b.get_i64(), b.get_i32()), (-1, -1, 0), "notification header");
        let (kind, state) = (b.get_i32(), b.get_i32());
        assert_eq!(state, 3, "SyncConnected");
        (kind, get_str(&mut b))
    }
}

async fn kafka_topic_partitions(c: &mut Client, topic: &str) -> Result<usize, i16> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let r = c.call(request, 12).await;
    match r.topics[0].error_code {
        0 => Ok(r.topics[0].partitions.len()),
        e => Err(e),
    }
}

#[tokio::test]
async fn handshake_with_and_without_the_read_only_flag_and_session_resumption() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().expect("listener configured");
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = common::start(plain_dir.path()).await;
    assert!(plain.zookeeper_addr().is_none(), "off unless configured");
    plain.shutdown().await;

    let (_, c) = Zk::handshake(addr, 0, &[0; 16], 1_000, false).await;
    let c = c.unwrap();
    assert_eq!(c.read_only, None, "a 3.3-style request gets a 3.3-style answer");
    assert_eq!(c.timeout, 4_000, "timeout raised to the minimum");
    assert_ne!(c.session, 0);
    assert_eq!(c.passwd.len(), 16);

    let (mut zk, c) = Zk::handshake(addr, 0, &[0; 16], 100_000, true).await;
    let c = c.unwrap();
    assert_eq!((c.read_only, c.timeout), (Some(false), 40_000));
    let (err, zxid, body) = zk.call_xid(-2, 11, Rec::default()).await;
    assert_eq!((err, body.len()), (0, 0), "ping");
    assert!(zxid >= 0);

    // The same session from a second connection; the first connection is closed.
    let (mut again, resumed) = Zk::handshake(addr, c.session, &c.passwd, 30_000, true).await;
    assert_eq!(resumed.unwrap().session, c.session);
    assert!(zk.is_closed().await);
    again.session = c.session;
    assert_eq!(again.exists("/", false).await.unwrap().ephemeral_owner, 0);

    let (mut refused, expired) = Zk::handshake(addr, c.session, &[1; 16], 30_000, true).await;
    let expired = expired.unwrap();
    assert_eq!((expired.timeout, expired.session), (0, 0), "a bad password reads as an expired session");
    assert!(refused.is_closed().await);
    broker.shutdown().await;
}

/// A registration maps each listener to its security protocol, and its host and port are the
/// PLAINTEXT listener's (null and -1 without one), as Kafka registered brokers.
#[tokio::test]
async fn broker_registrations_carry_each_listeners_security_protocol() {
    for (listeners, plaintext) in [("SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0", true), ("SASL_PLAINTEXT://127.0.0.1:0", false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = common::config(dir.path());
        config.set_all([("listeners", listeners), ("zookeeper.listener", "127.0.0.1:0"), ("sasl.enabled.mechanisms", "SCRAM-SHA-256")]).unwrap();
        let broker = Broker::start(config).await.expect("broker starts");
        let mut zk = Zk::connect(broker.zookeeper_addr().unwrap()).await;
        let registration: serde_json::Value = serde_json::from_str(&zk.get_string("/brokers/ids/1").await).unwrap();
        let map = &registration["listener_security_protocol_map"];
        assert_eq!(map["SASL_PLAINTEXT"], "SASL_PLAINTEXT", "{registration}");
        match broker.listener_addr("PLAINTEXT") {
            Some(addr) if plaintext => {
                assert_eq!(map["PLAINTEXT"], "PLAINTEXT");
                assert_eq!((registration["host"].as_str(), registration["port"].as_i64()), (Some("127.0.0.1"), Some(i64::from(addr.port()))));
            }
            None if !plaintext => assert_eq!((registration["host"].is_null(), registration["port"].as_i64()), (true, Some(-1)), "{registration}"),
            other => panic!("listeners {listeners} bound {other:?}"),
        }
        broker.shutdown().await;
    }
}

#[tokio::test]
async fn kafka_2x_topic_tool_flow_creates_alters_and_deletes_topics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let mut zk = Zk::connect(broker.zookeeper_addr().unwrap()).await;
    let mut kafka = Client::connect(&broker).await;

    // What `kafka-topics --zookeeper ... --create` reads first.
    assert_eq!(zk.children("/brokers/ids", false).await.unwrap(), vec!["1"]);
    let registration = zk.get_string("/brokers/ids/1").await;
    let endpoint = format!("\"endpoints\":[\"PLAINTEXT://{}\"]", broker.advertised());
    assert!(registration.contains(&endpoint), "{registration}");
    assert!(registration.contains(&format!("\"port\":{}", broker.local_addr().port())), "{registration}");
    assert!(zk.get_string("/cluster/id").await.starts_with("{\"version\":\"1\",\"id\":\""));
    assert!(zk.get_string("/controller").await.contains("\"brokerid\":1"));
    assert_eq!(zk.exists("/brokers/topics/tuzisir", false).await, Err(NONODE));
    assert_eq!(zk.exists("/admin/delete_topics/tuzisir", false).await, Err(NONODE));

    // Then it writes the configs (setData, falling back to create) and the assignment.
    let configs = br#"{"version":1,"config":{"retention.ms":"12345"}}"#;
    assert_eq!(zk.set("/config/topics/tuzisir", configs, -1).await, Err(NONODE));
    assert_eq!(zk.create("/config/topics/tuzisir", configs).await.as_deref(), Ok("/config/topics/tuzisir"));
    let assignment = br#"{"version":1,"partitions":{"1":[1],"0":[1]}}"#;
    assert_eq!(zk.create("/brokers/topics/tuzisir", assignment).await.as_deref(), Ok("/brokers/topics/tuzisir"));
    assert_eq!(kafka_topic_partitions(&mut kafka, "tuzisir").await, Ok(2));
    assert_eq!(zk.create("/brokers/topics/tuzisir", assignment).await, Err(NODEEXISTS));

    assert_eq!(zk.get_string("/brokers/topics/tuzisir").await, r#"{"version":1,"partitions":{"0":[1],"1":[1]}}"#);
    assert_eq!(zk.children("/brokers/topics/tuzisir/partitions", false).await.unwrap(), vec!["0", "1"]);
    assert_eq!(
        zk.get_string("/brokers/topics/tuzisir/partitions/1/state").await,
        r#"{"controller_epoch":1,"leader":1,"version":1,"leader_epoch":0,"isr":[1]}"#
    );
    assert_eq!(zk.get_string("/config/topics/tuzisir").await, r#"{"version":1,"config":{"retention.ms":"12345"}}"#);

    // kafka-configs --alter: setData replaces the configs; the alter --partitions path adds partitions.
    let altered = br#"{"version":1,"config":{"cleanup.policy":"compact"}}"#;
    let stat = zk.set("/config/topics/tuzisir", altered, -1).await.unwrap();
    assert_eq!(stat.version, 1);
    assert_eq!(zk.get_string("/config/topics/tuzisir").await, r#"{"version":1,"config":{"cleanup.policy":"compact"}}"#);
    let three = br#"{"version":1,"partitions":{"0":[1],"1":[1],"2":[1]}}"#;
    zk.set("/brokers/topics/tuzisir", three, -1).await.unwrap();
    assert_eq!(kafka_topic_partitions(&mut kafka, "tuzisir").await, Ok(3));
    assert_eq!(zk.set("/brokers/topics/tuzisir", assignment, -1).await, Err(BADARGUMENTS), "partitions never shrink");

    // A topic made through Kafka is a znode at once; one deleted through Kafka is gone at once.
    assert_eq!(kafka.create_topic("from-kafka", 3).await, 0);
    assert_eq!(zk.children("/brokers/topics", false).await.unwrap(), vec!["from-kafka", "tuzisir"]);
    assert_eq!(zk.children("/brokers/topics/from-kafka/partitions", false).await.unwrap(), vec!["0", "1", "2"]);
    let deleted = kafka.call(DeleteTopicsRequest::default().with_topic_names(vec![name("from-kafka")]).with_timeout_ms(5000), 4).await;
    assert_eq!(deleted.responses[0].error_code, 0);
    assert_eq!(zk.exists("/brokers/topics/from-kafka", false).await, Err(NONODE));
    assert_eq!(zk.exists("/config/topics/from-kafka", false).await, Err(NONODE));

    assert_eq!(common::simple_commit(&mut kafka, "readers", "tuzisir", 7, -1).await, 0);
    // kafka-topics --delete: the marker deletes the topic and never stays.
    assert_eq!(zk.create("/admin/delete_topics/tuzisir", b"").await.as_deref(), Ok("/admin/delete_topics/tuzisir"));
    assert_eq!(zk.children("/admin/delete_topics", false).await.unwrap(), Vec::<String>::new());
    assert_eq!(zk.exists("/brokers/topics/tuzisir", false).await, Err(NONODE));
    assert_eq!(zk.exists("/config/topics/tuzisir", false).await, Err(NONODE));
    assert_eq!(kafka_topic_partitions(&mut kafka, "tuzisir").await, Err(ResponseError::UnknownTopicOrPartition.code()));
    assert_eq!(zk.create("/admin/delete_topics/tuzisir", b"").await, Err(NONODE));
    // Its committed offsets went with it: recreated, the topic starts clean for the group.
    assert_eq!(kafka.create_topic("tuzisir", 1).await, 0);
    assert_eq!(common::committed(&mut kafka, "readers", "tuzisir").await.0, -1);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_topic_znodes_and_requests_get_zookeeper_errors() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let mut zk = Zk::connect(broker.zookeeper_addr().unwrap()).await;
    let mut kafka = Client::connect(&broker).await;

    for bad in [&b"{not json"[..], br#"{"version":1}"#, br#"{"version":1,"partitions":{"0":[2]}}"#, br#"{"version":1,"partitions":{"0":[1,1]}}"#] {
        assert_eq!(zk.create("/brokers/topics/bad", bad).await, Err(BADARGUMENTS), "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(zk.create("/brokers/topics/bad!name", br#"{"version":1,"partitions":{"0":[1]}}"#).await, Err(BADARGUMENTS));
    assert_eq!(zk.exists("/brokers/topics/bad", false).await, Err(NONODE));
    assert_eq!(kafka_topic_partitions(&mut kafka, "bad").await, Err(ResponseError::UnknownTopicOrPartition.code()));
    for bad in [&b"[]"[..], br#"{"version":1,"config":{"retention.ms":5}}"#, br#"{"version":1,"config":{"no.such.config":"1"}}"#] {
        assert_eq!(zk.create("/config/topics/bad", bad).await, Err(BADARGUMENTS), "{}", String::from_utf8_lossy(bad));
    }
    // Configs waiting for a topic are checked when they change too.
    zk.create("/config/topics/later", br#"{"version":1,"config":{}}"#).await.unwrap();
    assert_eq!(zk.set("/config/topics/later", b"{", -1).await, Err(BADARGUMENTS));
    assert_eq!(zk.get_string("/config/topics/later").await, r#"{"version":1,"config":{}}"#);

    assert_eq!(kafka.create_topic("t", 1).await, 0);
    assert_eq!(zk.create("/brokers/topics/t", br#"{"version":1,"partitions":{"0":[1]}}"#).await, Err(NODEEXISTS));
    assert_eq!(zk.create("/config/topics/t", br#"{"version":1,"config":{}}"#).await, Err(NODEEXISTS));
    assert_eq!(zk.set("/config/topics/t", br#"{"version":1,"config":{"retention.ms":"x"}}"#, -1).await, Err(BADARGUMENTS));
    assert_eq!(zk.set("/config/topics/t", br#"{"version":1,"config":{}}"#, 7).await, Err(BADVERSION));
    assert_eq!(zk.delete("/brokers/topics/t/partitions/0/state", -1).await, BADARGUMENTS, "the view is read-only");
    assert_eq!(zk.set("/brokers/ids/1", b"{}", -1).await, Err(BADARGUMENTS));
    assert_eq!(zk.create("/brokers/topics/t/partitions/5", b"").await, Err(BADARGUMENTS));
    assert_eq!(zk.delete("/brokers", -1).await, NOTEMPTY);
    assert_eq!(zk.delete("/missing", -1).await, NONODE);
    assert_eq!(zk.get("/missing", false).await, Err(NONODE));
    assert_eq!(zk.set("/missing", b"", -1).await, Err(NONODE));
    assert_eq!(zk.create("/missing/child", b"").await, Err(NONODE));
    assert_eq!(zk.create("relative", b"").await, Err(BADARGUMENTS));
    assert_eq!(zk.create("/trailing/", b"").await, Err(BADARGUMENTS));
    assert_eq!(zk.create_mode("/flags", b"", 99).await, Err(BADARGUMENTS));
    assert_eq!(zk.call(999, Rec::default().str("/")).await.0, UNIMPLEMENTED);
    assert_eq!(zk.call(CHECK, Rec::default().str("/").int(0)).await.0, UNIMPLEMENTED, "check only inside multi");
    // Topic changes cannot be rolled back, so a multi may not make them.
    let create_topic = Rec::default().str("/brokers/topics/m").buf(br#"{"version":1,"partitions":{"0":[1]}}"#).acl().int(0);
    assert_eq!(zk.multi(vec![(CREATE, create_topic)]).await, vec![(-1, BADARGUMENTS)]);
    assert_eq!(kafka_topic_partitions(&mut kafka, "m").await, Err(ResponseError::UnknownTopicOrPartition.code()));
    zk.exists("/", false).await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn plain_znodes_versions_ephemeral_and_sequential_nodes_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().unwrap();
    let mut zk = Zk::connect(addr).await;

    assert_eq!(zk.create("/app", b"v0").await.as_deref(), Ok("/app"));
    assert_eq!(zk.create("/app", b"again").await, Err(NODEEXISTS));
    let (data, created) = zk.get("/app", false).await.unwrap();
    assert_eq!((data.as_slice(), created.version, created.data_length), (&b"v0"[..], 0, 2));
    assert_eq!(created.czxid, created.mzxid);
    let updated = zk.set("/app", b"v1", 0).await.unwrap();
    assert_eq!(updated.version, 1);
    assert!(updated.mzxid > created.mzxid, "zxids increase");
    assert_eq!(zk.set("/app", b"v2", 0).await, Err(BADVERSION));
    assert_eq!(zk.delete("/app", 0).await, BADVERSION);

    let mut owner = Zk::connect(addr).await;
    assert_eq!(owner.create_mode("/app/lock", b"", EPHEMERAL).await.as_deref(), Ok("/app/lock"));
    assert_eq!(owner.create_mode("/app/lock/child", b"", 0).await, Err(-108), "no children for ephemerals");
    assert_eq!(zk.exists("/app/lock", false).await.unwrap().ephemeral_owner, owner.session);
    assert_eq!(zk.create_mode("/app/seq-", b"", SEQUENTIAL).await.as_deref(), Ok("/app/seq-0000000001"));
    assert_eq!(zk.create_mode("/app/seq-", b"", SEQUENTIAL | EPHEMERAL).await.as_deref(), Ok("/app/seq-0000000002"));
    assert_eq!(zk.create_mode("/app/", b"", SEQUENTIAL).await.as_deref(), Ok("/app/0000000003"));
    let parent = zk.exists("/app", false).await.unwrap();
    assert_eq!((parent.num_children, parent.cversion), (4, 4));
    assert_eq!(zk.delete("/app", -1).await, NOTEMPTY);

    // create2 answers with the stat too.
    let (err, body) = zk.call(CREATE2, Rec::default().str("/app/two").buf(b"xyz").acl().int(0)).await;
    assert_eq!(err, 0);
    let mut b = &body[..];
    assert_eq!(get_str(&mut b), "/app/two");
    assert_eq!(get_stat(&mut b).data_length, 3);

    owner.close().await;
    assert_eq!(zk.exists("/app/lock", false).await, Err(NONODE), "ephemeral node died with its session");
    assert!(zk.exists("/app/seq-0000000001", false).await.is_ok());
    let before_restart = zk.exists("/app", false).await.unwrap();
    drop(zk);
    broker.shutdown().await;

    let broker = start_zk(dir.path()).await;
    let mut zk = Zk::connect(broker.zookeeper_addr().unwrap()).await;
    let (data, stat) = zk.get("/app", false).await.unwrap();
    assert_eq!((data.as_slice(), stat), (&b"v1"[..], Stat { num_children: 3, ..before_restart }));
    assert_eq!(zk.exists("/app/seq-0000000002", false).await, Err(NONODE), "ephemeral nodes do not outlive a restart");
    let later = zk.create_mode("/app/seq-", b"", SEQUENTIAL).await.unwrap();
    assert_eq!(later, "/app/seq-0000000006", "sequence numbers go on from the stored cversion");
    assert!(zk.exists(&later, false).await.unwrap().czxid > before_restart.pzxid);
    broker.shutdown().await;
}

#[tokio::test]
async fn multi_applies_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let mut zk = Zk::connect(broker.zookeeper_addr().unwrap()).await;
    zk.create("/m", b"").await.unwrap();

    let create = |p: &str| (CREATE, Rec::default().str(p).buf(b"x").acl().int(0));
    let results = zk
        .multi(vec![create("/m/a"), (SET_DATA, Rec::default().str("/m").buf(b"new").int(-1)), (CHECK, Rec::default().str("/m").int(5)), create("/m/b")])
        .await;
    assert_eq!(results, vec![(-1, 0), (-1, 0), (-1, BADVERSION), (-1, RUNTIMEINCONSISTENCY)]);
    assert_eq!(zk.exists("/m/a", false).await, Err(NONODE), "rolled back");
    let (data, stat) = zk.get("/m", false).await.unwrap();
    assert_eq!((data.len(), stat.version, stat.cversion), (0, 0, 0));

    let results = zk
        .multi(vec![
            create("/m/a"),
            (CHECK, Rec::default().str("/m").int(0)),
            (SET_DATA, Rec::default().str("/m").buf(b"new").int(0)),
            (DELETE, Rec::default().str("/m/a").int(0)),
        ])
        .await;
    assert_eq!(results, vec![(CREATE, 0), (CHECK, 0), (SET_DATA, 0), (DELETE, 0)]);
    let (data, stat) = zk.get("/m", false).await.unwrap();
    assert_eq!((data.as_slice(), stat.version, stat.cversion, stat.num_children), (&b"new"[..], 1, 2, 0));
    broker.shutdown().await;
}

#[tokio::test]
async fn watches_fire_once_for_znode_changes_and_kafka_topic_changes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().unwrap();
    let mut watcher = Zk::connect(addr).await;
    let mut writer = Zk::connect(addr).await;

    writer.create("/w", b"").await.unwrap();
    watcher.get("/w", true).await.unwrap();
    watcher.children("/w", true).await.unwrap();
    assert_eq!(watcher.exists("/w/new", true).await, Err(NONODE));
    writer.set("/w", b"1", -1).await.unwrap();
    assert_eq!(watcher.next_event().await, (NODE_DATA_CHANGED, "/w".to_string()));
    writer.create("/w/new", b"").await.unwrap();
    let mut events = vec![watcher.next_event().await, watcher.next_event().await];
    events.sort();
    assert_eq!(events, vec![(NODE_CREATED, "/w/new".to_string()), (NODE_CHILDREN_CHANGED, "/w".to_string())]);
    // Fired watches are gone: this change notifies nobody, so the next event is the topic's.
    writer.set("/w", b"2", -1).await.unwrap();

    watcher.children("/brokers/topics", true).await.unwrap();
    let mut kafka = Client::connect(&broker).await;
    assert_eq!(kafka.create_topic("watched", 1).await, 0);
    assert_eq!(watcher.next_event().await, (NODE_CHILDREN_CHANGED, "/brokers/topics".to_string()));
    assert_eq!(watcher.children("/brokers/topics", false).await.unwrap(), vec!["watched"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn set_watches_fires_missed_changes_and_registers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().unwrap();
    let mut writer = Zk::connect(addr).await;
    writer.create("/sw", b"").await.unwrap();
    let seen = writer.exists("/sw", false).await.unwrap().mzxid;
    writer.create("/sw2", b"").await.unwrap();

    // What a client that last saw `seen` re-registers after reconnecting.
    let mut watcher = Zk::connect(addr).await;
    let strings = |r: Rec, items: &[&str]| items.iter().fold(r.int(items.len() as i32), |r, s| r.str(s));
    let body = strings(strings(strings(Rec::default().long(seen), &["/sw", "/sw2", "/gone"]), &["/sw"]), &["/sw"]);
    let (err, _, _) = watcher.call_xid(-8, 101, body).await;
    assert_eq!(err, 0);
    let mut fired: Vec<_> = watcher.events.drain(..).collect();
    fired.sort();
    assert_eq!(fired, vec![(NODE_CREATED, "/sw".to_string()), (NODE_DELETED, "/gone".to_string()), (NODE_DATA_CHANGED, "/sw2".to_string())]);

    writer.set("/sw", b"x", -1).await.unwrap();
    assert_eq!(watcher.next_event().await, (NODE_DATA_CHANGED, "/sw".to_string()));
    writer.create("/sw/child", b"").await.unwrap();
    assert_eq!(watcher.next_event().await, (NODE_CHILDREN_CHANGED, "/sw".to_string()));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_dropped_session_keeps_its_ephemeral_nodes_until_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().unwrap();
    let (mut owner, c) = Zk::handshake(addr, 0, &[0; 16], 4_000, true).await;
    let c = c.unwrap();
    owner.create_mode("/held", b"", EPHEMERAL).await.unwrap();
    drop(owner);

    // Reconnecting in time resumes the session with its nodes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (resumed, again) = Zk::handshake(addr, c.session, &c.passwd, 4_000, true).await;
    assert_eq!(again.unwrap().session, c.session);
    drop(resumed);

    let mut other = Zk::connect(addr).await;
    assert!(other.exists("/held", true).await.is_ok());
    let gone = tokio::time::timeout(Duration::from_secs(8), other.next_event()).await.expect("expired in time");
    assert_eq!(gone, (NODE_DELETED, "/held".to_string()));
    assert_eq!(other.exists("/held", false).await, Err(NONODE));
    let (mut late, expired) = Zk::handshake(addr, c.session, &c.passwd, 4_000, true).await;
    assert_eq!(expired.unwrap().timeout, 0, "the session has expired");
    assert!(late.is_closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_zk(dir.path()).await;
    let addr = broker.zookeeper_addr().unwrap();
    let mut healthy = Zk::connect(addr).await;

    // A length far beyond jute.maxbuffer, before and after the handshake.
    let mut huge = TcpStream::connect(addr).await.unwrap();
    huge.write_all(&0x7fff_ffffi32.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(tokio::time::timeout(TIMEOUT, huge.read(&mut buf)).await.unwrap().unwrap_or(0), 0);
    let mut after = Zk::connect(addr).await;
    after.stream.write_all(&(2i32 << 20).to_be_bytes()).await.unwrap();
    assert!(after.is_closed().await);

    // A connect request that is too short, and a request whose string length runs past its frame.
    let mut short = TcpStream::connect(addr).await.unwrap();
    short.write_all(&Rec::default().int(0).long(0).framed()).await.unwrap();
    assert_eq!(tokio::time::timeout(TIMEOUT, short.read(&mut buf)).await.unwrap().unwrap_or(0), 0);
    let mut garbage = Zk::connect(addr).await;
    garbage.stream.write_all(&Rec::default().int(1).int(GET_DATA).int(1000).framed()).await.unwrap();
    assert!(garbage.is_closed().await);
    let mut empty = Zk::connect(addr).await;
    empty.stream.write_all(&Rec::default().framed()).await.unwrap();
    assert!(empty.is_closed().await);

    assert_eq!(healthy.children("/", false).await.unwrap(), vec!["admin", "brokers", "cluster", "config", "controller", "controller_epoch", "zookeeper"]);
    broker.shutdown().await;
}

/// A node of a three-node cluster serves the cluster in its ZooKeeper view: every live broker,
/// the active controller, and each partition's replicas, leader and ISR, which follow a change
/// of leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_shows_the_cluster_in_its_zookeeper_view() {
    use cluster::{eventually, TestCluster, FAST};
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreateTopicsRequest};

    let patience = Duration::from_secs(20);
    let mut cluster = TestCluster::start(3, 0, &[FAST, &[("replica.lag.time.max.ms", "2000")]].concat());
    let zk_port = ports::free_port();
    cluster.kill(1);
    cluster.start_node_with(1, &[("zookeeper.listener", &format!("127.0.0.1:{zk_port}"))]);
    let zk_addr: SocketAddr = ([127, 0, 0, 1], zk_port).into();
    eventually(patience, "node 1 to list three brokers under /brokers/ids", || async {
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(zk_addr)).await.ok()?.ok()?;
        let mut zk = Zk::connect(zk_addr).await;
        let mut ids = zk.children("/brokers/ids", false).await.ok()?;
        ids.sort();
        (ids == ["1", "2", "3"]).then_some(())
    })
    .await;
    let mut zk = Zk::connect(zk_addr).await;
    let controller: serde_json::Value = serde_json::from_str(&zk.get_string("/controller").await).unwrap();
    assert!((1..=3).contains(&controller["brokerid"].as_i64().unwrap()), "{controller}");

    // Again while node 2 still has node 1 fenced from before its restart.
    eventually(patience, "the topic created through node 2", || async {
        let topic = CreatableTopic::default().with_name(name("spread")).with_num_partitions(1).with_replication_factor(3);
        let r = Client::connect_to(cluster.client_addr(2)).await.call(CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(10_000), 7).await;
        let code = r.topics[0].error_code;
        (code == 0 || code == ResponseError::TopicAlreadyExists.code()).then_some(())
    })
    .await;
    let state = |zk_addr| async move {
        let mut zk = Zk::connect(zk_addr).await;
        // Not there until node 1 has published the topic.
        let assignment: serde_json::Value = serde_json::from_slice(&zk.get("/brokers/topics/spread", false).await.ok()?.0).ok()?;
        let state: serde_json::Value = serde_json::from_slice(&zk.get("/brokers/topics/spread/partitions/0/state", false).await.ok()?.0).ok()?;
        let mut replicas: Vec<i64> = assignment["partitions"]["0"].as_array()?.iter().filter_map(|v| v.as_i64()).collect();
        replicas.sort();
        Some((replicas, state["leader"].as_i64()?, state["isr"].as_array()?.len()))
    };
    let (replicas, leader, _) = eventually(patience, "the topic's three replicas in sync in the view", || async {
        state(zk_addr).await.filter(|(_, _, isr)| *isr == 3)
    })
    .await;
    assert_eq!(replicas, [1, 2, 3]);
    // A broker dies (the leader, unless node 1 leads: it serves the view): the view shows the
    // partition's new leader or smaller ISR, and the broker's registration goes.
    let victim = if leader != 1 { leader } else { 2 };
    cluster.kill(victim as i32);
    eventually(patience, "the partition without the dead broker in the view", || async {
        state(zk_addr).await.filter(|(_, l, isr)| *l != victim && *l > 0 && *isr == 2)
    })
    .await;
    eventually(patience, "the dead broker gone from /brokers/ids", || async {
        let ids = Zk::connect(zk_addr).await.children("/brokers/ids", false).await.ok()?;
        (ids.len() == 2 && !ids.contains(&victim.to_string())).then_some(())
    })
    .await;
}
