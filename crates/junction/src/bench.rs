//! `junction bench`: MQTT load generator (being written).

/// Arguments of `junction bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {}

/// Run the load tool.
pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("junction bench is not available in this build")
}
