//! The follower's side of replication: Fetch and FetchSnapshot answers (Kafka's
//! `handleFetchResponse`, `appendAsFollower`, `truncateToEndOffset` and
//! `handleFetchSnapshotResponse`).

use fjord_types::{ErrorCode, LeaderEpoch, Timestamp};

use super::{RaftNode, bug};
use crate::effect::Effect;
use crate::error::{Error, Result};
use crate::ids::{NodeId, OffsetAndEpoch, SnapshotId};
use crate::log::{RaftLog, decode_snapshot};
use crate::message::{FetchResponse, FetchSnapshotResponse};
use crate::record::Batch;
use crate::requests::RequestKind;
use crate::state::{Role, SnapshotDownload};
use crate::store::QuorumStateStore;

impl<L: RaftLog, S: QuorumStateStore> RaftNode<L, S> {
    pub(super) fn handle_fetch_response(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        response: FetchResponse,
    ) -> Result<()> {
        if !self.is_expected_answer(from, correlation_id, RequestKind::Fetch) {
            return Ok(());
        }
        if let Some(ok) =
            self.maybe_handle_common_response(response.error, response.leader_id, response.leader_epoch)?
        {
            self.finish_request(from, ok);
            return Ok(());
        }
        if !response.error.is_ok()
            || !matches!(self.role, Role::Follower(_))
            || response.leader_epoch != self.role.epoch()
        {
            self.finish_request(from, false);
            return Ok(());
        }
        let ok = if let Some(diverging) = response.diverging_epoch {
            self.truncate_to_leader(diverging)?;
            true
        } else if let Some(snapshot_id) = response.snapshot_id {
            self.start_snapshot_download(snapshot_id)?
        } else {
            let appended = self.append_as_follower(response.records)?;
            if appended {
                self.update_follower_high_watermark(response.high_watermark);
            }
            appended
        };
        if ok {
            let deadline = self.after(self.options.config.fetch_timeout_ms);
            if let Role::Follower(state) = &mut self.role {
                state.fetch_deadline = deadline;
                state.has_fetched_from_leader = true;
            }
        }
        self.finish_request(from, ok);
        Ok(())
    }

    /// Kafka's `truncateToEndOffset`: cut the log where it stops matching the leader's, never
    /// below the high watermark ("the leader requested truncation ... below the current high
    /// watermark" is fatal).
    fn truncate_to_leader(&mut self, diverging: OffsetAndEpoch) -> Result<()> {
        let local = self.log.end_offset_for_epoch(diverging.epoch);
        let mut truncation = if diverging.epoch.0 == 0 || local.epoch == diverging.epoch {
            local.offset.min(diverging.offset).min(self.log.log_end_offset())
        } else {
            local.offset
        };
        let high_watermark = self.role.high_watermark();
        if bug!(self, TruncateBelowHw) {
            // Cut at the start of the diverging epoch, and do not look at the high watermark.
            let start = self.log.end_offset_for_epoch(LeaderEpoch(diverging.epoch.0 - 1)).offset;
            truncation = truncation.min(start).max(self.log.log_start_offset());
        } else if high_watermark.is_some_and(|hw| truncation < hw) {
            return Err(Error::InvariantViolated(format!(
                "the leader asked for a truncation to {truncation} (diverging {diverging:?}), below the high watermark {high_watermark:?}"
            )));
        }
        if truncation < self.log.log_start_offset() {
            return Err(Error::InvariantViolated(format!(
                "a truncation to {truncation}, below the log start {}",
                self.log.log_start_offset()
            )));
        }
        self.truncate_log(truncation)?;
        let end = self.log.log_end_offset();
        if let Role::Follower(state) = &mut self.role
            && state.high_watermark.is_some_and(|hw| hw > end)
        {
            // Only the planted bug gets here.
            state.high_watermark = Some(end);
        }
        self.next_commit = self.next_commit.min(end);
        Ok(())
    }

    /// Appends the leader's batches after checking that they continue our log. Voters flush
    /// before the next fetch acknowledges them; observers need not. Returns false for an answer
    /// that does not fit (it is dropped and the fetch retried).
    fn append_as_follower(&mut self, batches: Vec<Batch>) -> Result<bool> {
        let epoch = self.role.epoch();
        let mut next = self.log.log_end_offset();
        let mut last_epoch = self.log.last_fetched_epoch();
        for batch in &batches {
            if batch.base_offset != next || batch.records.is_empty() || batch.epoch > epoch || batch.epoch < last_epoch
            {
                return Ok(false);
            }
            next = batch.next_offset();
            last_epoch = batch.epoch;
        }
        if batches.is_empty() {
            return Ok(true);
        }
        for batch in batches {
            self.append_to_log(batch)?;
        }
        if self.is_voter() && !bug!(self, CommitBeforeFlush) {
            self.log.flush()?;
        }
        Ok(true)
    }

    /// The leader redirected us to a snapshot (our fetch offset is below its log start).
    fn start_snapshot_download(&mut self, id: SnapshotId) -> Result<bool> {
        if id.offset.0 < 0 || id.epoch.0 < 0 {
            return Ok(false);
        }
        let already_have =
            self.log.latest_snapshot_id().is_some_and(|s| s >= id) && self.log.log_end_offset() >= id.offset;
        if already_have {
            return Ok(true);
        }
        if let Role::Follower(state) = &mut self.role {
            state.fetching_snapshot = Some(SnapshotDownload { id, position: 0, bytes: Vec::new() });
        }
        Ok(true)
    }

    pub(super) fn handle_fetch_snapshot_response(
        &mut self,
        from: NodeId,
        correlation_id: u64,
        response: FetchSnapshotResponse,
    ) -> Result<()> {
        if !self.is_expected_answer(from, correlation_id, RequestKind::FetchSnapshot) {
            return Ok(());
        }
        if let Some(ok) =
            self.maybe_handle_common_response(response.error, response.leader_id, response.leader_epoch)?
        {
            self.finish_request(from, ok);
            return Ok(());
        }
        let Role::Follower(state) = &mut self.role else {
            self.finish_request(from, false);
            return Ok(());
        };
        let Some(download) = &mut state.fetching_snapshot else {
            self.finish_request(from, false);
            return Ok(());
        };
        if response.error == ErrorCode::SnapshotNotFound {
            // The leader dropped it (a newer one replaced it): fetch again to learn which.
            state.fetching_snapshot = None;
            self.finish_request(from, true);
            return Ok(());
        }
        if !response.error.is_ok()
            || response.snapshot_id != download.id
            || response.position != download.position
            || response.bytes.is_empty() && response.position < response.size
        {
            self.finish_request(from, false);
            return Ok(());
        }
        download.bytes.extend_from_slice(&response.bytes);
        download.position += response.bytes.len() as u64;
        let complete = if download.position >= response.size { state.fetching_snapshot.take() } else { None };
        state.fetch_deadline = Timestamp(self.now.0.saturating_add(self.options.config.fetch_timeout_ms));
        if let Some(download) = complete {
            self.install_snapshot(download)?;
        }
        self.finish_request(from, true);
        Ok(())
    }

    /// A complete download: check it, store it, start the log at its end, and tell the state
    /// machine to load it. A download that does not check out is dropped and fetched again.
    ///
    /// A log that already holds the snapshot's last record (same offset, same epoch) matches
    /// the leader's up to there, and what it holds beyond may be committed: it is trimmed below
    /// the snapshot only, never emptied (a late redirect to a snapshot must not cost a follower
    /// records it has acknowledged).
    fn install_snapshot(&mut self, download: SnapshotDownload) -> Result<()> {
        match decode_snapshot(&download.bytes) {
            Ok((id, _)) if id == download.id => {}
            _ => return Ok(()),
        }
        let id = download.id;
        if self.role.high_watermark().is_some_and(|hw| id.offset < hw) {
            return Err(Error::InvariantViolated(format!(
                "snapshot {id:?} ends below the high watermark {:?}",
                self.role.high_watermark()
            )));
        }
        self.log.write_snapshot(id, &download.bytes)?;
        if self.log_continues_past(id) {
            self.log.delete_before_snapshot(id)?;
            self.tail.drop_below(id.offset);
        } else {
            self.tail.clear();
            self.log.truncate_to_snapshot(id)?;
        }
        if let Role::Follower(state) = &mut self.role {
            // A snapshot holds only committed records.
            state.high_watermark = Some(state.high_watermark.map_or(id.offset, |hw| hw.max(id.offset)));
        }
        self.next_commit = id.offset;
        self.effects.push(Effect::LoadSnapshot { snapshot_id: id });
        Ok(())
    }

    /// Whether the log holds the snapshot's last record, of the snapshot's epoch, at the end of
    /// a batch, with records after it: then it matches the leader's log up to the snapshot.
    fn log_continues_past(&self, id: SnapshotId) -> bool {
        let start = self.log.log_start_offset();
        if id.offset <= start || id.offset >= self.log.log_end_offset() {
            return false;
        }
        if self.log.epoch_of(id.offset.plus(-1)) != Some(id.epoch) {
            return false;
        }
        // The snapshot must end on a batch boundary of this log, as the leader's does.
        self.read_log(id.offset, 1).ok().and_then(|batches| batches.first().map(|b| b.base_offset)) == Some(id.offset)
    }
}
