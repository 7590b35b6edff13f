//! `fjord groups`: kafka-consumer-groups.sh's `--list` and `--describe`, over fjord-client.

use std::time::Duration;

use anyhow::{Result, bail};
use fjord_client::Client;

/// Connects as the tools do: a short timeout, so a broker that is down is reported quickly.
async fn connect(bootstrap: &str) -> Result<Client> {
    Ok(Client::with_options(bootstrap, "fjord-groups", Duration::from_secs(10)).await?)
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
