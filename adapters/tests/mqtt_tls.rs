//! MQTT over TLS against a real Mosquitto with TLS listeners, fed by the
//! real `mosquitto_pub --cafile`: a CA and certificates for 127.0.0.1 and
//! localhost are made at test time with rcgen. Server authentication, mutual
//! TLS, and a source trusting another CA failing to connect, and why.
//!
//! Needs `mosquitto` and `mosquitto_pub` (Debian packages `mosquitto` and
//! `mosquitto-clients`).

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::{MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSource};
use harness::{ChannelSink, free_port, publish_tls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, Sample, TwinPath, Value, ValueType};

const WAIT: Duration = Duration::from_secs(15);

/// A certificate authority, its PEM written to `DIR/NAME-ca.pem`.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("twinrt test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Ca { issuer, pem }
    }

    /// A leaf certificate for `names`; returns (cert PEM path, key PEM path).
    fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let cert_pem = dir.join(format!("{file}.pem"));
        let key_pem = dir.join(format!("{file}.key"));
        std::fs::write(&cert_pem, cert.pem()).unwrap();
        std::fs::write(&key_pem, key.serialize_pem()).unwrap();
        (cert_pem, key_pem)
    }
}

/// Mosquitto with two TLS listeners: `tls` (server authentication) and
/// `mtls` (client certificates required); killed on drop.
struct Broker {
    _mosquitto: harness::Broker,
    tls: u16,
    mtls: u16,
}

impl Broker {
    fn start(dir: &Path, ca: &Ca) -> Broker {
        let (cert, key) = ca.issue(dir, "server", &["127.0.0.1", "localhost"]);
        let (tls, mtls) = (free_port(), free_port());
        let ca = ca.pem.display();
        let (cert, key) = (cert.display(), key.display());
        let mosquitto = harness::Broker::with_config(
            dir,
            &[tls, mtls],
            &format!(
                "persistence false\nallow_anonymous true\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n\
                 listener {tls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 listener {mtls} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 require_certificate true\n"
            ),
        );
        Broker {
            _mosquitto: mosquitto,
            tls,
            mtls,
        }
    }
}

fn config(port: u16, client_id: &str, tls: &str) -> MqttConfig {
    let c: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "{client_id}"
        tls = true
        {tls}
        [[subscriptions]]
        topic = "plant/{{device}}/level"
        qos = 1
        payload = {{ format = "number" }}
        "#
    ))
    .unwrap();
    c
}

struct Running {
    metrics: Arc<MqttMetrics>,
    status: watch::Receiver<MqttStatus>,
    rx: mpsc::UnboundedReceiver<Vec<Sample>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), adapters::SourceError>>,
}

fn run(config: MqttConfig) -> Running {
    let mut source = MqttSource::new("mqtt", config.validate().unwrap(), Clock::system());
    source
        .bind(vec![PointSpec {
            twin: TwinPath::parse("plant/p1").unwrap(),
            prop: "level".to_owned(),
            class: "Tank".to_owned(),
            sim: None,
            address: "plant/p1/level#value".to_owned(),
            ty: ValueType::F64,
            unit: None,
            range: None,
            period: None,
            states: Vec::new(),
        }])
        .unwrap();
    let metrics = source.metrics();
    let status = source.status();
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    Running {
        metrics,
        status,
        rx,
        stop,
        task,
    }
}

impl Running {
    async fn subscribed(&mut self) {
        timeout(WAIT, self.status.wait_for(|s| s.subscribed >= 1))
            .await
            .expect("subscribed over TLS within 15 s")
            .expect("source running");
    }

    async fn next_value(&mut self) -> Value {
        let batch = timeout(WAIT, self.rx.recv())
            .await
            .expect("a batch within 15 s")
            .expect("source running");
        batch[0].value.clone()
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_auth_mutual_tls_and_an_untrusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new(d, "plant");
    let other = Ca::new(d, "other");
    let broker = Broker::start(d, &ca);
    let ca_line = format!("ca_file = {:?}", ca.pem);

    // Server authentication against ca_file.
    let mut a = run(config(broker.tls, "tls-a", &ca_line));
    a.subscribed().await;
    publish_tls(broker.tls, &[&ca.pem], "plant/p1/level", "42.5").await;
    assert_eq!(a.next_value().await, Value::F64(42.5));
    assert_eq!(MqttMetrics::get(&a.metrics.connection_errors), 0);
    a.stop().await;

    // Mutual TLS: the broker requires a client certificate from the CA.
    let (cert, key) = ca.issue(d, "client", &["twinrt-client"]);
    let mut b = run(config(
        broker.mtls,
        "tls-b",
        &format!("{ca_line}\nclient_cert = {cert:?}\nclient_key = {key:?}"),
    ));
    b.subscribed().await;
    publish_tls(broker.mtls, &[&ca.pem, &cert, &key], "plant/p1/level", "7").await;
    assert_eq!(b.next_value().await, Value::F64(7.0));
    b.stop().await;

    // The northbound publisher connects through the same TLS settings.
    let mut nb_config = config(broker.tls, "tls-nb", &ca_line);
    nb_config.northbound =
        Some(toml::from_str::<adapters::mqtt::Northbound>("prefix = \"twinrt\"").unwrap());
    let publisher = adapters::mqtt::NorthboundPublisher::new(
        "nb",
        &nb_config,
        Arc::new(
            twins::model::compile(&[twins::model::SourceFile {
                path: PathBuf::from("model.toml"),
                text: "[class.E]\ntier = \"enterprise\"\n[enterprise]\nname = \"acme\"\nclass = \"E\"\n"
                    .to_owned(),
            }])
            .expect("model compiles"),
        ),
        twins::actor::ChangeFeed::new(1),
    )
    .expect("northbound is set");
    let mut nb_connected = publisher.connected();
    let (nb_stop, nb_stop_rx) = watch::channel(false);
    let nb_task = tokio::spawn(publisher.run(nb_stop_rx));
    timeout(WAIT, nb_connected.wait_for(|c| *c))
        .await
        .expect("northbound connected over TLS within 15 s")
        .unwrap();
    nb_stop.send(true).unwrap();
    timeout(WAIT, nb_task).await.unwrap().unwrap().unwrap();

    // Trusting another CA: never connected, errors counted.
    let wrong = config(broker.tls, "tls-c", &format!("ca_file = {:?}", other.pem));
    let c = run(wrong.clone());
    // Without a client certificate on the mutual-TLS listener: refused too.
    let no_cert = run(config(broker.mtls, "tls-d", &ca_line));
    for r in [&c, &no_cert] {
        timeout(WAIT, async {
            while MqttMetrics::get(&r.metrics.connection_errors) < 2 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("connection errors counted within 15 s");
        let s = *r.status.borrow();
        assert!(!s.connected && s.subscribed == 0, "{s:?}");
    }
    c.stop().await;
    no_cert.stop().await;

    // Why: the same transport, driven directly, reports the unknown issuer.
    let mut options = rumqttc::MqttOptions::new("tls-why", "127.0.0.1", broker.tls);
    options.set_transport(
        adapters::mqtt::tls::transport(&wrong)
            .unwrap()
            .expect("tls is set"),
    );
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 4);
    let e = timeout(WAIT, eventloop.poll())
        .await
        .expect("the handshake ends within 15 s")
        .expect_err("an untrusted server certificate");
    let why = e.to_string();
    assert!(
        why.contains("UnknownIssuer") || why.contains("invalid peer certificate"),
        "{why}"
    );
}
