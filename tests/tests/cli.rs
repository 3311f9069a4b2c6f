//! The `twinrt` command line, run as a real process (issue acceptance items
//! 4 and 11): `check` on good and broken models, `run` with its summary and
//! its refusal of a model without a topology, `inspect` of what a run
//! persisted, and the help texts.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use tests::{StoreSnapshot, acme_dir, library_dir};
use twins::model::{Model, PropKind, Tier};

fn twinrt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twinrt-under-test"));
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `twinrt ARGS` to completion.
fn run(args: &[&str]) -> Output {
    twinrt().args(args).output().expect("run twinrt")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

fn acme_model() -> Model {
    runtime::model_dir::load(&acme_dir()).expect("examples/acme loads")
}

#[test]
fn check_accepts_the_example_and_the_library() {
    let acme = acme_dir();
    let o = run(&["check", path_str(&acme)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains(": ok: "), "{out}");
    assert!(out.contains("223 twins"), "{out}");
    assert!(out.contains("204 devices"), "{out}");

    // Classes only: it compiles, with no twin to host.
    let lib = library_dir();
    let o = run(&["check", path_str(&lib)]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains(": ok: "), "{out}");
    assert!(out.contains(" 0 twins"), "{out}");
}

/// 1-based line and column of the first `needle` in `text`.
fn line_col(text: &str, needle: &str) -> (usize, usize) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` is in the file"));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    (
        text[..at].matches('\n').count() + 1,
        text[line_start..at].chars().count() + 1,
    )
}

/// Replaces exactly one occurrence of `from` in `file` with `to`.
fn edit(file: &Path, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(file).expect("read model file");
    assert_eq!(text.matches(from).count(), 1, "`{from}` occurs once");
    let text = text.replace(from, to);
    std::fs::write(file, &text).expect("write model file");
    text
}

#[test]
fn check_lists_every_error_with_location_snippet_and_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(acme_dir()).expect("read examples/acme") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(
                &path,
                dir.path().join(path.file_name().expect("a file name")),
            )
            .expect("copy a model file");
        }
    }
    let classes = dir.path().join("classes.toml");
    let topology = dir.path().join("topology.toml");
    // Three errors in two files.
    edit(
        &classes,
        "expr = \"differential_pressure * 10.2\"",
        "expr = \"differental_pressure * 10.2\"",
    );
    let classes_text = edit(
        &classes,
        "rated_flow = { unit = \"m3/h\", default = 180 }",
        "rated_flow = { unit = \"furlongs\", default = 180 }",
    );
    let topology_text = edit(&topology, "plant = \"100ms\"", "plant = \"100 jiffies\"");

    let o = run(&["check", path_str(dir.path())]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    let expected = [
        (
            &classes,
            line_col(&classes_text, "differental_pressure"),
            "unknown name `differental_pressure`",
        ),
        (
            &classes,
            line_col(&classes_text, "\"furlongs\""),
            "unknown unit `furlongs`",
        ),
        (
            &topology,
            line_col(&topology_text, "\"100 jiffies\""),
            "invalid duration `100 jiffies`",
        ),
    ];
    for (file, (line, col), message) in expected {
        let located = format!("{}:{line}:{col}: error: {message}", file.display());
        assert!(err.contains(&located), "expected `{located}` in:\n{err}");
    }
    // Snippets of the offending lines, and the hint for the misspelt name.
    assert!(
        err.contains("| head = { unit = \"m\", expr = \"differental_pressure * 10.2\""),
        "{err}"
    );
    assert!(err.contains("| plant = \"100 jiffies\""), "{err}");
    assert!(
        err.contains("did you mean `differential_pressure`?"),
        "{err}"
    );
    assert!(err.contains("3 errors"), "{err}");
    assert!(stdout(&o).is_empty(), "nothing on stdout: {}", stdout(&o));
}

#[test]
fn check_builds_every_source_and_binds_every_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("plant.toml");
    let text = r#"[model]
use = ["library"]

[source.plc]
kind = "modbus"
[[source.plc.endpoints]]
name = "unit-plc"
host = "127.0.0.1"
timeout = "0s"
poll_groups = [{ name = "fast", interval = "200ms" }]

[source.spare]
kind = "mqtt"
host = "127.0.0.1"
client_id = "twinrt"

[enterprise]
name = "acme"
class = "Enterprise"
[twin."east"]
class = "Region"
[twin."east/works"]
class = "Plant"
[twin."east/works/unit"]
class = "Line"
[twin."east/works/unit/p-1"]
class = "CentrifugalPump"
source = "plc"
bindings = { flow = "holding:100:f33" }
"#;
    std::fs::write(&model, text).expect("write model");
    let o = run(&["check", path_str(dir.path())]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    // Reported at the key (column 1), not at the value.
    let (line, _) = line_col(text, "timeout = \"0s\"");
    let timeout = format!(
        "{}:{line}:1: error: source `plc`: `endpoints[0].timeout`",
        model.display()
    );
    assert!(err.contains(&timeout), "expected `{timeout}` in:\n{err}");

    // Fixed configuration: now the address is checked, on its binding.
    std::fs::write(&model, text.replace("timeout = \"0s\"", "timeout = \"1s\"")).expect("write");
    let o = run(&["check", path_str(dir.path())]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    let (line, col) = line_col(text, "\"holding:100:f33\"");
    let address = format!(
        "{}:{line}:{col}: error: source `plc`: `acme/east/works/unit/p-1.flow`: address `holding:100:f33`",
        model.display()
    );
    assert!(err.contains(&address), "expected `{address}` in:\n{err}");

    // All fixed: ok, one adapter; the unused source is a warning.
    std::fs::write(
        &model,
        text.replace("timeout = \"0s\"", "timeout = \"1s\"")
            .replace("f33", "f32"),
    )
    .expect("write");
    let o = run(&["check", path_str(dir.path())]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("2 sources (1 edge adapters)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("warning: ")
            && stderr(&o).contains("source `spare` has no bound points"),
        "{}",
        stderr(&o)
    );
}

/// The numbers after `samples/s` in the summary's header lines.
fn sample_rates(summary: &str) -> Vec<f64> {
    summary
        .lines()
        .filter_map(|l| l.split("samples/s ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|n| n.parse().expect("samples/s is a number"))
        .collect()
}

#[test]
fn run_shows_the_summary_and_stops_cleanly() {
    let acme = acme_dir();
    let o = run(&[
        "run",
        path_str(&acme),
        "--listen",
        "127.0.0.1:0",
        "--in-memory",
        "--for",
        "3s",
        "--summary-every",
        "1",
    ]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    let err = stderr(&o);
    assert!(err.contains("stopped cleanly"), "{err}");
    assert!(err.contains("in memory"), "{err}");
    assert!(out.contains("twinrt  acme  up "), "{out}");
    assert!(out.contains("twins 223"), "{out}");
    for row in ["acme ", "  east ", "  west "] {
        assert!(
            out.lines().any(|l| l.starts_with(row)),
            "no `{row}` row in:\n{out}"
        );
    }
    let rates = sample_rates(&out);
    // Frames come at 1 s and 2 s (the one at 3 s races the end).
    assert!(rates.len() >= 2, "at least two frames in 3s:\n{out}");
    assert!(
        rates.iter().all(|&r| r > 0.0),
        "a non-zero rate in every frame:\n{out}"
    );
    assert!(!out.contains("durable flushes="), "not asked for: {out}");
}

#[test]
fn run_without_summary_prints_only_what_is_asked() {
    let acme = acme_dir();
    let data = tempfile::tempdir().expect("tempdir");
    let o = run(&[
        "run",
        path_str(&acme),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        path_str(&data.path().join("node")),
        "--for",
        "1500ms",
        "--summary-every",
        "0",
        "--report-durable",
    ]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(!out.contains("samples/s"), "the summary is off:\n{out}");
    let durable: Vec<_> = out
        .lines()
        .map(|l| tests::DurableLine::parse(l).unwrap_or_else(|| panic!("not a durable line: {l}")))
        .collect();
    assert!(!durable.is_empty(), "no durable line");
    assert!(
        durable
            .windows(2)
            .all(|w| w[0].flushes < w[1].flushes && w[0].history <= w[1].history),
        "acknowledgements only grow:\n{out}"
    );
    // The last line is the final flush: everything is in the store.
    let last = durable[durable.len() - 1];
    let snap =
        StoreSnapshot::open(&data.path().join("node"), &acme_model()).expect("read the store");
    assert_eq!(snap.history_count(), last.history, "{out}");
}

#[test]
fn run_refuses_a_model_without_a_topology() {
    let lib = library_dir();
    let o = run(&[
        "run",
        path_str(&lib),
        "--in-memory",
        "--no-http",
        "--for",
        "1s",
    ]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(path_str(&lib)), "names the directory: {err}");
    assert!(err.contains("no topology"), "{err}");
    assert!(err.contains("no enterprise"), "{err}");
    assert!(!err.contains("hosting"), "no node started: {err}");
}

/// A device of the model and the names of its sourced properties.
fn a_device(model: &Model) -> (String, BTreeSet<String>) {
    let t = model
        .twins
        .iter()
        .find(|t| model.classes[t.class].tier == Tier::Device)
        .expect("the example has devices");
    let sourced = model.classes[t.class]
        .props
        .iter()
        .filter(|p| matches!(p.kind, PropKind::Sourced))
        .map(|p| p.name.clone())
        .collect();
    (t.path.as_str().to_string(), sourced)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn inspect_prints_what_a_run_persisted() {
    let model = acme_model();
    let acme = acme_dir();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("node");
    let d = path_str(&data_dir);
    let o = run(&[
        "run",
        path_str(&acme),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        d,
        "--for",
        "3s",
        "--seed",
        "7",
        "--summary-every",
        "0",
    ]);
    assert_exit(&o, 0);
    let snap = StoreSnapshot::open(&data_dir, &model).expect("read the store");

    // One device, as stored.
    let (device, sourced) = a_device(&model);
    let o = run(&["inspect", "--data-dir", d, &device, "--history", "2"]);
    assert_exit(&o, 0);
    let v = json(&o);
    assert_eq!(v["path"], device.as_str());
    let id = twins::TwinPath::parse(&device).expect("a path").id();
    assert_eq!(v["id"], id.to_string().as_str());
    let props: BTreeSet<String> = v["state"]["props"]
        .as_array()
        .expect("state.props is an array")
        .iter()
        .map(|p| p[0].as_str().expect("a property name").to_string())
        .collect();
    assert_eq!(props, sourced, "the device's sourced properties");
    let stored = snap.twins[&twins::TwinPath::parse(&device).expect("a path")]
        .state
        .clone()
        .expect("the device persisted its state");
    // Through the same text round trip as `inspect`'s output (serde_json
    // parses floats to the nearest few ulps, not always exactly).
    let stored = serde_json::to_string(&stored).expect("to JSON");
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
    assert_eq!(v["state"], stored);
    let history = v["history"].as_object().expect("--history adds history");
    assert_eq!(history.len(), sourced.len());
    for (name, points) in history {
        let n = points.as_array().expect("points").len();
        assert!((1..=2).contains(&n), "{name}: {n} points");
    }

    // Every twin: one entry per persisted state, ids only...
    let o = run(&["inspect", "--data-dir", d]);
    assert_exit(&o, 0);
    let all = json(&o);
    let all = all.as_array().expect("an array");
    assert_eq!(all.len(), snap.state_count());
    assert_eq!(all.len(), model.twins.len(), "every twin persisted a state");
    assert!(all.iter().all(|t| t.get("path").is_none()));
    // ...and paths with the model.
    let o = run(&["inspect", "--data-dir", d, "--model", path_str(&acme)]);
    assert_exit(&o, 0);
    let paths: BTreeSet<String> = json(&o)
        .as_array()
        .expect("an array")
        .iter()
        .map(|t| t["path"].as_str().expect("a path").to_string())
        .collect();
    let expected: BTreeSet<String> = model
        .twins
        .iter()
        .map(|t| t.path.as_str().to_string())
        .collect();
    assert_eq!(paths, expected);

    // What is not there.
    let o = run(&["inspect", "--data-dir", d, "acme/nowhere/p-1"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("no persisted state for twin `acme/nowhere/p-1`"));
    let o = run(&[
        "inspect",
        "--data-dir",
        d,
        "--model",
        path_str(&acme),
        "acme/nowhere/p-1",
    ]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("the model has no twin `acme/nowhere/p-1`"));
    let missing = data.path().join("no-such-dir");
    let o = run(&["inspect", "--data-dir", path_str(&missing)]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(path_str(&missing)),
        "names the directory: {}",
        stderr(&o)
    );
    assert!(!missing.exists(), "inspect created nothing");
}

#[test]
fn help_mentions_every_subcommand_and_flag() {
    let o = run(&["--help"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("Usage: twinrt"), "{out}");
    for sub in ["run", "check", "inspect", "bench"] {
        assert!(out.contains(&format!("  {sub} ")), "`{sub}` in:\n{out}");
    }
    let flags: [(&str, &[&str]); 4] = [
        (
            "run",
            &[
                "<DIR>",
                "--data-dir",
                "--in-memory",
                "--for",
                "--seed",
                "--summary-every",
                "--report-durable",
            ],
        ),
        ("check", &["<DIR>"]),
        (
            "inspect",
            &["--data-dir", "[TWIN]", "--history", "--events", "--model"],
        ),
        ("bench", &["--devices", "--what", "--seconds", "--rate"]),
    ];
    for (sub, flags) in flags {
        let o = run(&[sub, "--help"]);
        assert_exit(&o, 0);
        let out = stdout(&o);
        for flag in flags {
            assert!(
                out.contains(flag),
                "`{flag}` in `twinrt {sub} --help`:\n{out}"
            );
        }
    }
}

#[test]
fn bad_arguments_exit_non_zero_with_a_message() {
    let acme = acme_dir();
    let o = run(&["run", path_str(&acme), "--for", "3 fortnights"]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error code");
    assert!(stderr(&o).contains("invalid duration"), "{}", stderr(&o));
    let o = run(&["check", path_str(&acme_dir().join("missing"))]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_stops_cleanly_and_flushes_the_store() {
    use std::io::{BufRead, BufReader};
    let acme = acme_dir();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("node");
    let mut child = twinrt()
        .args(["run", path_str(&acme), "--data-dir", path_str(&data_dir)])
        .args([
            "--summary-every",
            "0",
            "--report-durable",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start twinrt run");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    // Running, with something acknowledged: now interrupt it.
    let mut out = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read stdout");
        let acked = tests::DurableLine::parse(&line).is_some_and(|d| d.history > 0);
        out.push(line);
        if acked {
            break;
        }
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT failed");
    out.extend(lines.map(|l| l.expect("read stdout")));
    let o = child.wait_with_output().expect("wait for the node");
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("stopping (interrupted)"), "{err}");
    assert!(err.contains("stopped cleanly"), "{err}");
    let last = out
        .iter()
        .rev()
        .find_map(|l| tests::DurableLine::parse(l))
        .expect("durable lines");
    let snap = StoreSnapshot::open(&data_dir, &acme_model()).expect("read the store");
    assert_eq!(
        snap.history_count(),
        last.history,
        "the last flush covers everything:\n{}",
        out.join("\n")
    );
}

/// One plain HTTP/1.1 GET; returns the status line and the body.
fn http_get(addr: &str, path: &str, token: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the node");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_first_start_prints_an_admin_token_the_api_accepts_and_stores_only_its_hash() {
    use std::io::{BufRead, BufReader};
    let acme = acme_dir();
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("node");
    let start = || {
        let mut child = twinrt()
            .args(["run", path_str(&acme), "--data-dir", path_str(&data_dir)])
            .args([
                "--summary-every",
                "0",
                "--listen",
                "127.0.0.1:0",
                "--for",
                "20s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start twinrt run");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let (mut addr, mut token) = (None, None);
        let mut seen = String::new();
        for line in lines.by_ref() {
            let line = line.expect("stderr line");
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.strip_prefix("twinrt: HTTP API on http://") {
                addr = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some(t) = line.trim().strip_prefix("twr_") {
                token = Some(format!("twr_{t}"));
            }
            if line.contains("Ctrl-C stops") {
                break;
            }
        }
        (
            child,
            addr.unwrap_or_else(|| panic!("no address in:\n{seen}")),
            token,
            seen,
        )
    };
    let (mut child, addr, token, said) = start();
    let token = token.unwrap_or_else(|| panic!("no token printed at first start:\n{said}"));
    assert!(said.contains("first start"), "{said}");
    let (status, body) = http_get(&addr, "/api/whoami", &token);
    assert!(status.contains("200"), "{status} {body}");
    assert!(
        body.contains("\"role\":\"admin\"") && body.contains("\"scope\":\"acme\""),
        "{body}"
    );
    let (status, _) = http_get(&addr, "/api/whoami", "twr_wrong");
    assert!(status.contains("401"), "{status}");
    let _ = child.kill();
    let _ = child.wait();
    let config = std::fs::read_to_string(data_dir.join("node.toml")).expect("node.toml written");
    assert!(
        !config.contains(&token),
        "the secret is not stored:\n{config}"
    );
    assert!(config.contains("sha256"), "{config}");
    // The second start prints no token and accepts the first one.
    let (mut child, addr, again, said) = start();
    assert!(again.is_none(), "a token printed again:\n{said}");
    let (status, _) = http_get(&addr, "/api/whoami", &token);
    assert!(status.contains("200"), "{status}");
    let _ = child.kill();
    let _ = child.wait();
}
