//! The DATA reader on arbitrary bytes: never panics, gives the same result whatever the
//! segmentation, and a message it accepts has CRLF line endings only.
//!
//! Run: `cargo +nightly fuzz run smtp_data_reader` from this directory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use signet_smtp::data::{DataReader, check_text};

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, input)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(chunk % 32) + 1;

    let mut whole = DataReader::new(4096);
    let whole_used = whole.feed(input);

    let mut pieces = DataReader::new(4096);
    let mut pieces_used = 0;
    for piece in input.chunks(chunk) {
        if pieces.is_finished() {
            break;
        }
        pieces_used += pieces.feed(piece);
    }

    assert_eq!(whole.is_finished(), pieces.is_finished());
    if whole.is_finished() {
        assert_eq!(whole_used, pieces_used);
        assert!(input[..whole_used].ends_with(b".\r\n"));
        let whole = whole.finish();
        assert_eq!(whole, pieces.finish());
        if let Ok(message) = whole {
            assert!(check_text(&message).is_ok());
        }
    } else {
        assert_eq!(whole_used, input.len());
    }
});
