//! Any bytes as record batches: parsing, CRC checks and record iteration return errors, never
//! panic, and decompression stays within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Vec::new();
    for batch in fjord_log::Batches::new(data) {
        let Ok(batch) = batch else { break };
        let _ = batch.validate();
        let _ = batch.validate_records(&mut scratch, 1 << 20);
    }
});
