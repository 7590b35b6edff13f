//! Prints a consumer group's lag per partition, as `kafka-consumer-groups --describe` does.
//!
//!     cargo run -p fjord-client --example group_lag -- 127.0.0.1:9092 my-group

#![allow(clippy::print_stdout, clippy::print_stderr)]

use fjord_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(bootstrap), Some(group)) = (args.next(), args.next()) else {
        eprintln!("usage: group_lag <bootstrap host:port> <group>");
        std::process::exit(2);
    };
    let mut client = Client::connect(&bootstrap).await?;
    let description = client.describe_group(&group).await?;
    println!("group {group}: {} with {} members", description.state, description.members.len());
    for row in client.group_lag(&group).await? {
        let owner = row.member.map_or_else(|| "-".to_owned(), |m| m.member_id);
        println!(
            "{}-{}: committed {:?}, end {}, lag {:?}, owner {owner}",
            row.topic, row.partition, row.committed, row.log_end, row.lag
        );
    }
    Ok(())
}
