//! Download and work progress on stderr: a bar when stderr is a terminal, a plain line
//! every few seconds otherwise (logs, CI), nothing with `--quiet`.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tarjama_registry::source::Progress;

/// Progress for downloads and verification.
pub struct Reporter {
    quiet: bool,
    tty: bool,
    bar: Option<ProgressBar>,
    what: String,
    total: Option<u64>,
    done: u64,
    last_line: Instant,
}

impl Reporter {
    /// A reporter that prints nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Reporter {
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: None,
            what: String::new(),
            total: None,
            done: 0,
            last_line: Instant::now(),
        }
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl Progress for Reporter {
    fn start(&mut self, what: &str, total: Option<u64>) {
        self.what = what.to_string();
        self.total = total;
        self.done = 0;
        self.last_line = Instant::now();
        if self.quiet {
            return;
        }
        if self.tty {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            self.bar = Some(bar);
        } else {
            eprintln!("{what}...");
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.quiet {
            return;
        }
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        } else if self.last_line.elapsed() >= Duration::from_secs(5) {
            self.last_line = Instant::now();
            match self.total {
                Some(t) if t > 0 => eprintln!(
                    "{}: {} of {} ({:.0}%)",
                    self.what,
                    mib(self.done),
                    mib(t),
                    100.0 * self.done as f64 / t as f64
                ),
                _ => eprintln!("{}: {}", self.what, mib(self.done)),
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet && !self.tty && self.done > 0 {
            eprintln!("{}: done ({})", self.what, mib(self.done));
        }
    }

    fn note(&mut self, message: &str) {
        if !self.quiet {
            match &self.bar {
                Some(bar) => bar.println(message),
                None => eprintln!("{message}"),
            }
        }
    }
}
