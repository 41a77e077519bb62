//! Compiles `proto/` with prost. protoc comes vendored (protoc-bin-vendored),
//! so a fresh machine needs nothing installed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    prost_build::Config::new()
        // JSON for exports (`switchboard export`): field names as in the
        // `.proto`, the oneof as `{"<kind>": {...}}`, bytes as hex.
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .type_attribute(
            ".switchboard.v1.Envelope.body",
            "#[serde(rename_all = \"snake_case\")]",
        )
        .field_attribute(
            ".switchboard.v1.Envelope.prev_digest",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        // prost does not derive `Eq` through a repeated message field; the
        // checkpoint's fields are all `Eq`, and so the envelope stays.
        .type_attribute(".switchboard.v1.HeadsCheckpoint", "#[derive(Eq)]")
        .type_attribute(".switchboard.v1.Envelope", "#[derive(Eq)]")
        .field_attribute(
            ".switchboard.v1.HeadsCheckpoint.signature",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .field_attribute(
            ".switchboard.v1.HeadsCheckpoint.public_key",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .field_attribute(
            ".switchboard.v1.SubjectHead.digest",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .field_attribute(
            ".switchboard.v1.Sealed.key_id",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .field_attribute(
            ".switchboard.v1.Sealed.nonce",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .field_attribute(
            ".switchboard.v1.Sealed.ciphertext",
            "#[serde(serialize_with = \"crate::events::hex_bytes\")]",
        )
        .compile_protos(&["proto/switchboard/v1/events.proto"], &["proto"])?;
    Ok(())
}
