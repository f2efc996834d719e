use anyhow::Context;
use clap::Parser;
use halka::cli::{BenchArgs, Cli, Command, EngineArg, Format, SimArgs, SyncArg};
use halka::{bench, demo, sim};
use halka_store::SyncPolicy;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => run_sim(args),
        Command::Demo => {
            let transcript = runtime()?.block_on(demo::run())?;
            print!("{transcript}");
            Ok(())
        }
        Command::Bench(args) => run_bench(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting runtime")
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
    match args.format {
        Format::Table => print!("{}", sim::table(&rows)),
        Format::Json => println!("{}", serde_json::to_string(&rows).context("encoding rows")?),
    }
    Ok(())
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
    match args.format {
        Format::Table => {
            print!("{}", bench::table(&rows));
            println!("\nper node:");
            print!("{}", demo::node_table(&nodes));
        }
        Format::Json => println!("{}", serde_json::to_string(&rows).context("encoding rows")?),
    }
    Ok(())
}
