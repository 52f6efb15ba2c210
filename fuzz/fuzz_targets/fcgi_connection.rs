//! Coverage-guided fuzzing of the FastCGI record decoder and connection state machine.
#![no_main]

use std::io::{self, Read, Write};

use libfuzzer_sys::fuzz_target;
use videofeed::fcgi::{conn, record};

struct Mem<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl Read for Mem<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.input.len()).min(7); // short reads exercise NeedMore
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Mem<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = record::decode(data);
    let _ = record::decode_pairs(data);
    let limits = conn::Limits {
        max_params: 1024,
        max_stdin: 1024,
        max_conns: 4,
        max_reqs: 2,
        max_param_count: 32,
        request_timeout: std::time::Duration::from_secs(5),
    };
    let mut s = Mem { input: data, output: Vec::new() };
    let _ = conn::serve(
        &mut s,
        &limits,
        |req: &conn::Request| format!("Status: 200 OK\r\n\r\n{}", req.params.len()).into_bytes(),
        || false,
    );
    assert!(record::is_record_stream(&s.output), "malformed output");
});
