#![no_main]

libfuzzer_sys::fuzz_target!(|input: ferroftp_fuzz::PageInput| ferroftp_fuzz::page(&input));
