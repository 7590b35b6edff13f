//! The leader's side of replication: proposals into the log, Fetch and FetchSnapshot answered
//! or parked (Kafka's `handleFetchRequest`, `tryCompleteFetchRequest`, fetch purgatory,
//! `handleFetchSnapshotRequest`, `BatchAccumulator` and `maybeAppendBatches`).

use fjord_types::{ErrorCode, Offset};

use super::RaftNode;
use crate::error::{Error, Result};
use crate::ids::{NodeId, OffsetAndEpoch};
use crate::log::{RaftLog, ValidOffsetAndEpoch};
use crate::message::{FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, MessageBody};
use crate::record::{BATCH_OVERHEAD_BYTES, Batch, BatchKind, RECORD_OVERHEAD_BYTES};
use crate::state::{ParkedFetch, Role};
use crate::store::QuorumStateStore;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    pub(super) fn accept_proposal(&mut self, records: Vec<Vec<u8>>) -> Result<OffsetAndEpoch> {
        let max_batch = self.options.config.max_batch_bytes;
        let single_voter = self.options.voters.len() == 1;
        let linger = self.options.config.append_linger_ms;
        let end = self.log.log_end_offset();
        let now = self.now;
        let announced = self.announced;
        let local = self.options.local.id;
        // (A snapshot may have trimmed the record away since: then it is long committed.)
        let log_start = self.log.log_start_offset();
        let change_appended =
            |epoch, start: Offset| end > start && (start < log_start || self.log.epoch_of(start) == Some(epoch));
        let Role::Leader(state) = &self.role else { return Err(self.not_leader()) };
        // Records go after the epoch's LeaderChange record, and only once it is committed and
        // announced: then everything before the epoch is applied, and what is proposed now is
        // decided on current state.
        if !change_appended(state.epoch, state.epoch_start_offset) || announced != Some((state.epoch, Some(local))) {
            return Err(Error::LeaderNotReady { epoch: state.epoch, epoch_start_offset: state.epoch_start_offset });
        }
        let Role::Leader(state) = &mut self.role else { return Err(self.not_leader()) };
        if records.is_empty() {
            return Err(Error::InvalidProposal("no records".into()));
        }
        if let Some(big) = records.iter().find(|r| r.len() + RECORD_OVERHEAD_BYTES + BATCH_OVERHEAD_BYTES > max_batch) {
            return Err(Error::InvalidProposal(format!(
                "a record of {} bytes exceeds the batch limit {max_batch}",
                big.len()
            )));
        }
        let pending = &mut state.pending;
        pending.bytes += records.iter().map(|r| r.len() + RECORD_OVERHEAD_BYTES).sum::<usize>();
        pending.records.extend(records);
        pending.since.get_or_insert(now);
        let last = OffsetAndEpoch::new(end.plus(pending.records.len() as i64 - 1), state.epoch);
        if linger == 0 || single_voter || pending.bytes >= max_batch {
            self.drain_proposals()?;
        }
        Ok(last)
    }

    /// Appends the pending proposals as batches, flushes, and lets the high watermark and parked
    /// fetches react.
    pub(super) fn drain_proposals(&mut self) -> Result<()> {
        let max_batch = self.options.config.max_batch_bytes;
        let now = self.now;
        let Role::Leader(state) = &mut self.role else { return Ok(()) };
        let records = std::mem::take(&mut state.pending.records);
        state.pending = Default::default();
        if records.is_empty() {
            return Ok(());
        }
        let epoch = state.epoch;
        let mut batch = Vec::new();
        let mut bytes = BATCH_OVERHEAD_BYTES;
        let mut base = self.log.log_end_offset();
        for record in records {
            let size = record.len() + RECORD_OVERHEAD_BYTES;
            if !batch.is_empty() && bytes + size > max_batch {
                let full = std::mem::take(&mut batch);
                let count = full.len() as i64;
                self.append_to_log(Batch {
                    base_offset: base,
                    epoch,
                    append_timestamp: now,
                    kind: BatchKind::Data,
                    records: full,
                })?;
                base = base.plus(count);
                bytes = BATCH_OVERHEAD_BYTES;
            }
            bytes += size;
            batch.push(record);
        }
        self.append_to_log(Batch {
            base_offset: base,
            epoch,
            append_timestamp: now,
            kind: BatchKind::Data,
            records: batch,
        })?;
        // The leader counts its records only once they are on its disk (KAFKA-10533).
        self.log.flush()?;
        let end = self.log.log_end_offset();
        if let Role::Leader(state) = &mut self.role {
            state.update_local_end_offset(end, now);
        }
        // New records: every parked fetch has something to read now.
        self.complete_parked(|_| true)
    }

    /// Answers parked fetches chosen by `which`, reading the log afresh for each.
    pub(super) fn complete_parked(&mut self, which: impl Fn(&ParkedFetch) -> bool) -> Result<()> {
        let Role::Leader(state) = &mut self.role else { return Ok(()) };
        let chosen: Vec<NodeId> = state.parked.iter().filter(|(_, p)| which(p)).map(|(id, _)| *id).collect();
        let mut fetches = Vec::with_capacity(chosen.len());
        for id in chosen {
            if let Some(parked) = state.parked.remove(&id) {
                fetches.push((id, parked));
            }
        }
        for (from, parked) in fetches {
            let (response, _) = self.try_complete_fetch(&parked.request)?;
            self.respond(from, parked.correlation_id, MessageBody::FetchResponse(response));
        }
        Ok(())
    }

    pub(super) fn handle_fetch_request(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        request: FetchRequest,
    ) -> Result<()> {
        if request.max_wait_ms < 0
            || request.fetch_offset.0 < 0
            || request.last_fetched_epoch.0 < 0
            || request.last_fetched_epoch > request.current_leader_epoch
        {
            let body = MessageBody::FetchResponse(self.empty_fetch_response(ErrorCode::InvalidRequest, None));
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        let (response, high_watermark_moved) = self.try_complete_fetch(&request)?;
        if high_watermark_moved {
            self.complete_parked(|_| true)?;
        }
        // Answer at once unless there is nothing to say (KAFKA-15100: divergence and snapshot
        // answers are never parked); KIP-1166: a fetcher behind on the high watermark is told.
        let immediate = !response.error.is_ok()
            || !response.records.is_empty()
            || request.max_wait_ms == 0
            || response.diverging_epoch.is_some()
            || response.snapshot_id.is_some()
            || request.high_watermark < response.high_watermark;
        if immediate {
            self.respond(from, correlation_id, MessageBody::FetchResponse(response));
            return Ok(());
        }
        let deadline = self.after(request.max_wait_ms);
        if let Role::Leader(state) = &mut self.role {
            state.parked.insert(from, ParkedFetch { correlation_id, request, deadline });
        }
        Ok(())
    }

    /// Kafka's `tryCompleteFetchRequest`: the answer to a fetch as of now, and whether the
    /// fetch moved the high watermark.
    pub(super) fn try_complete_fetch(&mut self, request: &FetchRequest) -> Result<(FetchResponse, bool)> {
        if let Some(error) = self.validate_leader_only(request.current_leader_epoch) {
            return Ok((self.empty_fetch_response(error, None), false));
        }
        let validation = match self.log.latest_snapshot_id() {
            // An empty follower starts from the latest snapshot rather than the log (KAFKA-15078);
            // a bootstrap snapshot at offset 0 is never sent.
            Some(latest) if request.fetch_offset == Offset(0) && latest.offset > Offset(0) => {
                ValidOffsetAndEpoch::Snapshot(latest)
            }
            _ => self.log.validate_offset_and_epoch(request.fetch_offset, request.last_fetched_epoch),
        };
        let mut response = self.empty_fetch_response(ErrorCode::None, None);
        let mut moved = false;
        match validation {
            ValidOffsetAndEpoch::Valid => {
                let max_bytes = request.max_bytes.min(self.options.config.fetch_max_bytes);
                response.records = self.read_log(request.fetch_offset, max_bytes)?;
                let (end, now) = (self.log.log_end_offset(), self.now);
                if let Role::Leader(state) = &mut self.role {
                    moved = state.update_replica(request.replica_key, request.fetch_offset, end, now);
                }
            }
            ValidOffsetAndEpoch::Diverging(end) => response.diverging_epoch = Some(end),
            ValidOffsetAndEpoch::Snapshot(id) => response.snapshot_id = Some(id),
        }
        response.high_watermark = self.role.high_watermark();
        Ok((response, moved))
    }

    pub(super) fn handle_fetch_snapshot_request(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        request: FetchSnapshotRequest,
    ) -> Result<()> {
        if let Some(error) = self.validate_leader_only(request.current_leader_epoch) {
            let body = MessageBody::FetchSnapshotResponse(self.empty_snapshot_response(error, request.snapshot_id));
            self.respond(from, correlation_id, body);
            return Ok(());
        }
        let max_bytes = request.max_bytes.min(self.options.config.fetch_snapshot_max_bytes);
        let chunk = if request.snapshot_id.offset == Offset(0) {
            None
        } else {
            self.log.read_snapshot(request.snapshot_id, request.position, max_bytes)?
        };
        let body = match chunk {
            None => self.empty_snapshot_response(ErrorCode::SnapshotNotFound, request.snapshot_id),
            Some(chunk) if request.position >= chunk.size => {
                self.empty_snapshot_response(ErrorCode::PositionOutOfRange, request.snapshot_id)
            }
            Some(chunk) => {
                let now = self.now;
                if let Role::Leader(state) = &mut self.role {
                    state.update_check_quorum(request.replica_key, now);
                }
                FetchSnapshotResponse {
                    error: ErrorCode::None,
                    leader_epoch: self.role.epoch(),
                    leader_id: self.leader_id(),
                    snapshot_id: request.snapshot_id,
                    size: chunk.size,
                    position: request.position,
                    bytes: chunk.bytes,
                }
            }
        };
        self.respond(from, correlation_id, MessageBody::FetchSnapshotResponse(body));
        Ok(())
    }
}
