use clap::Parser;

#[tokio::main]
async fn main() {
    hubdesk::telemetry::init();
    if let Err(e) = hubdesk::cli::run(hubdesk::cli::Cli::parse()).await {
        eprintln!("hubdesk: {e:#}");
        std::process::exit(1);
    }
}
