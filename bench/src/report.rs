//! The results: a readable table, one line per figure, or JSON.

use serde_json::{json, Map, Value};

use crate::images::ImageFigures;
use crate::load::Phase;
use crate::rss::Memory;

/// Memory of one Scoria process before and after the load.
pub struct ProcessMemory {
    pub name: String,
    pub pid: u32,
    pub at_rest: Memory,
    pub after_load: Memory,
}

/// Everything one run measured.
pub struct Report {
    pub command: String,
    pub mode: String,
    pub cores: usize,
    pub endpoint: String,
    pub phases: Vec<Phase>,
    pub memory: Vec<ProcessMemory>,
    /// The image phase, when it ran.
    pub images: Option<ImageFigures>,
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A number as an integer when it is one, else with two decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

impl Report {
    /// Every figure as a name and a value, in a stable order.
    pub fn figures(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for p in &self.phases {
            let latencies = [
                ("p50", p.percentile_ms(50.0)),
                ("p99", p.percentile_ms(99.0)),
                ("max", p.max_ms()),
            ];
            for (what, v) in latencies {
                if let Some(v) = v {
                    out.push((format!("{}_{what}_ms", p.key), v));
                }
            }
            out.push((format!("{}_{}_per_s", p.key, p.unit), p.per_second()));
            out.push((format!("{}_errors", p.key), p.errors as f64));
        }
        for m in &self.memory {
            out.push((
                format!("{}_rss_at_rest_mib", m.name),
                mib(m.at_rest.rss_kib),
            ));
            out.push((
                format!("{}_peak_at_rest_mib", m.name),
                mib(m.at_rest.peak_kib),
            ));
            out.push((
                format!("{}_rss_after_load_mib", m.name),
                mib(m.after_load.rss_kib),
            ));
            out.push((
                format!("{}_peak_after_load_mib", m.name),
                mib(m.after_load.peak_kib),
            ));
        }
        if let Some(images) = &self.images {
            out.extend(images.figures());
        }
        out
    }

    /// The table, the first error of each phase that had any, then one line per figure.
    pub fn print(&self) {
        println!("scoria-bench: {} on {} cores", self.mode, self.cores);
        println!("command:  {}", self.command);
        println!("endpoint: {}\n", self.endpoint);
        if !self.phases.is_empty() {
            self.print_phases();
        }
        self.print_memory();
        if let Some(images) = &self.images {
            images.print();
        }
        for p in &self.phases {
            if let Some(e) = &p.first_error {
                println!(
                    "first error of {} at concurrency {}: {e}\n",
                    p.name, p.concurrency
                );
            }
        }
        for (name, value) in self.figures() {
            println!("{} {name} {}", self.mode, number(value));
        }
    }

    fn print_phases(&self) {
        println!(
            "{:<30} {:>5} {:>8} {:>7} {:>9} {:>9} {:>9} {:>10}",
            "phase", "conc", "ok", "errors", "p50 ms", "p99 ms", "max ms", "per s"
        );
        for p in &self.phases {
            println!(
                "{:<30} {:>5} {:>8} {:>7} {:>9} {:>9} {:>9} {:>10.1}",
                p.name,
                p.concurrency,
                p.latencies.len(),
                p.errors,
                cell(p.percentile_ms(50.0)),
                cell(p.percentile_ms(99.0)),
                cell(p.max_ms()),
                p.per_second()
            );
        }
        println!();
    }

    fn print_memory(&self) {
        if self.memory.is_empty() {
            println!("memory: not measured (no --pid)\n");
            return;
        }
        println!(
            "{:<12} {:>8} {:>14} {:>15} {:>14} {:>15}",
            "process", "pid", "RSS rest MiB", "peak rest MiB", "RSS load MiB", "peak load MiB"
        );
        for m in &self.memory {
            println!(
                "{:<12} {:>8} {:>14.1} {:>15.1} {:>14.1} {:>15.1}",
                m.name,
                m.pid,
                mib(m.at_rest.rss_kib),
                mib(m.at_rest.peak_kib),
                mib(m.after_load.rss_kib),
                mib(m.after_load.peak_kib)
            );
        }
        println!();
    }

    /// The whole report as JSON.
    pub fn to_json(&self) -> Value {
        let phases: Vec<Value> = self
            .phases
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "key": p.key,
                    "concurrency": p.concurrency,
                    "unit": p.unit,
                    "ok": p.latencies.len(),
                    "errors": p.errors,
                    "first_error": p.first_error,
                    "elapsed_s": p.elapsed.as_secs_f64(),
                    "per_second": p.per_second(),
                    "p50_ms": p.percentile_ms(50.0),
                    "p99_ms": p.percentile_ms(99.0),
                    "max_ms": p.max_ms(),
                })
            })
            .collect();
        let memory: Vec<Value> = self
            .memory
            .iter()
            .map(|m| {
                json!({
                    "process": m.name,
                    "pid": m.pid,
                    "at_rest": {"rss_kib": m.at_rest.rss_kib, "peak_kib": m.at_rest.peak_kib},
                    "after_load": {"rss_kib": m.after_load.rss_kib, "peak_kib": m.after_load.peak_kib},
                })
            })
            .collect();
        let figures: Map<String, Value> = self
            .figures()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        json!({
            "command": self.command,
            "mode": self.mode,
            "cores": self.cores,
            "endpoint": self.endpoint,
            "phases": phases,
            "memory": memory,
            "images": self.images.as_ref().map(ImageFigures::to_json),
            "figures": figures,
        })
    }
}
