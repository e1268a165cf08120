#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::ModeBInput| ferroftp_fuzz::modeb(&input));
