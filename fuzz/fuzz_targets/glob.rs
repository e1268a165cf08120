#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::GlobInput| ferroftp_fuzz::glob(&input));
