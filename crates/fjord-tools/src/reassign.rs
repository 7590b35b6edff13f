//! `fjord reassign-partitions`, as kafka-reassign-partitions.sh: `--generate` proposes a plan
//! moving whole topics onto a list of brokers, `--execute` starts a plan, `--verify` reports
//! each partition of a plan as completed, in progress or mismatched, `--list` shows the moves
//! under way and `--cancel` stops those of a plan. Plans are Kafka's JSON:
//! `{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2],"log_dirs":["any","any"]}]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};
use fjord_client::Client;
use serde_json::{Value, json};

/// One partition of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Move {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) replicas: Vec<i32>,
}

async fn connect(bootstrap: &str) -> Result<Client> {
    crate::connect(bootstrap, "fjord-reassign-partitions").await
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Parses a reassignment plan, refusing what Kafka's tool refuses.
pub(crate) fn parse_plan(plan: &Value) -> Result<Vec<Move>> {
    let partitions =
        plan.get("partitions").and_then(Value::as_array).context("the plan needs a \"partitions\" array")?;
    let mut moves = Vec::with_capacity(partitions.len());
    let mut seen = BTreeSet::new();
    for entry in partitions {
        let topic = entry.get("topic").and_then(Value::as_str).context("each partition needs a \"topic\"")?;
        let partition = entry
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .context("each partition needs a \"partition\" number")?;
        let replicas: Vec<i32> = entry
            .get("replicas")
            .and_then(Value::as_array)
            .context("each partition needs a \"replicas\" array")?
            .iter()
            .map(|r| r.as_i64().and_then(|r| i32::try_from(r).ok()).context("replicas are broker ids"))
            .collect::<Result<_>>()?;
        if replicas.is_empty() {
            bail!("Partition {topic}-{partition} has an empty replica list");
        }
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            bail!("Partition replica lists may not contain duplicate entries: {topic}-{partition} has {replicas:?}");
        }
        if let Some(dirs) = entry.get("log_dirs").and_then(Value::as_array) {
            if dirs.len() != replicas.len() {
                bail!("Partition {topic}-{partition} has {} log_dirs for {} replicas", dirs.len(), replicas.len());
            }
            if dirs.iter().any(|d| d.as_str() != Some("any")) {
                bail!("Fjord brokers have one log directory each: log_dirs must all be \"any\"");
            }
        }
        if !seen.insert((topic.to_owned(), partition)) {
            bail!("Duplicate reassignment of partition {topic}-{partition}");
        }
        moves.push(Move { topic: topic.to_owned(), partition, replicas });
    }
    Ok(moves)
}

/// A plan in Kafka's JSON, on one line as Kafka prints it.
pub(crate) fn plan_json(moves: &[Move]) -> String {
    let partitions: Vec<Value> = moves
        .iter()
        .map(|m| {
            json!({
                "topic": m.topic,
                "partition": m.partition,
                "replicas": m.replicas,
                "log_dirs": vec!["any"; m.replicas.len()],
            })
        })
        .collect();
    json!({ "version": 1, "partitions": partitions }).to_string()
}

/// The replicas of every partition of `topics`, as the cluster has them now.
async fn current(client: &mut Client, topics: &[String]) -> Result<Vec<Move>> {
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let infos = client.topics(Some(&names)).await?;
    let mut moves = Vec::new();
    for info in infos {
        for p in info.partitions {
            moves.push(Move { topic: info.name.clone(), partition: p.partition, replicas: p.replicas });
        }
    }
    moves.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(moves)
}

/// Kafka's rack-unaware replica placement: partition `p`'s first replica is broker
/// `(p + start) % n`, and the followers follow at a shift that grows every `n` partitions, so
/// leaders and followers both spread evenly. `start` comes from the topic's name, so one run's
/// plan for a topic is the same as the next's.
pub(crate) fn spread(topic: &str, partitions: usize, replication_factor: usize, brokers: &[i32]) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let seed = topic.bytes().fold(17usize, |h, b| h.wrapping_mul(31).wrapping_add(usize::from(b)));
    let start = seed % n;
    let mut shift = (seed / n) % n.max(1);
    (0..partitions)
        .map(|p| {
            if p > 0 && p % n == 0 {
                shift += 1;
            }
            let first = (p + start) % n;
            let mut replicas = vec![brokers[first]];
            for j in 0..replication_factor.saturating_sub(1) {
                let index = (first + 1 + (shift + j) % (n - 1)) % n;
                replicas.push(brokers[index]);
            }
            replicas
        })
        .collect()
}

/// `--generate`: the current assignment of the topics in `topics_file` and a proposal that
/// spreads them over `broker_list`, each partition keeping its replication factor.
pub(crate) async fn generate(bootstrap: &str, topics_file: &Path, broker_list: &str) -> Result<()> {
    let topics_json = read_json(topics_file)?;
    let topics: Vec<String> = topics_json
        .get("topics")
        .and_then(Value::as_array)
        .context("the topics file needs a \"topics\" array")?
        .iter()
        .map(|t| t.get("topic").and_then(Value::as_str).map(str::to_owned).context("each entry needs a \"topic\""))
        .collect::<Result<_>>()?;
    let mut brokers: Vec<i32> = broker_list
        .split(',')
        .map(|b| b.trim().parse::<i32>().with_context(|| format!("{b:?} is not a broker id")))
        .collect::<Result<_>>()?;
    brokers.sort_unstable();
    brokers.dedup();
    let mut client = connect(bootstrap).await?;
    let current = current(&mut client, &topics).await?;
    let known: BTreeSet<i32> = client.known_brokers().keys().copied().collect();
    if let Some(unknown) = brokers.iter().find(|b| !known.contains(b)) {
        bail!("The broker list contains broker {unknown}, which is not in the cluster");
    }
    let mut by_topic: BTreeMap<&str, Vec<&Move>> = BTreeMap::new();
    for m in &current {
        by_topic.entry(&m.topic).or_default().push(m);
    }
    let mut proposed = Vec::new();
    for (topic, partitions) in by_topic {
        let replication_factor = partitions[0].replicas.len();
        if replication_factor > brokers.len() {
            bail!("Replication factor: {replication_factor} larger than available brokers: {}.", brokers.len());
        }
        for (m, replicas) in partitions.iter().zip(spread(topic, partitions.len(), replication_factor, &brokers)) {
            proposed.push(Move { topic: topic.to_owned(), partition: m.partition, replicas });
        }
    }
    println!("Current partition replica assignment");
    println!("{}", plan_json(&current));
    println!();
    println!("Proposed partition reassignment configuration");
    println!("{}", plan_json(&proposed));
    Ok(())
}

/// `--execute`: starts the plan, after printing the current assignment to roll back to.
pub(crate) async fn execute(bootstrap: &str, plan_file: &Path, additional: bool) -> Result<()> {
    let moves = parse_plan(&read_json(plan_file)?)?;
    let mut client = connect(bootstrap).await?;
    let topics: BTreeSet<String> = moves.iter().map(|m| m.topic.clone()).collect();
    let topics: Vec<String> = topics.into_iter().collect();
    let current = current(&mut client, &topics).await?;
    for m in &moves {
        if !current.iter().any(|c| c.topic == m.topic && c.partition == m.partition) {
            bail!("Topic {} has no partition {}", m.topic, m.partition);
        }
    }
    if !additional && !client.list_partition_reassignments(None).await?.is_empty() {
        bail!(
            "Cannot execute because there is an existing partition assignment. Use --additional to override this \
             and create a new partition assignment in addition to the existing one."
        );
    }
    let rollback: Vec<Move> = current
        .into_iter()
        .filter(|c| moves.iter().any(|m| m.topic == c.topic && m.partition == c.partition))
        .collect();
    println!("Current partition replica assignment");
    println!();
    println!("{}", plan_json(&rollback));
    println!();
    println!("Save this to use as the --reassignment-json-file option during rollback");
    let asked: Vec<(String, i32, Option<Vec<i32>>)> =
        moves.iter().map(|m| (m.topic.clone(), m.partition, Some(m.replicas.clone()))).collect();
    report(client.alter_partition_reassignments(&asked).await?, "started partition reassignments")
}

/// `--cancel`: stops the plan's moves under way.
pub(crate) async fn cancel(bootstrap: &str, plan_file: &Path) -> Result<()> {
    let moves = parse_plan(&read_json(plan_file)?)?;
    let mut client = connect(bootstrap).await?;
    let asked: Vec<(String, i32)> = moves.iter().map(|m| (m.topic.clone(), m.partition)).collect();
    let ongoing = client.list_partition_reassignments(Some(&asked)).await?;
    let cancels: Vec<(String, i32, Option<Vec<i32>>)> =
        ongoing.iter().map(|o| (o.topic.clone(), o.partition, None)).collect();
    if cancels.is_empty() {
        println!("None of the plan's partitions is being reassigned.");
        return Ok(());
    }
    report(client.alter_partition_reassignments(&cancels).await?, "cancelled partition reassignments")
}

fn report(results: Vec<fjord_client::ReassignmentResult>, done: &str) -> Result<()> {
    let name = |r: &fjord_client::ReassignmentResult| format!("{}-{}", r.topic, r.partition);
    let ok: Vec<String> = results.iter().filter(|r| r.error_code == 0).map(name).collect();
    let failed: Vec<&fjord_client::ReassignmentResult> = results.iter().filter(|r| r.error_code != 0).collect();
    if !ok.is_empty() {
        println!("Successfully {done} for {}", ok.join(","));
    }
    for r in &failed {
        let code = fjord_types::ErrorCode::from_code(r.error_code);
        println!("Error reassigning partition(s): {}: {} {}", name(r), code.name(), r.message.as_deref().unwrap_or(""));
    }
    if !failed.is_empty() {
        bail!("{} partition(s) could not be reassigned", failed.len());
    }
    Ok(())
}

/// Where a partition of a plan stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    Completed,
    InProgress,
    Mismatch(Vec<i32>),
}

/// `--verify`: each partition of the plan, completed, still in progress, or (no move under
/// way) on other replicas than the plan's. Fails unless every partition completed.
pub(crate) async fn verify(bootstrap: &str, plan_file: &Path) -> Result<()> {
    let moves = parse_plan(&read_json(plan_file)?)?;
    let mut client = connect(bootstrap).await?;
    let asked: Vec<(String, i32)> = moves.iter().map(|m| (m.topic.clone(), m.partition)).collect();
    let ongoing = client.list_partition_reassignments(Some(&asked)).await?;
    let topics: BTreeSet<String> = moves.iter().map(|m| m.topic.clone()).collect();
    let current = current(&mut client, &topics.into_iter().collect::<Vec<_>>()).await?;
    println!("Status of partition reassignment:");
    let mut unfinished = 0;
    for m in &moves {
        let status = if ongoing.iter().any(|o| o.topic == m.topic && o.partition == m.partition) {
            Status::InProgress
        } else {
            match current.iter().find(|c| c.topic == m.topic && c.partition == m.partition) {
                Some(c) if c.replicas == m.replicas => Status::Completed,
                Some(c) => Status::Mismatch(c.replicas.clone()),
                None => Status::Mismatch(Vec::new()),
            }
        };
        let tp = format!("{}-{}", m.topic, m.partition);
        match &status {
            Status::Completed => println!("Reassignment of partition {tp} is completed."),
            Status::InProgress => println!("Reassignment of partition {tp} is still in progress."),
            Status::Mismatch(replicas) => println!(
                "There is no active reassignment of partition {tp}, but replica set is {} rather than {}.",
                list(replicas),
                list(&m.replicas)
            ),
        }
        unfinished += usize::from(status != Status::Completed);
    }
    if unfinished > 0 {
        bail!("{unfinished} partition(s) not reassigned yet");
    }
    Ok(())
}

/// `--list`: every move under way.
pub(crate) async fn list_ongoing(bootstrap: &str) -> Result<()> {
    let mut client = connect(bootstrap).await?;
    let ongoing = client.list_partition_reassignments(None).await?;
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
        return Ok(());
    }
    println!("Current partition reassignments:");
    for o in ongoing {
        println!(
            "{}-{}: replicas: {}. adding: {}. removing: {}.",
            o.topic,
            o.partition,
            list(&o.replicas),
            list(&o.adding),
            list(&o.removing)
        );
    }
    Ok(())
}

fn list(brokers: &[i32]) -> String {
    brokers.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_and_bad_ones_are_refused() {
        let moves = vec![
            Move { topic: "a".into(), partition: 0, replicas: vec![1, 2] },
            Move { topic: "b".into(), partition: 3, replicas: vec![3] },
        ];
        let text = plan_json(&moves);
        assert!(text.contains(r#""log_dirs":["any","any"]"#), "{text}");
        assert_eq!(parse_plan(&serde_json::from_str(&text).unwrap()).unwrap(), moves);
        let refused = [
            r#"{"version":1}"#,
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[]}]}"#,
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1,1]}]}"#,
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1],"log_dirs":["/data"]}]}"#,
            r#"{"partitions":[{"topic":"a","partition":0,"replicas":[1]},{"topic":"a","partition":0,"replicas":[2]}]}"#,
        ];
        for plan in refused {
            assert!(parse_plan(&serde_json::from_str(plan).unwrap()).is_err(), "{plan}");
        }
    }

    #[test]
    fn proposals_spread_leaders_and_replicas_evenly() {
        let brokers = [1, 2, 3];
        let plan = spread("orders", 6, 2, &brokers);
        for broker in brokers {
            let leads = plan.iter().filter(|r| r[0] == broker).count();
            let holds = plan.iter().filter(|r| r.contains(&broker)).count();
            assert_eq!((leads, holds), (2, 4), "{plan:?}");
        }
        assert!(plan.iter().all(|r| r[0] != r[1]), "{plan:?}");
        assert_eq!(spread("orders", 6, 2, &brokers), plan, "the same plan every time");
        assert_eq!(spread("x", 2, 1, &[7]), vec![vec![7], vec![7]]);
    }
}
