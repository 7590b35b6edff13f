//! `fjord groups`: kafka-consumer-groups.sh's `--list` and `--describe`, over fjord-client.

use anyhow::{Context, Result, bail};
use fjord_client::Client;

async fn connect(bootstrap: &str) -> Result<Client> {
    crate::connect(bootstrap, "fjord-groups").await
}

/// Prints rows as left-aligned columns under a header, as Kafka's tools do.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `fjord groups list [--state]`.
pub(crate) async fn list(bootstrap: &str, with_state: bool) -> Result<()> {
    let groups = connect(bootstrap).await?.list_groups().await?;
    if with_state {
        let rows: Vec<Vec<String>> = groups.into_iter().map(|g| vec![g.group_id, g.state]).collect();
        print_table(&["GROUP", "STATE"], &rows);
    } else {
        for group in groups {
            println!("{}", group.group_id);
        }
    }
    Ok(())
}

/// `fjord groups describe --group G [--members]`.
pub(crate) async fn describe(bootstrap: &str, group: &str, members: bool) -> Result<()> {
    let mut client = connect(bootstrap).await?;
    let description = client.describe_group(group).await?;
    if members {
        if description.state == "Dead" {
            bail!("consumer group '{group}' does not exist");
        }
        let rows: Vec<Vec<String>> = description
            .members
            .iter()
            .map(|m| {
                let assigned: usize = m.assignment.iter().map(|(_, ps)| ps.len()).sum();
                vec![
                    group.to_owned(),
                    m.member_id.clone(),
                    m.group_instance_id.clone().unwrap_or_else(|| "-".into()),
                    m.client_host.clone(),
                    m.client_id.clone(),
                    assigned.to_string(),
                ]
            })
            .collect();
        print_table(&["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS"], &rows);
        return Ok(());
    }
    let lag = client.group_lag(group).await?;
    if description.state == "Dead" && lag.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    if description.members.is_empty() {
        println!("Consumer group '{group}' has no active members.\n");
    }
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = lag
        .into_iter()
        .map(|row| {
            vec![
                group.to_owned(),
                row.topic,
                row.partition.to_string(),
                row.committed.map_or_else(dash, |c| c.to_string()),
                row.log_end.to_string(),
                row.lag.map_or_else(dash, |l| l.to_string()),
                row.member.as_ref().map_or_else(dash, |m| m.member_id.clone()),
                row.member.as_ref().map_or_else(dash, |m| m.client_host.clone()),
                row.member.as_ref().map_or_else(dash, |m| m.client_id.clone()),
            ]
        })
        .collect();
    print_table(
        &["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"],
        &rows,
    );
    Ok(())
}

/// Where `fjord groups reset-offsets` moves a group's offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    /// The first record at or after this time (ms since the epoch).
    Datetime(i64),
    /// The committed offset moved by this many (negative: back).
    ShiftBy(i64),
}

/// Which partitions `reset-offsets` touches: `--all-topics`, or `--topic t` / `--topic t:0,2`.
pub(crate) enum ResetScope {
    AllTopics,
    Topics(Vec<String>),
}

/// `fjord groups reset-offsets --group G (--all-topics | --topic T[:P,..]) --to-... [--execute]`.
///
/// As kafka-consumer-groups does: the group must have no members; offsets are clamped to each
/// partition's [log start, log end]; without `--execute` nothing changes (a dry run).
pub(crate) async fn reset_offsets(
    bootstrap: &str,
    group: &str,
    scope: ResetScope,
    to: ResetTo,
    execute: bool,
) -> Result<()> {
    let mut client = connect(bootstrap).await?;
    let description = client.describe_group(group).await?;
    if !matches!(description.state.as_str(), "Empty" | "Dead") {
        bail!(
            "assignments can only be reset if the group '{group}' is inactive, but the current state is {}",
            description.state
        );
    }
    let committed = client.committed_offsets(group).await?;
    let partitions: Vec<(String, i32)> = match scope {
        ResetScope::AllTopics => committed.keys().cloned().collect(),
        ResetScope::Topics(specs) => {
            let mut out = Vec::new();
            for spec in specs {
                match spec.split_once(':') {
                    Some((topic, list)) => {
                        let known = client.topics(Some(&[topic])).await?;
                        let count = known.first().map_or(0, |t| t.partitions.len() as i32);
                        for p in list.split(',') {
                            let p: i32 =
                                p.trim().parse().with_context(|| format!("--topic {spec}: bad partition {p}"))?;
                            if !(0..count).contains(&p) {
                                bail!("--topic {spec}: {topic} has no partition {p}");
                            }
                            out.push((topic.to_owned(), p));
                        }
                    }
                    None => {
                        for t in client.topics(Some(&[spec.as_str()])).await? {
                            out.extend(t.partitions.iter().map(|p| (t.name.clone(), p.partition)));
                        }
                    }
                }
            }
            out.sort();
            out.dedup();
            out
        }
    };
    if partitions.is_empty() {
        bail!("group '{group}' has no committed offsets to reset (name the partitions with --topic)");
    }
    let earliest = client.list_offsets(&partitions, -2).await?;
    let latest = client.list_offsets(&partitions, -1).await?;
    let by_time = match to {
        ResetTo::Datetime(ms) => Some(client.list_offsets(&partitions, ms).await?),
        _ => None,
    };
    let mut targets = std::collections::BTreeMap::new();
    for tp in &partitions {
        let (low, high) = (earliest[tp], latest[tp]);
        let wanted = match &to {
            ResetTo::Earliest => low,
            ResetTo::Latest => high,
            ResetTo::Offset(o) => *o,
            ResetTo::Datetime(_) => {
                let offset = by_time.as_ref().expect("looked up above")[tp];
                if offset < 0 { high } else { offset }
            }
            ResetTo::ShiftBy(n) => committed.get(tp).copied().unwrap_or(high).saturating_add(*n),
        };
        targets.insert(tp.clone(), wanted.clamp(low, high));
    }
    let rows: Vec<Vec<String>> = targets
        .iter()
        .map(|((topic, partition), offset)| {
            vec![group.to_owned(), topic.clone(), partition.to_string(), offset.to_string()]
        })
        .collect();
    if execute {
        client.commit_offsets(group, &targets).await?;
    } else {
        eprintln!("Dry run: nothing was changed. Add --execute to reset the offsets.\n");
    }
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    Ok(())
}

/// `fjord groups delete --group G...`.
pub(crate) async fn delete(bootstrap: &str, groups: &[String]) -> Result<()> {
    let mut client = connect(bootstrap).await?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let mut failed = Vec::new();
    for (group, outcome) in client.delete_groups(&names).await? {
        match outcome {
            Ok(()) => println!("Deletion of requested consumer group '{group}' was successful."),
            Err(e) => {
                let reason = match e.code() {
                    Some(68) => "the group is not empty".to_owned(),
                    Some(69) => "the group does not exist".to_owned(),
                    _ => e.to_string(),
                };
                eprintln!("Deletion of consumer group '{group}' failed: {reason}.");
                failed.push(group);
            }
        }
    }
    if !failed.is_empty() {
        bail!("{} of {} groups could not be deleted", failed.len(), groups.len());
    }
    Ok(())
}

/// Parses `--to-datetime`: `YYYY-MM-DDTHH:mm:SS[.sss]` with an optional zone (`Z`, `+hh:mm`,
/// `-hhmm`). Without a zone the time is UTC (Kafka's tool uses the local zone, which is UTC on
/// most servers).
pub(crate) fn parse_datetime(text: &str) -> Result<i64> {
    let bad = || anyhow::anyhow!("--to-datetime {text}: expected YYYY-MM-DDTHH:mm:SS.sss, optionally with Z or ±hh:mm");
    let (date, time) = text.split_once('T').ok_or_else(bad)?;
    let (time, offset_minutes) = if let Some(t) = time.strip_suffix('Z') {
        (t, 0)
    } else if let Some(pos) = time.rfind(['+', '-']) {
        let (t, zone) = time.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i64 = digits[2..].parse().map_err(|_| bad())?;
        (t, sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let numbers = |s: &str, n: usize| -> Result<Vec<i64>> {
        let parts: Vec<i64> = s.split([':', '-']).map(|p| p.parse().map_err(|_| bad())).collect::<Result<_>>()?;
        if parts.len() != n { Err(bad()) } else { Ok(parts) }
    };
    let ymd = numbers(date, 3)?;
    let (hms, millis) = match time.split_once('.') {
        Some((hms, frac)) => {
            let frac = format!("{frac:0<3}");
            (hms, frac[..3].parse::<i64>().map_err(|_| bad())?)
        }
        None => (time, 0),
    };
    let hms = numbers(hms, 3)?;
    let (y, m, d) = (ymd[0], ymd[1], ymd[2]);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
        return Err(bad());
    }
    let days = days_from_civil(y, m, d);
    let seconds = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_kafka_writes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000").unwrap(), 0);
        assert_eq!(parse_datetime("2024-02-29T12:30:15.250Z").unwrap(), 1_709_209_815_250);
        assert_eq!(parse_datetime("2024-02-29T14:30:15.250+02:00").unwrap(), 1_709_209_815_250);
        assert_eq!(parse_datetime("2024-02-29T12:30:15").unwrap(), 1_709_209_815_000);
        assert!(parse_datetime("2024-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }
}
