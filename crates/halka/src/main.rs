use anyhow::Context;
use clap::Parser;
use halka::cli::{Cli, Command, Format};
use halka::sim;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => {
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
                Format::Json => {
                    println!("{}", serde_json::to_string(&rows).context("encoding rows")?);
                }
            }
        }
    }
    Ok(())
}
