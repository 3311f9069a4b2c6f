//! `twinrt watch`: the live stream of a twin or a subtree as a table,
//! redrawn in place on a terminal and appended line by line otherwise, or
//! as one JSON object per event.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::Value as Json;
use twins::Timestamp;

use super::render::{self, now, short_time};
use super::{Alarm, Client, ClientError, PropState, StateData, StreamItem, Twin, WatchArgs, out};

/// At most this often the table is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(250);
/// Rows of a subtree's table: the twins that changed last.
const MAX_ROWS: usize = 40;
/// Alarm lines kept under the table.
const ALARM_LINES: usize = 8;
/// Changed properties named in a subtree row.
const NAMED_CHANGES: usize = 4;

/// What is watched, and what is known of it.
#[derive(Debug)]
enum View {
    /// One twin: its properties in the node's order.
    Twin { twin: Box<Twin>, changes: Vec<u64> },
    /// A glob: one row per twin that changed.
    Glob { rows: BTreeMap<String, Row> },
}

#[derive(Debug, Default)]
struct Row {
    props: BTreeMap<String, PropState>,
    events: u64,
    /// When the row last changed (this client's clock).
    at: Option<Timestamp>,
    /// The changed properties of the last event.
    summary: String,
}

/// `twinrt watch PATH`.
pub async fn run(args: &WatchArgs) -> Result<(), ClientError> {
    let client = args.node.client()?;
    let glob_mode = args.path.contains('*');
    let mut view = if glob_mode {
        View::Glob {
            rows: BTreeMap::new(),
        }
    } else {
        let twin = client.get_twin(&args.path).await?.value;
        let changes = vec![0; twin.properties.len()];
        View::Twin {
            twin: Box::new(twin),
            changes,
        }
    };
    // The stream takes globs: a twin named by id or alias is watched by path.
    let glob = match &view {
        View::Twin { twin, .. } => twin.path.clone(),
        View::Glob { .. } => args.path.clone(),
    };
    let mut stream = client.stream(&glob).await?;
    let json = args.node.json;
    let tty = !json && std::io::stdout().is_terminal();
    let mut screen = Screen {
        tty,
        glob: glob.clone(),
        node: client.node().to_string(),
        alarms: VecDeque::new(),
        events: 0,
        status: String::new(),
        dirty: true,
    };
    let deadline = args.run_for.map(|d| tokio::time::Instant::now() + d);
    let mut redraw = tokio::time::interval(REDRAW_EVERY);
    redraw.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            item = stream.next() => match item? {
                StreamItem::Event(e) => {
                    screen.events += 1;
                    if json {
                        out(&format!("{}\n", ndjson(&e)))?;
                        continue;
                    }
                    match e.event.as_str() {
                        "state" => match serde_json::from_str::<StateData>(&e.data) {
                            Ok(s) => view.state(&s, &mut screen)?,
                            Err(err) => screen.note(&format!("an unreadable state event: {err}"))?,
                        },
                        "alarm" => match serde_json::from_str::<AlarmEvent>(&e.data) {
                            Ok(a) => screen.alarm(&a)?,
                            Err(err) => screen.note(&format!("an unreadable alarm event: {err}"))?,
                        },
                        "dropped" | "reset" => {
                            let why = if e.event == "dropped" {
                                let n = serde_json::from_str::<Json>(&e.data)
                                    .ok()
                                    .and_then(|v| v["count"].as_u64())
                                    .unwrap_or(0);
                                format!("this client read too slowly and lost {n} events")
                            } else {
                                "the node could not resume the stream".to_string()
                            };
                            screen.note(&format!("{why}; refetching"))?;
                            view.refetch(&client).await?;
                            screen.dirty = true;
                        }
                        _ => {}
                    }
                }
                StreamItem::Reconnecting(after, why) => {
                    if json {
                        eprintln!("twinrt: {why}; reconnecting in {}", render::span(after.as_micros() as i64));
                    } else {
                        screen.note(&format!("{why}; reconnecting in {}", render::span(after.as_micros() as i64)))?;
                    }
                }
                StreamItem::Reconnected => {
                    if json {
                        eprintln!("twinrt: reconnected");
                    } else {
                        screen.note("reconnected")?;
                    }
                }
            },
            _ = redraw.tick(), if tty && screen.dirty => {
                screen.dirty = false;
                out(&format!("\x1b[2J\x1b[H{}", screen.frame(&view)))?;
            }
            _ = sleep_until_opt(deadline) => break,
            _ = &mut ctrl_c => break,
        }
    }
    if tty {
        out(&format!("\x1b[2J\x1b[H{}", screen.frame(&view)))?;
    }
    Ok(())
}

/// One line of `--json`: `{"event":…,"id":…,"data":…}`, the data as the
/// node sent it (a string when it is not JSON).
fn ndjson(e: &super::SseEvent) -> String {
    let data = match serde_json::from_str::<Json>(&e.data) {
        // The node's own text, in its own key order, when it is one line.
        Ok(_) if !e.data.contains('\n') => e.data.trim().to_string(),
        Ok(v) => v.to_string(),
        Err(_) => Json::String(e.data.clone()).to_string(),
    };
    format!(
        "{{\"event\":{},\"id\":{},\"data\":{data}}}",
        Json::String(e.event.clone()),
        e.id.as_ref()
            .map_or(Json::Null, |i| Json::String(i.clone())),
    )
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The data of an `alarm` event: the alarm after the change, and before.
#[derive(Debug, serde::Deserialize)]
struct AlarmEvent {
    #[serde(flatten)]
    alarm: Alarm,
    from: AlarmFrom,
    #[serde(default)]
    cause: String,
}

#[derive(Debug, serde::Deserialize)]
struct AlarmFrom {
    state: String,
    mode: String,
}

/// What is printed besides the table.
#[derive(Debug)]
struct Screen {
    tty: bool,
    glob: String,
    node: String,
    alarms: VecDeque<String>,
    events: u64,
    status: String,
    dirty: bool,
}

impl Screen {
    /// A line: printed at once, or kept for the next frame on a terminal.
    fn line(&mut self, text: String) -> Result<(), ClientError> {
        if self.tty {
            if self.alarms.len() == ALARM_LINES {
                self.alarms.pop_front();
            }
            self.alarms.push_back(text);
            self.dirty = true;
            Ok(())
        } else {
            out(&format!("{text}\n"))
        }
    }

    fn alarm(&mut self, a: &AlarmEvent) -> Result<(), ClientError> {
        let x = &a.alarm;
        let cause = if a.cause.is_empty() {
            String::new()
        } else {
            format!("  ({})", a.cause)
        };
        self.line(format!(
            "{}  alarm  {:<7} {}  {}/{} -> {}/{}{cause}",
            short_time(&now().to_string()),
            x.priority,
            x.id,
            a.from.state,
            a.from.mode,
            x.state,
            x.mode,
        ))
    }

    /// A note about the stream itself: on stderr, or in the frame's status.
    fn note(&mut self, text: &str) -> Result<(), ClientError> {
        if self.tty {
            self.status = format!("{}  {text}", short_time(&now().to_string()));
            self.dirty = true;
        } else {
            eprintln!("twinrt: {text}");
        }
        Ok(())
    }

    fn frame(&self, view: &View) -> String {
        let now = now();
        let mut f = format!(
            "twinrt watch {}  on {}  {} events  {}  (Ctrl-C stops)\n",
            self.glob,
            self.node,
            self.events,
            short_time(&now.to_string())
        );
        if !self.status.is_empty() {
            f.push_str(&self.status);
            f.push('\n');
        }
        f.push('\n');
        f.push_str(&view.table(now));
        if !self.alarms.is_empty() {
            f.push_str("\nALARM EVENTS\n");
            for a in &self.alarms {
                f.push_str(a);
                f.push('\n');
            }
        }
        f
    }
}

impl View {
    /// Takes a `state` event.
    fn state(&mut self, s: &StateData, screen: &mut Screen) -> Result<(), ClientError> {
        let at = now();
        match self {
            View::Twin { twin, changes } => {
                twin.seq = s.seq;
                for (i, p) in twin.properties.iter_mut().enumerate() {
                    let Some(new) = s.properties.get(&p.name) else {
                        continue;
                    };
                    let changed =
                        p.value != new.value || p.quality != new.quality || p.reason != new.reason;
                    p.ts.clone_from(&new.ts);
                    if !changed {
                        continue;
                    }
                    p.value = new.value.clone();
                    p.quality.clone_from(&new.quality);
                    p.reason.clone_from(&new.reason);
                    changes[i] += 1;
                    if !screen.tty {
                        let unit = p.unit.as_deref().unwrap_or("");
                        screen.line(format!(
                            "{}  {}  {} = {} {unit}  {}",
                            short_time(&at.to_string()),
                            twin.path,
                            p.name,
                            render::value(&p.value),
                            render::quality(&p.quality, p.reason.as_deref()),
                        ))?;
                    }
                }
                screen.dirty = true;
                Ok(())
            }
            View::Glob { rows } => {
                let row = rows.entry(s.path.clone()).or_default();
                let changed: Vec<(&String, &PropState)> = s
                    .properties
                    .iter()
                    .filter(|(k, v)| row.props.get(*k) != Some(*v))
                    .filter(|(k, v)| {
                        // A new timestamp alone is not a change.
                        row.props
                            .get(*k)
                            .is_none_or(|old| old.value != v.value || old.quality != v.quality)
                    })
                    .collect();
                row.events += 1;
                screen.dirty = true;
                // An event that only moves timestamps keeps the row's last
                // change on show.
                if changed.is_empty() {
                    row.props.clone_from(&s.properties);
                    return Ok(());
                }
                row.summary = summarize(&changed);
                row.at = Some(at);
                row.props.clone_from(&s.properties);
                if !screen.tty {
                    let line = format!(
                        "{}  {}  {}",
                        short_time(&at.to_string()),
                        s.path,
                        row.summary
                    );
                    screen.line(line)?;
                }
                Ok(())
            }
        }
    }

    /// After lost events: a twin is fetched anew; a subtree's rows are
    /// forgotten, and fill again from the next events (each carries every
    /// property of its twin).
    async fn refetch(&mut self, client: &Client) -> Result<(), ClientError> {
        match self {
            View::Twin { twin, changes } => {
                **twin = client.get_twin(&twin.path).await?.value;
                changes.resize(twin.properties.len(), 0);
            }
            View::Glob { rows } => rows.clear(),
        }
        Ok(())
    }

    fn table(&self, now: Timestamp) -> String {
        match self {
            View::Twin { twin, changes } => {
                let rows: Vec<Vec<String>> = twin
                    .properties
                    .iter()
                    .zip(changes)
                    .map(|(p, n)| {
                        vec![
                            p.name.clone(),
                            render::value(&p.value),
                            p.unit.clone().unwrap_or_default(),
                            render::quality(&p.quality, p.reason.as_deref()),
                            render::ago(&p.ts, now),
                            n.to_string(),
                        ]
                    })
                    .collect();
                format!(
                    "{}  {} ({})  seq {}\n\n{}",
                    twin.path,
                    twin.class,
                    twin.tier,
                    twin.seq,
                    render::table(
                        &["PROPERTY", "VALUE", "UNIT", "QUALITY", "AGE", "CHANGES"],
                        &rows,
                        &[1, 5],
                    )
                )
            }
            View::Glob { rows } => {
                if rows.is_empty() {
                    return "waiting for changes…\n".into();
                }
                // The twins that changed last, in path order.
                let mut recent: Vec<(&String, &Row)> = rows.iter().collect();
                recent.sort_by_key(|(_, r)| std::cmp::Reverse(r.at));
                recent.truncate(MAX_ROWS);
                recent.sort_by_key(|(p, _)| *p);
                let cells: Vec<Vec<String>> = recent
                    .iter()
                    .map(|(path, r)| {
                        vec![
                            path.to_string(),
                            r.events.to_string(),
                            r.at.map_or_else(String::new, |t| render::ago(&t.to_string(), now)),
                            r.summary.clone(),
                        ]
                    })
                    .collect();
                let mut t = render::table(&["TWIN", "EVENTS", "CHANGED", "WHAT"], &cells, &[1]);
                if rows.len() > MAX_ROWS {
                    t.push_str(&format!(
                        "… and {} more twins (narrow the glob to see them)\n",
                        rows.len() - MAX_ROWS
                    ));
                }
                t
            }
        }
    }
}

/// `flow=212.5, pressure=3.2 [bad: comm_failure], +3 more`.
fn summarize(changed: &[(&String, &PropState)]) -> String {
    if changed.is_empty() {
        return "(no value changed)".into();
    }
    let mut parts: Vec<String> = changed
        .iter()
        .take(NAMED_CHANGES)
        .map(|(k, v)| {
            let q = if v.quality == "good" {
                String::new()
            } else {
                match &v.reason {
                    Some(r) => format!(" [{}: {r}]", v.quality),
                    None => format!(" [{}]", v.quality),
                }
            };
            format!("{k}={}{q}", render::value(&v.value))
        })
        .collect();
    if changed.len() > NAMED_CHANGES {
        parts.push(format!("+{} more", changed.len() - NAMED_CHANGES));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(v: Json, q: &str) -> PropState {
        PropState {
            value: v,
            quality: q.into(),
            reason: (q != "good").then(|| "comm_failure".into()),
            ts: "2026-11-21T10:00:00.000Z".into(),
        }
    }

    #[test]
    fn json_lines_keep_the_nodes_data() {
        let e = super::super::SseEvent {
            event: "state".into(),
            id: Some("1f.2".into()),
            data: r#"{"path":"a/b","seq":3}"#.into(),
        };
        assert_eq!(
            ndjson(&e),
            r#"{"event":"state","id":"1f.2","data":{"path":"a/b","seq":3}}"#
        );
        let e = super::super::SseEvent {
            event: "reset".into(),
            id: None,
            data: "not json".into(),
        };
        assert_eq!(
            ndjson(&e),
            r#"{"event":"reset","id":null,"data":"not json"}"#
        );
    }

    #[test]
    fn a_subtree_row_names_what_changed() {
        let names: Vec<String> = (0..6).map(|i| format!("p{i}")).collect();
        let props: Vec<PropState> = (0..6)
            .map(|i| prop(serde_json::json!(i as f64 + 0.5), "good"))
            .collect();
        let mut changed: Vec<(&String, &PropState)> = names.iter().zip(&props).collect();
        assert_eq!(
            summarize(&changed),
            "p0=0.5, p1=1.5, p2=2.5, p3=3.5, +2 more"
        );
        let bad = prop(Json::Null, "bad");
        changed.truncate(1);
        changed.push((&names[5], &bad));
        assert_eq!(summarize(&changed), "p0=0.5, p5=- [bad: comm_failure]");
        assert_eq!(summarize(&[]), "(no value changed)");
    }
}
