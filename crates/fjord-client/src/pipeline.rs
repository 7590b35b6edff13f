//! A connection with several requests in flight, as producers and consumers use one: requests
//! are written as they are ready and a task reads the responses, stamping each with its arrival
//! time so latencies are measured when the broker answered, not when the caller looked.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connection::{ConnectionParts, api_name, decode_response, encode_request, negotiate, read_frame};
use crate::{Connection, Error};

/// One request awaiting its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    correlation_id: i32,
    api_key: i16,
    version: i16,
}

/// A pipelined connection to one broker.
#[derive(Debug)]
pub(crate) struct Pipeline {
    address: String,
    writer: OwnedWriteHalf,
    client_id: StrBytes,
    correlation_id: i32,
    timeout: Duration,
    versions: HashMap<i16, (i16, i16)>,
    pending: VecDeque<Pending>,
    responses: mpsc::UnboundedReceiver<std::io::Result<(Bytes, Instant)>>,
    reader: JoinHandle<()>,
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Pipeline {
    /// Splits a negotiated connection for pipelining: requests go out while a task reads
    /// responses.
    pub(crate) fn new(connection: Connection) -> Pipeline {
        let ConnectionParts { address, stream, client_id, timeout, versions } = connection.into_parts();
        let (mut read, writer) = stream.into_split();
        let (sender, responses) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            loop {
                let frame = read_frame(&mut read).await.map(|body| (body, Instant::now()));
                let failed = frame.is_err();
                if sender.send(frame).is_err() || failed {
                    return;
                }
            }
        });
        Pipeline {
            address,
            writer,
            client_id,
            correlation_id: 0,
            timeout,
            versions,
            pending: VecDeque::new(),
            responses,
            reader,
        }
    }

    /// The version of `R` to use: the highest both sides support, at most `cap`.
    pub(crate) fn version_for<R: Request>(&self, cap: Option<i16>) -> Result<i16, Error> {
        negotiate::<R>(&self.versions, &self.address, cap)
    }

    /// Writes `request`. With `expect_response` false (Produce with acks=0) the broker sends
    /// nothing back and nothing is queued.
    pub(crate) async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        expect_response: bool,
    ) -> Result<(), Error> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let frame = encode_request(request, version, self.correlation_id, &self.client_id)?;
        tokio::time::timeout(self.timeout, self.writer.write_all(&frame))
            .await
            .map_err(|_| Error::Timeout(format!("sending {} to {}", api_name(R::KEY), self.address)))?
            .map_err(|source| Error::Io { context: format!("{} to {}", api_name(R::KEY), self.address), source })?;
        if expect_response {
            self.pending.push_back(Pending { correlation_id: self.correlation_id, api_key: R::KEY, version });
        }
        Ok(())
    }

    /// Waits for the oldest outstanding response, which must answer a request of type `R`, and
    /// returns it with the time it arrived.
    pub(crate) async fn receive<R: Request>(&mut self) -> Result<(R::Response, Instant), Error> {
        let pending = *self
            .pending
            .front()
            .ok_or_else(|| Error::Protocol(format!("no request in flight to {}", self.address)))?;
        if pending.api_key != R::KEY {
            return Err(Error::Protocol(format!(
                "the next response from {} answers {}, not {}",
                self.address,
                api_name(pending.api_key),
                api_name(R::KEY)
            )));
        }
        let what = || format!("{} from {}", api_name(R::KEY), self.address);
        let frame = tokio::time::timeout(self.timeout, self.responses.recv())
            .await
            .map_err(|_| Error::Timeout(format!("waiting for {}", what())))?
            .ok_or_else(|| Error::Io {
                context: what(),
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"),
            })?;
        let (body, arrived) = frame.map_err(|source| Error::Io { context: what(), source })?;
        self.pending.pop_front();
        let response = decode_response::<R>(body, pending.version, pending.correlation_id, &self.address)?;
        Ok((response, arrived))
    }

    /// Whether a response has arrived and can be taken without waiting.
    pub(crate) fn has_response(&self) -> bool {
        !self.pending.is_empty() && !self.responses.is_empty()
    }
}
