//! The local directory resolves paths, ids and aliases to the same running
//! twin, and reports what it cannot reach.

use std::path::PathBuf;
use std::sync::Arc;

use cluster::{DirectoryError, LocalDirectory, TwinDirectory};
use twins::actor::{AlarmCommand, TwinContext, spawn_root};
use twins::model::SourceFile;
use twins::{Clock, TwinPath};

const MODEL: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h" }
[[class.Pump.alarms]]
name = "no_flow"
when = "flow < 1"
priority = "medium"

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
[twin."east"]
class = "R"
[twin."east/p1"]
class = "P"
[twin."east/p1/l1"]
class = "L"
[twin."east/p1/l1/p-101"]
class = "Pump"
aliases = ["TAG-P-101", "urn:aas:p101"]
"#;

async fn start() -> (Arc<TwinContext>, LocalDirectory) {
    let files = [SourceFile {
        path: PathBuf::from("model.toml"),
        text: MODEL.into(),
    }];
    let model = Arc::new(twins::model::compile(&files).expect("model compiles"));
    let ctx = Arc::new(TwinContext::new(model, Clock::system()));
    spawn_root(ctx.clone()).await.expect("root starts");
    let total = ctx.model.twins.len();
    while (0..total).any(|i| ctx.actor_of(i).is_none()) {
        tokio::task::yield_now().await;
    }
    let dir = LocalDirectory::new(ctx.clone());
    (ctx, dir)
}

#[tokio::test]
async fn paths_ids_and_aliases_reach_the_same_twin() {
    let (_ctx, dir) = start().await;
    let path = TwinPath::parse("acme/east/p1/l1/p-101").expect("path");
    let id = path.id();
    for ident in [
        path.as_str().to_string(),
        id.to_string(),
        "TAG-P-101".to_string(),
        "urn:aas:p101".to_string(),
    ] {
        assert_eq!(dir.resolve(&ident), Some(id), "{ident}");
        let twin = dir.get(&ident).expect("running twin");
        assert_eq!(twin.path, path);
        let view = twin.view().await.expect("view");
        assert_eq!(view.path, path);
        assert_eq!(view.class, "Pump");
    }
    assert_eq!(dir.path_of(id), Some(path));
}

#[tokio::test]
async fn unknown_identifiers_and_refused_commands_say_why() {
    let (_ctx, dir) = start().await;
    let err = dir.get("acme/east/p1/l1/p-999").expect_err("unknown twin");
    assert_eq!(err, DirectoryError::Unknown("acme/east/p1/l1/p-999".into()));
    assert!(
        err.to_string()
            .contains("expected a path, a twin id or an alias")
    );
    // Nothing to acknowledge in a normal alarm: the twin's reason comes back.
    let pump = dir.get("TAG-P-101").expect("running twin");
    let err = pump
        .alarm("no_flow", AlarmCommand::Acknowledge, "alice")
        .await
        .expect_err("nothing to acknowledge");
    assert!(matches!(err, DirectoryError::Twin(_)), "{err:?}");
    let err = pump
        .alarm("no_flwo", AlarmCommand::Acknowledge, "alice")
        .await
        .expect_err("unknown alarm");
    assert!(err.to_string().contains("no alarm `no_flwo`"), "{err}");
}
