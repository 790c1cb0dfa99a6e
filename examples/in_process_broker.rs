//! Gregor as an in-process test broker for Rust code: start it on a free port with a temporary
//! data directory, point any Kafka client at `advertised()`, shut it down at the end. Here the
//! client is rskafka; rdkafka works the same way with `bootstrap.servers` set to that address.
//!
//!     cargo run --release --example in_process_broker

use std::time::Instant;

use gregor::{Broker, Config};
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.set("listeners", "127.0.0.1:0")?;
    config.set("log.dirs", dir.path().to_str().expect("a UTF-8 temporary path"))?;
    let started = Instant::now();
    let broker = Broker::start(config).await?;
    println!("broker serving on {} after {:?}", broker.advertised(), started.elapsed());

    let client = ClientBuilder::new(vec![broker.advertised()]).build().await?;
    client.controller_client()?.create_topic("greetings", 1, 1, 5_000).await?;
    let partition = client.partition_client("greetings", 0, UnknownTopicHandling::Retry).await?;
    let record = Record { key: Some(b"k".to_vec()), value: Some(b"hello".to_vec()), headers: Default::default(), timestamp: chrono::Utc::now() };
    partition.produce(vec![record], Compression::NoCompression).await?;
    let (records, high_watermark) = partition.fetch_records(0, 1..1_000_000, 1_000).await?;
    println!("read {} record(s) back, high watermark {high_watermark}; first: {:?}", records.len(), records[0].record.value.as_deref().map(String::from_utf8_lossy));
    assert_eq!(partition.get_offset(OffsetAt::Latest).await?, 1);

    broker.shutdown().await;
    Ok(())
}
