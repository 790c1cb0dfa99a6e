//! The console's JSON (`GET /api/overview` on the metrics listener): what a produce and a
//! committed offset show there, and the page and its files served beside it.

mod common;

use std::net::SocketAddr;

use common::*;
use gregor::testkit::{encode_batch, BatchSpec};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One GET; (status line, content type, body).
async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_string();
    let content_type = head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).unwrap().to_string();
    (status, content_type, body.to_string())
}

#[tokio::test]
async fn overview_shows_the_broker_topic_offsets_group_lag_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("metrics.listener", "127.0.0.1:0")]).await;
    let console = broker.metrics_addr().unwrap();
    let mut c = Client::connect(&broker).await;
    assert_eq!(c.create_topic("orders", 2).await, 0);
    assert_eq!(c.produce("orders", 0, encode_batch(&BatchSpec::values(5))).await, (0, 0));
    assert_eq!(simple_commit(&mut c, "billing", "orders", 3, -1).await, 0);

    let (status, content_type, body) = get(console, "/api/overview").await;
    assert_eq!((status.as_str(), content_type.as_str()), ("HTTP/1.1 200 OK", "application/json"));
    let overview: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(overview["node_id"], 1);
    assert_eq!(overview["controller_id"], 1);
    assert_eq!(overview["brokers"], json!([{"id": 1, "endpoints": [format!("PLAINTEXT://{}", broker.local_addr())], "rack": null, "fenced": false}]));

    let topics = overview["topics"].as_array().unwrap();
    let orders = topics.iter().find(|t| t["name"] == "orders").unwrap();
    assert_eq!(orders["internal"], false);
    let partitions = orders["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2);
    for (p, end) in partitions.iter().zip([5, 0]) {
        assert_eq!((&p["leader"], &p["replicas"], &p["isr"]), (&json!(1), &json!([1]), &json!([1])), "{p}");
        assert_eq!((&p["log_start_offset"], &p["log_end_offset"], &p["high_watermark"]), (&json!(0), &json!(end), &json!(end)), "{p}");
    }
    assert!(partitions[0]["size_bytes"].as_u64().unwrap() > 0 && partitions[1]["size_bytes"] == 0, "{partitions:?}");

    let groups = overview["groups"].as_array().unwrap();
    assert_eq!(
        groups,
        &vec![json!({
            "group_id": "billing",
            "state": "Empty",
            "protocol_type": "",
            "members": [],
            "offsets": [{"topic": "orders", "partition": 0, "committed": 3, "high_watermark": 5, "lag": 2}],
        })]
    );

    let throughput = &overview["throughput"];
    assert_eq!((&throughput["records_in"], &throughput["records_out"], &throughput["bytes_out"]), (&json!(5), &json!(0), &json!(0)));
    assert!(throughput["bytes_in"].as_u64().unwrap() > 0, "{throughput}");

    // A consumer's fetch counts out.
    let (error, _, records) = c.fetch("orders", 0, 0, 0).await;
    assert!(error == 0 && !records.is_empty());
    let overview: Value = serde_json::from_str(&get(console, "/api/overview").await.2).unwrap();
    assert_eq!(overview["throughput"]["records_out"], 5);
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_with(dir.path(), &[("metrics.listener", "127.0.0.1:0")]).await;
    let console = broker.metrics_addr().unwrap();
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<script src=\"/console.js\""),
        ("/console", "text/html; charset=utf-8", "<link rel=\"stylesheet\" href=\"/console.css\">"),
        ("/console.js", "text/javascript; charset=utf-8", "fetch(\"/api/overview\""),
        ("/console.css", "text/css; charset=utf-8", "canvas"),
        ("/metrics", "text/plain; version=0.0.4; charset=utf-8", "kafka_network_requestmetrics_requests_total"),
    ] {
        let (status, got_type, body) = get(console, path).await;
        assert_eq!((status.as_str(), got_type.as_str()), ("HTTP/1.1 200 OK", content_type), "{path}");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }
    assert_eq!(get(console, "/console.png").await.0, "HTTP/1.1 404 Not Found");
}
