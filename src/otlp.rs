//! OpenTelemetry trace export (feature `otlp`): every tracing span — one
//! per HTTP request, carrying its request id, method and route — is sent
//! as an OTLP span over HTTP/protobuf to `--otlp-endpoint` (a collector,
//! `http://127.0.0.1:4318`), batched on a background thread. The provider
//! is flushed and shut down when `switchboard` exits.

use anyhow::{Context, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// The running exporter; [`Otlp::shutdown`] flushes it.
pub struct Otlp(SdkTracerProvider);

impl Otlp {
    /// Builds the exporter for `endpoint` (the collector's base URL; the
    /// path `/v1/traces` is added) and the tracing layer that feeds it.
    pub fn start<S>(endpoint: &str) -> Result<(Otlp, impl tracing_subscriber::Layer<S>)>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .with_headers(Default::default())
            .build()
            .context("building the OTLP exporter")?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("switchboard").build())
            .build();
        let tracer = provider.tracer("switchboard");
        let layer = tracing_opentelemetry::layer().with_tracer(tracer);
        Ok((Otlp(provider), layer))
    }

    /// Sends what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("OTLP exporter shutdown: {e}");
        }
    }
}
