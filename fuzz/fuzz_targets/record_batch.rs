//! The record batch validator and the record walker: any bytes as a produce request's record
//! set. They must never panic or allocate more than the input (and what a codec inflates),
//! whatever the validator accepts must be a well-formed batch, and a batch rebuilt from all its
//! records must be the same records.
#![no_main]

use gregor::log::batch::{self, BatchHeader};
use gregor::log::records;
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
            let Ok(section) = records::section(&header) else { continue };
            let Ok(all) = records::walk(&section, header.record_count()).collect::<Result<Vec<_>, _>>() else { continue };
            let _ = records::keyless(b);
            let rebuilt = records::rebuild(&stored, &all).expect("recompresses").expect("not empty");
            assert_eq!(records::offsets_and_timestamps(&rebuilt).ok(), records::offsets_and_timestamps(&stored).ok());
        }
    }
});
