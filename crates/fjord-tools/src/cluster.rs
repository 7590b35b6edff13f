//! `fjord quorum describe` (kafka-metadata-quorum.sh's `--status` and `--replication`),
//! `fjord cluster describe`, and `fjord leader-election` (kafka-leader-election.sh).

use anyhow::{Result, bail};
use fjord_client::{ElectionType, QuorumInfo, QuorumReplica};

use crate::connect;

/// The leader's replica among the voters.
fn leader_of(info: &QuorumInfo) -> Option<&QuorumReplica> {
    info.voters.iter().find(|v| v.id == info.leader_id)
}

/// kafka-metadata-quorum's `--status`.
pub(crate) async fn quorum_status(bootstrap: &str) -> Result<()> {
    let mut client = connect(bootstrap, "fjord-metadata-quorum").await?;
    let cluster = client.describe_cluster().await?;
    let info = client.describe_quorum().await?;
    let leader_end = leader_of(&info).map_or(info.high_watermark, |l| l.log_end_offset);
    let leader_caught_up = leader_of(&info).map_or(-1, |l| l.last_caught_up_timestamp);
    let followers: Vec<&QuorumReplica> = info.voters.iter().filter(|v| v.id != info.leader_id).collect();
    let max_lag = followers.iter().map(|v| (leader_end - v.log_end_offset).max(0)).max().unwrap_or(0);
    let max_lag_ms =
        followers
            .iter()
            .map(|v| {
                if v.last_caught_up_timestamp < 0 { -1 } else { (leader_caught_up - v.last_caught_up_timestamp).max(0) }
            })
            .max()
            .unwrap_or(0);
    let endpoints =
        |id: i32| info.endpoints.iter().find(|(node, _)| *node == id).map(|(_, e)| e.clone()).unwrap_or_default();
    let voter = |v: &QuorumReplica| {
        let list = endpoints(v.id).iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", ");
        format!("{{\"id\": {}, \"directoryId\": \"{}\", \"endpoints\": [{list}]}}", v.id, v.directory_id)
    };
    let observer = |v: &QuorumReplica| format!("{{\"id\": {}, \"directoryId\": \"{}\"}}", v.id, v.directory_id);
    println!("ClusterId:              {}", cluster.cluster_id);
    println!("LeaderId:               {}", info.leader_id);
    println!("LeaderEpoch:            {}", info.leader_epoch);
    println!("HighWatermark:          {}", info.high_watermark);
    println!("MaxFollowerLag:         {max_lag}");
    println!("MaxFollowerLagTimeMs:   {max_lag_ms}");
    println!("CurrentVoters:          [{}]", info.voters.iter().map(voter).collect::<Vec<_>>().join(", "));
    println!("CurrentObservers:       [{}]", info.observers.iter().map(observer).collect::<Vec<_>>().join(", "));
    Ok(())
}

/// kafka-metadata-quorum's `--replication`: a line per replica, the leader first.
pub(crate) async fn quorum_replication(bootstrap: &str) -> Result<()> {
    let mut client = connect(bootstrap, "fjord-metadata-quorum").await?;
    let info = client.describe_quorum().await?;
    let leader_end = leader_of(&info).map_or(info.high_watermark, |l| l.log_end_offset);
    let mut rows: Vec<(&QuorumReplica, &str)> = Vec::new();
    rows.extend(leader_of(&info).map(|l| (l, "Leader")));
    rows.extend(info.voters.iter().filter(|v| v.id != info.leader_id).map(|v| (v, "Follower")));
    rows.extend(info.observers.iter().map(|v| (v, "Observer")));
    let header =
        ["NodeId", "DirectoryId", "LogEndOffset", "Lag", "LastFetchTimestamp", "LastCaughtUpTimestamp", "Status"];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|(r, status)| {
            let lag = if r.log_end_offset < 0 { -1 } else { (leader_end - r.log_end_offset).max(0) };
            [
                r.id.to_string(),
                r.directory_id.clone(),
                r.log_end_offset.to_string(),
                lag.to_string(),
                r.last_fetch_timestamp.to_string(),
                r.last_caught_up_timestamp.to_string(),
                (*status).to_owned(),
            ]
        })
        .collect();
    print_table(&header, &lines);
    Ok(())
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `fjord cluster describe`: the cluster id, the active controller (the quorum's leader), and
/// each broker.
pub(crate) async fn describe(bootstrap: &str) -> Result<()> {
    let mut client = connect(bootstrap, "fjord-cluster").await?;
    let cluster = client.describe_cluster().await?;
    let quorum = client.describe_quorum().await;
    println!("ClusterId:         {}", cluster.cluster_id);
    match &quorum {
        Ok(q) => println!("ActiveController:  {} (metadata leader epoch {})", q.leader_id, q.leader_epoch),
        Err(e) => println!("ActiveController:  unknown ({e})"),
    }
    let header = ["BrokerId", "Endpoint", "Rack", "BrokerEpoch", "Fenced"];
    let rows: Vec<[String; 5]> = cluster
        .brokers
        .iter()
        .map(|b| {
            [
                b.id.to_string(),
                b.endpoint.clone(),
                b.rack.clone().unwrap_or_else(|| "-".into()),
                b.epoch.map_or_else(|| "-".into(), |e| e.to_string()),
                b.fenced.to_string(),
            ]
        })
        .collect();
    print_table(&header, &rows);
    Ok(())
}

/// `fjord leader-election`: kafka-leader-election's report, failing if any partition could
/// not be elected.
pub(crate) async fn elect(bootstrap: &str, election_type: &str, partitions: Option<Vec<(String, i32)>>) -> Result<()> {
    let (election, label) = match election_type.to_ascii_lowercase().as_str() {
        "preferred" => (ElectionType::Preferred, "PREFERRED"),
        "unclean" => (ElectionType::Unclean, "UNCLEAN"),
        other => bail!("unknown election type {other}: preferred or unclean"),
    };
    let mut client = connect(bootstrap, "fjord-leader-election").await?;
    let results = client.elect_leaders(election, partitions.as_deref()).await?;
    let name = |r: &fjord_client::ElectionResult| format!("{}-{}", r.topic, r.partition);
    let elected: Vec<String> = results.iter().filter(|r| r.error_code == 0).map(name).collect();
    let not_needed: Vec<String> =
        results.iter().filter(|r| r.error_code == fjord_types::ErrorCode::ElectionNotNeeded.code()).map(name).collect();
    let failed: Vec<&fjord_client::ElectionResult> = results
        .iter()
        .filter(|r| r.error_code != 0 && r.error_code != fjord_types::ErrorCode::ElectionNotNeeded.code())
        .collect();
    if !elected.is_empty() {
        println!("Successfully completed leader election ({label}) for partitions {}", elected.join(", "));
    }
    if !not_needed.is_empty() {
        println!("Valid replica already elected for partitions {}", not_needed.join(", "));
    }
    if elected.is_empty() && not_needed.is_empty() && failed.is_empty() {
        println!("No partition needed a leader election ({label})");
    }
    for r in &failed {
        let code = fjord_types::ErrorCode::from_code(r.error_code);
        let message = r.message.as_deref().unwrap_or("");
        println!("Error completing leader election ({label}) for partition: {}: {} {message}", name(r), code.name());
    }
    if !failed.is_empty() {
        bail!("{} replica(s) could not be elected", failed.len());
    }
    Ok(())
}
