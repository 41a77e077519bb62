//! Compiles `proto/` with prost. protoc comes vendored (protoc-bin-vendored),
//! so a fresh machine needs nothing installed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    prost_build::Config::new()
        .compile_protos(&["proto/switchboard/v1/events.proto"], &["proto"])?;
    Ok(())
}
