//! Latency summaries and the median of repeated runs.
//!
//! Invariant: a summary is computed from *every* sample it is given, and
//! says how many that was, so a printed percentile can be checked against
//! the count it should cover (e.g. the expected deliveries). Percentiles
//! are nearest-rank in integer arithmetic, so they are exact and always one
//! of the samples.

use std::time::Duration;

/// Percentiles of a set of latencies, and how many samples they cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    pub samples: u64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl LatencySummary {
    /// Summarizes all of `samples`.
    pub fn of(mut samples: Vec<Duration>) -> LatencySummary {
        samples.sort_unstable();
        LatencySummary {
            samples: samples.len() as u64,
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }

    /// `p50 … p99 … max … (N samples)` in milliseconds.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples)",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.samples
        )
    }
}

/// Nearest-rank percentile of sorted samples: the smallest sample with at
/// least `p` of all samples at or below it (`p` in 0..=1, resolved to a
/// hundredth of a percent). Zero when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let n = sorted.len() as u64;
    if n == 0 {
        return Duration::ZERO;
    }
    // Basis points, so 0.99 × 100 is exactly rank 99 and not 98.99…
    let bp = (p.clamp(0.0, 1.0) * 10_000.0).round() as u64;
    let rank = (bp * n).div_ceil(10_000).clamp(1, n);
    sorted[(rank - 1) as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A figure's spread over repeated runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle value; with an even number of runs, the mean of the two
    /// middle values.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

/// The spread of `values` (NaNs ignored); `None` when there are none.
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Spread {
        median,
        min: v[0],
        max: v[n - 1],
        runs: n,
    })
}

/// One number a run produces, e.g. ("POST p99", 2.9, "ms").
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
}

impl Figure {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
        }
    }
}

/// Formats a value in its unit's precision.
pub fn fmt_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{value:.2}"),
        "ratio" => format!("{value:.3}"),
        "KiB" => format!("{value:.1}"),
        _ => thousands(value.round() as i64),
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// What a benchmark run reports as numbers, for the median over runs.
pub trait Figures {
    fn figures(&self) -> Vec<Figure>;
}

/// Every run of a benchmark, in order.
#[derive(Debug, Clone)]
pub struct Runs<T> {
    pub runs: Vec<T>,
}

/// A figure's name and unit with its spread over the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureSpread {
    pub name: String,
    pub unit: &'static str,
    pub spread: Spread,
}

impl FigureSpread {
    /// `median (min–max)`, or just the value for a single run.
    pub fn text(&self) -> String {
        let s = &self.spread;
        let med = fmt_value(s.median, self.unit);
        if s.runs < 2 {
            return med;
        }
        format!(
            "{med} ({}–{})",
            fmt_value(s.min, self.unit),
            fmt_value(s.max, self.unit)
        )
    }
}

impl<T: Figures> Runs<T> {
    /// Each figure (in the order runs report them, first appearance first)
    /// with its median and spread over the runs that reported it.
    pub fn summary(&self) -> Vec<FigureSpread> {
        let per_run: Vec<Vec<Figure>> = self.runs.iter().map(Figures::figures).collect();
        let mut names: Vec<(String, &'static str)> = Vec::new();
        for f in per_run.iter().flatten() {
            if !names.iter().any(|(n, _)| *n == f.name) {
                names.push((f.name.clone(), f.unit));
            }
        }
        names
            .into_iter()
            .filter_map(|(name, unit)| {
                let values: Vec<f64> = per_run
                    .iter()
                    .filter_map(|r| r.iter().find(|f| f.name == name).map(|f| f.value))
                    .collect();
                spread(&values).map(|spread| FigureSpread { name, unit, spread })
            })
            .collect()
    }

    /// The spread of one figure.
    pub fn get(&self, name: &str) -> Option<FigureSpread> {
        self.summary().into_iter().find(|f| f.name == name)
    }

    /// Prints the median and min–max of every figure.
    pub fn print_summary(&self) {
        if self.runs.len() < 2 {
            return;
        }
        println!("median (min–max) over {} runs:", self.runs.len());
        for f in self.summary() {
            println!("  {:<40} {} {}", f.name, f.text(), f.unit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_are_exact() {
        let samples: Vec<Duration> = (1..=100).rev().map(us).collect();
        let s = LatencySummary::of(samples);
        assert_eq!(s.samples, 100);
        assert_eq!(s.p50, us(50));
        assert_eq!(s.p99, us(99));
        assert_eq!(s.max, us(100));
    }

    #[test]
    fn nearest_rank_rounds_up_and_is_a_sample() {
        let sorted: Vec<Duration> = (1..=7).map(|v| us(v * 10)).collect();
        // 0.5 × 7 = 3.5 → rank 4.
        assert_eq!(percentile(&sorted, 0.5), us(40));
        // 0.99 × 7 = 6.93 → rank 7.
        assert_eq!(percentile(&sorted, 0.99), us(70));
        assert_eq!(percentile(&sorted, 0.0), us(10));
        assert_eq!(percentile(&sorted, 1.0), us(70));
        // Floating point does not push an exact rank to the next one:
        // 0.07 × 100 is 7.000000000000001 in f64.
        let hundred: Vec<Duration> = (1..=100).map(us).collect();
        assert_eq!(percentile(&hundred, 0.07), us(7));
    }

    #[test]
    fn empty_and_single_sample() {
        assert_eq!(LatencySummary::of(Vec::new()), LatencySummary::default());
        let s = LatencySummary::of(vec![us(5)]);
        assert_eq!((s.samples, s.p50, s.p99, s.max), (1, us(5), us(5), us(5)));
    }

    /// Regression: `bench fanout` moved samples to the shared list every 64
    /// and aborted the tasks at the end, losing each connection's last
    /// (n mod 64). A summary covers every sample, for any n.
    #[test]
    fn no_sample_lost_whatever_the_count() {
        for n in [1u64, 63, 64, 65, 127, 1000, 1001, 4097] {
            let s = LatencySummary::of((0..n).map(us).collect());
            assert_eq!(s.samples, n);
            assert_eq!(s.max, us(n - 1));
        }
    }

    #[test]
    fn median_of_odd_and_even_runs() {
        let s = spread(&[3.0, 1.0, 2.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max, s.runs), (2.0, 1.0, 3.0, 3));
        let s = spread(&[4.0, 1.0, 3.0, 2.0]).expect("spread");
        assert_eq!((s.median, s.min, s.max, s.runs), (2.5, 1.0, 4.0, 4));
        assert_eq!(spread(&[]), None);
        assert_eq!(spread(&[f64::NAN, 7.0]).map(|s| s.median), Some(7.0));
    }

    struct Run(f64, Option<f64>);
    impl Figures for Run {
        fn figures(&self) -> Vec<Figure> {
            let mut v = vec![Figure::new("rate", self.0, "msgs/s")];
            if let Some(p) = self.1 {
                v.push(Figure::new("p99", p, "ms"));
            }
            v
        }
    }

    #[test]
    fn runs_summarize_each_figure_over_the_runs_that_report_it() {
        let runs = Runs {
            runs: vec![
                Run(100.0, Some(2.0)),
                Run(300.0, None),
                Run(200.0, Some(4.0)),
            ],
        };
        let s = runs.summary();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "rate");
        assert_eq!(s[0].spread.median, 200.0);
        assert_eq!(s[0].text(), "200 (100–300)");
        assert_eq!(s[1].spread.runs, 2);
        assert_eq!(s[1].spread.median, 3.0);
        assert_eq!(s[1].text(), "3.00 (2.00–4.00)");
    }

    #[test]
    fn values_print_in_their_unit() {
        assert_eq!(fmt_value(17465.4, "msgs/s"), "17,465");
        assert_eq!(fmt_value(1234567.0, "events/s"), "1,234,567");
        assert_eq!(fmt_value(999.0, "x"), "999");
        assert_eq!(fmt_value(0.1224, "ratio"), "0.122");
        assert_eq!(fmt_value(2.914, "ms"), "2.91");
    }
}
