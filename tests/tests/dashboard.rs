//! The web dashboard end to end (issue 4, item 3): the real `twinrt run`
//! serving the page and the API, the system's headless Chromium driven by
//! `tests/browser/dashboard.mjs` (playwright-core), and readings published
//! with Mosquitto's `mosquitto_pub` to the node's embedded broker.
//!
//! The script loads the page with a token, drills down from HQ to a pump,
//! sees a published value arrive live, sees the `high_flow` alarm come in,
//! acknowledges and shelves it, checks that a viewer scoped to the east
//! region sees only that region, and saves a screenshot of each stage in
//! `target/screenshots/dashboard/`.
//!
//! Needs `/usr/bin/chromium`, `node` and `npm ci --prefix tests/browser`:
//! `scripts/test.sh` installs them.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tests::workspace_dir;

/// Kills the node when the test ends, however it ends.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fixture model with its embedded broker on `mqtt_port`.
fn write_model(dir: &Path, mqtt_port: u16) {
    let fixture = workspace_dir().join("tests/fixtures/dashboard-model");
    for entry in std::fs::read_dir(&fixture).expect("the fixture model") {
        let path = entry.expect("a fixture file").path();
        let mut text = std::fs::read_to_string(&path).expect("read a fixture file");
        if text.contains("embedded_broker") {
            assert!(
                text.contains("\nport = 1883\n"),
                "the fixture's broker port"
            );
            text = text.replace("\nport = 1883\n", &format!("\nport = {mqtt_port}\n"));
        }
        std::fs::write(dir.join(path.file_name().unwrap()), text).expect("write the model");
    }
}

fn require(what: &str, ok: bool) {
    assert!(
        ok,
        "the dashboard test needs {what}: run scripts/test.sh, which installs it"
    );
}

#[test]
fn an_analyst_drills_down_sees_live_values_and_acknowledges_an_alarm() {
    let root = workspace_dir();
    let browser_dir = root.join("tests/browser");
    require("/usr/bin/chromium", Path::new("/usr/bin/chromium").exists());
    require(
        "playwright-core (npm ci --prefix tests/browser)",
        browser_dir.join("node_modules/playwright-core").exists(),
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let mqtt_port = free_port();
    write_model(&model, mqtt_port);

    let token = format!("hq-{:032x}", rand::random::<u128>());
    let east_token = format!("east-{:032x}", rand::random::<u128>());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [[tokens]]\nid = \"hq-admin\"\nrole = \"admin\"\nscope = \"acme\"\nsha256 = \"{}\"\n\n\
             [[tokens]]\nid = \"east-viewer\"\nrole = \"viewer\"\nscope = \"acme/east\"\nsha256 = \"{}\"\n",
            hex(&Sha256::digest(token.as_bytes())),
            hex(&Sha256::digest(east_token.as_bytes())),
        ),
    )
    .unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_twinrt-under-test"))
        .args(["run", model.to_str().unwrap(), "--in-memory", "--config"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--summary-every", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start twinrt");
    let mut node = Node(child);

    // The node's stderr, line by line, kept for the failure message.
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = node.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line
                    .strip_prefix("twinrt: HTTP API on ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned);
                log.push(line);
                if let Some(u) = found {
                    break u;
                }
            }
            Err(_) => panic!(
                "twinrt printed no `twinrt: HTTP API on URL` line within 60 s; stderr:\n{}",
                log.join("\n")
            ),
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let shots = root.join("target/screenshots/dashboard");
    let _ = std::fs::remove_dir_all(&shots);
    println!("dashboard at {url}; screenshots in {}", shots.display());

    let mut script = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .args([url.as_str(), token.as_str()])
        .arg(&shots)
        .env("TWINRT_MQTT_PORT", mqtt_port.to_string())
        .env("TWINRT_PUMP", "acme/gulf/baytown/crude/pump-1")
        .env("TWINRT_TOPIC", "baytown/pump-1/telemetry")
        .env("TWINRT_EAST_TOKEN", &east_token)
        .stdin(Stdio::null())
        .spawn()
        .expect("run node (is Node.js installed?)");
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = script.try_wait().expect("wait for the browser script") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = script.kill();
            let _ = script.wait();
            panic!("the browser script did not finish within 240 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    log.extend(lines.try_iter());
    assert!(
        status.success(),
        "the browser script failed ({status}); its output is above; node's stderr:\n{}",
        log.join("\n")
    );
    for name in [
        "01-tree.png",
        "02-device.png",
        "03-live-value.png",
        "04-alarm.png",
        "05-acked.png",
        "06-shelved.png",
        "07-east-viewer.png",
    ] {
        let len = std::fs::metadata(shots.join(name))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 1000, "screenshot {name} is missing or empty");
    }
    println!("screenshots: {}", shots.display());
}
