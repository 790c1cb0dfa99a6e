//! The shared cluster harness: N real `gregor` processes on free ports with one formatted
//! cluster id, each killed (SIGKILL) or restarted at will; every process is killed when the
//! harness is dropped. Fault tests build on it. With [`TestCluster::start_in_namespaces`] each
//! node runs in a network namespace of its own ([`netns`]), and the test can cut links.

#![allow(dead_code)]

pub mod netns;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use netns::Network;

/// Settings every node gets: quick heartbeats and fencing, so tests wait seconds, not minutes.
pub const FAST: &[(&str, &str)] = &[("broker.heartbeat.interval.ms", "200"), ("broker.session.timeout.ms", "2000")];

pub struct TestCluster {
    dir: tempfile::TempDir,
    pub cluster_id: String,
    /// Per node (id = index + 1): its client and controller ports, and its process if running.
    nodes: Vec<NodeSlot>,
    voters: String,
    settings: Vec<(String, String)>,
    /// Dropped after the nodes are killed (the `Drop` impl runs before the fields drop).
    network: Option<Network>,
}

struct NodeSlot {
    /// The node's listeners bind this address: loopback, or its namespace's.
    host: IpAddr,
    client_port: u16,
    controller_port: u16,
    /// `process.roles`.
    roles: &'static str,
    process: Option<Child>,
}

pub fn gregor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gregor"))
}

impl TestCluster {
    /// Formats and starts `voters` broker,controller nodes and `brokers` broker-only ones.
    pub fn start(voters: usize, brokers: usize, settings: &[(&str, &str)]) -> TestCluster {
        Self::started(Self::formatted(voters, brokers, settings))
    }

    /// Formats and starts `controllers` dedicated controllers (`process.roles=controller`,
    /// nodes 1..) and `brokers` broker-only nodes after them.
    pub fn start_dedicated(controllers: usize, brokers: usize, settings: &[(&str, &str)]) -> TestCluster {
        Self::started(Self::formatted_as(None, &[("controller", controllers), ("broker", brokers)], settings))
    }

    /// [`TestCluster::start`] with each node in a network namespace of its own, so the test
    /// can cut links ([`TestCluster::network`]); `None`, said loudly, where this process may
    /// not create namespaces (not root).
    pub fn start_in_namespaces(voters: usize, brokers: usize, settings: &[(&str, &str)]) -> Option<TestCluster> {
        let network = Network::create(voters + brokers)?;
        Some(Self::started(Self::formatted_as(Some(network), &[("broker,controller", voters), ("broker", brokers)], settings)))
    }

    /// Formats the nodes' data directories without starting any (a broker added later).
    pub fn formatted(voters: usize, brokers: usize, settings: &[(&str, &str)]) -> TestCluster {
        Self::formatted_as(None, &[("broker,controller", voters), ("broker", brokers)], settings)
    }

    fn started(mut cluster: TestCluster) -> TestCluster {
        for id in cluster.ids().collect::<Vec<_>>() {
            cluster.start_node(id);
        }
        cluster
    }

    /// Formats nodes with the given (`process.roles`, count), numbered from 1 in that order.
    fn formatted_as(network: Option<Network>, roles: &[(&'static str, usize)], settings: &[(&str, &str)]) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let host = |id: i32| network.as_ref().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |n| n.address(id));
        let roles = roles.iter().flat_map(|&(roles, count)| std::iter::repeat_n(roles, count));
        let nodes: Vec<NodeSlot> =
            roles.enumerate().map(|(i, roles)| NodeSlot { host: host(i as i32 + 1), client_port: free_port(), controller_port: free_port(), roles, process: None }).collect();
        let voters = nodes.iter().enumerate().filter(|(_, n)| n.roles.contains("controller")).map(|(i, n)| format!("{}@{}:{}", i + 1, n.host, n.controller_port)).collect::<Vec<_>>().join(",");
        let out = gregor().arg("random-uuid").output().expect("gregor runs");
        let cluster_id = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
        let settings = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let cluster = TestCluster { dir, cluster_id, nodes, voters, settings, network };
        for id in 1..=cluster.nodes.len() as i32 {
            let formatted = cluster.command(id, &["format", "--cluster-id", &cluster.cluster_id.clone()], &[]).output().expect("format runs");
            assert!(formatted.status.success(), "format node {id}: {}", String::from_utf8_lossy(&formatted.stderr));
        }
        cluster
    }

    pub fn data_dir(&self, id: i32) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    fn slot(&mut self, id: i32) -> &mut NodeSlot {
        &mut self.nodes[id as usize - 1]
    }

    /// `gregor <subcommand> ...` with node `id`'s settings, the harness's, then `overrides`.
    pub fn command(&self, id: i32, subcommand: &[&str], overrides: &[(&str, &str)]) -> Command {
        let slot = &self.nodes[id as usize - 1];
        let controller = format!("CONTROLLER://{}:{}", slot.host, slot.controller_port);
        let listeners = if slot.roles == "controller" { controller } else { format!("PLAINTEXT://{}:{},{controller}", slot.host, slot.client_port) };
        let dir = self.data_dir(id).display().to_string();
        let mut settings: Vec<(String, String)> = [("node.id", id.to_string()), ("process.roles", slot.roles.into()), ("controller.quorum.voters", self.voters.clone()), ("listeners", listeners), ("log.dirs", dir)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain(self.settings.iter().cloned())
            .collect();
        for (key, value) in overrides {
            settings.retain(|(k, _)| k != key);
            settings.push((key.to_string(), value.to_string()));
        }
        let mut command = match &self.network {
            Some(network) => network.command(id, env!("CARGO_BIN_EXE_gregor")),
            None => gregor(),
        };
        command.args(subcommand);
        for (key, value) in settings {
            command.arg(format!("--{}", key.replace('.', "-"))).arg(value);
        }
        command.env("RUST_LOG", "info,openraft=error");
        command
    }

    pub fn start_node(&mut self, id: i32) {
        self.start_node_with(id, &[]);
    }

    /// Starts node `id` with settings of its own on top of the harness's.
    pub fn start_node_with(&mut self, id: i32, overrides: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.path().join(format!("node-{id}.log"))).expect("log file");
        let child = self.command(id, &[], overrides).stdout(Stdio::null()).stderr(log).spawn().expect("gregor starts");
        self.slot(id).process = Some(child);
    }

    /// SIGKILL: no shutdown, no last heartbeat.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut child) = self.slot(id).process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for the process to end: a clean stop (controlled shutdown). One
    /// that hangs is killed after 15 s, so no test outlives its bound.
    pub fn stop(&mut self, id: i32) {
        let Some(child) = self.slot(id).process.as_ref() else { return };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        if self.wait_exit(id, Duration::from_secs(15)).is_none() {
            self.kill(id);
        }
    }

    /// A client of node `id`, or `None` while it does not accept connections.
    pub async fn client(&self, id: i32) -> Option<crate::common::Client> {
        let addr = self.client_addr(id);
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
        Some(crate::common::Client::connect_to(addr).await)
    }

    pub fn client_addr(&self, id: i32) -> SocketAddr {
        let slot = &self.nodes[id as usize - 1];
        SocketAddr::new(slot.host, slot.client_port)
    }

    /// The namespaces' network, for cuts; panics for a cluster on loopback.
    pub fn network(&mut self) -> &mut Network {
        self.network.as_mut().expect("a cluster started in namespaces")
    }

    pub fn ids(&self) -> impl Iterator<Item = i32> {
        1..=self.nodes.len() as i32
    }

    /// The running brokers (the nodes that serve clients).
    pub fn running(&self) -> Vec<i32> {
        self.ids().filter(|&id| self.nodes[id as usize - 1].process.is_some() && self.nodes[id as usize - 1].roles != "controller").collect()
    }

    /// What node `id` logged so far.
    pub fn log(&self, id: i32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node-{id}.log"))).unwrap_or_default()
    }

    /// Waits for node `id`'s process to exit by itself, up to `patience`.
    pub fn wait_exit(&mut self, id: i32, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        let child = self.slot(id).process.as_mut()?;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().ok().flatten() {
                self.slot(id).process = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for id in self.ids().collect::<Vec<_>>() {
            self.kill(id);
        }
    }
}

/// Runs `gregor` with `args` to completion (a start that must be refused), up to 10 s.
pub fn run_to_exit(mut command: Command) -> Output {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("gregor runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waitable").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Polls `check` every 100 ms until it gives `Some`, up to `patience`.
pub async fn eventually<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what} after {patience:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
