//! The audit log on a real fjall store: records appended through the
//! [`AuditLog`] and a started [`Node`], then tampered with behind the store's
//! back (the fjall keyspaces opened directly, the node stopped), and
//! [`audit::verify`] / `twinrt audit verify` must name what was done.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ::fjall::{Database, Keyspace, KeyspaceCreateOptions};
use runtime::audit::{self, AuditEntry, AuditLog, AuditRecord, Category, Outcome, VerifyError};
use runtime::node::{Node, NodeConfig};
use runtime::store::{STORE_DIR, Store, open_default};
use twins::model::{Model, SourceFile};
use twins::store::codec;
use twins::{Clock, Timestamp};

/// Records each test log holds.
const N: u64 = 6;

/// A data directory whose store holds `N` audit records, the store closed.
async fn logged() -> tempfile::TempDir {
    let data = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(open_default(data.path()).expect("open the store"));
    let (log, handle) = AuditLog::open(
        store.clone(),
        Clock::manual(Timestamp(1_700_000_000_000_000)),
    )
    .unwrap();
    for i in 1..=N {
        log.record(
            AuditEntry::new(Category::Alarm, format!("acknowledge-{i:04}"))
                .token("ops-7")
                .source("10.0.0.5:50122")
                .target(format!("acme/east/p1/l1/p-{i}.high")),
        );
    }
    log.flush().await.expect("flush");
    handle.shutdown().await.expect("shutdown");
    drop(log);
    drop(store);
    data
}

/// The raw fjall keyspaces of a stopped node's store.
struct Raw {
    _db: Database,
    audit: Keyspace,
    meta: Keyspace,
}

impl Raw {
    fn open(data: &Path) -> Raw {
        let db = Database::builder(data.join(STORE_DIR))
            .open()
            .expect("open fjall directly");
        let ks = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .expect("keyspace")
        };
        Raw {
            audit: ks("audit"),
            meta: ks("meta"),
            _db: db,
        }
    }

    fn get(&self, seq: u64) -> Vec<u8> {
        self.audit
            .get(seq.to_be_bytes())
            .expect("read")
            .expect("record present")
            .to_vec()
    }

    fn put(&self, seq: u64, bytes: Vec<u8>) {
        self.audit.insert(seq.to_be_bytes(), bytes).expect("insert");
    }

    fn remove(&self, seq: u64) {
        self.audit.remove(seq.to_be_bytes()).expect("remove");
    }
}

fn verify_dir(data: &Path) -> Result<audit::VerifyReport, VerifyError> {
    let store = open_default(data).expect("open the store");
    audit::verify(&store)
}

#[tokio::test]
async fn an_intact_log_verifies() {
    let data = logged().await;
    let report = verify_dir(data.path()).expect("intact");
    assert_eq!(report.records, N);
    let store = open_default(data.path()).unwrap();
    let records = audit::list(&store, 0, 100).unwrap();
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>()
    );
    assert_eq!(report.head.unwrap().hash, records.last().unwrap().hash);
    assert_eq!(records[2].action, "acknowledge-0003");
    assert_eq!(records[2].token.as_deref(), Some("ops-7"));
    assert!(
        report
            .to_string()
            .starts_with("audit log intact: 6 records, head ")
    );
}

#[tokio::test]
async fn one_changed_byte_of_an_action_is_a_modified_record() {
    let data = logged().await;
    {
        let raw = Raw::open(data.path());
        let mut bytes = raw.get(3);
        let at = bytes
            .windows(16)
            .position(|w| w == b"acknowledge-0003")
            .expect("the action is in the record's bytes");
        bytes[at] = b'A';
        raw.put(3, bytes);
    }
    let err = verify_dir(data.path()).unwrap_err();
    assert_eq!(err, VerifyError::Modified { seq: 3 });
    assert_eq!(
        err.to_string(),
        "record 3 was modified: its hash does not match its contents"
    );
}

#[tokio::test]
async fn a_record_rewritten_with_a_fresh_hash_breaks_the_next_link() {
    let data = logged().await;
    {
        let raw = Raw::open(data.path());
        let old: AuditRecord = codec::decode(&raw.get(4)).unwrap();
        let forged = AuditRecord::chain(
            4,
            old.time,
            AuditEntry::new(Category::Alarm, "nothing happened"),
            old.prev,
        );
        raw.put(4, codec::encode(&forged).unwrap());
    }
    let err = verify_dir(data.path()).unwrap_err();
    assert_eq!(err, VerifyError::Unchained { seq: 5 });
    assert!(err.to_string().contains("record 4 was replaced"), "{err}");
}

#[tokio::test]
async fn a_removed_record_in_the_middle_is_missing() {
    let data = logged().await;
    Raw::open(data.path()).remove(4);
    let err = verify_dir(data.path()).unwrap_err();
    assert_eq!(err, VerifyError::Missing { seq: 4, next: 5 });
    assert_eq!(
        err.to_string(),
        "record 4 is missing: the log continues at record 5"
    );
}

#[tokio::test]
async fn a_removed_last_record_does_not_match_the_head() {
    let data = logged().await;
    Raw::open(data.path()).remove(N);
    let err = verify_dir(data.path()).unwrap_err();
    assert!(
        matches!(err, VerifyError::HeadMismatch { seq: N, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the head does not match the log: the log ends at record 5 but its head says it ends at record 6: record 6 was removed"
    );
}

#[tokio::test]
async fn a_removed_head_is_reported() {
    let data = logged().await;
    {
        let raw = Raw::open(data.path());
        raw.meta.remove(audit::HEAD_KEY).expect("remove");
    }
    let err = verify_dir(data.path()).unwrap_err();
    assert!(
        matches!(err, VerifyError::HeadMismatch { seq: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn two_swapped_records_are_out_of_order() {
    let data = logged().await;
    {
        let raw = Raw::open(data.path());
        let (two, three) = (raw.get(2), raw.get(3));
        raw.put(2, three);
        raw.put(3, two);
    }
    let err = verify_dir(data.path()).unwrap_err();
    assert_eq!(err, VerifyError::OutOfOrder { seq: 2, found: 3 });
    assert_eq!(
        err.to_string(),
        "record 2 is out of order: its place in the log holds record 3"
    );
}

#[tokio::test]
async fn garbage_in_place_of_a_record_is_undecodable() {
    let data = logged().await;
    Raw::open(data.path()).put(2, b"not a record".to_vec());
    let err = verify_dir(data.path()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Undecodable { seq: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reopened_log_never_overwrites_and_a_gap_stays_visible() {
    // A record removed from the tail while the node was stopped: the next
    // start appends after the head, so the gap is reported, not healed.
    let data = logged().await;
    Raw::open(data.path()).remove(N);
    {
        let store: Arc<dyn Store> = Arc::new(open_default(data.path()).unwrap());
        let (log, handle) = AuditLog::open(store, Clock::system()).unwrap();
        log.record(AuditEntry::new(Category::Node, "start"));
        handle.shutdown().await.unwrap();
    }
    assert_eq!(
        verify_dir(data.path()).unwrap_err(),
        VerifyError::Missing {
            seq: N,
            next: N + 1
        }
    );
}

const MODEL: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h", range = [0, 100] }

[class.L]
tier = "line"
[class.P]
tier = "plant"
[class.R]
tier = "region"
[class.E]
tier = "enterprise"

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/p-101"]
class = "Pump"
"#;

fn model() -> Arc<Model> {
    let files = [SourceFile {
        path: PathBuf::from("model.toml"),
        text: MODEL.to_string(),
    }];
    match twins::model::compile(&files) {
        Ok(m) => Arc::new(m),
        Err(d) => panic!("test model does not compile:\n{d}"),
    }
}

async fn start_stop(data: &Path, fingerprint: &str) {
    let config = NodeConfig {
        data_dir: Some(data.to_path_buf()),
        simulate: false,
        model_fingerprint: Some(fingerprint.to_string()),
        ..NodeConfig::default()
    };
    let node = Node::start(model(), config, Clock::system(), None)
        .await
        .expect("the node starts");
    node.audit.record(
        AuditEntry::new(Category::Access, "write")
            .token("viewer-1")
            .target("acme/r1/p1/l1/p-101")
            .result(Outcome::Denied("role viewer may not write".into())),
    );
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_records_start_stop_and_model_changes() {
    let data = tempfile::tempdir().unwrap();
    let fp_a = "a".repeat(64);
    let fp_b = "b".repeat(64);
    start_stop(data.path(), &fp_a).await;
    start_stop(data.path(), &fp_a).await;
    start_stop(data.path(), &fp_b).await;

    let store = open_default(data.path()).unwrap();
    let records = audit::list(&store, 0, 100).unwrap();
    let seen: Vec<(Category, &str)> = records
        .iter()
        .map(|r| (r.category, r.action.as_str()))
        .collect();
    use Category::{Access, Model, Node as N};
    assert_eq!(
        seen,
        vec![
            (Model, "loaded"),
            (N, "start"),
            (Access, "write"),
            (N, "stop"),
            // The same model again: no model record.
            (N, "start"),
            (Access, "write"),
            (N, "stop"),
            (Model, "changed"),
            (N, "start"),
            (Access, "write"),
            (N, "stop"),
        ]
    );
    assert_eq!(records[1].target.as_deref(), Some("acme (5 twins)"));
    assert_eq!(records[3].target.as_deref(), Some("acme"));
    assert_eq!(
        records[7].target.as_deref(),
        Some("bbbbbbbbbbbbbbbb (was aaaaaaaaaaaaaaaa)")
    );
    assert_eq!(records[2].token.as_deref(), Some("viewer-1"));
    assert!(records.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(audit::verify(&store).unwrap().records, 11);
}

fn twinrt(args: &[&str], data: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_twinrt"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("run twinrt");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn twinrt_audit_verify_exits_0_when_intact_and_1_naming_the_record() {
    let data = logged().await;
    let (code, out, err) = twinrt(&["audit", "verify"], data.path());
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.starts_with("audit log intact: 6 records, head "),
        "{out}"
    );

    let (code, out, err) = twinrt(&["audit", "list", "--last", "2"], data.path());
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two records:\n{out}");
    assert!(lines[0].starts_with("time (UTC)"), "{out}");
    assert!(lines[1].contains("acknowledge-0005"), "{out}");
    assert!(lines[2].contains("2023-11-14T22:13:20.000Z"), "{out}");
    let (code, out, _) = twinrt(&["audit", "list", "--json"], data.path());
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json.as_array().map(Vec::len), Some(N as usize));
    assert_eq!(json[0]["category"], "alarm");

    // While a node (here: this process) holds the store, say so.
    {
        let _held = open_default(data.path()).unwrap();
        let (code, _, err) = twinrt(&["audit", "verify"], data.path());
        assert_eq!(code, 1);
        assert!(err.contains("in use by a running node"), "{err}");
    }

    {
        let raw = Raw::open(data.path());
        let mut bytes = raw.get(5);
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        raw.put(5, bytes);
    }
    let (code, out, err) = twinrt(&["audit", "verify"], data.path());
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("record 5 "), "{out}");
}
