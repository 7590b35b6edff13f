use proptest::prelude::*;

use super::*;

const LOCAL: BrokerId = BrokerId(1);

fn registration(leader: i32, epoch: i32, replicas: &[i32], isr: &[i32]) -> PartitionRegistration {
    PartitionRegistration {
        replicas: replicas.iter().copied().map(BrokerId).collect(),
        isr: isr.iter().copied().map(BrokerId).collect(),
        leader: BrokerId(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: epoch,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

#[test]
fn a_sole_leader_moves_the_high_watermark_with_its_appends() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(5), Offset(2));
    assert_eq!(state.high_watermark(), Offset(2), "the checkpoint, until it leads");
    assert!(state.become_leader(&registration(1, 0, &[1], &[1]), Timestamp(0)).unwrap());
    assert_eq!(state.high_watermark(), Offset(5));
    assert!(state.on_local_append(Offset(8)));
    assert_eq!(state.high_watermark(), Offset(8));
    state.validate().unwrap();
}

#[test]
fn with_a_follower_in_the_isr_the_high_watermark_waits_below_the_log_end() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
    state.become_leader(&registration(1, 3, &[1, 2], &[1, 2]), Timestamp(100)).unwrap();
    assert!(!state.on_local_append(Offset(10)), "the follower has fetched nothing yet");
    assert_eq!((state.high_watermark(), state.log_end_offset()), (Offset(0), Offset(10)));
    state.validate().unwrap();
    assert!(state.on_follower_fetch(BrokerId(2), Offset(6), Timestamp(200)));
    assert_eq!(state.high_watermark(), Offset(6));
    assert_eq!(state.remote(BrokerId(2)).unwrap().last_caught_up, Timestamp(100), "not caught up at 6 of 10");
    assert!(state.on_follower_fetch(BrokerId(2), Offset(10), Timestamp(300)));
    assert_eq!(state.high_watermark(), Offset(10));
    assert_eq!(state.remote(BrokerId(2)).unwrap().last_caught_up, Timestamp(300));
    // A fetch from a broker without a replica changes nothing.
    assert!(!state.on_follower_fetch(BrokerId(9), Offset(10), Timestamp(300)));
    state.validate().unwrap();
}

#[test]
fn shrinking_the_isr_lets_the_high_watermark_move_past_the_lagging_follower() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
    state.become_leader(&registration(1, 0, &[1, 2], &[1, 2]), Timestamp(0)).unwrap();
    state.on_local_append(Offset(10));
    state.on_follower_fetch(BrokerId(2), Offset(4), Timestamp(1));
    // Past replica.lag.time.max.ms the follower no longer counts as caught up.
    assert!(!state.become_leader(&registration(1, 0, &[1, 2], &[1]), Timestamp(40_000)).unwrap(), "same epoch");
    assert_eq!(state.high_watermark(), Offset(10));
    assert_eq!(state.remote(BrokerId(2)).unwrap().log_end_offset, Offset(4), "kept within the epoch");
    state.validate().unwrap();
}

#[test]
fn stale_and_misdirected_registrations_are_refused() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
    state.become_leader(&registration(1, 5, &[1], &[1]), Timestamp(0)).unwrap();
    assert!(matches!(
        state.become_leader(&registration(1, 4, &[1], &[1]), Timestamp(0)),
        Err(StateError::StaleLeaderEpoch { .. })
    ));
    assert!(matches!(state.become_follower(&registration(1, 6, &[1], &[1])), Err(StateError::WrongRole { .. })));
    assert!(matches!(
        state.become_leader(&registration(2, 6, &[1, 2], &[2]), Timestamp(0)),
        Err(StateError::WrongRole { .. })
    ));
    assert!(state.is_leader(), "a refused registration changes nothing");
}

#[test]
fn a_follower_takes_the_leaders_high_watermark_up_to_its_own_log_end() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
    assert!(state.become_follower(&registration(2, 1, &[1, 2], &[1, 2])).unwrap());
    state.on_local_append(Offset(5));
    assert_eq!(state.high_watermark(), Offset(0), "a follower's appends do not commit");
    assert!(state.on_leader_high_watermark(Offset(9)));
    assert_eq!(state.high_watermark(), Offset(5));
    assert!(!state.on_leader_high_watermark(Offset(3)), "never backwards");
    state.on_truncate(Offset(4));
    assert_eq!((state.high_watermark(), state.log_end_offset()), (Offset(4), Offset(4)));
    state.validate().unwrap();
}

/// The operations a partition performs on its replica state.
#[derive(Debug, Clone)]
enum Op {
    Lead { epoch_bump: bool, replicas: Vec<i32>, isr: Vec<i32> },
    Follow { leader: i32 },
    Append(i64),
    Fetch { replica: i32, behind: i64 },
    LeaderHighWatermark(i64),
    Truncate(i64),
    LogStart(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let others = proptest::collection::btree_set(2..5i32, 0..3);
    prop_oneof![
        (any::<bool>(), others.clone(), others).prop_map(|(epoch_bump, replicas, isr)| {
            let mut all: Vec<i32> = vec![1];
            all.extend(replicas.iter().copied());
            let mut in_sync = vec![1];
            in_sync.extend(isr.iter().copied().filter(|b| replicas.contains(b)));
            Op::Lead { epoch_bump, replicas: all, isr: in_sync }
        }),
        (2..5i32).prop_map(|leader| Op::Follow { leader }),
        (1..20i64).prop_map(Op::Append),
        (2..5i32, 0..30i64).prop_map(|(replica, behind)| Op::Fetch { replica, behind }),
        (0..100i64).prop_map(Op::LeaderHighWatermark),
        (0..30i64).prop_map(Op::Truncate),
        (0..100i64).prop_map(Op::LogStart),
    ]
}

/// What the high watermark must be, computed the plain way.
#[derive(Debug, Default)]
struct Model {
    leading: bool,
    epoch: i32,
    isr: Vec<i32>,
    replicas: Vec<i32>,
    follower_ends: std::collections::BTreeMap<i32, i64>,
    /// Followers outside the ISR that reached the log end since they last left it.
    joinable: std::collections::BTreeSet<i32>,
    start: i64,
    end: i64,
    hw: i64,
}

impl Model {
    fn commit(&mut self) {
        if self.leading {
            let ends = self
                .isr
                .iter()
                .map(|b| if *b == 1 { self.end } else { self.follower_ends.get(b).copied().unwrap_or(-1) });
            // Replicas outside the ISR that reached the log end since they last left it are
            // caught up by time (every op happens within replica.lag.time.max.ms), so they hold
            // it back too (KAFKA-15021).
            let joining = self
                .follower_ends
                .iter()
                .filter(|(b, _)| !self.isr.contains(b) && self.joinable.contains(b))
                .map(|(_, end)| *end);
            self.hw = self.hw.max(ends.chain(joining).min().unwrap_or(-1));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every sequence of operations keeps the invariants, and the high watermark is what a
    /// plain model computes: monotonic while the log is not cut, and never past the ISR.
    #[test]
    fn replica_state_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
        let mut model = Model::default();
        for op in ops {
            let before = state.high_watermark();
            let mut truncated = false;
            match op {
                Op::Lead { epoch_bump, replicas, isr } => {
                    let epoch = if epoch_bump || !model.leading { model.epoch + 1 } else { model.epoch };
                    let reg = registration(1, epoch, &replicas, &isr);
                    let new_epoch = state.become_leader(&reg, Timestamp(0)).unwrap();
                    prop_assert_eq!(new_epoch, !model.leading || epoch != model.epoch);
                    if new_epoch {
                        model.follower_ends.clear();
                        model.joinable.clear();
                    } else {
                        let left: Vec<i32> = model.isr.iter().copied().filter(|b| !isr.contains(b)).collect();
                        model.joinable.retain(|b| !left.contains(b));
                    }
                    model.follower_ends.retain(|b, _| replicas.contains(b));
                    model.joinable.retain(|b| replicas.contains(b));
                    model.leading = true;
                    model.epoch = epoch;
                    model.isr = isr;
                    model.replicas = replicas;
                    model.commit();
                }
                Op::Follow { leader } => {
                    model.epoch += 1;
                    state.become_follower(&registration(leader, model.epoch, &[1, leader], &[leader])).unwrap();
                    model.leading = false;
                    model.follower_ends.clear();
                    model.joinable.clear();
                }
                Op::Append(n) => {
                    model.end += n;
                    state.on_local_append(Offset(model.end));
                    model.commit();
                }
                Op::Fetch { replica, behind } => {
                    let offset = (model.end - behind).max(0);
                    state.on_follower_fetch(BrokerId(replica), Offset(offset), Timestamp(1));
                    if model.leading && model.replicas.contains(&replica) {
                        model.follower_ends.insert(replica, offset);
                        if offset >= model.end {
                            model.joinable.insert(replica);
                        }
                        model.commit();
                    }
                }
                Op::LeaderHighWatermark(hw) => {
                    state.on_leader_high_watermark(Offset(hw));
                    if !model.leading {
                        model.hw = model.hw.max(hw.min(model.end));
                    }
                }
                Op::Truncate(to) => {
                    if !model.leading && to < model.end {
                        truncated = true;
                        model.end = to.max(model.start);
                        model.hw = model.hw.min(model.end);
                        state.on_truncate(Offset(to));
                    }
                }
                Op::LogStart(start) => {
                    if start <= model.hw {
                        model.start = model.start.max(start);
                        state.on_log_start(Offset(start));
                    }
                }
            }
            state.validate().map_err(TestCaseError::fail)?;
            prop_assert_eq!(state.high_watermark(), Offset(model.hw));
            prop_assert_eq!(state.log_end_offset(), Offset(model.end));
            if !truncated {
                prop_assert!(state.high_watermark() >= before, "the high watermark moved back");
            }
        }
    }
}

#[test]
fn a_replica_taken_out_of_the_isr_no_longer_holds_the_high_watermark_back() {
    let mut state = ReplicaState::new(LOCAL, Offset(0), Offset(0), Offset(0));
    state.configure(2, 30_000);
    state.become_leader(&registration(1, 0, &[1, 2, 3], &[1, 2, 3]), Timestamp(0)).unwrap();
    state.on_local_append(Offset(10));
    state.on_follower_fetch(BrokerId(2), Offset(10), Timestamp(1));
    state.on_follower_fetch(BrokerId(3), Offset(10), Timestamp(1));
    assert_eq!(state.high_watermark(), Offset(10));
    // Broker 3 dies at 10 and is fenced out of the ISR; the leader goes on with broker 2.
    state.become_leader(&registration(1, 0, &[1, 2, 3], &[1, 2]), Timestamp(2)).unwrap();
    state.on_local_append(Offset(20));
    state.on_follower_fetch(BrokerId(2), Offset(20), Timestamp(3));
    assert_eq!(state.high_watermark(), Offset(20), "a dead ex-member stalled the high watermark");
    // A follower that fetches while its broker shuts down does not hold it back either.
    state.become_leader(&registration(1, 0, &[1, 2, 3], &[1, 2, 3]), Timestamp(4)).unwrap();
    state.on_follower_fetch_from(BrokerId(3), Offset(20), Timestamp(5), false);
    state.become_leader(&registration(1, 0, &[1, 2, 3], &[1, 2]), Timestamp(6)).unwrap();
    state.on_local_append(Offset(25));
    state.on_follower_fetch_from(BrokerId(3), Offset(25), Timestamp(7), false);
    state.on_local_append(Offset(30));
    state.on_follower_fetch(BrokerId(2), Offset(30), Timestamp(8));
    assert_eq!(state.high_watermark(), Offset(30));
    state.validate().unwrap();
}
