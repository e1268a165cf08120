#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::LineInput| ferroftp_fuzz::line_decoder(&input));
