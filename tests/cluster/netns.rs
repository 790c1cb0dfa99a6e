//! Each node of a test cluster in a Linux network namespace of its own, so a test can cut the
//! network between brokers while its clients still reach every one of them.
//!
//! A hub namespace routes between one veth link per node and one to the root namespace, where
//! the test's clients run. A cut is a pair of `ip rule ... blackhole` entries in the hub:
//! packets between two nodes vanish, as on a broken network (no reset, no ICMP answer), and
//! the root namespace's traffic still passes. Only `ip` (iproute2) is needed: no iptables, and
//! no tc qdisc such as netem, which minimal kernels lack (this project's build machine's does).
//!
//! Addresses come from 198.18.0.0/15, which RFC 2544 sets aside for test networks. In the
//! network's /24, link K (0: the root namespace, K: node K) is the /30 at 4K: the hub has
//! .4K+1, the other end .4K+2.
//!
//! Names hold the test process's id, so parallel runs do not collide, and [`Network::create`]
//! first removes what a killed run left (namespaces of a process that is gone).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const PREFIX: &str = "gregor-";
/// /24 networks in 198.18.0.0/15.
const SUBNETS: u32 = 512;

pub struct Network {
    /// Namespace names start with it: `gregor-<pid>-<n>`.
    name: String,
    /// The root namespace's end of its link to the hub.
    root_link: String,
    /// The first three octets of the /24.
    subnet: [u8; 3],
    nodes: i32,
    /// Nodes whose packets the hub drops, each pair once.
    cuts: Vec<(i32, i32)>,
}

/// `ip <args>`; the error is what it printed. A missing `ip` is a broken test machine: panics.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| panic!("cannot run `ip` (install iproute2): {e}"));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn must(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("ip {}: {e}", args.join(" "));
    }
}

impl Network {
    /// The hub and `nodes` node namespaces, linked and routed; `None`, said loudly, when this
    /// process may not create namespaces (not root). Any other failure panics.
    pub fn create(nodes: usize) -> Option<Network> {
        assert!((1..=62).contains(&nodes), "a /24 holds the links of at most 62 nodes");
        remove_leftovers();
        static NETWORKS: AtomicU32 = AtomicU32::new(0);
        let (pid, serial) = (std::process::id(), NETWORKS.fetch_add(1, Ordering::Relaxed));
        let name = format!("{PREFIX}{pid}-{serial}");
        if let Err(e) = ip(&["netns", "add", &format!("{name}-hub")]) {
            if e.contains("Permission denied") || e.contains("Operation not permitted") {
                eprintln!("\n*** SKIPPED: cannot create network namespaces ({e}); this test needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) ***\n");
                return None;
            }
            panic!("ip netns add {name}-hub: {e}");
        }
        // From here on, dropping the value removes whatever was made, also after a panic.
        // Interface names have at most 15 characters: "gr", a pid of up to 7 digits, the serial.
        let mut network = Network { name, root_link: format!("gr{pid}-{serial}"), subnet: [0; 3], nodes: nodes as i32, cuts: Vec::new() };
        network.link_root(pid);
        for id in 1..=network.nodes {
            network.link_node(id);
        }
        Some(network)
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.name)
    }

    /// The namespace node `id` runs in.
    pub fn namespace(&self, id: i32) -> String {
        format!("{}-n{id}", self.name)
    }

    fn host(&self, link: i32, last: i32) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, (4 * link + last) as u8)
    }

    /// Node `id`'s address.
    pub fn address(&self, id: i32) -> IpAddr {
        IpAddr::V4(self.host(id, 2))
    }

    /// `program` run in node `id`'s namespace. `ip netns exec` execs it, so the child's pid
    /// is the program's own.
    pub fn command(&self, id: i32, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.namespace(id), program]);
        command
    }

    /// The root namespace's link to the hub, and a /24 routed over it. Routing claims the
    /// /24: adding a route that exists fails, so two runs never share a network.
    fn link_root(&mut self, pid: u32) {
        let hub = self.hub();
        let root_link = self.root_link.clone();
        must(&["link", "add", &root_link, "type", "veth", "peer", "name", "root", "netns", &hub]);
        must(&["link", "set", &root_link, "up"]);
        let subnet = |n: u32| [198, 18 + (n / 256) as u8, (n % 256) as u8];
        let free = (0..SUBNETS).map(|i| (pid + i) % SUBNETS).find(|&n| {
            let [a, b, c] = subnet(n);
            match ip(&["route", "add", &format!("{a}.{b}.{c}.0/24"), "via", &format!("{a}.{b}.{c}.1"), "dev", &root_link, "onlink"]) {
                Ok(()) => true,
                Err(e) if e.contains("File exists") => false,
                Err(e) => panic!("routing {a}.{b}.{c}.0/24 to the hub: {e}"),
            }
        });
        self.subnet = subnet(free.expect("a /24 of 198.18.0.0/15 not routed yet"));
        must(&["addr", "add", &format!("{}/30", self.host(0, 2)), "dev", &root_link]);
        must(&["-n", &hub, "addr", "add", &format!("{}/30", self.host(0, 1)), "dev", "root"]);
        must(&["-n", &hub, "link", "set", "root", "up"]);
        must(&["-n", &hub, "link", "set", "lo", "up"]);
        must(&["netns", "exec", &hub, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    }

    /// Node `id`'s namespace and its link to the hub, with the hub as its default route.
    fn link_node(&self, id: i32) {
        let (hub, node) = (self.hub(), self.namespace(id));
        let hub_side = format!("n{id}");
        must(&["netns", "add", &node]);
        must(&["-n", &hub, "link", "add", &hub_side, "type", "veth", "peer", "name", "eth0", "netns", &node]);
        must(&["-n", &hub, "addr", "add", &format!("{}/30", self.host(id, 1)), "dev", &hub_side]);
        must(&["-n", &hub, "link", "set", &hub_side, "up"]);
        must(&["-n", &node, "addr", "add", &format!("{}/30", self.host(id, 2)), "dev", "eth0"]);
        must(&["-n", &node, "link", "set", "eth0", "up"]);
        // A node reaches its own address through the loopback device.
        must(&["-n", &node, "link", "set", "lo", "up"]);
        must(&["-n", &node, "route", "add", "default", "via", &self.host(id, 1).to_string()]);
    }

    /// Cuts node `id` off from every other node, both ways; the root namespace still reaches it.
    pub fn isolate(&mut self, id: i32) {
        for other in (1..=self.nodes).filter(|&o| o != id) {
            for (from, to) in [(id, other), (other, id)] {
                must(&["-n", &self.hub(), "rule", "add", "from", &self.address(from).to_string(), "to", &self.address(to).to_string(), "blackhole"]);
            }
            self.cuts.push((id, other));
        }
    }

    /// Undoes every cut.
    pub fn heal(&mut self) {
        for (a, b) in std::mem::take(&mut self.cuts) {
            for (from, to) in [(a, b), (b, a)] {
                must(&["-n", &self.hub(), "rule", "del", "from", &self.address(from).to_string(), "to", &self.address(to).to_string(), "blackhole"]);
            }
        }
    }
}

impl Drop for Network {
    /// Processes inside must be gone first: the cluster kills its nodes before this runs.
    fn drop(&mut self) {
        // The kernel deletes a namespace's interfaces in the background; the root link (with
        // its route) goes now, so the root namespace is clean when the test ends.
        let _ = ip(&["link", "del", &self.root_link]);
        for namespace in (1..=self.nodes).map(|id| self.namespace(id)).chain([self.hub()]) {
            let _ = ip(&["netns", "del", &namespace]);
        }
    }
}

/// Deletes the namespaces of test processes that no longer run (killed before their drop).
fn remove_leftovers() {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap_or_else(|e| panic!("cannot run `ip` (install iproute2): {e}"));
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(namespace) = line.split_whitespace().next() else { continue };
        let owner = namespace.strip_prefix(PREFIX).and_then(|rest| rest.split('-').next()).and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = ip(&["netns", "del", namespace]);
        }
    }
}
