//! `fjord topics`: kafka-topics.sh's `--create`, `--list`, `--describe`, `--alter` and
//! `--delete`, over fjord-client.

use anyhow::{Context, Result, bail};
use fjord_client::{Client, NewTopic};

async fn connect(bootstrap: &str) -> Result<Client> {
    crate::connect(bootstrap, "fjord-topics").await
}

/// Parses `key=value` arguments (`--config`).
pub(crate) fn parse_configs(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|pair| {
            let (k, v) = pair.split_once('=').with_context(|| format!("--config {pair}: expected key=value"))?;
            Ok((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

/// `fjord topics create --topic T [--partitions N] [--replication-factor R] [--config k=v]...`.
pub(crate) async fn create(
    bootstrap: &str,
    topic: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[String],
) -> Result<()> {
    let configs = parse_configs(configs)?;
    let new = NewTopic {
        name: topic.to_owned(),
        partitions: partitions.unwrap_or(-1),
        replication_factor: replication_factor.unwrap_or(-1),
        configs,
    };
    connect(bootstrap).await?.create_topics(&[new]).await?;
    println!("Created topic {topic}.");
    Ok(())
}

/// `fjord topics list [--exclude-internal]`.
pub(crate) async fn list(bootstrap: &str, exclude_internal: bool) -> Result<()> {
    for topic in connect(bootstrap).await?.topics(None).await? {
        if !(exclude_internal && topic.internal) {
            println!("{}", topic.name);
        }
    }
    Ok(())
}

/// Which partitions `topics describe` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Only {
    /// All, each topic with its summary line.
    All,
    /// `--unavailable-partitions`: those without a live leader, no summaries.
    Unavailable,
    /// `--under-replicated-partitions`: those whose ISR is short, no summaries.
    UnderReplicated,
}

/// `fjord topics describe [--topic T]`: kafka-topics' lines, a summary per topic with its
/// overridden configs, then a line per partition with leader, replicas and ISR. With a filter,
/// as kafka-topics does, only the matching partitions' lines. Topics are described with
/// DescribeTopicPartitions where the broker has it, else Metadata, as kafka-topics does.
pub(crate) async fn describe(bootstrap: &str, topic: Option<&str>, exclude_internal: bool, only: Only) -> Result<()> {
    let mut client = connect(bootstrap).await?;
    let live: std::collections::HashSet<i32> = client.known_brokers().keys().copied().collect();
    let names = topic.map(|t| vec![t]);
    let topics = client.describe_topics(names.as_deref()).await.map_err(|e| match (&e, topic) {
        (fjord_client::Error::Kafka { code: 3, .. }, Some(t)) => anyhow::anyhow!("topic '{t}' does not exist"),
        _ => e.into(),
    })?;
    // Moves under way, for the Adding / Removing Replicas columns. A broker without the API
    // (or a refused call) just leaves the columns out.
    let moving: std::collections::HashMap<(String, i32), fjord_client::OngoingReassignment> = client
        .list_partition_reassignments(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|r| ((r.topic.clone(), r.partition), r))
        .collect();
    let moving_of = |topic: &str, partition: i32| moving.get(&(topic.to_owned(), partition));
    for info in topics {
        if exclude_internal && info.internal {
            continue;
        }
        if only != Only::All {
            for p in &info.partitions {
                let shown = match only {
                    Only::Unavailable => p.leader < 0 || !live.contains(&p.leader),
                    _ => p.isr.len() < p.replicas.len(),
                };
                if shown {
                    print_partition(&info.name, p, moving_of(&info.name, p.partition));
                }
            }
            continue;
        }
        let configs = client.describe_topic_configs(&info.name).await?;
        let overrides: Vec<String> = configs
            .iter()
            .filter(|c| c.is_override)
            .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
            .collect();
        let replication = info.partitions.first().map_or(0, |p| p.replicas.len());
        println!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            info.name,
            info.topic_id,
            info.partitions.len(),
            replication,
            overrides.join(",")
        );
        for p in &info.partitions {
            print_partition(&info.name, p, moving_of(&info.name, p.partition));
        }
    }
    Ok(())
}

/// One partition's line, as kafka-topics prints it (with a move's columns while one is under way).
fn print_partition(topic: &str, p: &fjord_client::PartitionInfo, moving: Option<&fjord_client::OngoingReassignment>) {
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let leader = if p.leader < 0 { "none".to_owned() } else { p.leader.to_string() };
    let moving = moving.map_or(String::new(), |m| {
        format!("\tAdding Replicas: {}\tRemoving Replicas: {}", join(&m.adding), join(&m.removing))
    });
    let offline =
        if p.offline_replicas.is_empty() { String::new() } else { format!("\tOffline: {}", join(&p.offline_replicas)) };
    println!(
        "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{}{}",
        topic,
        p.partition,
        leader,
        join(&p.replicas),
        join(&p.isr),
        moving,
        offline
    );
}

/// `fjord topics alter --topic T [--partitions N] [--config k=v]... [--delete-config k]...`.
pub(crate) async fn alter(
    bootstrap: &str,
    topic: &str,
    partitions: Option<i32>,
    configs: &[String],
    delete_configs: &[String],
) -> Result<()> {
    if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
        bail!("nothing to alter: give --partitions, --config or --delete-config");
    }
    let set = parse_configs(configs)?;
    let mut client = connect(bootstrap).await?;
    if let Some(total) = partitions {
        client.create_partitions(topic, total).await?;
    }
    if !set.is_empty() || !delete_configs.is_empty() {
        client.alter_topic_configs(topic, &set, delete_configs).await?;
    }
    println!("Altered topic {topic}.");
    Ok(())
}

/// `fjord topics delete --topic T`.
pub(crate) async fn delete(bootstrap: &str, topic: &str) -> Result<()> {
    connect(bootstrap).await?.delete_topics(&[topic]).await?;
    println!("Deleted topic {topic}.");
    Ok(())
}
