//! What a peer writes on the unix socket or the relays' TCP listener: any bytes, split into
//! request lines as the connector does (bounded line length, blank lines skipped), each
//! answered from a real store with one line.
#![no_main]

use std::io::Cursor;

use certadns_ddns::backend::{RequestLine, answer_line, read_request_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = Cursor::new(data);
    let mut line = Vec::new();
    loop {
        match read_request_line(&mut reader, &mut line).expect("reading memory cannot fail") {
            RequestLine::End | RequestLine::TooLong => break,
            RequestLine::Blank => {}
            RequestLine::Request => {
                let reply = answer_line(certadns_ddns_fuzz::backend(), &line).to_json();
                assert!(!reply.contains(&b'\n'), "one line per reply");
            }
        }
    }
});
