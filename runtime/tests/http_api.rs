//! The HTTP API against a running node: every endpoint's answers, its
//! refusals (401, and 403 for a foreign scope and for a role too low on
//! every endpoint), JSON errors with stable codes, body and slow-client
//! limits, and the live stream (scope, coalescing, resume, slow clients).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use runtime::http::auth::hash_token;
use runtime::http::{HttpConfig, HttpServer, ROUTES, Role, TokenInfo, Tokens};
use runtime::node::{Node, NodeConfig};
use serde_json::{Value as Json, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use twins::actor::{SampleBatch, TwinMsg};
use twins::model::{SourceFile, compile};
use twins::{Clock, PropSample, Quality, Timestamp, TwinPath, Value};

const MODEL: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h" }
speed_sp = { unit = "rpm" }
[[class.Pump.alarms]]
name = "high_flow"
when = "flow > 100"
priority = "high"
guidance = "Throttle the discharge valve."

[class.L]
tier = "line"
[class.L.rollups]
flow = "sum(flow)"
[class.P]
tier = "plant"
[class.P.rollups]
flow = "sum(flow)"
[class.R]
tier = "region"
[class.R.rollups]
flow = "sum(flow)"
[class.E]
tier = "enterprise"
[class.E.rollups]
flow = "sum(flow)"

[enterprise]
name = "acme"
class = "E"
[twin."east"]
class = "R"
[twin."east/baytown"]
class = "P"
[twin."east/baytown/crude"]
class = "L"
[twin."east/baytown/crude/p-{n}"]
class = "Pump"
count = 3
[twin."west"]
class = "R"
[twin."west/dover"]
class = "P"
[twin."west/dover/lube"]
class = "L"
[twin."west/dover/lube/p-{n}"]
class = "Pump"
count = 2
"#;

const EAST_PUMP: &str = "acme/east/baytown/crude/p-1";
const WEST_PUMP: &str = "acme/west/dover/lube/p-1";

struct Fixture {
    node: Arc<Node>,
    server: Option<HttpServer>,
    base: String,
    tokens: HashMap<&'static str, String>,
    http: reqwest::Client,
}

/// The tokens of the fixture: (name, role, scope).
const TOKENS: &[(&str, Role, &str)] = &[
    ("admin", Role::Admin, "acme"),
    ("east-viewer", Role::Viewer, "acme/east"),
    ("east-operator", Role::Operator, "acme/east"),
    ("east-engineer", Role::Engineer, "acme/east"),
    ("west-admin", Role::Admin, "acme/west"),
];

async fn start(tune: impl FnOnce(&mut HttpConfig)) -> Fixture {
    let model = compile(&[SourceFile {
        path: "model.toml".into(),
        text: MODEL.into(),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let config = NodeConfig {
        simulate: false,
        ..NodeConfig::default()
    };
    let node = Arc::new(
        Node::start(Arc::new(model), config, Clock::system(), None)
            .await
            .expect("node starts"),
    );
    let mut tokens = HashMap::new();
    let mut infos = Vec::new();
    for (name, role, scope) in TOKENS {
        let secret = format!("twr_test_{name}");
        infos.push((
            hash_token(&secret),
            TokenInfo {
                id: name.to_string(),
                role: *role,
                scope: TwinPath::parse(scope).unwrap(),
            },
        ));
        tokens.insert(*name, secret);
    }
    let mut http = HttpConfig::with_tokens(Tokens::new(infos));
    http.listen = "127.0.0.1:0".parse().unwrap();
    tune(&mut http);
    let server = HttpServer::start(node.clone(), http)
        .await
        .expect("server starts");
    Fixture {
        base: format!("http://{}", server.local_addr()),
        node,
        server: Some(server),
        tokens,
        http: reqwest::Client::new(),
    }
}

impl Fixture {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Json) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(&self.tokens[token])
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Json::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Json) -> (u16, Json) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.tokens[token])
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Json::Null))
    }

    /// Sends samples to a pump and waits until it has applied them.
    async fn send(&self, path: &str, samples: &[(&str, f64, Timestamp)]) {
        let model = &self.node.ctx.model;
        let i = model
            .twins
            .iter()
            .position(|t| t.path.as_str() == path)
            .expect("twin in model");
        let class = &model.classes[model.twins[i].class];
        let actor = self.node.ctx.actor_of(i).expect("twin runs");
        let samples = samples
            .iter()
            .map(|(prop, v, ts)| PropSample {
                prop: class.prop_index(prop).expect("property"),
                value: Value::F64(*v),
                source_ts: *ts,
                quality: Quality::Good,
            })
            .collect();
        actor
            .cast(TwinMsg::Samples(SampleBatch {
                samples,
                arrival: self.node.ctx.clock.now(),
            }))
            .expect("cast");
        ractor::call!(actor, TwinMsg::Get).expect("twin answers");
    }

    async fn set_flow(&self, path: &str, flow: f64) {
        let now = self.node.ctx.clock.now();
        self.send(path, &[("flow", flow, now)]).await;
    }

    /// Waits until `check` holds for the answer of `GET path`.
    async fn wait_for(&self, path: &str, what: &str, check: impl Fn(&Json) -> bool) -> Json {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get("admin", path).await;
            if status == 200 && check(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: last answer {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        let Ok(node) = Arc::try_unwrap(self.node) else {
            panic!("the server still holds the node after its shutdown");
        };
        node.shutdown().await.expect("clean shutdown");
    }
}

fn prop<'a>(twin: &'a Json, name: &str) -> &'a Json {
    twin["properties"]
        .as_array()
        .expect("properties")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no property {name} in {twin}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twin_its_tree_and_a_search_answer_as_documented() {
    let f = start(|_| {}).await;
    f.set_flow(EAST_PUMP, 40.0).await;
    f.set_flow("acme/east/baytown/crude/p-2", 60.0).await;
    // Roll-ups reach the region: 40 + 60 of three pumps (one has no data).
    let region = f
        .wait_for("/api/twins/acme/east", "east's flow roll-up", |t| {
            prop(t, "flow")["value"] == json!(100.0)
        })
        .await;
    let flow = prop(&region, "flow");
    assert_eq!(flow["kind"], "rollup");
    assert_eq!(flow["unit"], "m3/h");
    assert_eq!(flow["contributors"]["total"], 1, "{flow}");
    assert_eq!(region["tier"], "region");
    assert_eq!(region["children"], json!(["acme/east/baytown"]));

    let (s, pump) = f.get("admin", &format!("/api/twins/{EAST_PUMP}")).await;
    assert_eq!(s, 200, "{pump}");
    let flow = prop(&pump, "flow");
    assert_eq!(
        (
            flow["value"].clone(),
            flow["quality"].clone(),
            flow["kind"].clone()
        ),
        (json!(40.0), json!("good"), json!("sourced"))
    );
    assert!(flow["ts"].as_str().unwrap().ends_with('Z'));
    let sp = prop(&pump, "speed_sp");
    assert_eq!(
        (sp["quality"].clone(), sp["reason"].clone()),
        (json!("bad"), json!("no_data"))
    );
    assert_eq!(pump["alarms"][0]["id"], format!("{EAST_PUMP}:high_flow"));
    // By id too.
    let id = pump["id"].as_str().unwrap().to_string();
    let (s, by_id) = f.get("admin", &format!("/api/twins/{id}")).await;
    assert_eq!((s, by_id["path"].clone()), (200, json!(EAST_PUMP)));

    let (s, tree) = f.get("admin", "/api/tree/acme?depth=2").await;
    assert_eq!(s, 200, "{tree}");
    let regions = tree["children"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0]["kpis"][0]["name"], "flow");
    assert_eq!(regions[0]["children"][0]["path"], "acme/east/baytown");
    assert!(
        regions[0]["children"][0].get("children").is_none(),
        "depth 2 stops at plants"
    );
    assert_eq!(regions[0]["children"][0]["child_count"], 1);
    let (s, e) = f.get("admin", "/api/tree/acme?depth=9").await;
    assert_eq!((s, e["error"]["code"].clone()), (400, json!("bad_request")));

    let found = |q: &'static str| {
        let f = &f;
        async move {
            let (s, b) = f.get("admin", &format!("/api/find?{q}")).await;
            assert_eq!(s, 200, "{q}: {b}");
            b["twins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["path"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("tier=device").await.len(), 5);
    assert_eq!(found("class=Pump&path=acme/west/**").await.len(), 2);
    // Roll-ups count: every container above p-2 sums to 100.
    assert_eq!(found("where=flow%20%3E%2050").await.len(), 5);
    assert_eq!(
        found("tier=device&where=flow%20%3E%2050").await,
        vec!["acme/east/baytown/crude/p-2".to_string()]
    );
    assert_eq!(
        found("tier=device&where=quality(flow)%20%3D%20bad")
            .await
            .len(),
        3
    );
    assert_eq!(
        found("where=flow%20%3E%3D%2040&where=flow%20%3C%2050").await,
        vec![EAST_PUMP.to_string()]
    );
    let (s, b) = f.get("admin", "/api/find?tier=device&limit=2").await;
    assert_eq!(
        (s, b["matched"].clone(), b["truncated"].clone()),
        (200, json!(2), json!(true))
    );
    for bad in [
        "tier=pump",
        "class=Pmp",
        "where=flow",
        "alarm=loud",
        "path=acme//x",
    ] {
        let (s, b) = f.get("admin", &format!("/api/find?{bad}")).await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (400, json!("bad_request")),
            "{bad}: {b}"
        );
    }
    let (_, b) = f.get("admin", "/api/find?class=Pmp").await;
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `Pump`"),
        "{b}"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_downsampled_to_a_bounded_number_of_buckets() {
    let f = start(|_| {}).await;
    let t0 = Timestamp(f.node.ctx.clock.now().0 - 1_000_000_000);
    // 1,000 points one second apart, values 0..999, in batches.
    for chunk in (0..1000).collect::<Vec<i64>>().chunks(100) {
        let samples: Vec<(&str, f64, Timestamp)> = chunk
            .iter()
            .map(|&k| ("flow", k as f64, Timestamp(t0.0 + k * 1_000_000)))
            .collect();
        f.send(EAST_PUMP, &samples).await;
    }
    f.node.writer.as_ref().unwrap().flush().await.unwrap();
    let from = t0.to_string();
    let to = Timestamp(t0.0 + 1_000_000_000).to_string();
    let (s, h) = f
        .get(
            "admin",
            &format!("/api/history/{EAST_PUMP}?prop=flow&from={from}&to={to}&points=10"),
        )
        .await;
    assert_eq!(s, 200, "{h}");
    let pts = h["points"].as_array().unwrap();
    assert_eq!(pts.len(), 10, "{h}");
    assert_eq!(h["raw_points"], 1000);
    assert_eq!(h["bucket_ms"], 100_000);
    assert_eq!(h["unit"], "m3/h");
    let n: u64 = pts.iter().map(|p| p["n"].as_u64().unwrap()).sum();
    assert_eq!(n, 1000);
    for (k, p) in pts.iter().enumerate() {
        let (min, avg, max) = (
            p["min"].as_f64().unwrap(),
            p["avg"].as_f64().unwrap(),
            p["max"].as_f64().unwrap(),
        );
        assert_eq!((min, max), ((k * 100) as f64, (k * 100 + 99) as f64), "{p}");
        assert!((avg - (k * 100) as f64 - 49.5).abs() < 1e-9, "{p}");
    }
    // Fewer points than buckets: each is its own.
    let to5 = Timestamp(t0.0 + 5_000_000).to_string();
    let (_, h) = f
        .get(
            "admin",
            &format!("/api/history/{EAST_PUMP}?prop=flow&from={from}&to={to5}&points=10"),
        )
        .await;
    assert_eq!(
        (
            h["bucket_ms"].clone(),
            h["points"].as_array().unwrap().len()
        ),
        (json!(0), 5)
    );
    for (q, code) in [
        ("prop=flw", "not_found"),
        ("prop=flow&from=yesterday", "bad_request"),
        ("prop=flow&from=-1h&to=-2h", "bad_request"),
        ("prop=flow&points=0", "bad_request"),
    ] {
        let (_, b) = f
            .get("admin", &format!("/api/history/{EAST_PUMP}?{q}"))
            .await;
        assert_eq!(b["error"]["code"], code, "{q}: {b}");
    }
    let (_, b) = f
        .get("admin", &format!("/api/history/{EAST_PUMP}?prop=flw"))
        .await;
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `flow`"),
        "{b}"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_are_listed_acknowledged_shelved_and_journaled() {
    let f = start(|_| {}).await;
    let id = format!("{EAST_PUMP}:high_flow");
    f.set_flow(EAST_PUMP, 150.0).await;
    f.set_flow(WEST_PUMP, 150.0).await;
    let list = f
        .wait_for("/api/alarms", "both alarms listed", |b| {
            b["alarms"].as_array().is_some_and(|a| a.len() == 2)
        })
        .await;
    assert_eq!(list["alarms"][0]["state"], "active_unacked");
    // The east operator sees only east.
    let (s, east) = f.get("east-operator", "/api/alarms").await;
    assert_eq!(s, 200);
    assert_eq!(east["alarms"].as_array().unwrap().len(), 1);
    assert_eq!(east["alarms"][0]["id"], id);
    let (_, tree) = f.get("admin", "/api/tree/acme?depth=1").await;
    assert_eq!(tree["alarm_summary"]["active"]["high"], 2, "{tree}");
    assert_eq!(tree["children"][0]["alarm_summary"]["unacked"]["high"], 1);

    let (s, a) = f
        .post(
            "east-operator",
            "/api/alarms/acknowledge",
            json!({"alarm": id, "comment": "seen"}),
        )
        .await;
    assert_eq!((s, a["state"].clone()), (200, json!("active_acked")), "{a}");
    let (s, e) = f
        .post(
            "east-operator",
            "/api/alarms/acknowledge",
            json!({"alarm": id}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].clone()),
        (409, json!("conflict")),
        "{e}"
    );
    let (s, a) = f
        .post(
            "east-operator",
            "/api/alarms/shelve",
            json!({"alarm": id, "for": "1h"}),
        )
        .await;
    assert_eq!((s, a["mode"].clone()), (200, json!("shelved")), "{a}");
    assert!(a["shelved_until"].is_string());
    let (_, shelved) = f.get("admin", "/api/alarms?state=shelved").await;
    assert_eq!(shelved["alarms"][0]["id"], id);
    let (s, a) = f
        .post(
            "east-operator",
            "/api/alarms/unshelve",
            json!({"alarm": id}),
        )
        .await;
    assert_eq!((s, a["mode"].clone()), (200, json!("enabled")), "{a}");
    let (s, e) = f
        .post(
            "east-operator",
            "/api/alarms/shelve",
            json!({"alarm": id, "for": "3d"}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (400, json!("bad_request")));
    let (s, a) = f
        .post(
            "east-engineer",
            "/api/alarms/out-of-service",
            json!({"alarm": id, "out_of_service": true}),
        )
        .await;
    assert_eq!(
        (s, a["mode"].clone()),
        (200, json!("out_of_service")),
        "{a}"
    );
    let (s, e) = f
        .post(
            "east-operator",
            "/api/alarms/acknowledge",
            json!({"alarm": format!("{EAST_PUMP}:nope")}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (404, json!("not_found")));
    let (s, e) = f
        .post(
            "east-operator",
            "/api/alarms/acknowledge",
            json!({"alarm": "no-colon"}),
        )
        .await;
    assert_eq!((s, e["error"]["code"].clone()), (400, json!("bad_request")));

    f.node.writer.as_ref().unwrap().flush().await.unwrap();
    let (s, j) = f.get("admin", &format!("/api/events/{EAST_PUMP}")).await;
    assert_eq!(s, 200, "{j}");
    let kinds: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"alarm"), "{j}");
    let texts: Vec<&str> = j["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("east-operator")),
        "the journal names who acted: {texts:?}"
    );
    let seq = j["events"][0]["seq"].as_u64().unwrap();
    let (_, later) = f
        .get(
            "admin",
            &format!("/api/events/{EAST_PUMP}?after={seq}&limit=1"),
        )
        .await;
    assert_eq!(later["events"].as_array().unwrap().len(), 1);
    assert!(later["events"][0]["seq"].as_u64().unwrap() > seq);
    f.stop().await;
}

/// One request of the denial matrix.
struct Probe {
    method: &'static str,
    /// The path as in the OpenAPI document.
    route: &'static str,
    /// The request's path and query.
    uri: String,
    body: Option<Json>,
    /// The lowest role allowed.
    role: Role,
}

fn probes() -> Vec<Probe> {
    let id = format!("{EAST_PUMP}:high_flow");
    let p = |method, route, uri: String, body: Option<Json>, role| Probe {
        method,
        route,
        uri,
        body,
        role,
    };
    vec![
        p(
            "get",
            "/api/twins/{twin}",
            format!("/api/twins/{EAST_PUMP}"),
            None,
            Role::Viewer,
        ),
        p(
            "get",
            "/api/tree/{twin}",
            "/api/tree/acme/east".into(),
            None,
            Role::Viewer,
        ),
        p(
            "get",
            "/api/find",
            "/api/find?path=acme/east/**".into(),
            None,
            Role::Viewer,
        ),
        p(
            "get",
            "/api/history/{twin}",
            format!("/api/history/{EAST_PUMP}?prop=flow"),
            None,
            Role::Viewer,
        ),
        p(
            "get",
            "/api/events/{twin}",
            format!("/api/events/{EAST_PUMP}"),
            None,
            Role::Viewer,
        ),
        p(
            "get",
            "/api/alarms",
            "/api/alarms?path=acme/east/**".into(),
            None,
            Role::Viewer,
        ),
        p(
            "post",
            "/api/alarms/acknowledge",
            "/api/alarms/acknowledge".into(),
            Some(json!({"alarm": id})),
            Role::Operator,
        ),
        p(
            "post",
            "/api/alarms/shelve",
            "/api/alarms/shelve".into(),
            Some(json!({"alarm": id, "for": "1h"})),
            Role::Operator,
        ),
        p(
            "post",
            "/api/alarms/unshelve",
            "/api/alarms/unshelve".into(),
            Some(json!({"alarm": id})),
            Role::Operator,
        ),
        p(
            "post",
            "/api/alarms/out-of-service",
            "/api/alarms/out-of-service".into(),
            Some(json!({"alarm": id, "out_of_service": true})),
            Role::Engineer,
        ),
        p(
            "post",
            "/api/setpoint",
            "/api/setpoint".into(),
            Some(json!({"twin": EAST_PUMP, "prop": "speed_sp", "value": 1450})),
            Role::Operator,
        ),
        p(
            "get",
            "/api/stream",
            "/api/stream?path=acme/east/**".into(),
            None,
            Role::Viewer,
        ),
        p("get", "/metrics", "/metrics".into(), None, Role::Viewer),
        p(
            "get",
            "/api/whoami",
            "/api/whoami".into(),
            None,
            Role::Viewer,
        ),
        p("get", "/api/audit", "/api/audit".into(), None, Role::Admin),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_refuses_a_foreign_scope_and_a_role_too_low_with_403() {
    let f = start(|_| {}).await;
    f.set_flow(EAST_PUMP, 150.0).await;
    let probes = probes();
    for (method, route) in ROUTES {
        assert!(
            probes
                .iter()
                .any(|p| p.method == *method && p.route == *route),
            "the denial test has no probe for {method} {route}"
        );
    }
    let send = |token: &'static str, p: &Probe| {
        let req = match p.method {
            "get" => f.http.get(f.url(&p.uri)),
            _ => f.http.post(f.url(&p.uri)).json(p.body.as_ref().unwrap()),
        };
        req.bearer_auth(&f.tokens[token]).send()
    };
    let mut denied = 0;
    for p in &probes {
        // A token of another region, whatever its role: 403. `/whoami`
        // concerns the token only, so it has no foreign scope.
        if p.route != "/api/whoami" {
            let r = send("west-admin", p).await.expect("request");
            let status = r.status().as_u16();
            let body: Json = r.json().await.unwrap_or(Json::Null);
            assert_eq!(
                status, 403,
                "{} {} with a west token: {body}",
                p.method, p.uri
            );
            assert_eq!(body["error"]["code"], "forbidden");
            denied += 1;
        }
        // Every role below the one needed: 403.
        for (token, role) in [
            ("east-viewer", Role::Viewer),
            ("east-operator", Role::Operator),
            ("east-engineer", Role::Engineer),
        ] {
            if role >= p.role {
                continue;
            }
            let r = send(token, p).await.expect("request");
            let status = r.status().as_u16();
            let body: Json = r.json().await.unwrap_or(Json::Null);
            assert_eq!(status, 403, "{} {} as {token}: {body}", p.method, p.uri);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("needs role"),
                "{body}"
            );
            denied += 1;
        }
        // Metrics and the audit log cover the whole node: refused to east
        // tokens of any role.
        if p.route == "/metrics" || p.route == "/api/audit" {
            let r = send("east-engineer", p).await.expect("request");
            assert_eq!(r.status().as_u16(), 403);
            denied += 1;
        }
    }
    assert!(
        f.node.ctx.metrics.samples.load(Ordering::Relaxed) > 0,
        "the node took the sample"
    );
    // Nothing refused had an effect: the alarm is still unacknowledged and enabled.
    let (_, pump) = f.get("admin", &format!("/api/twins/{EAST_PUMP}")).await;
    assert_eq!(pump["alarms"][0]["state"], "active_unacked", "{pump}");
    assert_eq!(pump["alarms"][0]["mode"], "enabled");
    let api = f.server.as_ref().unwrap().api();
    assert_eq!(api.metrics.denials.load(Ordering::Relaxed), denied);
    let responses: HashMap<u16, u64> = api.metrics.responses().into_iter().collect();
    assert_eq!(responses.get(&403).copied(), Some(denied));
    // Within their scope and role the same requests pass (the setpoint
    // needs an edge adapter, which this node has not: 409).
    for p in &probes {
        let r = send("admin", p).await.expect("request");
        let expect = if p.route == "/api/setpoint" { 409 } else { 200 };
        assert_eq!(
            r.status().as_u16(),
            expect,
            "{} {} as admin",
            p.method,
            p.uri
        );
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_are_401_and_errors_are_json_with_stable_codes() {
    let f = start(|_| {}).await;
    let plain = reqwest::Client::new();
    let r = plain.get(f.url("/api/whoami")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let b: Json = r.json().await.unwrap();
    assert_eq!(b["error"]["code"], "unauthorized");
    let r = plain
        .get(f.url("/api/whoami"))
        .bearer_auth("twr_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = plain
        .get(f.url("/api/whoami"))
        .header("authorization", "Basic eDp5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let api = f.server.as_ref().unwrap().api();
    assert_eq!(api.metrics.auth_failures.load(Ordering::Relaxed), 3);
    // The stream takes the token from the query too.
    let r = plain
        .get(f.url(&format!("/api/stream?access_token={}", f.tokens["admin"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    drop(r);
    // Health needs no token.
    assert_eq!(
        plain
            .get(f.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        plain
            .get(f.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    let (s, b) = f.get("admin", "/api/twins/acme/nowhere").await;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("acme/nowhere")
    );
    let (s, b) = f.get("admin", "/api/nothing").await;
    assert_eq!((s, b["error"]["code"].clone()), (404, json!("not_found")));
    let r = f
        .http
        .delete(f.url("/api/alarms"))
        .bearer_auth(&f.tokens["admin"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(
        r.json::<Json>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    // Bodies: not JSON, wrong fields, wrong content type, too large.
    let post = |body: Vec<u8>, ct: &'static str| {
        f.http
            .post(f.url("/api/alarms/acknowledge"))
            .bearer_auth(&f.tokens["admin"])
            .header("content-type", ct)
            .body(body)
            .send()
    };
    for (body, ct, status, code) in [
        (
            b"{not json".to_vec(),
            "application/json",
            400,
            "invalid_body",
        ),
        (
            br#"{"alarm": 1}"#.to_vec(),
            "application/json",
            400,
            "invalid_body",
        ),
        (
            br#"{"alarm": "a:b", "extra": 1}"#.to_vec(),
            "application/json",
            400,
            "invalid_body",
        ),
        (
            br#"{"alarm": "a:b"}"#.to_vec(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            vec![b' '; (1 << 20) + 1],
            "application/json",
            413,
            "payload_too_large",
        ),
    ] {
        let r = post(body, ct).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{code}");
        let b: Json = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], code, "{b}");
    }
    // The OpenAPI document describes every route.
    let doc: Json = plain
        .get(f.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, route) in ROUTES {
        assert!(
            doc["paths"][route][method].is_object(),
            "OpenAPI lacks {method} {route}"
        );
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), ROUTES.len());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_too_slow_to_send_their_request_are_cut_off() {
    let f = start(|c| {
        c.header_timeout = Duration::from_millis(300);
        c.body_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = f.server.as_ref().unwrap().local_addr();
    // Headers that never end.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/whoami HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server closes the connection");
    assert!(n.is_ok());
    // A body that never arrives in full.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/alarms/acknowledge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"alarm\"",
        f.tokens["admin"]
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    let api = f.server.as_ref().unwrap().api();
    assert!(api.metrics.connections_cut.load(Ordering::Relaxed) >= 1);
    f.stop().await;
}

/// A minimal SSE reader for the tests: (event, id, data) per event.
struct Sse {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

#[derive(Debug, Clone)]
struct Ev {
    event: String,
    id: Option<String>,
    data: Json,
}

impl Sse {
    async fn open(f: &Fixture, token: &str, path: &str, last_id: Option<&str>) -> Sse {
        let mut req = f
            .http
            .get(f.url(&format!("/api/stream?path={path}")))
            .bearer_auth(&f.tokens[token]);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let r = req.send().await.expect("stream");
        assert_eq!(r.status().as_u16(), 200);
        Sse {
            stream: r.bytes_stream().map(|c| c.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        }
    }

    /// The next event, or `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    event: "message".into(),
                    id: None,
                    data: Json::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().into());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a heartbeat comment
                }
                ev.data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(ev);
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// Events until none comes for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<Ev> {
        let mut out = Vec::new();
        while let Some(e) = self.next(quiet).await {
            out.push(e);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_coalesces_states_of_its_subtree_and_passes_alarms_at_once() {
    let f = start(|c| c.sse_coalesce = Duration::from_millis(200)).await;
    let mut east = Sse::open(&f, "east-viewer", "acme/east/**", None).await;
    // 50 values in a burst, then one west value the east client must not see.
    for k in 0..50 {
        f.set_flow(EAST_PUMP, k as f64).await;
    }
    f.set_flow(EAST_PUMP, 150.0).await;
    f.set_flow(WEST_PUMP, 7.0).await;
    let events = east.drain(Duration::from_millis(1200)).await;
    assert!(!events.is_empty());
    for e in &events {
        let path = e.data["path"].as_str().or(e.data["twin"].as_str()).unwrap();
        assert!(path.starts_with("acme/east"), "an east client got {path}");
        assert!(e.id.is_some(), "{e:?}");
    }
    let pump_states: Vec<&Ev> = events
        .iter()
        .filter(|e| e.event == "state" && e.data["path"] == EAST_PUMP)
        .collect();
    assert!(
        pump_states.len() < 20,
        "51 changes in a burst should coalesce, got {} state events",
        pump_states.len()
    );
    assert_eq!(
        pump_states.last().unwrap().data["properties"]["flow"]["value"],
        150.0
    );
    let alarm = events
        .iter()
        .find(|e| e.event == "alarm")
        .expect("the alarm event");
    assert_eq!(alarm.data["id"], format!("{EAST_PUMP}:high_flow"));
    assert_eq!(
        (
            alarm.data["state"].clone(),
            alarm.data["from"]["state"].clone()
        ),
        (json!("active_unacked"), json!("normal"))
    );
    // Roll-ups arrive as states of the containers.
    assert!(
        events
            .iter()
            .any(|e| e.event == "state" && e.data["path"] == "acme/east"),
        "the region's roll-up"
    );
    // A stream outside the scope is refused.
    let r = f
        .http
        .get(f.url("/api/stream?path=acme/**"))
        .bearer_auth(&f.tokens["east-viewer"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let ids: Vec<u64> = events
        .iter()
        .map(|e| {
            e.id.as_ref()
                .unwrap()
                .rsplit('.')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    drop(east);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_with_last_event_id_gets_what_it_missed() {
    let f = start(|c| c.sse_coalesce = Duration::from_millis(50)).await;
    let mut s = Sse::open(&f, "admin", &format!("{EAST_PUMP}/**"), None).await;
    f.set_flow(EAST_PUMP, 1.0).await;
    let first = s.next(Duration::from_secs(5)).await.expect("an event");
    let last_id = first.id.clone().unwrap();
    drop(s);
    // Missed while away.
    f.set_flow(EAST_PUMP, 2.0).await;
    f.set_flow(EAST_PUMP, 3.0).await;
    f.set_flow(WEST_PUMP, 4.0).await;
    let mut s = Sse::open(&f, "admin", &format!("{EAST_PUMP}/**"), Some(&last_id)).await;
    let replay = s.next(Duration::from_secs(5)).await.expect("the replay");
    assert_eq!(replay.event, "state");
    assert_eq!(
        replay.data["properties"]["flow"]["value"], 3.0,
        "{replay:?}"
    );
    assert_eq!(
        f.server
            .as_ref()
            .unwrap()
            .api()
            .metrics
            .sse_resumed
            .load(Ordering::Relaxed),
        1
    );
    drop(s);
    // An id of another run (or garbage): the client must refetch.
    let mut s = Sse::open(&f, "admin", "acme/**", Some("1.5")).await;
    let reset = s.next(Duration::from_secs(5)).await.expect("a reset");
    assert_eq!(reset.event, "reset");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_events_counted_without_slowing_ingest_or_others() {
    let f = start(|c| {
        c.sse_queue = 16;
        c.sse_coalesce = Duration::from_millis(10);
    })
    .await;
    let addr = f.server.as_ref().unwrap().local_addr();
    // The slow client: a tiny receive buffer, and it reads nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(
        format!(
            "GET /api/stream?path=acme/east/** HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
            f.tokens["admin"]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut fast = Sse::open(&f, "admin", "acme/east/**", None).await;
    let reader = tokio::spawn(async move {
        let mut alarms = 0u64;
        let mut last_flow = None;
        while let Some(e) = fast.next(Duration::from_secs(3)).await {
            match e.event.as_str() {
                "alarm" => alarms += 1,
                "state" if e.data["path"] == EAST_PUMP => {
                    last_flow = e.data["properties"]["flow"]["value"].as_f64();
                }
                _ => {}
            }
        }
        (alarms, last_flow)
    });
    // 30,000 alarm transitions, some 13 MB of events: far more than the
    // socket buffers hold.
    let before = f.node.ctx.metrics.samples.load(Ordering::Relaxed);
    let n = 30_000;
    for k in 0..n {
        let now = f.node.ctx.clock.now();
        f.send(
            EAST_PUMP,
            &[("flow", if k % 2 == 0 { 150.0 } else { 50.0 }, now)],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.set_flow(EAST_PUMP, 42.0).await;
    let applied = f.node.ctx.metrics.samples.load(Ordering::Relaxed) - before;
    assert_eq!(applied, n + 1, "ingest applied every sample");
    let (alarms, last_flow) = reader.await.unwrap();
    assert_eq!(
        last_flow,
        Some(42.0),
        "the reading client saw the last value"
    );
    assert!(alarms > 0);
    let dropped = f
        .server
        .as_ref()
        .unwrap()
        .api()
        .metrics
        .sse_dropped
        .load(Ordering::Relaxed);
    assert!(dropped > 0, "the slow client lost events");
    // The slow client now reads: it is told how many it lost.
    let mut text = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&text).contains("event: dropped") {
        let n = tokio::time::timeout_at(deadline, slow.read(&mut chunk))
            .await
            .expect("a dropped notice reaches the slow client")
            .unwrap();
        assert!(n > 0, "the stream ended before a dropped notice");
        text.extend_from_slice(&chunk[..n]);
    }
    drop(slow);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_auth_failures_denials_and_alarm_commands() {
    let f = start(|_| {}).await;
    let id = format!("{EAST_PUMP}:high_flow");
    f.set_flow(EAST_PUMP, 150.0).await;
    let r = f
        .http
        .get(f.url("/api/whoami"))
        .bearer_auth("twr_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (s, _) = f
        .post(
            "east-viewer",
            "/api/alarms/acknowledge",
            json!({"alarm": id}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = f
        .post(
            "east-operator",
            "/api/alarms/acknowledge",
            json!({"alarm": id}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = f
        .post(
            "east-operator",
            "/api/alarms/shelve",
            json!({"alarm": id, "for": "30m"}),
        )
        .await;
    assert_eq!(s, 200);
    f.node.audit.flush().await.expect("audit flush");
    let (s, page) = f.get("admin", "/api/audit?limit=1000").await;
    assert_eq!(s, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    let find = |cat: &str, pred: &dyn Fn(&Json) -> bool| {
        records
            .iter()
            .find(|r| r["category"] == cat && pred(r))
            .unwrap_or_else(|| panic!("no {cat} record in {page}"))
    };
    let auth = find("auth", &|_| true);
    assert!(
        auth["result"].as_str().unwrap().contains("unknown token"),
        "{auth}"
    );
    assert!(
        auth["source"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{auth}"
    );
    assert!(auth["token"].is_null());
    let denial = find("access", &|r| r["token"] == "east-viewer");
    assert!(
        denial["result"].as_str().unwrap().starts_with("denied"),
        "{denial}"
    );
    assert_eq!(denial["target"], EAST_PUMP);
    let ack = find("alarm", &|r| r["action"] == "acknowledge");
    assert_eq!(
        (
            ack["token"].clone(),
            ack["target"].clone(),
            ack["result"].clone()
        ),
        (json!("east-operator"), json!(id), json!("ok"))
    );
    find("alarm", &|r| {
        r["action"].as_str().unwrap().starts_with("shelve for 30m")
    });
    find("node", &|r| r["action"] == "start");
    // Chained: each record's prev is the hash before it.
    for w in records.windows(2) {
        assert_eq!(w[1]["prev"], w[0]["hash"]);
    }
    let store = f.node.ctx.store.clone().unwrap();
    let report = runtime::audit::verify(store.as_ref()).expect("the chain verifies");
    assert_eq!(report.records as usize, records.len());
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_for_prometheus_with_the_api_families() {
    use std::io::Write;
    let f = start(|_| {}).await;
    f.set_flow(EAST_PUMP, 150.0).await;
    f.wait_for("/api/twins/acme", "HQ counts the alarm", |t| {
        t["alarm_summary"]["active"]["high"] == 1
    })
    .await;
    let _live = Sse::open(&f, "admin", "acme/**", None).await;
    let r = f.http.get(f.url("/api/whoami")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = f
        .http
        .get(f.url("/metrics"))
        .bearer_auth(&f.tokens["admin"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for family in [
        "twinrt_twins{tier=\"device\"} 5\n",
        "twinrt_http_responses_total{status=\"401\"} 1\n",
        "twinrt_http_responses_total{status=\"200\"} ",
        "twinrt_http_auth_failures_total 1\n",
        "twinrt_sse_clients 1\n",
        "# TYPE twinrt_rollup_latency_seconds histogram\n",
        "# TYPE twinrt_store_commit_seconds histogram\n",
        "# TYPE twinrt_mailbox_depth_max gauge\n",
        "# TYPE twinrt_samples_per_second gauge\n",
        "twinrt_alarms_active{priority=\"high\"} 1\n",
        "twinrt_audit_dropped_total{category=\"auth\"} 0\n",
        "# TYPE twinrt_audit_records_total counter\n",
    ] {
        assert!(
            text.contains(family),
            "no `{}` in:\n{text}",
            family.trim_end()
        );
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus; ./scripts/test.sh does)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_carries_heartbeats() {
    let f = start(|c| c.sse_heartbeat = Duration::from_millis(100)).await;
    let r = f
        .http
        .get(f.url("/api/stream?path=acme/west/**"))
        .bearer_auth(&f.tokens["admin"])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while text.matches(": heartbeat").count() < 2 {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("heartbeats arrive")
            .expect("the stream stays open")
            .expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains("event:"),
        "nothing changed in the west: {text}"
    );
    drop(body);
    f.stop().await;
}
