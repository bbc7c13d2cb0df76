//! Progress on stderr, for downloads ([`Reporter`]) and for a translate run's files
//! ([`Files`]): a bar when stderr is a terminal, a plain line every few seconds otherwise
//! (logs, CI), nothing with `--quiet`. Errors and notes still get through a bar.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tarjama_batch::folder::Summary;
use tarjama_batch::Events;
use tarjama_registry::source::Progress;

/// How often a plain progress line is printed without a bar.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// Where progress goes: a bar, or plain lines no more often than [`LINE_EVERY`].
struct Output {
    bar: Option<ProgressBar>,
    quiet: bool,
    last_line: Instant,
}

impl Output {
    fn new(quiet: bool) -> Self {
        Output {
            bar: None,
            quiet,
            last_line: Instant::now(),
        }
    }

    /// Whether a bar can be drawn: stderr is a terminal and the user wants progress.
    fn can_draw(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// A line for the user, above the bar if there is one.
    fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Whether a plain progress line is due now (`now`: whatever the time since the last
    /// one); restarts the clock when it is.
    fn line_due(&mut self, now: bool) -> bool {
        if self.quiet || self.bar.is_some() {
            return false;
        }
        let due = now || self.last_line.elapsed() >= LINE_EVERY;
        if due {
            self.last_line = Instant::now();
        }
        due
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Progress for downloads and verification.
pub struct Reporter {
    out: Output,
    what: String,
    total: Option<u64>,
    done: u64,
}

impl Reporter {
    /// A reporter that prints nothing when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Reporter {
            out: Output::new(quiet),
            what: String::new(),
            total: None,
            done: 0,
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
        self.out.last_line = Instant::now();
        if self.out.quiet {
            return;
        }
        if self.out.can_draw() {
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
            self.out.bar = Some(bar);
        } else {
            eprintln!("{what}...");
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(bar) = &self.out.bar {
            bar.inc(bytes);
        } else if self.out.line_due(false) {
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
        let drawn = self.out.bar.is_some();
        self.out.finish();
        if !self.out.quiet && !drawn && self.done > 0 {
            eprintln!("{}: done ({})", self.what, mib(self.done));
        }
    }

    fn note(&mut self, message: &str) {
        if !self.out.quiet {
            self.out.note(message);
        }
    }
}

/// A translate run's progress: files, sentences, rate and ETA. Notes and errors are
/// printed even when quiet (the run decides which to send).
pub struct Files {
    out: Output,
    total: usize,
    start: Instant,
}

impl Files {
    /// Progress over `total` inputs.
    pub fn new(total: usize, quiet: bool) -> Self {
        let mut out = Output::new(quiet);
        if total > 1 && out.can_draw() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {pos}/{len} files  {msg}  ETA {eta}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            out.bar = Some(bar);
        }
        Files {
            out,
            total,
            start: Instant::now(),
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        self.out.finish();
    }
}

impl Events for Files {
    fn note(&mut self, line: &str) {
        self.out.note(line);
    }

    /// Called after each input; `worked` counts the inputs that needed the model.
    fn update(&mut self, s: &Summary, worked: usize, remaining: usize) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = s.sentences as f64 / secs;
        let msg = format!("{} sentences  {rate:.2} sentences/s", s.sentences);
        let handled = s.handled();
        if let Some(bar) = &self.out.bar {
            bar.set_position(handled as u64);
            bar.set_message(msg);
            return;
        }
        if self.total <= 1 || !self.out.line_due(remaining == 0) {
            return;
        }
        let eta = if worked > 0 {
            let per = secs / worked as f64;
            format!(", ETA {}", human(per * remaining as f64))
        } else {
            String::new()
        };
        eprintln!("[{handled}/{}] {msg}{eta}", self.total);
    }
}

/// A duration as a person reads it: seconds, minutes and seconds, or hours and minutes.
fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s / 60) % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(42.0), "42s");
        assert_eq!(human(125.0), "2m05s");
        assert_eq!(human(7300.0), "2h01m");
    }
}
