//! Ports for test brokers, below the kernel's ephemeral range: a node restarted on its port
//! cannot find it taken by some connection's source port in between, as a port the kernel
//! handed out for `127.0.0.1:0` can be.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};

/// A port on 127.0.0.1 that is free right now and that no outgoing connection will take.
pub fn free_port() -> u16 {
    // Test binaries run at once: each starts at its own random point and walks on from it.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let low = 10_000u16;
    let high = ephemeral_start().max(low + 1_000);
    let _ = NEXT.compare_exchange(0, low + (uuid::Uuid::new_v4().as_u128() % u128::from(high - low)) as u16, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = low + (port - low) % (high - low);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn ephemeral_start() -> u16 {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    range.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(32_768)
}
