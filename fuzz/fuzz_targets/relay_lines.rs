//! What pdns writes on the relay's stdin: any bytes, split into requests as the relay does.
//! The property (issue 28, item 3): every line pdns sends gets exactly one answer, or none
//! when blank, however long it is; never two, or pdns would pair each later question with the
//! answer before. A byte 0xFF followed by a count N stands for N × 1,024 bytes `x`, so that
//! short inputs reach past the relay's 64 KiB line limit.
#![no_main]

use std::io::BufReader;

use certadns_ddns::relay::{Next, next_request};
use libfuzzer_sys::fuzz_target;

/// The relay's limit on a request line.
const MAX_LINE_BYTES: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut input = Vec::new();
    let mut bytes = data.iter();
    while let Some(&byte) = bytes.next() {
        if byte == 0xFF {
            let count = usize::from(bytes.next().copied().unwrap_or(0));
            input.extend(std::iter::repeat_n(b'x', count * 1024));
        } else {
            input.push(byte);
        }
    }
    // What each line must come to.
    let mut expected = Vec::new();
    let mut segments: Vec<&[u8]> = input.split(|byte| *byte == b'\n').collect();
    // After the last newline: a line pdns has not ended (read to the end of the input).
    let unended = segments.pop().filter(|last| !last.is_empty());
    let lines = segments
        .into_iter()
        .map(|line| (line, line.len() + 1))
        .chain(unended.map(|line| (line, line.len())));
    for (segment, read) in lines {
        expected.push(if read > MAX_LINE_BYTES {
            Next::TooLong
        } else if segment.iter().all(u8::is_ascii_whitespace) {
            Next::Blank
        } else {
            Next::Request
        });
    }
    let mut reader = BufReader::new(input.as_slice());
    let mut line = Vec::new();
    let mut read = Vec::new();
    loop {
        match next_request(&mut reader, &mut line).expect("reading memory cannot fail") {
            Next::End => break,
            next => {
                assert!(line.len() <= MAX_LINE_BYTES + 1, "a line held whole");
                read.push(next);
            }
        }
    }
    assert_eq!(read, expected, "one outcome per line sent");
});
