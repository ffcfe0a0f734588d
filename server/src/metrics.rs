//! Prometheus metrics: GraphQL requests and latency by operation name, HTTP responses by route.
//! Operation names come from clients, so they are sanitised and capped to keep label cardinality bounded.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

const MAX_OPERATION_NAMES: usize = 200;

pub struct Metrics {
    registry: Registry,
    graphql_requests: IntCounterVec,
    graphql_seconds: HistogramVec,
    http_responses: IntCounterVec,
    loader_batches: IntCounterVec,
    loader_keys: IntCounterVec,
    known_operations: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new_custom(Some("amtsplatz".into()), None)?;
        let graphql_requests = IntCounterVec::new(
            Opts::new(
                "graphql_requests_total",
                "GraphQL requests by operation name and outcome (ok or error)",
            ),
            &["operation", "outcome"],
        )?;
        let graphql_seconds = HistogramVec::new(
            HistogramOpts::new(
                "graphql_request_duration_seconds",
                "GraphQL request latency by operation name",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation"],
        )?;
        let http_responses = IntCounterVec::new(
            Opts::new("http_responses_total", "HTTP responses by route and status"),
            &["route", "status"],
        )?;
        let loader_batches = IntCounterVec::new(
            Opts::new(
                "dataloader_batches_total",
                "DataLoader batches (one query each) by key type",
            ),
            &["key"],
        )?;
        let loader_keys = IntCounterVec::new(
            Opts::new(
                "dataloader_keys_total",
                "Keys loaded by DataLoader batches, by key type",
            ),
            &["key"],
        )?;
        registry.register(Box::new(graphql_requests.clone()))?;
        registry.register(Box::new(loader_batches.clone()))?;
        registry.register(Box::new(loader_keys.clone()))?;
        registry.register(Box::new(graphql_seconds.clone()))?;
        registry.register(Box::new(http_responses.clone()))?;
        Ok(Self {
            registry,
            graphql_requests,
            graphql_seconds,
            http_responses,
            loader_batches,
            loader_keys,
            known_operations: Mutex::new(HashSet::new()),
        })
    }

    /// The label for a client-supplied operation name.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".into();
        };
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return "other".into();
        }
        let Ok(mut known) = self.known_operations.lock() else {
            return "other".into();
        };
        if known.contains(name) || known.len() < MAX_OPERATION_NAMES {
            known.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }

    pub fn observe_graphql(&self, operation: &str, ok: bool, seconds: f64) {
        self.graphql_requests
            .with_label_values(&[operation, if ok { "ok" } else { "error" }])
            .inc();
        self.graphql_seconds
            .with_label_values(&[operation])
            .observe(seconds);
    }

    pub fn observe_http(&self, route: &str, status: u16) {
        self.http_responses
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// A DataLoader batch of `keys` keys of the type `key`.
    pub fn observe_batch(&self, key: &str, keys: usize) {
        self.loader_batches.with_label_values(&[key]).inc();
        self.loader_keys
            .with_label_values(&[key])
            .inc_by(u64::try_from(keys).unwrap_or(u64::MAX));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
