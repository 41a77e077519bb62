pub async fn run(_b: Bench) -> anyhow::Result<()> {
    Ok(())
}
#[derive(clap::Subcommand)]
pub enum Bench {
    Send,
}
