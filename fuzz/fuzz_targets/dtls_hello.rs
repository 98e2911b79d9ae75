//! Reads arbitrary bytes as a DTLS ClientHello, the only thing the DTLS listener parses
//! before an address has proved itself: never a panic; a HelloVerifyRequest answering it
//! is never larger than what it carries plus its cookie; the first ClientHello rebuilt from
//! a second parses back with no cookie. Run with `scripts/fuzz.sh dtls_hello`.
#![no_main]

use junction_dtls::hello::{client_hello, first_hello, hello_verify_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(h) = client_hello(data) else {
        return;
    };
    assert!(h.cookie.end <= data.len());
    let hvr = hello_verify_request(&h, &[0u8; 16]);
    assert_eq!(hvr.len(), 13 + 12 + 3 + 16);
    if let Some(first) = first_hello(data, &h) {
        let again = client_hello(&first).expect("the rebuilt hello parses");
        assert!(again.cookie.is_empty());
        assert_eq!(again.message_seq, 0);
        assert_eq!(again.random, h.random);
        assert_eq!(again.record_seq + 1, h.record_seq);
    }
});
