//! The record batch validator: any bytes as a produce request's record set. It must never
//! panic or allocate more than the input, and whatever it accepts must be a well-formed batch.
#![no_main]

use gregor::log::batch::{self, BatchHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batches) = batch::split_and_validate(data, 1 << 20) {
        assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), data.len());
        for b in batches {
            let header = BatchHeader::new(b).expect("an accepted batch has a header");
            assert!(header.record_count() > 0);
            let mut stored = Vec::new();
            batch::assign(b, 1 << 40, 0, &mut stored);
            assert!(batch::split_and_validate(&stored, 1 << 20).is_ok(), "rewriting the offset keeps the CRC valid");
            let _ = batch::record_timestamps(&header);
        }
    }
});
