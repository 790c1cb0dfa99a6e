//! The `gregor` command: parse flags, start the broker, wait for Ctrl-C or SIGTERM; or one of
//! the tools (format, random-uuid, dump-log).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use gregor::cluster::identity::{self, Identity};
use gregor::cluster;
use gregor::config::{markdown_table, KEYS};
use gregor::log::{describe_batch, PartitionId, ReadOnlyStore};
use gregor::{Broker, Config};

/// The command line: `--config`, `--ready-file`, `--print-config-table`, and one flag (with its `GREGOR_*`
/// variable) per setting of the key table.
fn command() -> Command {
    let command = Command::new(env!("CARGO_PKG_NAME"))
        .version(env!("CARGO_PKG_VERSION"))
        .about(env!("CARGO_PKG_DESCRIPTION"))
        .after_help("Settings use Kafka's names. Precedence: flag, then GREGOR_* environment variable, then the --config file, then the default.")
        .subcommand(
            Command::new("format")
                .about("Record the cluster id and this node's id in the data directory (as kafka-storage format); needed once before a node with controller.quorum.voters starts")
                .arg(Arg::new("cluster-id").long("cluster-id").short('t').required(true).value_name("ID").help("The cluster's id, the same on every node (gregor random-uuid makes one)")),
        )
        .subcommand(Command::new("random-uuid").about("Print a new cluster id"))
        .subcommand(
            Command::new("certs")
                .about("Write a throwaway CA, a broker key and certificate chain and a client one as PEM files, and print the settings that use them (to try TLS; not for production)")
                .arg(Arg::new("dir").long("dir").required(true).value_name("DIR").value_parser(value_parser!(PathBuf)).help("Where to write ca.pem, broker.pem, client.crt, client.key and client.pem"))
                .arg(Arg::new("host").long("host").action(ArgAction::Append).value_name("NAME").help("A host name or IP address clients reach the broker by (repeatable; default: localhost and 127.0.0.1)")),
        )
        .subcommand(
            Command::new("dump-log")
                .about("Print every record batch of a topic in the data directory (--log-dirs), one line per batch, as kafka-dump-log does; the store is opened read-only, so a running broker's directory can be read too")
                .arg(Arg::new("topic").long("topic").required(true).value_name("TOPIC"))
                .arg(Arg::new("partition").long("partition").value_name("P").value_parser(value_parser!(i32)).help("Only this partition (default: all)")),
        )
        .arg(Arg::new("config").long("config").env("GREGOR_CONFIG").global(true).value_name("FILE").value_parser(value_parser!(PathBuf)).help("A server.properties-style file (key=value lines)"))
        .arg(Arg::new("ready-file").long("ready-file").value_name("FILE").value_parser(value_parser!(PathBuf)).help("Once the broker serves, write its bootstrap address (the first listener's advertised host:port) to FILE: with port 0 in listeners, how a script learns the port"))
        .arg(Arg::new("print-config-table").long("print-config-table").action(ArgAction::SetTrue).help("Print the configuration table of README.md, generated from the key table, and exit"));
    KEYS.iter().fold(command, |command, key| {
        let default = key.default_note.or(key.default).unwrap_or("none");
        command.arg(Arg::new(key.name).long(key.flag()).env(key.env()).value_name("VALUE").global(true).help(format!("{}: {} [default: {default}]", key.name, key.doc)))
    })
}

/// The file first, then flags and variables over it.
fn to_config(matches: &ArgMatches) -> anyhow::Result<Config> {
    let mut config = Config::default();
    let file = match matches.get_one::<PathBuf>("config") {
        Some(path) => gregor::config::read_file(path)?,
        None => Vec::new(),
    };
    let given = KEYS.iter().filter_map(|k| matches.get_one::<String>(k.name).map(|v| (k.name, v.as_str())));
    let what = matches.get_one::<PathBuf>("config").map_or("flags and GREGOR_* variables".to_string(), |path| format!("{} with flags and GREGOR_* variables", path.display()));
    // Checked together, flags over the file.
    for key in config.set_all(file.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(given)).context(what)? {
        tracing::warn!("ignoring unknown key {key:?} in the config file");
    }
    Ok(config)
}

/// SIGTERM or SIGINT (Ctrl-C), listened for from the call on: made before the ready file is
/// written, so a stop sent as soon as it appears is a clean shutdown, not the default action.
fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// The bootstrap address in `path`, whole or not at all (written aside, then renamed), so a
/// script polling for the file never reads half of it.
fn write_ready_file(path: &std::path::Path, bootstrap: &str) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".tmp");
    std::fs::write(&aside, format!("{bootstrap}\n"))?;
    std::fs::rename(&aside, path)
}

/// Every connection is a file descriptor: lift the soft limit to the hard one, as Kafka's
/// packaging does, so thousands of clients can connect.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!("cannot raise the open-files limit: {e}");
        }
    }
}

/// `gregor format`: the settings as for a start, then meta.properties in the data directory.
fn format(matches: &ArgMatches, sub: &ArgMatches) -> ExitCode {
    let cluster_id = sub.get_one::<String>("cluster-id").expect("required").clone();
    let formatted = to_config(matches).and_then(|config| {
        identity::format(&config.data_dir, &Identity { cluster_id, node_id: config.node_id })?;
        Ok(config.data_dir)
    });
    match formatted {
        Ok(dir) => {
            println!("Formatted {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("cannot format: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `gregor dump-log`: each batch this node stores for a topic, as `partition: P <batch fields>`.
fn dump_log(matches: &ArgMatches, sub: &ArgMatches) -> ExitCode {
    let topic = sub.get_one::<String>("topic").expect("required");
    let only = sub.get_one::<i32>("partition").copied();
    let dumped = to_config(matches).and_then(|config| {
        let store = ReadOnlyStore::open(&config.data_dir)?;
        let partitions = cluster::stored_partitions(&store, topic)?.with_context(|| format!("no topic {topic:?} in {}", config.data_dir.display()))?;
        let chosen: Vec<(usize, PartitionId)> = match only {
            None => partitions.into_iter().enumerate().collect(),
            Some(p) => {
                let index = usize::try_from(p).ok().filter(|&i| i < partitions.len());
                let index = index.with_context(|| format!("topic {topic:?} has {} partition(s), no partition {p}", partitions.len()))?;
                vec![(index, partitions[index])]
            }
        };
        let mut out = std::io::stdout().lock();
        for (index, id) in chosen {
            store.for_each_batch(id, |batch| Ok(writeln!(out, "partition: {index} {}", describe_batch(batch))?))?;
        }
        Ok(())
    });
    match dumped {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("cannot dump the log: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `gregor certs`: dev certificates, and the settings to use them.
fn certs(sub: &ArgMatches) -> ExitCode {
    let dir = sub.get_one::<PathBuf>("dir").expect("required");
    let mut hosts: Vec<String> = sub.get_many::<String>("host").map(|h| h.cloned().collect()).unwrap_or_default();
    if hosts.is_empty() {
        hosts = vec!["localhost".into(), "127.0.0.1".into()];
    }
    match gregor::security::certs::write_dev_certs(dir, &hosts) {
        Ok(settings) => {
            print!("{settings}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("cannot write certificates: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            // openraft warns several times a second while a voter is down; the broker logs the fencing.
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = command().get_matches();
    if matches.get_flag("print-config-table") {
        print!("{}", markdown_table());
        return ExitCode::SUCCESS;
    }
    match matches.subcommand() {
        Some(("random-uuid", _)) => {
            println!("{}", identity::random_uuid());
            return ExitCode::SUCCESS;
        }
        Some(("format", sub)) => return format(&matches, sub),
        Some(("dump-log", sub)) => return dump_log(&matches, sub),
        Some(("certs", sub)) => return certs(sub),
        _ => {}
    }
    raise_open_files_limit();
    let started = match to_config(&matches) {
        Ok(config) => Broker::start(config).await,
        Err(e) => Err(e),
    };
    let broker = match started {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let ready = stop_signals().context("cannot listen for signals").and_then(|stop| {
        if let Some(path) = matches.get_one::<PathBuf>("ready-file") {
            write_ready_file(path, &broker.advertised()).with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(stop)
    });
    let stop = match ready {
        Ok(stop) => stop,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            broker.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let code = tokio::select! {
        _ = stop => ExitCode::SUCCESS,
        why = broker.failed() => {
            tracing::error!("stopping: {why}");
            ExitCode::FAILURE
        }
    };
    tracing::info!("shutting down");
    broker.shutdown().await;
    tracing::info!("stopped");
    code
}
