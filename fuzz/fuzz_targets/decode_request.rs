//! Any bytes as a request frame: decoding must return a request or an error, never panic or
//! allocate beyond the frame (libFuzzer's -malloc_limit_mb catches the latter).
#![no_main]

use fjord_protocol::VersionTable;
use fjord_protocol::versions::KAFKA_4_1;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys: Vec<_> = KAFKA_4_1.iter().map(|r| r.key).collect();
    let table = VersionTable::new(&keys);
    let _ = fjord_protocol::decode_request(bytes::Bytes::copy_from_slice(data), &table);
});
