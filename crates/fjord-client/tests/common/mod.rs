//! Shared by fjord-client's tests: an in-process broker, and frames read off a socket by the
//! proxies the tests put between the client and the broker.

#![allow(dead_code, unreachable_pub)]

use fjord_broker::{BrokerConfig, RunningServer, Server};
use tokio::io::AsyncReadExt;

/// An in-process broker on an ephemeral port with its data in `dir`, plus `extra` properties.
pub async fn start_broker(dir: &std::path::Path, extra: &[(&str, &str)]) -> RunningServer {
    let mut props: std::collections::BTreeMap<String, String> =
        extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    props.insert("listeners".to_owned(), "PLAINTEXT://127.0.0.1:0".to_owned());
    props.insert("log.dirs".to_owned(), dir.display().to_string());
    props.entry("num.partitions".to_owned()).or_insert_with(|| "2".to_owned());
    Server::start(BrokerConfig::from_properties(props).unwrap()).await.unwrap().spawn()
}

/// Reads one size-prefixed frame (prefix included), or `None` at the end of the stream.
pub async fn read_frame(from: &mut (impl AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let size = from.read_i32().await.ok()?;
    let mut frame = size.to_be_bytes().to_vec();
    frame.resize(4 + usize::try_from(size).ok()?, 0);
    from.read_exact(&mut frame[4..]).await.ok()?;
    Some(frame)
}
