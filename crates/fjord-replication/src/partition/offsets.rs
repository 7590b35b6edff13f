//! Offset look-ups and moves: ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

use fjord_types::{LeaderEpoch, Offset, Timestamp};

use super::Partition;
use crate::error::ReadError;

impl Partition {
    /// ListOffsets: the offset (and its timestamp and epoch) for `timestamp`, or one of
    /// Kafka's sentinels (-1 latest, -2 earliest, -3 max timestamp). `None` if no record at or
    /// below the high watermark qualifies.
    pub fn list_offset(
        &self,
        timestamp: Timestamp,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Option<(Timestamp, Offset, LeaderEpoch)>, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        self.require_leader()?;
        let high_watermark = self.high_watermark();
        let epoch_start = self.state.leader_epoch_start_offset();
        if !epoch_start.is_none() && high_watermark < epoch_start {
            // A new leader whose followers have not fetched yet: its high watermark may be
            // below the old leader's, and answering it would move a client backwards.
            return Err(ReadError::OffsetNotAvailable { high_watermark, epoch_start });
        }
        let found = match timestamp {
            Timestamp::LATEST => Some((Timestamp::NONE, high_watermark)),
            Timestamp::EARLIEST => Some((Timestamp::NONE, self.log.log_start_offset())),
            Timestamp::MAX_TIMESTAMP => self.log.max_timestamp_record()?.map(|f| (f.timestamp, f.offset)),
            _ => self.log.offset_for_timestamp(timestamp)?.map(|f| (f.timestamp, f.offset)),
        };
        let fetchable = |offset: Offset| offset <= high_watermark && offset >= self.log.log_start_offset();
        Ok(found.filter(|(ts, offset)| fetchable(*offset) && (ts.is_none() || *offset < high_watermark)).map(
            |(ts, offset)| {
                let epoch = if offset == high_watermark { self.leader_epoch() } else { self.epoch_for(offset) };
                (ts, offset, epoch)
            },
        ))
    }

    /// The epoch under which `offset` was written.
    fn epoch_for(&self, offset: Offset) -> LeaderEpoch {
        self.epochs.entries().iter().rev().find(|e| e.start_offset <= offset).map_or(LeaderEpoch::NONE, |e| e.epoch)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where it ends.
    pub fn end_offset_for_epoch(
        &self,
        epoch: LeaderEpoch,
        current_leader_epoch: Option<LeaderEpoch>,
    ) -> Result<Option<(LeaderEpoch, Offset)>, ReadError> {
        self.check_leader_epoch(current_leader_epoch)?;
        self.require_leader()?;
        Ok(self.epochs.end_offset_for(epoch, self.log.log_end_offset()))
    }

    /// DeleteRecords: raises the log start offset to `offset` (-1: the high watermark) and drops
    /// the segments wholly below it. Returns the new low watermark.
    pub fn delete_records(&mut self, offset: Offset) -> Result<Offset, ReadError> {
        self.require_leader()?;
        let high_watermark = self.high_watermark();
        let target = if offset == Offset(-1) { high_watermark } else { offset };
        if target < Offset(0) || target > high_watermark {
            return Err(ReadError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log.log_start_offset(),
                log_end_offset: high_watermark,
            });
        }
        self.log.increment_log_start_offset(target)?;
        let start = self.log.log_start_offset();
        let below: Option<Offset> = self
            .log
            .segments()
            .iter()
            .take_while(|s| s.next_offset <= start && !s.is_active)
            .last()
            .map(|s| s.next_offset);
        if let Some(first_kept) = below {
            for segment in self.log.delete_segments_before(first_kept)? {
                segment.remove()?;
            }
        }
        self.state.on_log_start(start);
        Ok(start)
    }
}
