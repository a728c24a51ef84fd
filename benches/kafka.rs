//! The Kafka connector next to rdkafka used directly, on the same broker:
//! records per second produced (through `KafkaSink` against rdkafka's
//! `ThreadedProducer`) and consumed (through `KafkaReader` against
//! rdkafka's `BaseConsumer`), 20 000 records of a `u64` each, in the same
//! run so that the figures read as ratios.
//!
//! Starts its own broker with the project's script (`.ci/tansu`, which
//! installs tansu if missing). Run with
//! `cargo bench --features kafka --bench kafka`. CI only compiles it.

#[path = "../tests/support/broker.rs"]
#[allow(dead_code, reason = "the bench uses part of the test helper")]
mod broker;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures::StreamExt;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset as KOffset, TopicPartitionList};
use rdkafka::{ClientConfig, Message};
use timecast::kafka::Kafka;
use timecast::sink::Sink;
use timecast::store::codec::{Binary, Codec};
use timecast::topic::Offset;
use timecast::Timestamp;

const N: u64 = 20_000;

fn config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("fetch.wait.max.ms", "50")
        .set("enable.auto.commit", "false");
    config
}

fn kafka(c: &mut Criterion) {
    let broker = broker::Broker::start().expect("the bench broker starts");
    let brokers = broker.addr();
    let kafka = Kafka::connect(&brokers).expect("connect");
    let name = "bench-produce";
    kafka.create_topic(name, 1).expect("create");
    let topic = kafka.topic::<u64>(name).expect("topic");

    let mut group = c.benchmark_group("kafka/produce");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut sink = topic.sink();
    group.bench_function(BenchmarkId::new("timecast", N), |b| {
        b.iter(|| {
            futures::executor::block_on(async {
                for i in 0..N {
                    sink.send((Timestamp::from_unix_millis(i as i64), i))
                        .await
                        .expect("send");
                }
                sink.flush().await.expect("delivered");
            })
        })
    });
    let producer: ThreadedProducer<DefaultProducerContext> =
        config(&brokers).create().expect("a producer");
    group.bench_function(BenchmarkId::new("rdkafka", N), |b| {
        b.iter(|| {
            let mut payload = Vec::new();
            for i in 0..N {
                // The same bytes as the connector's codec writes.
                payload.clear();
                Binary.encode(&i, &mut payload).expect("encode");
                let mut record = BaseRecord::<[u8], [u8]>::to(name)
                    .payload(&payload)
                    .timestamp(i as i64);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            producer.poll(Duration::from_millis(1));
                        }
                    }
                }
            }
            producer.flush(Duration::from_secs(60)).expect("delivered");
        })
    });
    group.finish();

    // Consumption: a topic of N records, read from the start each time.
    let stored = "bench-consume";
    kafka.create_topic(stored, 1).expect("create");
    let topic = kafka.topic::<u64>(stored).expect("topic");
    let mut fill = topic.sink();
    futures::executor::block_on(async {
        for i in 0..N {
            fill.send((Timestamp::from_unix_millis(i as i64), i))
                .await
                .expect("send");
        }
        fill.flush().await.expect("delivered");
    });
    let mut group = c.benchmark_group("kafka/consume");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function(BenchmarkId::new("timecast", N), |b| {
        b.iter(|| {
            let mut reader = topic.reader(Offset::Start).expect("a reader");
            futures::executor::block_on(async {
                let mut sum = 0u64;
                for _ in 0..N {
                    sum += reader
                        .next()
                        .await
                        .expect("a record")
                        .expect("decoded")
                        .value;
                }
                black_box(sum)
            })
        })
    });
    let mut n = 0u64;
    group.bench_function(BenchmarkId::new("rdkafka", N), |b| {
        b.iter(|| {
            n += 1;
            let consumer: BaseConsumer = config(&brokers)
                .set("group.id", format!("bench-{n}"))
                .create()
                .expect("a consumer");
            let mut list = TopicPartitionList::new();
            list.add_partition_offset(stored, 0, KOffset::Beginning)
                .expect("a partition");
            consumer.assign(&list).expect("assign");
            let mut sum = 0u64;
            let mut got = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            while got < N && Instant::now() < deadline {
                if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                    let message = message.expect("a message");
                    let value: u64 = Binary
                        .decode(message.payload().unwrap_or_default())
                        .expect("decoded");
                    black_box(message.timestamp());
                    sum += value;
                    got += 1;
                }
            }
            assert_eq!(got, N);
            black_box(sum)
        })
    });
    group.finish();
    drop(broker);
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    kafka(&mut c);
    c.final_summary();
}
