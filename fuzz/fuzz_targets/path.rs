#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::PathInput| ferroftp_fuzz::path(&input));
