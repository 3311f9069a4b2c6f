//! An MQTT broker inside the node, on [`rumqttd`]: for sites without a
//! broker of their own, devices publish straight to twinrt.
//!
//! [`EmbeddedBroker::start`] returns once the listening port accepts
//! connections. The broker runs on threads of its own (rumqttd's router
//! thread and one server thread with a single-threaded tokio runtime), not
//! on the caller's runtime.
//!
//! # Stopping
//!
//! rumqttd 0.20 has no way to stop a broker: once started it runs until the
//! process exits, and dropping an [`EmbeddedBroker`] does not stop it (nor
//! close its port). The node starts it once per process, before the
//! sources; a second start on the same address fails with
//! [`BrokerError::AddrInUse`].
//!
//! # Limits
//!
//! The broker speaks MQTT 3.1.1 over plain TCP, without authentication: it
//! accepts any client that can reach the address. Keep it on loopback or a
//! trusted network. Each topic keeps an in-memory log of at most
//! [`BrokerConfig::log_segment_size`] × [`BrokerConfig::log_segments`] bytes
//! for subscribers that read behind the publishers; one that falls further
//! behind skips what was dropped.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::MqttConfig;
use super::payload::DEFAULT_MAX_PAYLOAD;

/// Settings of an [`EmbeddedBroker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Address to listen on; 127.0.0.1:1883 unless set. Port 0 picks a free
    /// port ([`EmbeddedBroker::local_addr`] tells which).
    pub listen: SocketAddr,
    /// Most clients connected at once; 1024 unless set.
    pub max_connections: usize,
    /// Largest publish payload accepted, in bytes; a client sending a larger
    /// one is disconnected. [`DEFAULT_MAX_PAYLOAD`] unless set.
    pub max_payload: usize,
    /// Most unacknowledged QoS 1 publishes per client; 100 unless set.
    pub max_inflight: usize,
    /// How long a client may take to send CONNECT after the TCP connect;
    /// 10 s unless set (at most 65.535 s).
    pub connect_timeout: Duration,
    /// Size of one segment of a topic's in-memory log, in bytes (at least
    /// 1024); 256 KiB unless set.
    pub log_segment_size: usize,
    /// Segments kept per topic; 2 unless set.
    pub log_segments: usize,
    /// How long [`EmbeddedBroker::start`] waits for the port to accept
    /// connections; 5 s unless set.
    pub start_timeout: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883),
            max_connections: 1024,
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_inflight: 100,
            connect_timeout: Duration::from_secs(10),
            log_segment_size: 256 * 1024,
            log_segments: 2,
            start_timeout: Duration::from_secs(5),
        }
    }
}

/// Why an [`EmbeddedBroker`] did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded mqtt broker: address {addr} is already in use: expected a free port")]
    AddrInUse { addr: SocketAddr },
    #[error("embedded mqtt broker: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("embedded mqtt broker: invalid settings: {0}")]
    Config(String),
    #[error("embedded mqtt broker on {addr} stopped while starting: {message}")]
    Stopped { addr: SocketAddr, message: String },
    #[error("embedded mqtt broker on {addr} did not accept connections within {waited:?}")]
    Timeout { addr: SocketAddr, waited: Duration },
}

/// A running embedded broker; see the [module documentation](self) for what
/// dropping it does (nothing: the broker runs until the process exits).
pub struct EmbeddedBroker {
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("addr", &self.addr)
            .field("running", &self.is_running())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts a broker and returns once its port accepts connections.
    ///
    /// Blocks the calling thread for up to [`BrokerConfig::start_timeout`];
    /// from async code, call it through `tokio::task::spawn_blocking`.
    pub fn start(config: BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
        if config.log_segment_size < 1024 {
            return Err(BrokerError::Config(format!(
                "log_segment_size is {}: expected at least 1024 bytes",
                config.log_segment_size
            )));
        }
        if config.log_segments == 0 || config.max_connections == 0 || config.max_inflight == 0 {
            return Err(BrokerError::Config(
                "log_segments, max_connections and max_inflight must be at least 1".to_owned(),
            ));
        }
        let connect_ms = u16::try_from(config.connect_timeout.as_millis()).map_err(|_| {
            BrokerError::Config(format!(
                "connect_timeout is {:?}: expected at most 65.535s",
                config.connect_timeout
            ))
        })?;
        let addr = reserve(config.listen)?;
        let rumqttd_config = rumqttd_config(&config, addr, connect_ms);
        let (done_tx, done_rx) = mpsc::channel::<String>();
        let thread = std::thread::Builder::new()
            .name("twinrt-mqtt-broker".to_owned())
            .spawn(move || {
                // `Broker::new` spawns the router thread; `start` spawns the
                // server thread and joins it, so it returns only when the
                // server stopped (it failed to bind, or panicked).
                let mut broker = rumqttd::Broker::new(rumqttd_config);
                let message = match broker.start() {
                    Ok(()) => "the server thread ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(broker = %addr, "embedded mqtt broker stopped: {message}");
                let _ = done_tx.send(message);
            })
            .map_err(|e| BrokerError::Stopped {
                addr,
                message: format!("cannot spawn its thread: {e}"),
            })?;
        let probe = probe_addr(addr);
        let deadline = Instant::now() + config.start_timeout;
        loop {
            if let Ok(message) = done_rx.try_recv() {
                return Err(BrokerError::Stopped { addr, message });
            }
            if TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok() {
                tracing::info!(broker = %addr, "embedded mqtt broker listening");
                return Ok(EmbeddedBroker { addr, thread });
            }
            if Instant::now() >= deadline {
                return Err(BrokerError::Timeout {
                    addr,
                    waited: config.start_timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address the broker listens on (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the broker is still serving; false once its server stopped.
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }
}

/// Checks that `listen` is free (rumqttd only logs a failed bind) and, for
/// port 0, picks a free port. Another process may still take the port
/// between this check and rumqttd's bind; [`EmbeddedBroker::start`] then
/// reports [`BrokerError::Stopped`].
fn reserve(listen: SocketAddr) -> Result<SocketAddr, BrokerError> {
    match TcpListener::bind(listen) {
        Ok(l) => l.local_addr().map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        }),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            Err(BrokerError::AddrInUse { addr: listen })
        }
        Err(source) => Err(BrokerError::Bind {
            addr: listen,
            source,
        }),
    }
}

/// Where to connect to reach a broker listening on `addr`.
fn probe_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn rumqttd_config(config: &BrokerConfig, addr: SocketAddr, connect_ms: u16) -> rumqttd::Config {
    let server = rumqttd::ServerSettings {
        name: "twinrt-v4".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: connect_ms,
            max_payload_size: config.max_payload,
            max_inflight_count: config.max_inflight,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: config.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: config.log_segment_size,
            max_segment_count: config.log_segments,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..rumqttd::Config::default()
    }
}

/// The embedded broker an MQTT source asks for with `embedded_broker = true`:
/// listening on `host:port` with default limits. `None` when the source does
/// not ask for one, or its `host` is not an IP address (validation rejects
/// that). Logs a warning when the address is not loopback, since the broker
/// has no authentication.
pub fn embedded_broker_config(config: &MqttConfig) -> Option<BrokerConfig> {
    if !config.embedded_broker {
        return None;
    }
    let ip: IpAddr = config.host.trim().parse().ok()?;
    let listen = SocketAddr::new(ip, config.port);
    if !ip.is_loopback() {
        tracing::warn!(
            broker = %listen,
            "embedded mqtt broker listens beyond loopback without authentication"
        );
    }
    Some(BrokerConfig {
        listen,
        ..BrokerConfig::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_connects_to_loopback_for_wildcards() {
        let a: SocketAddr = "0.0.0.0:1883".parse().unwrap();
        assert_eq!(probe_addr(a), "127.0.0.1:1883".parse().unwrap());
        let a: SocketAddr = "[::]:1883".parse().unwrap();
        assert_eq!(probe_addr(a), "[::1]:1883".parse().unwrap());
        let a: SocketAddr = "10.1.2.3:1883".parse().unwrap();
        assert_eq!(probe_addr(a), a);
    }

    #[test]
    fn config_from_source() {
        let c: MqttConfig = toml::from_str(
            "host = \"127.0.0.1\"\nport = 1884\nclient_id = \"c\"\nembedded_broker = true",
        )
        .unwrap();
        let b = embedded_broker_config(&c).expect("asked for");
        assert_eq!(b.listen, "127.0.0.1:1884".parse().unwrap());
        let c: MqttConfig = toml::from_str("host = \"127.0.0.1\"\nclient_id = \"c\"").unwrap();
        assert_eq!(embedded_broker_config(&c), None);
    }

    #[test]
    fn bad_settings_are_refused_before_binding() {
        let e = EmbeddedBroker::start(BrokerConfig {
            log_segment_size: 10,
            ..BrokerConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("log_segment_size is 10"), "{e}");
    }
}
