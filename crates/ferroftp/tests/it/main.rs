//! Integration tests against the real `ferroftp` binary, in one test
//! binary so the suite links once. Each module covers one area; `common`
//! starts servers on port 0 and drives raw control connections.

mod admin;
mod clients_curl;
mod clients_ftplib;
mod clients_lftp;
mod clients_suppaftp;
mod common;
mod config_reload;
mod data_segments;
mod ftps;
mod ftps_suppaftp;
mod ftps_users;
mod gssapi;
mod ipv6;
mod proxy_protocol;
mod receive_threads;
mod replies_data;
mod replies_files;
mod replies_limits;
mod replies_login;
mod replies_misc;
mod replies_tls;
mod replies_transfer;
mod replies_util;
mod s3_clients;
mod s3_large_listing;
mod s3_scaleout;
mod s3_util;
mod safety_confinement;
mod safety_permissions;
mod safety_space;
mod safety_uploads;
mod safety_util;
mod security_accounts;
mod security_bans;
mod security_data;
mod security_sessions;
mod security_timeouts;
mod security_util;
mod send_threads;
mod smoke;
mod soak;
mod syscall_budget;
