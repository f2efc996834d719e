use anyhow::Context;
use clap::Parser;
use halka::cli::{
    BenchArgs, Cli, Command, DevArgs, EngineArg, Format, ServerArgs, SimArgs, SyncArg,
};
use halka::output::emit;
use halka::{bench, commands, demo, dev, node, sim};
use halka_store::SyncPolicy;
use tokio_util::sync::CancellationToken;

// Requests allocate and free many small buffers across threads (frames, records, futures);
// jemalloc's per-thread caches do that with less contention than glibc's arenas (SET +6%,
// p99 -8% on the benchmark cluster; mimalloc was as fast but doubled SET p99).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => run_sim(args),
        Command::Demo => {
            runtime().and_then(|rt| rt.block_on(demo::run())).and_then(|t| Ok(emit(t.as_bytes())?))
        }
        Command::Bench(args) => run_bench(args),
        Command::Server(args) => run_server(&args),
        Command::Dev(args) => run_dev(args),
        Command::Get(args) => client(commands::get(&args)),
        Command::Put(args) => client(async { commands::put(&args).await.map(String::into_bytes) }),
        Command::Del(args) => client(async { commands::del(&args).await.map(String::into_bytes) }),
        Command::Secret => client(async { Ok(halka::secret_file::new_secret().into_bytes()) }),
        Command::Cert(args) => {
            client(async { halka::cert_cli::run(&args).map(String::into_bytes) })
        }
        Command::Cluster(args) => {
            client(async { halka::cluster_cli::run(&args).await.map(String::into_bytes) })
        }
        Command::Status(args) => {
            client(async { commands::status(&args).await.map(String::into_bytes) })
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting runtime")
}

/// Runs a client command and writes its output: bytes as they are (values need not be
/// text), then a newline.
fn client(fut: impl std::future::Future<Output = anyhow::Result<Vec<u8>>>) -> anyhow::Result<()> {
    let mut out =
        tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(fut)?;
    out.push(b'\n');
    emit(&out).context("writing to standard output")
}

/// Cancelled on SIGTERM or Ctrl-C.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        t.cancel();
    });
    token
}

fn run_server(args: &ServerArgs) -> anyhow::Result<()> {
    // Everything the node creates — data files, hints, its actor file — is for its owner
    // alone: files 0600, directories 0700.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let config = commands::server_config(args)?;
    let filter = match &args.log_level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level).context("--log-level")?,
        None => tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,fjall=warn,lsm_tree=warn")
        }),
    };
    // Colour only for a terminal: escape codes make log files hard to read and grep.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        runtime.worker_threads(config.worker_threads);
    }
    // A busy node has many short tasks ready at once; checking the sockets after every
    // 200 of them rather than tokio's 61 makes fewer, fuller `epoll_wait` rounds. On the
    // benchmark cluster (6 alternated rounds): SET p99 ~2.07 → ~1.84 ms and +5% SET/s,
    // pipelined SET p99 ~44 → ~32 ms, GET a little better, `always` unchanged; 1000
    // measured like 200, 16 worse than 61.
    runtime.event_interval(200);
    runtime.enable_all().build().context("starting runtime")?.block_on(async move {
        let listeners = node::Listeners::bind(&config).await?;
        node::run(config, listeners, shutdown_on_signals()).await
    })
}

fn run_dev(args: DevArgs) -> anyhow::Result<()> {
    let temp;
    let data_dir = if args.ephemeral {
        temp = tempfile::tempdir().context("creating a temporary data directory")?;
        temp.path().to_path_buf()
    } else {
        args.data_dir.clone()
    };
    let opts = dev::DevOptions {
        nodes: args.nodes,
        port: args.port,
        http_port: args.http_port,
        peer_port: args.peer_port,
        data_dir: data_dir.clone(),
        replication: args.replication,
        sync: args.sync.into(),
        secret: halka::secret_file::load_or_create(&data_dir)?,
        tls: args.tls.then(|| data_dir.join("tls")),
        tls_port: args.tls_port,
    };
    if let Some(dir) = &opts.tls {
        let ids: Vec<String> = (1..=args.nodes).map(|i| format!("node-{i}")).collect();
        halka::tls::certs::throwaway(dir, &ids)?;
    }
    let configs = dev::configs(&opts)?;
    let exe = std::env::current_exe().context("locating the halka binary")?;
    runtime()?.block_on(async { dev::run(&exe, &configs, &data_dir, shutdown_on_signals()).await })
}

fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let opts = sim::SimOptions {
        keys: args.keys,
        nodes: args.nodes,
        add: args.add,
        replicas: args.replicas,
        vnodes: args.vnodes,
        partitions: args.partitions,
        plot: args.plot,
    };
    let rows = sim::run(&opts)?;
    let text = match args.format {
        Format::Table => sim::table(&rows),
        Format::Json => serde_json::to_string(&rows).context("encoding rows")? + "\n",
    };
    Ok(emit(text.as_bytes())?)
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.embedded, "only --embedded is supported by `halka bench`");
    let temp;
    let fjall = match args.engine {
        EngineArg::Memory => None,
        EngineArg::Fjall => {
            let dir = match args.data_dir {
                Some(dir) => dir,
                None => {
                    temp = tempfile::tempdir().context("creating a temporary data directory")?;
                    temp.path().to_path_buf()
                }
            };
            let sync = match args.sync {
                SyncArg::Always => SyncPolicy::Always,
                SyncArg::Periodic => SyncPolicy::Periodic { interval_ms: 100 },
            };
            Some((dir, sync))
        }
    };
    let opts = bench::BenchOptions {
        nodes: args.nodes,
        replication: args.replication,
        w: args.w,
        r: args.r,
        fjall,
        keyspace: args.keyspace,
        ops: args.ops,
        value_size: args.value_size,
        clients: args.clients,
    };
    let (rows, nodes) = runtime()?.block_on(bench::run(&opts))?;
    let text = match args.format {
        Format::Table => {
            format!("{}\nper node:\n{}", bench::table(&rows), demo::node_table(&nodes))
        }
        Format::Json => serde_json::to_string(&rows).context("encoding rows")? + "\n",
    };
    Ok(emit(text.as_bytes())?)
}
