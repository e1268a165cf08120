//! Data-connection setup: PORT (RFC 959), EPRT/EPSV (RFC 2428), LPRT/LPSV
//! (RFC 1639). Active targets must be the client's own address and an
//! unprivileged port (FTP bounce, RFC 2577) unless the site allows it.

use std::net::{IpAddr, SocketAddr};

use ftp_proto::addr;
use ftp_proto::command::EpsvArg;
use ftp_proto::{ReplyCode, Verb};

use crate::data::{same_host, DataSetup, PassiveListener};
use crate::session::Session;

impl Session {
    /// PORT, EPRT and LPRT: remember where to connect for the next transfer.
    pub(super) async fn cmd_active(&mut self, target: SocketAddr, verb: Verb) {
        if self.epsv_all {
            self.reply(ReplyCode::BadSequence, "Only EPSV is allowed after EPSV ALL")
                .await;
            return;
        }
        if verb == Verb::Eprt && target.is_ipv6() != self.peer.ip().to_canonical().is_ipv6() {
            let proto = if self.peer.ip().to_canonical().is_ipv4() {
                "(1)"
            } else {
                "(2)"
            };
            self.reply(
                ReplyCode::NetworkProtocolNotSupported,
                format!("Network protocol not supported, use {proto}"),
            )
            .await;
            return;
        }
        if !self.config.allow_foreign_data_address {
            if !same_host(target.ip(), self.peer.ip()) {
                self.reply(
                    ReplyCode::ParameterNotImplemented,
                    "Data connections go only to the client's own address",
                )
                .await;
                return;
            }
            if target.port() < 1024 {
                self.reply(
                    ReplyCode::ParameterNotImplemented,
                    "Data connections go only to unprivileged ports (1024 and up)",
                )
                .await;
                return;
            }
        }
        self.data = DataSetup::Active {
            target,
            local_ip: self.local.ip(),
        };
        self.reply(ReplyCode::CommandOkay, format!("{} command successful", verb.name()))
            .await;
    }

    /// Opens a passive listener on the control connection's local address.
    async fn open_passive(&mut self) -> Option<SocketAddr> {
        // Replacing an earlier listener closes it: one pending listener per
        // session.
        self.data = DataSetup::None;
        let cfg = &self.config;
        let listener = PassiveListener::open(
            self.local.ip(),
            cfg.passive_ports.as_ref(),
            self.peer.ip(),
            cfg.data_connection_timeout,
        )
        .await;
        match listener {
            Ok(l) => {
                let local = l.local;
                self.data = DataSetup::Passive(l);
                Some(local)
            }
            Err(e) => {
                tracing::warn!(error = %e, "passive listener failed");
                self.reply(
                    ReplyCode::CantOpenDataConnection,
                    "Can't open passive connection: no port available",
                )
                .await;
                None
            }
        }
    }

    /// PASV: IPv4 only, by its reply format.
    pub(super) async fn cmd_pasv(&mut self) {
        if self.epsv_all {
            self.reply(ReplyCode::BadSequence, "Only EPSV is allowed after EPSV ALL")
                .await;
            return;
        }
        let announced = self.config.passive_address.unwrap_or(self.local.ip()).to_canonical();
        let IpAddr::V4(ip) = announced else {
            self.reply(ReplyCode::CantOpenDataConnection, "PASV is for IPv4; use EPSV")
                .await;
            return;
        };
        let Some(local) = self.open_passive().await else { return };
        let text = addr::format_pasv(std::net::SocketAddrV4::new(ip, local.port()));
        self.reply(ReplyCode::EnteringPassiveMode, text).await;
    }

    pub(super) async fn cmd_epsv(&mut self, arg: EpsvArg) {
        let v4 = self.local.ip().to_canonical().is_ipv4();
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.reply(ReplyCode::CommandOkay, "EPSV ALL ok").await;
                return;
            }
            EpsvArg::Ipv4 if !v4 => {
                self.reply(
                    ReplyCode::NetworkProtocolNotSupported,
                    "Network protocol not supported, use (2)",
                )
                .await;
                return;
            }
            EpsvArg::Ipv6 if v4 => {
                self.reply(
                    ReplyCode::NetworkProtocolNotSupported,
                    "Network protocol not supported, use (1)",
                )
                .await;
                return;
            }
            _ => {}
        }
        if !self.epsv_reaches_this_node() {
            self.reply(
                ReplyCode::CantOpenDataConnection,
                "EPSV cannot name this node's address through the proxy; use PASV",
            )
            .await;
            return;
        }
        let Some(local) = self.open_passive().await else { return };
        self.reply(ReplyCode::EnteringExtendedPassiveMode, addr::format_epsv(local.port()))
            .await;
    }

    /// EPSV's reply has only a port: the client connects to the address it
    /// reached the control connection at. Through a load balancer that is
    /// the balancer's, which only works when it is also where this node's
    /// passive ports are announced (both on one host, or the balancer
    /// forwarding this node's port range). Otherwise the client would wait
    /// on a connection that goes nowhere; refused, clients fall back to
    /// PASV, which names the node.
    fn epsv_reaches_this_node(&self) -> bool {
        let Some(destination) = self.proxied.and_then(|p| p.destination) else {
            return true;
        };
        let announced = self.config.passive_address.unwrap_or(self.local.ip());
        same_host(destination.ip(), announced)
    }

    pub(super) async fn cmd_lpsv(&mut self) {
        if self.epsv_all {
            self.reply(ReplyCode::BadSequence, "Only EPSV is allowed after EPSV ALL")
                .await;
            return;
        }
        let Some(local) = self.open_passive().await else { return };
        let ip = self.config.passive_address.unwrap_or(self.local.ip()).to_canonical();
        self.reply(
            ReplyCode::EnteringLongPassiveMode,
            addr::format_lpsv(SocketAddr::new(ip, local.port())),
        )
        .await;
    }
}
