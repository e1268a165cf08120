#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::AsciiInput| ferroftp_fuzz::ascii(&input));
