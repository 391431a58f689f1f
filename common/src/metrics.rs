//! `/metrics` in the format the scraper asks for (docs/contracts.md#operating-hosts). The
//! `prometheus-client` crate writes OpenMetrics, which a Prometheus server reads; but the classic
//! text format (0.0.4, what `promtool check metrics` and older scrapers read) names a counter's
//! family with its `_total` suffix and has no `# EOF` or `# UNIT` lines. So OpenMetrics goes to
//! whoever asks for it (`Accept: application/openmetrics-text`) and the classic text to everyone
//! else, converted line by line.

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry's metrics for a request with this `Accept` header: (content type, body).
pub fn render(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut text = String::new();
    if encode(&mut text, registry).is_err() {
        text.clear();
    }
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (OPENMETRICS, text)
    } else {
        (PROMETHEUS_TEXT, to_prometheus_text(&text))
    }
}

/// OpenMetrics text → the classic Prometheus text format.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn counters_are_named_with_total_and_the_eof_goes() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        counter.inc();
        registry.register("gpuspot_things", "Things done", counter);
        registry.register("gpuspot_level", "A level", Gauge::<i64>::default());
        let (kind, text) = render(&registry, None);
        assert_eq!(kind, PROMETHEUS_TEXT);
        assert!(text.contains("# HELP gpuspot_things_total Things done.\n"), "{text}");
        assert!(text.contains("# TYPE gpuspot_things_total counter\ngpuspot_things_total 1\n"));
        assert!(text.contains("# TYPE gpuspot_level gauge\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
        let (kind, text) = render(&registry, Some("application/openmetrics-text"));
        assert_eq!(kind, OPENMETRICS);
        assert!(text.ends_with("# EOF\n") && text.contains("# TYPE gpuspot_things counter"));
    }
}
