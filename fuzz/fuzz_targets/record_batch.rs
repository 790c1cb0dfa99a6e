//! The record batch validator and the record walker: any bytes as a produce request's record
//! set. They must never panic or allocate more than the input (and what a codec inflates),
//! whatever the validator accepts must be a well-formed batch, and a batch rebuilt from all its
//! records must be the same records.
//!
//! Each input is checked twice: as it is, and with every batch's length and CRC made to fit,
//! because a mutation almost never keeps a CRC-32C valid and the records behind it would
//! otherwise stay out of reach.
#![no_main]

use gregor::log::batch::{self, BatchHeader, HEADER_LEN};
use gregor::log::records;
use libfuzzer_sys::fuzz_target;

/// Where a batch's length (of what follows it) and CRC (of what follows it) lie.
const LENGTH: usize = 8;
const CRC: usize = 17;
const CRC_END: usize = 21;
/// Bytes up to the end of the length field.
const LOG_OVERHEAD: usize = 12;

fuzz_target!(|data: &[u8]| {
    check(data);
    check(&fitted(data));
});

fn check(data: &[u8]) {
    let Ok(b) = batch::validate_produced(data, 1 << 20) else { return };
    assert_eq!(b.len(), data.len(), "a produce carries exactly one batch");
    let header = BatchHeader::new(b).expect("an accepted batch has a header");
    assert!(header.record_count() > 0);
    let mut stored = Vec::new();
    batch::assign(b, 1 << 40, 0, &mut stored);
    assert!(batch::validate_produced(&stored, 1 << 20).is_ok(), "rewriting the offset keeps the CRC valid");
    let Ok(section) = records::section(&header) else { return };
    let Ok(all) = records::walk(&section, header.record_count()).collect::<Result<Vec<_>, _>>() else { return };
    let _ = records::keyless(b);
    let rebuilt = records::rebuild(&stored, &all).expect("recompresses").expect("not empty");
    assert_eq!(records::offsets_and_timestamps(&rebuilt).ok(), records::offsets_and_timestamps(&stored).ok());
}

/// A copy of `data` whose batches (as their length fields split it, the last one taking what is
/// left when a length does not fit) carry the right length and CRC; more than one is refused.
fn fitted(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = 0;
    while out.len() - at >= HEADER_LEN {
        let rest = out.len() - at;
        let claimed = i32::from_be_bytes(out[at + LENGTH..at + LOG_OVERHEAD].try_into().expect("4 bytes"));
        let total = usize::try_from(claimed).ok().map(|l| l + LOG_OVERHEAD).filter(|t| (HEADER_LEN..=rest).contains(t)).unwrap_or(rest);
        out[at + LENGTH..at + LOG_OVERHEAD].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
        let crc = crc32c::crc32c(&out[at + CRC_END..at + total]);
        out[at + CRC..at + CRC_END].copy_from_slice(&crc.to_be_bytes());
        at += total;
    }
    out
}
