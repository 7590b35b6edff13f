//! Appending must not allocate per record, and reading through file ranges must not copy the
//! records into memory. A counting allocator measures both.

// A global allocator is unsafe to implement; this one only counts and delegates to the system.
#![allow(unsafe_code)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use fjord_log::LogConfig;
use fjord_types::{Offset, Timestamp};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> (usize, usize) {
    let (count, bytes) = (ALLOCATIONS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    f();
    (ALLOCATIONS.load(Ordering::SeqCst) - count, BYTES.load(Ordering::SeqCst) - bytes)
}

#[test]
fn append_and_read_cost_no_allocation_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append(&batch(1, 100, 0), LEADER, Timestamp(0)).unwrap(); // warm up
    let small = batch(2, 100, 0);
    let large = batch(2_000, 100, 0);
    let (small_appends, _) = allocations_during(|| {
        log.append(&small, LEADER, Timestamp(0)).unwrap();
    });
    let (large_appends, _) = allocations_during(|| {
        log.append(&large, LEADER, Timestamp(0)).unwrap();
    });
    assert_eq!(small_appends, large_appends, "a 2000-record batch allocated more than a 2-record one");
    assert!(large_appends <= 2, "append allocated {large_appends} times");

    let (_, read_bytes) = allocations_during(|| {
        let range = log.read(Offset(0), 1 << 20, None, true).unwrap().unwrap();
        assert!(range.len as usize > large.len());
    });
    assert!(read_bytes < 1024, "reading a range allocated {read_bytes} bytes");
}
