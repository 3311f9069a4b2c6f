//! The command-line client against a real node (issue 4, item 7): a
//! `twinrt run` of the example company, simulated, on a free port, and the
//! client subcommands run as processes against it: `get`, `history`,
//! `watch`, `alarms` and their errors.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value as Json;
use tests::acme_dir;

const DEVICE: &str = "acme/east/baytown/crude-unit/p-01";

fn twinrt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twinrt-under-test"));
    cmd.stdin(Stdio::null());
    cmd.env_remove("TWINRT_NODE").env_remove("TWINRT_TOKEN");
    cmd
}

/// A running node; killed when dropped, also when a test panics.
struct Node {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts `twinrt run examples/acme` in memory on a free port and reads
    /// its address and admin token from stderr.
    fn start() -> Node {
        Node::start_with(&["--listen", "127.0.0.1:0"], None)
    }

    /// Starts `twinrt run examples/acme --in-memory ARGS`; reads its address,
    /// and its admin token from stderr unless `token` is given.
    fn start_with(args: &[&str], token: Option<&str>) -> Node {
        let mut child = twinrt()
            .args([
                "run",
                acme_dir().to_str().expect("a UTF-8 path"),
                "--in-memory",
                "--summary-every",
                "0",
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start twinrt run");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut node = Node {
            child,
            url: String::new(),
            token: token.unwrap_or_default().to_string(),
        };
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        while node.url.is_empty() || node.token.is_empty() {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => panic!("the node ended before it printed its address and token:\n{seen}"),
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.split("HTTP API on ").nth(1) {
                node.url = rest.split_whitespace().next().unwrap_or("").to_string();
            }
            if line.trim().starts_with("twr_") {
                node.token = line.trim().to_string();
            }
        }
        // Keep reading, so that the node never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        node
    }

    /// Runs `twinrt ARGS --node URL --token TOKEN` to completion.
    fn run(&self, args: &[&str]) -> Output {
        twinrt()
            .args(args)
            .args(["--node", &self.url, "--token", &self.token])
            .output()
            .expect("run the client")
    }

    /// `run`, asserting success; the stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert_exit(&o, 0, args);
        stdout(&o)
    }

    fn json(&self, args: &[&str]) -> Json {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
    }

    /// Waits until the device's sourced properties have values, asking the
    /// node (the simulator's first samples arrive within a second or so).
    fn wait_for_values(&self) -> Json {
        for _ in 0..300 {
            let twin = self.json(&["get", DEVICE, "--json"]);
            let flow = twin["properties"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "flow"))
                .cloned()
                .expect("the pump has a flow");
            if flow["value"].is_number() && flow["quality"] == "good" {
                return twin;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the device's flow never got a good value");
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_exit(o: &Output, code: i32, args: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "twinrt {args:?}\nstdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

#[test]
fn get_and_history_show_a_devices_properties() {
    let node = Node::start();
    let twin = node.wait_for_values();
    assert_eq!(twin["path"], DEVICE);
    assert!(twin["properties"].as_array().is_some_and(|p| p.len() > 5));

    // The table: one row per property with its unit and quality.
    let out = node.ok(&["get", DEVICE]);
    assert!(
        out.starts_with(&format!("{DEVICE}  CentrifugalPump (device)")),
        "{out}"
    );
    let header = out
        .lines()
        .find(|l| l.starts_with("PROPERTY"))
        .unwrap_or_else(|| panic!("a property table:\n{out}"));
    for col in ["VALUE", "UNIT", "QUALITY", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    let flow = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("flow"))
        .unwrap_or_else(|| panic!("a flow row:\n{out}"));
    assert!(flow.contains(" m3/h "), "{flow}");
    assert!(flow.contains(" good "), "{flow}");
    let vibration = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("vibration"))
        .unwrap_or_else(|| panic!("a vibration row:\n{out}"));
    assert!(vibration.contains(" mm/s "), "{vibration}");
    assert!(out.contains("\nALARMS "), "{out}");
    assert!(out.contains("high_vibration"), "the pump's alarms:\n{out}");

    // A line's roll-ups name their contributors.
    let out = node.ok(&["get", "acme/east/baytown/crude-unit"]);
    let throughput = out
        .lines()
        .find(|l| l.starts_with("throughput "))
        .unwrap_or_else(|| panic!("a throughput row:\n{out}"));
    assert!(throughput.contains(" m3/h "), "{throughput}");
    assert!(throughput.contains("/6 good"), "six pumps: {throughput}");
    assert!(out.contains(&format!("  {DEVICE}\n")), "children:\n{out}");

    // History: at most `--points` buckets, each with min <= avg <= max.
    // History is read from the store, which the node writes behind: wait
    // for the first points to be there.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let h = loop {
        let h = node.json(&[
            "history", DEVICE, "flow", "--since", "1m", "--points", "5", "--json",
        ]);
        if h["points"].as_array().is_some_and(|p| !p.is_empty())
            || std::time::Instant::now() > deadline
        {
            break h;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(h["prop"], "flow");
    assert_eq!(h["unit"], "m3/h");
    let points = h["points"].as_array().expect("points");
    assert!(!points.is_empty() && points.len() <= 5, "{h}");
    for p in points {
        let (min, avg, max) = (
            p["min"].as_f64().expect("min"),
            p["avg"].as_f64().expect("avg"),
            p["max"].as_f64().expect("max"),
        );
        assert!(min <= avg && avg <= max, "{p}");
        assert!(p["n"].as_u64().is_some_and(|n| n >= 1), "{p}");
    }
    let out = node.ok(&["history", DEVICE, "flow", "--since", "1m", "--points", "5"]);
    assert!(out.starts_with("TIME"), "{out}");
    let summary = out.lines().last().expect("a summary line");
    assert!(
        summary.starts_with(&format!("{DEVICE} flow (m3/h), ")),
        "{summary}"
    );
    assert!(summary.contains(" values "), "{summary}");

    // A range as the API takes it, relative times included.
    let h = node.json(&[
        "history", DEVICE, "flow", "--from", "-1m", "--to", "now", "--points", "3", "--json",
    ]);
    let points = h["points"].as_array().expect("points");
    assert!(!points.is_empty() && points.len() <= 3, "{h}");

    // An unknown property is the node's `not_found`, named.
    let o = node.run(&["history", DEVICE, "flwo", "--since", "1m"]);
    assert_exit(&o, 1, &["history"]);
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("twinrt: {}: not_found: ", node.url)),
        "{err}"
    );
    assert!(err.contains("did you mean `flow`"), "{err}");
}

#[test]
fn watch_streams_only_the_subtree() {
    let node = Node::start();
    node.wait_for_values();
    let subtree = "acme/east/baytown/crude-unit";
    let glob = format!("{subtree}/**");
    let out = node.ok(&["watch", &glob, "--for", "3s", "--json"]);
    let events: Vec<Json> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let states: Vec<&Json> = events.iter().filter(|e| e["event"] == "state").collect();
    assert!(!states.is_empty(), "state events in 3s:\n{out}");
    for e in &events {
        let path = match e["event"].as_str() {
            Some("state") => e["data"]["path"].as_str(),
            Some("alarm") => e["data"]["twin"].as_str(),
            _ => continue,
        }
        .unwrap_or_else(|| panic!("an event names its twin: {e}"));
        assert!(
            path == subtree || path.starts_with(&format!("{subtree}/")),
            "{path} is outside {glob}"
        );
        assert!(e["id"].is_string(), "{e}");
    }
    assert!(states[0]["data"]["properties"].is_object(), "{}", states[0]);

    // Without --json and without a terminal: one line per change.
    let out = node.ok(&["watch", DEVICE, "--for", "2s"]);
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("  {DEVICE}  ")) && l.contains(" = ")),
        "{out}"
    );
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_reconnects_when_the_node_restarts() {
    // A configured token, so that the restarted node accepts it too.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let o = twinrt()
        .args([
            "token", "add", "watcher", "--role", "viewer", "--scope", "acme",
        ])
        .args(["--config", config])
        .output()
        .expect("run token add");
    assert_exit(&o, 0, &["token", "add"]);
    let token = stdout(&o).trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let args = ["--config", config, "--listen", &listen];
    let first = Node::start_with(&args, Some(&token));
    first.wait_for_values();

    // `--for` only bounds the test should the client never reconnect.
    let mut watch = Killed(
        twinrt()
            .args(["watch", DEVICE, "--json", "--for", "120s"])
            .args(["--node", &first.url, "--token", &token])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start twinrt watch"),
    );
    let out = watch.0.stdout.take().expect("piped stdout");
    let err = watch.0.stderr.take().expect("piped stderr");
    let notes = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut events = BufReader::new(out).lines().map(|l| {
        let l = l.expect("a line of the client");
        serde_json::from_str::<Json>(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
    });
    let before = events
        .find(|e| e["event"] == "state")
        .expect("a state event from the first node");
    assert_eq!(before["data"]["path"], DEVICE);

    // The node goes away and comes back on the same address: a new run,
    // whose event ids the client's `Last-Event-ID` does not name, so the
    // stream starts with `reset`, then live states again.
    drop(first);
    let second = Node::start_with(&args, Some(&token));
    let mut seen = Vec::new();
    for e in events.by_ref() {
        let kind = e["event"].as_str().unwrap_or("").to_string();
        seen.push(kind.clone());
        if kind == "state" && seen.iter().any(|k| k == "reset") {
            assert_eq!(e["data"]["path"], DEVICE);
            break;
        }
    }
    assert!(
        seen.iter().any(|k| k == "reset") && seen.last().is_some_and(|k| k == "state"),
        "after the restart: {seen:?}"
    );
    drop(watch);
    let notes = notes.join().expect("the stderr reader").join("\n");
    assert!(notes.contains("reconnecting"), "{notes}");
    assert!(notes.contains("twinrt: reconnected"), "{notes}");
    drop(second);
}

#[test]
fn alarms_list_acknowledge_and_refuse() {
    let node = Node::start();
    node.wait_for_values();
    let all = node.json(&["alarms", "acme/east/**", "--state", "all", "--json"]);
    let alarms = all["alarms"].as_array().expect("alarms");
    assert!(!alarms.is_empty(), "{all}");
    let out = node.ok(&["alarms", "acme/east/**", "--state", "all"]);
    let header = out.lines().next().expect("a header");
    for col in [
        "PRIORITY", "STATE", "MODE", "TWIN", "ALARM", "SINCE", "GUIDANCE",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(out.lines().count() > 1, "{out}");

    // An alarm that is not unacknowledged cannot be acknowledged: the
    // node's `conflict`. Alarms change state as the simulation runs, so an
    // alarm listed as normal may have become unacknowledged meanwhile: then
    // the acknowledgement succeeds, and the next normal one is tried.
    let mut conflicts = 0;
    for a in alarms.iter().filter(|a| a["state"] == "normal").take(5) {
        let id = a["id"].as_str().expect("an alarm id");
        let o = node.run(&["alarms", "--ack", id]);
        if o.status.code() == Some(1) {
            let err = stderr(&o);
            assert!(err.contains(": conflict: "), "{err}");
            conflicts += 1;
            break;
        }
        assert_exit(&o, 0, &["alarms", "--ack", id]);
    }
    assert_eq!(conflicts, 1, "an ack of a normal alarm is refused");

    // An alarm that is active and unacknowledged is acknowledged, and the
    // client shows it after the command.
    if let Some(a) = alarms.iter().find(|a| a["state"] == "active_unacked") {
        let id = a["id"].as_str().expect("an alarm id");
        let o = node.run(&["alarms", "--ack", id, "--comment", "seen", "--json"]);
        if o.status.code() == Some(0) {
            let after: Json = serde_json::from_str(&stdout(&o)).expect("the alarm as JSON");
            assert_eq!(after["id"], id);
            assert_ne!(after["state"], "active_unacked");
        } else {
            // It returned to normal and was acknowledged meanwhile? Only a
            // conflict is an acceptable refusal.
            assert!(stderr(&o).contains(": conflict: "), "{}", stderr(&o));
        }
    }

    // Shelve and unshelve one.
    let id = alarms
        .iter()
        .find(|a| a["mode"] == "enabled")
        .and_then(|a| a["id"].as_str())
        .expect("an enabled alarm");
    let out = node.ok(&["alarms", "--shelve", id, "--for", "1h", "--comment", "test"]);
    assert!(out.contains("shelved until "), "{out}");
    let shelved = node.json(&["alarms", "acme/east/**", "--state", "shelved", "--json"]);
    assert!(
        shelved["alarms"]
            .as_array()
            .is_some_and(|l| l.iter().any(|a| a["id"] == id)),
        "{shelved}"
    );
    let out = node.ok(&["alarms", "--unshelve", id]);
    assert!(!out.contains("shelved until "), "{out}");

    // A wrong token is `unauthorized`.
    let o = twinrt()
        .args(["alarms", "--node", &node.url, "--token", "twr_wrong"])
        .output()
        .expect("run the client");
    assert_exit(&o, 1, &["alarms", "--token", "twr_wrong"]);
    assert!(stderr(&o).contains(": unauthorized: "), "{}", stderr(&o));
}

#[test]
fn a_node_that_is_not_running_or_no_token_is_explained() {
    // A port that was free a moment ago: nothing listens on it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = format!("http://{addr}");
    let o = twinrt()
        .args(["get", DEVICE, "--node", &url, "--token", "twr_x"])
        .output()
        .expect("run the client");
    assert_exit(&o, 1, &["get"]);
    assert_eq!(
        stderr(&o).trim_end(),
        format!(
            "twinrt: cannot reach the node at {url}: connection refused \
             (is `twinrt run` running? --node sets the address)"
        )
    );

    // The token may come from the environment; without it, a clear error.
    let o = twinrt()
        .args(["alarms", "--node", &url])
        .output()
        .expect("run the client");
    assert_exit(&o, 1, &["alarms"]);
    assert!(
        stderr(&o).contains("no token: pass --token"),
        "{}",
        stderr(&o)
    );
    let o = twinrt()
        .args(["alarms"])
        .env("TWINRT_NODE", &url)
        .env("TWINRT_TOKEN", "twr_x")
        .output()
        .expect("run the client");
    assert!(
        stderr(&o).contains(&format!("cannot reach the node at {url}")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_explains_each_command_with_an_example() {
    for cmd in ["get", "watch", "alarms", "history"] {
        let o = twinrt().args([cmd, "--help"]).output().expect("run help");
        assert_exit(&o, 0, &[cmd, "--help"]);
        let out = stdout(&o);
        assert!(out.contains("Example"), "{cmd}: {out}");
        assert!(out.contains(&format!("twinrt {cmd} ")), "{cmd}: {out}");
        for flag in ["--node", "--token", "--json"] {
            assert!(out.contains(flag), "{cmd}: {out}");
        }
    }
}
