//! The `twinrt` subcommands.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use twins::Clock;
use twins::store::Durable;

use crate::model_dir::{self, LoadError};
use crate::node::{Node, NodeConfig};

/// twinrt: a runtime for distributed digital twins in process industry.
#[derive(Debug, Parser)]
#[command(name = "twinrt", version, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host a model's whole topology on this node, fed by the simulator where
    /// no hardware is bound, with a live summary in the terminal.
    Run {
        /// Model directory (classes and topology, `*.toml`).
        dir: PathBuf,
        /// Where the embedded store keeps state, history and journal.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Keep everything in memory instead (nothing survives a restart).
        #[arg(long, conflicts_with = "data_dir")]
        in_memory: bool,
        /// Stop after this long (`90s`, `5m`, `1h`); default: until Ctrl-C.
        #[arg(long = "for", value_parser = parse_duration)]
        run_for: Option<Duration>,
        /// Seed of the simulator (same seed, same signals).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds between summary frames; 0 turns the summary off.
        #[arg(long, default_value_t = 1)]
        summary_every: u64,
        /// Print `durable flushes=F history=H events=E states=S` on stdout
        /// each time the store acknowledges a flush (counts since this start).
        #[arg(long)]
        report_durable: bool,
        /// Node configuration (HTTP listener, tokens); default
        /// `DATA_DIR/node.toml`, created at first start with an admin token.
        /// With `--in-memory` and no `--config`, a token for this run only.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address of the HTTP API and dashboard, overriding the
        /// configuration (default 127.0.0.1:7878; port 0: any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Serve no HTTP API.
        #[arg(long, conflicts_with = "listen")]
        no_http: bool,
    },
    /// Manage the API tokens of a node configuration.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Validate a model directory: exit 0 with a summary, or 1 listing every error.
    Check {
        /// Model directory.
        dir: PathBuf,
    },
    /// Print persisted twin state as JSON without starting a node.
    Inspect {
        /// The node's data directory.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// A twin path; without it, every twin.
        twin: Option<String>,
        /// Also print the twin's last N history points per property.
        #[arg(long, default_value_t = 0)]
        history: usize,
        /// Also print the twin's last N journal events.
        #[arg(long, default_value_t = 0)]
        events: usize,
        /// The model directory the node ran: adds each twin's path to the
        /// listing of every twin, and checks that TWIN is in the model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Benchmarks against a bare-ractor baseline (see docs/benchmarks.md).
    Bench(crate::cli::BenchArgs),
    /// Check or list the tamper-evident audit log of a stopped node.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The client of a running node: `get`, `watch`, `alarms`, `history`.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// `twinrt audit …`. Both read the store directly, so the node must be
/// stopped: the store is locked while a node runs.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain: exit 0 if intact, 1 naming the first record
    /// that was modified, removed or reordered.
    Verify {
        /// The node's data directory.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Print the audit records as a table (or JSON).
    List {
        /// The node's data directory.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Only the last N records.
        #[arg(long)]
        last: Option<u64>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `twinrt token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Add {
        /// The token's id, named in the audit log (`east-eng`).
        id: String,
        /// viewer, operator, engineer or admin.
        #[arg(long, value_parser = parse_role)]
        role: crate::http::Role,
        /// The subtree it sees (`acme/east`).
        #[arg(long)]
        scope: String,
        /// The node configuration file.
        #[arg(long, default_value = "data/node.toml")]
        config: PathBuf,
    },
    /// List the tokens of a node configuration (ids, roles, scopes).
    List {
        #[arg(long, default_value = "data/node.toml")]
        config: PathBuf,
    },
    /// Remove a token.
    Remove {
        id: String,
        #[arg(long, default_value = "data/node.toml")]
        config: PathBuf,
    },
}

fn parse_role(text: &str) -> Result<crate::http::Role, String> {
    crate::http::Role::parse(text)
        .ok_or_else(|| format!("`{text}` is not a role: viewer, operator, engineer or admin"))
}

/// Arguments of `twinrt bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Number of devices in the generated topology (lines hold 250 devices).
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// What to measure: spawn, ingest, latency, recovery, all (these four),
    /// or http (API read latency and ingest with 100 live subscribers and
    /// without).
    #[arg(long, default_value = "all")]
    pub what: String,
    /// Seconds per throughput/latency measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Target rate for the latency run, samples per second.
    #[arg(long, default_value_t = 100_000)]
    pub rate: u64,
    /// Run a single case in this process and print its JSON result (used by
    /// the bench itself: each case runs in a fresh process).
    #[arg(long, hide = true)]
    pub case: Option<String>,
}

/// What `twinrt run` does besides hosting the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Stop after this long; `None`: until Ctrl-C.
    pub run_for: Option<Duration>,
    /// Seed of the simulator.
    pub seed: u64,
    /// Seconds between summary frames; 0: no summary.
    pub summary_every: u64,
    /// Print a `durable ...` line for each acknowledged flush.
    pub report_durable: bool,
    /// The node configuration file; `None`: `DATA_DIR/node.toml`, or
    /// nothing for an in-memory node.
    pub config: Option<PathBuf>,
    /// Overrides the configured HTTP address.
    pub listen: Option<std::net::SocketAddr>,
    /// Serve no HTTP API.
    pub no_http: bool,
}

/// The whole `twinrt` binary: parses the arguments, runs the subcommand and
/// returns the process exit code. `main` only calls this.
pub fn main_entry() -> i32 {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TWINRT_LOG")
                // The embedded broker (rumqttd) logs every client that
                // disconnects abruptly as an error; `TWINRT_LOG=rumqttd=info`
                // shows its log.
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Check { dir } => check(&dir),
        Command::Inspect {
            data_dir,
            twin,
            history,
            events,
            model,
        } => report(inspect(
            &data_dir,
            twin.as_deref(),
            history,
            events,
            model.as_deref(),
        )),
        Command::Run {
            dir,
            data_dir,
            in_memory,
            run_for,
            seed,
            summary_every,
            report_durable,
            config,
            listen,
            no_http,
        } => {
            let data_dir = (!in_memory).then_some(data_dir);
            let options = RunOptions {
                run_for,
                seed,
                summary_every,
                report_durable,
                config,
                listen,
                no_http,
            };
            report(block_on(run(&dir, data_dir, options)))
        }
        Command::Bench(args) => report(block_on(crate::bench::run(args))),
        Command::Token(cmd) => report(token(cmd)),
        Command::Audit {
            command: AuditCommand::Verify { data_dir },
        } => audit_verify(&data_dir),
        Command::Audit {
            command:
                AuditCommand::List {
                    data_dir,
                    last,
                    json,
                },
        } => report(audit_list(&data_dir, last, json)),
        Command::Client(cmd) => crate::client::main(cmd),
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn report(result: anyhow::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        format!(
            "invalid duration `{text}`: expected a number and a unit, e.g. `30s`, `5m`, `250ms`"
        )
    })?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => {
            return Err(format!(
                "invalid duration unit `{other}` in `{text}`: expected ms, s, m, h or d"
            ));
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration `{text}`: {e}"))
}

/// `twinrt check DIR`: returns the process exit code.
pub fn check(dir: &Path) -> i32 {
    match model_dir::load(dir) {
        Ok(model) => {
            let model = Arc::new(model);
            let env = adapters::SourceEnv {
                clock: twins::Clock::system(),
                model: model.clone(),
                changes: twins::actor::ChangeFeed::new(1),
            };
            let edge = match crate::edge::plan(&model, &adapters::Registry::builtin(), &env) {
                Ok(plan) => plan,
                Err(diags) => {
                    eprint!("{diags}");
                    return 1;
                }
            };
            for w in &edge.warnings {
                eprintln!("warning: {w}");
            }
            let s = model.summary();
            println!(
                "{}: ok: {} classes, {} twins ({} enterprise, {} regions, {} plants, {} lines, {} devices), {} properties, {} alarms, {} sources ({} edge adapters)",
                dir.display(),
                s.classes,
                s.twins,
                s.by_tier[0],
                s.by_tier[1],
                s.by_tier[2],
                s.by_tier[3],
                s.by_tier[4],
                s.properties,
                s.alarms,
                s.sources,
                edge.adapters.len()
            );
            0
        }
        Err(LoadError::Invalid(diags)) => {
            eprint!("{diags}");
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `twinrt run`: hosts the model's topology until `options.run_for` has
/// elapsed or Ctrl-C, then stops the sources and twins and flushes the store.
pub async fn run(dir: &Path, data_dir: Option<PathBuf>, options: RunOptions) -> anyhow::Result<()> {
    let (model, fingerprint) = match model_dir::load_fingerprinted(dir) {
        Ok((m, fp)) => (Arc::new(m), fp),
        Err(LoadError::Invalid(d)) => anyhow::bail!("the model is invalid:\n{d}"),
        Err(e) => return Err(e.into()),
    };
    if model.twins.is_empty() {
        anyhow::bail!(
            "`{}` has no topology: the model declares no enterprise, so there is no twin to host \
             (a directory of classes only can be checked but not run: add an `[enterprise]` table)",
            dir.display()
        );
    }
    let config = NodeConfig {
        data_dir: data_dir.clone(),
        seed: options.seed,
        model_fingerprint: Some(fingerprint),
        ..NodeConfig::default()
    };
    let started = tokio::time::Instant::now();
    let root = model.twins[0].path.clone();
    // The node configuration is read before anything starts: a mistake in
    // it stops the run at once.
    let http = if options.no_http {
        None
    } else {
        let path = options
            .config
            .clone()
            .or_else(|| data_dir.as_ref().map(|d| d.join("node.toml")));
        let mut loaded = crate::http::config::load_or_init(path.as_deref(), &root)?;
        if let Some(listen) = options.listen {
            loaded.config.listen = listen;
        }
        Some(loaded)
    };
    let node = Arc::new(Node::start(model, config, Clock::system(), None).await?);
    let server = match http {
        None => None,
        Some(loaded) => {
            let server = crate::http::HttpServer::start(node.clone(), loaded.config).await?;
            let addr = server.local_addr();
            eprintln!("twinrt: HTTP API on http://{addr} (dashboard at /, API at /api/, /metrics)");
            if let Some(secret) = &loaded.generated {
                match &loaded.path {
                    Some(p) => eprintln!(
                        "twinrt: first start: created admin token `admin` for `{root}`; it is shown \
                         only now (stored hashed in {}):\n  {secret}\n  open http://{addr}/#token={secret}",
                        p.display()
                    ),
                    None => eprintln!(
                        "twinrt: admin token for this run only (in memory):\n  {secret}\n  open http://{addr}/#token={secret}"
                    ),
                }
            }
            Some(server)
        }
    };
    eprintln!(
        "twinrt: hosting {} twins of `{}` from {} ({}); Ctrl-C stops",
        node.ctx.model.twins.len(),
        node.root_path(),
        dir.display(),
        match &data_dir {
            Some(d) => format!("store in {}", d.display()),
            None => "in memory".into(),
        }
    );
    let deadline = options.run_for.map(|d| started + d);
    let tty = std::io::stdout().is_terminal();
    let mut rates = crate::summary::Rates::new(started);
    let mut summary = (options.summary_every > 0).then(|| {
        // The first frame comes one period in, when there is a rate to show.
        let every = Duration::from_secs(options.summary_every);
        let mut t = tokio::time::interval_at(started + every, every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut health = tokio::time::interval(ROOT_CHECK_EVERY);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut durable = node
        .writer
        .as_ref()
        .filter(|_| options.report_durable)
        .map(|w| w.durable());
    let mut reported = Durable::default();
    // One listener for the whole run: a Ctrl-C that arrives while a frame
    // is being rendered is not lost.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let reason = loop {
        tokio::select! {
            _ = tick_opt(summary.as_mut()) => {
                let frame = crate::summary::frame(&node, &mut rates, started.elapsed()).await;
                let frame = if tty { format!("\x1b[2J\x1b[H{frame}") } else { frame };
                write_stdout(&frame)?;
            }
            changed = changed_opt(durable.as_mut()) => match changed {
                Ok(now) => report_durable(&mut reported, now)?,
                // The writer stopped: nothing more will become durable.
                Err(_) => durable = None,
            },
            _ = health.tick() => {
                if node.root_failed() {
                    break "the root twin failed";
                }
            }
            _ = sleep_until_opt(deadline) => break "--for elapsed",
            _ = &mut ctrl_c => break "interrupted",
        }
    };
    eprintln!("twinrt: stopping ({reason}); flushing the store");
    if let Some(server) = server {
        server.shutdown().await;
    }
    let failed = node.root_failed();
    let writer = node.writer.clone();
    let node = Arc::try_unwrap(node)
        .map_err(|_| anyhow::anyhow!("the HTTP server still holds the node after its shutdown"))?;
    node.shutdown().await?;
    if options.report_durable
        && let Some(w) = writer
    {
        // The final flush of the shutdown is acknowledged too.
        let last = *w.durable().borrow();
        report_durable(&mut reported, last)?;
    }
    if failed {
        anyhow::bail!("the root twin failed; see the log above");
    }
    eprintln!("twinrt: stopped cleanly");
    Ok(())
}

/// `twinrt token add|list|remove`.
fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    use crate::http::config::NodeFile;
    match cmd {
        TokenCommand::Add {
            id,
            role,
            scope,
            config,
        } => {
            let mut file = if config.exists() {
                NodeFile::read(&config)?
            } else {
                NodeFile::default()
            };
            let scope = twins::TwinPath::parse(scope.trim_end_matches("/**"))
                .map_err(|e| anyhow::anyhow!("--scope `{scope}` is not a twin path: {e}"))?;
            let secret = file.add_token(&id, role, &scope)?;
            file.write(&config)?;
            eprintln!(
                "token `{id}` ({role}, {scope}/**) added to {}; it is shown only now:",
                config.display()
            );
            write_stdout(&format!("{secret}\n"))?;
            eprintln!("a running node reads its tokens at start: restart it to accept this one");
            Ok(())
        }
        TokenCommand::List { config } => {
            let file = NodeFile::read(&config)?;
            let mut out = format!("{:<20} {:<9} SCOPE\n", "ID", "ROLE");
            for t in &file.tokens {
                out.push_str(&format!("{:<20} {:<9} {}/**\n", t.id, t.role, t.scope));
            }
            write_stdout(&out)
        }
        TokenCommand::Remove { id, config } => {
            let mut file = NodeFile::read(&config)?;
            let before = file.tokens.len();
            file.tokens.retain(|t| t.id != id);
            if file.tokens.len() == before {
                anyhow::bail!("{}: no token `{id}`", config.display());
            }
            file.write(&config)?;
            eprintln!(
                "token `{id}` removed from {}; restart the node to refuse it",
                config.display()
            );
            Ok(())
        }
    }
}

/// How often `run` checks whether the root twin has failed.
const ROOT_CHECK_EVERY: Duration = Duration::from_millis(250);

/// Prints `durable ...` for `now` unless it is what was reported last.
fn report_durable(reported: &mut Durable, now: Durable) -> anyhow::Result<()> {
    if now == *reported {
        return Ok(());
    }
    *reported = now;
    write_stdout(&format!(
        "durable flushes={} history={} events={} states={}\n",
        now.flushes, now.history_records, now.events, now.states
    ))
}

/// Writes to stdout and flushes at once, so that whoever reads the output
/// has every complete line even if this process is killed right after.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

async fn tick_opt(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The next value of the durability watch, if there is one to watch.
async fn changed_opt(
    rx: Option<&mut tokio::sync::watch::Receiver<Durable>>,
) -> Result<Durable, tokio::sync::watch::error::RecvError> {
    match rx {
        Some(rx) => {
            rx.changed().await?;
            Ok(*rx.borrow_and_update())
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `twinrt inspect`. With `model`, the listing of every twin carries each
/// twin's path, and a twin path is checked against the model.
pub fn inspect(
    data_dir: &Path,
    twin: Option<&str>,
    history: usize,
    events: usize,
    model: Option<&Path>,
) -> anyhow::Result<()> {
    use twins::store::Store;
    check_data_dir(data_dir)?;
    let model = match model.map(model_dir::load) {
        None => None,
        Some(Ok(m)) => Some(m),
        Some(Err(LoadError::Invalid(d))) => anyhow::bail!("the model is invalid:\n{d}"),
        Some(Err(e)) => return Err(e.into()),
    };
    let store = open_existing_store(data_dir)?;
    let out = match twin {
        Some(t) => {
            let path =
                twins::TwinPath::parse(t).with_context(|| format!("`{t}` is not a twin path"))?;
            if let Some(m) = &model
                && m.twin_by_path(path.as_str()).is_none()
            {
                anyhow::bail!("the model has no twin `{path}`");
            }
            let id = path.id();
            let record = store
                .load_state(id)?
                .with_context(|| format!("no persisted state for twin `{path}` ({id})"))?;
            let mut v =
                serde_json::json!({ "path": path.as_str(), "id": id.to_string(), "state": record });
            if history > 0 {
                let mut h = serde_json::Map::new();
                for (name, _) in &record.props {
                    let pts = store.history(
                        id,
                        name,
                        twins::Timestamp(i64::MIN),
                        twins::Timestamp::MAX,
                        usize::MAX,
                    )?;
                    let tail: Vec<_> = pts.iter().rev().take(history).rev().cloned().collect();
                    h.insert(name.to_string(), serde_json::to_value(tail)?);
                }
                v["history"] = serde_json::Value::Object(h);
            }
            if events > 0 {
                let ev = store.events(id, 0, usize::MAX)?;
                let tail: Vec<_> = ev.iter().rev().take(events).rev().cloned().collect();
                v["events"] = serde_json::to_value(tail)?;
            }
            v
        }
        None => {
            let paths: std::collections::HashMap<twins::TwinId, &twins::TwinPath> = model
                .iter()
                .flat_map(|m| m.twins.iter().map(|t| (t.path.id(), &t.path)))
                .collect();
            let mut all = Vec::new();
            store.scan_states(&mut |id, record| {
                let mut v = serde_json::json!({ "id": id.to_string(), "state": record });
                if let Some(path) = paths.get(&id) {
                    v["path"] = serde_json::Value::from(path.as_str());
                }
                all.push(v);
                true
            })?;
            serde_json::Value::Array(all)
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Fails unless `data_dir` holds a node's store.
fn check_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if !data_dir.exists() {
        anyhow::bail!("no data directory at `{}`", data_dir.display());
    }
    if !data_dir.join(crate::store::STORE_DIR).exists() {
        anyhow::bail!(
            "`{}` holds no twinrt store (expected `{}`): is it the --data-dir of a node?",
            data_dir.display(),
            data_dir.join(crate::store::STORE_DIR).display()
        );
    }
    Ok(())
}

/// Opens the store of an existing data directory, saying so clearly when a
/// running node holds it (fjall locks the store against other processes).
fn open_existing_store(data_dir: &Path) -> anyhow::Result<crate::store::FjallStore> {
    check_data_dir(data_dir)?;
    crate::store::open_default(data_dir).map_err(|e| {
        if crate::store::fjall::is_locked(&e) {
            anyhow::anyhow!(
                "the store in `{}` is in use by a running node (it is locked while a node runs): stop the node first",
                data_dir.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("cannot open the store in `{}`", data_dir.display()))
        }
    })
}

/// `twinrt audit verify`: returns the process exit code.
pub fn audit_verify(data_dir: &Path) -> i32 {
    let store = match open_existing_store(data_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 1;
        }
    };
    match crate::audit::verify(&store) {
        Ok(report) => {
            println!("{report}");
            if let Some(h) = report.head {
                // In full, for whoever keeps a copy outside the store.
                println!(
                    "head: record {} sha256 {}",
                    h.seq,
                    twins::store::hex(&h.hash)
                );
            }
            0
        }
        Err(e) => {
            println!("audit log in `{}` is not intact: {e}", data_dir.display());
            1
        }
    }
}

/// `twinrt audit list`.
pub fn audit_list(data_dir: &Path, last: Option<u64>, json: bool) -> anyhow::Result<()> {
    let store = open_existing_store(data_dir)?;
    let after = match last {
        None => 0,
        Some(n) => {
            // The head names the last seq; without one, count the records.
            let end = match crate::audit::head(&store)? {
                Some(h) => h.seq,
                None => crate::audit::list(&store, 0, usize::MAX)?
                    .last()
                    .map_or(0, |r| r.seq),
            };
            end.saturating_sub(n)
        }
    };
    let records = crate::audit::list(&store, after, usize::MAX)
        .with_context(|| format!("cannot read the audit log in `{}`", data_dir.display()))?;
    if json {
        return write_stdout(&format!("{}\n", serde_json::to_string_pretty(&records)?));
    }
    write_stdout(&audit_table(&records))
}

/// The records as a text table: time (UTC), seq, category, action, target,
/// token, source, result.
pub fn audit_table(records: &[crate::audit::AuditRecord]) -> String {
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![
        [
            "time (UTC)",
            "seq",
            "category",
            "action",
            "target",
            "token",
            "source",
            "result",
        ]
        .map(String::from),
    ];
    rows.extend(records.iter().map(|r| {
        [
            r.time.to_string(),
            r.seq.to_string(),
            r.category.to_string(),
            r.action.clone(),
            dash(&r.target),
            dash(&r.token),
            dash(&r.source),
            r.result.to_string(),
        ]
    }));
    let mut widths = [0usize; 8];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
