//! The `callhook` command: a thin wrapper over the library.

use clap::{Parser, Subcommand};

// glibc's allocator spent about a third of the CPU in the delivery path (fragmentation paths
// under many small, cross-thread allocations); mimalloc removes most of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "callhook",
    version,
    about = "Call-event webhooks: ingest, route, sign, deliver, retry."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the delivery workers.
    Serve(Box<callhook::config::Config>),
    /// A local receiver: answers challenges, verifies signatures, prints deliveries.
    Listen(callhook::listen::ListenArgs),
    /// The whole product in one command: server, receiver, integrations, simulated calls.
    Demo(callhook::demo::DemoArgs),
    /// Send realistic call traffic to a running server.
    Simulate(callhook::simulate::SimulateArgs),
    /// Measure the pipeline end to end on this machine (a benchmark, not a test).
    Bench(callhook::bench::BenchArgs),
    /// Copy the embedded store to a new file while the server runs.
    Backup(callhook::backup::BackupArgs),
}

fn init_logs(filter: &str, format: callhook::config::LogFormat) {
    // Checked when the configuration was read; the fallback is for the commands without one.
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // The AMQP client logs a message the broker returned, body and headers included: call
        // data past the privacy rules. callhook logs what matters of it itself.
        .add_directive("lapin=error".parse().unwrap_or_else(|_| {
            tracing_subscriber::filter::Directive::from(tracing::Level::ERROR)
        }));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == callhook::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `serve --config FILE` (or `CALLHOOK_CONFIG`): the file's settings become environment
/// variables for those the environment does not set, before the command line is read, so one
/// parser checks every value wherever it came from, and environment and flags win.
fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("serve") {
        return Ok(());
    }
    let from_flag = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_string).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_flag.or_else(|| std::env::var("CALLHOOK_CONFIG").ok()) else {
        return Ok(());
    };
    let known: Vec<String> =
        <callhook::config::Config as clap::Args>::augment_args(clap::Command::new("serve"))
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().to_string())
            .collect();
    for (var, value) in callhook::config::file_settings(std::path::Path::new(&path), &known)
        .map_err(anyhow::Error::msg)?
    {
        if std::env::var_os(&var).is_none() {
            // Single-threaded still: nothing else reads the environment yet.
            std::env::set_var(var, value);
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    apply_config_file()?;
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            init_logs(&config.log, config.log_format);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(callhook::app::serve(*config))
        }
        Command::Listen(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(callhook::listen::run(args))
        }
        Command::Demo(args) => {
            init_logs("warn", callhook::config::LogFormat::Text);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(callhook::demo::run(args))
        }
        Command::Simulate(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(callhook::simulate::run(args, false))
        }
        Command::Backup(args) => callhook::backup::run(&args),
        Command::Bench(args) => {
            init_logs("warn", callhook::config::LogFormat::Text);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(callhook::bench::run(args))
        }
    }
}
