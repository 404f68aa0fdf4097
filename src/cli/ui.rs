//! The terminal side of [`Progress`] and [`Prompter`]: indicatif spinners and bars on a TTY,
//! timestamped log lines otherwise (CI logs, `| tee`), and nothing for JSON or `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::{Error, Result};
use crate::progress::{Progress, Prompter, Silent};
use crate::state::Step;

const STEPS: usize = Step::ALL.len();

/// Picks the progress display for this process: JSON events, nothing, a terminal UI, or
/// plain log lines.
pub fn progress_for(quiet: bool, json: bool) -> Box<dyn Progress> {
    if json {
        Box::new(JsonProgress::default())
    } else if quiet {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(TtyProgress::default())
    } else {
        Box::new(LogProgress::default())
    }
}

/// Picks the prompter: dialoguer on a terminal, a refusal otherwise (scripts pass `--yes`).
pub fn prompter() -> Box<dyn Prompter> {
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Box::new(TtyPrompter)
    } else {
        Box::new(NoPrompter)
    }
}

#[derive(Default)]
pub struct TtyProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl TtyProgress {
    fn replace_bar(&self, bar: Option<ProgressBar>) {
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        *slot = bar;
    }
    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(bar)
        }
    }
}

impl Progress for TtyProgress {
    fn step_started(&self, step: Step, detail: &str) {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        // The elapsed time first and the message cut to the terminal's width: a long instance
        // name must not push the status off the line.
        bar.set_style(ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} [{elapsed}] {wide_msg}").unwrap());
        bar.set_prefix(format!("[{}/{STEPS}] {}", step.number(), step.name()));
        bar.set_message(detail.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.replace_bar(Some(bar));
    }
    fn step_finished(&self, step: Step, elapsed: Duration, summary: &str) {
        self.replace_bar(None);
        let head = format!("[{}/{STEPS}] {}", step.number(), step.name());
        let lines = crate::report::wrap(
            &format!("{summary} ({:.1}s)", elapsed.as_secs_f64()),
            terminal_width().saturating_sub(head.chars().count() + 3).max(30),
        );
        eprintln!(
            "{} {} {}",
            console::style("✔").green(),
            console::style(&head).bold(),
            lines[0]
        );
        // Long summaries wrap under themselves, not under the step number.
        for line in &lines[1..] {
            eprintln!("{:width$}{line}", "", width = head.chars().count() + 3);
        }
    }
    fn step_failed(&self, step: Step, error: &str) {
        self.replace_bar(None);
        eprintln!(
            "{} [{}/{STEPS}] {} failed: {error}",
            console::style("✘").red(),
            step.number(),
            step.name()
        );
    }
    fn waiting(&self, what: &str, status: &str, _elapsed: Duration) {
        self.with_bar(|b| b.set_message(format!("status {status}: {what}")));
    }
    fn copy_started(&self, estimated_rows: Option<u64>) {
        let bar = ProgressBar::with_draw_target(estimated_rows, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner:.cyan} {prefix:.bold} {wide_bar} {human_pos}/~{human_len} rows, {per_sec}, ETA {eta}, {msg}",
            )
            .unwrap(),
        );
        bar.set_prefix(format!("[{}/{STEPS}] copy", Step::Copy.number()));
        bar.enable_steady_tick(Duration::from_millis(200));
        self.replace_bar(Some(bar));
    }
    fn copy_progress(&self, rows_read: u64, rows_inserted: u64) {
        self.with_bar(|b| {
            if b.length().is_some_and(|l| rows_read > l) {
                b.set_length(rows_read);
            }
            b.set_position(rows_read);
            b.set_message(format!("{rows_inserted} inserted"));
        });
    }
    fn note(&self, message: &str) {
        self.with_bar(|b| b.suspend(|| eprintln!("  {message}")));
        if self.bar.lock().map(|b| b.is_none()).unwrap_or(true) {
            eprintln!("  {message}");
        }
    }
    fn warn(&self, message: &str) {
        let line = format!("{} {message}", console::style("warning:").yellow().bold());
        let mut shown = false;
        self.with_bar(|b| {
            b.suspend(|| eprintln!("{line}"));
            shown = true;
        });
        if !shown {
            eprintln!("{line}");
        }
    }
}

/// The terminal's width in columns (80 when it cannot tell).
fn terminal_width() -> usize {
    match console::Term::stderr().size_checked() {
        Some((_, cols)) if cols > 0 => cols as usize,
        _ => 80,
    }
}

/// Plain lines on stderr with a UTC timestamp; progress of long steps at most every 5 seconds.
pub struct LogProgress {
    last: Mutex<Instant>,
    every: Duration,
}

impl Default for LogProgress {
    fn default() -> Self {
        LogProgress {
            last: Mutex::new(Instant::now()),
            every: Duration::from_secs(5),
        }
    }
}

impl LogProgress {
    fn line(&self, msg: &str) {
        eprintln!("{} {msg}", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"));
    }
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            true
        } else {
            false
        }
    }
}

impl Progress for LogProgress {
    fn step_started(&self, step: Step, detail: &str) {
        self.line(&format!(
            "[{}/{STEPS}] {}: started: {detail}",
            step.number(),
            step.name()
        ));
    }
    fn step_finished(&self, step: Step, elapsed: Duration, summary: &str) {
        self.line(&format!(
            "[{}/{STEPS}] {}: finished in {:.1}s: {summary}",
            step.number(),
            step.name(),
            elapsed.as_secs_f64()
        ));
    }
    fn step_failed(&self, step: Step, error: &str) {
        self.line(&format!("[{}/{STEPS}] {}: FAILED: {error}", step.number(), step.name()));
    }
    fn waiting(&self, what: &str, status: &str, elapsed: Duration) {
        if self.due() {
            self.line(&format!("  {what}: status {status} after {}s", elapsed.as_secs()));
        }
    }
    fn copy_started(&self, estimated_rows: Option<u64>) {
        let est = estimated_rows
            .map(|n| format!("~{n} rows"))
            .unwrap_or_else(|| "size unknown".into());
        self.line(&format!("  copy: reading the restored table ({est})"));
    }
    fn copy_progress(&self, rows_read: u64, rows_inserted: u64) {
        if self.due() {
            self.line(&format!("  copy: {rows_read} rows read, {rows_inserted} inserted"));
        }
    }
    fn note(&self, message: &str) {
        self.line(&format!("  {message}"));
    }
    fn warn(&self, message: &str) {
        self.line(&format!("WARNING: {message}"));
    }
}

pub struct TtyPrompter;

impl Prompter for TtyPrompter {
    fn confirm(&self, question: &str) -> Result<bool> {
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact()
            .map_err(|_| Error::ConsentRequired)
    }

    fn type_to_confirm(&self, question: &str, expected: &str) -> Result<bool> {
        let typed: String = dialoguer::Input::new()
            .with_prompt(question)
            .allow_empty(true)
            .interact_text()
            .map_err(|_| Error::ConsentRequired)?;
        Ok(typed.trim() == expected)
    }
}

pub struct NoPrompter;

impl Prompter for NoPrompter {
    fn confirm(&self, _question: &str) -> Result<bool> {
        Err(Error::ConsentRequired)
    }
    fn type_to_confirm(&self, _question: &str, _expected: &str) -> Result<bool> {
        Err(Error::ConsentRequired)
    }
}

/// `--output json`: one JSON object per line on stdout, each with `event` and `time` (UTC),
/// for pipelines; the run ends with a `summary` event (printed by the command).
pub struct JsonProgress {
    last: Mutex<Instant>,
    every: Duration,
}

impl Default for JsonProgress {
    fn default() -> Self {
        JsonProgress {
            last: Mutex::new(Instant::now() - Duration::from_secs(60)),
            every: Duration::from_secs(1),
        }
    }
}

/// Prints one event line.
pub fn emit(event: &str, mut fields: serde_json::Value) {
    use std::io::Write;
    if let Some(map) = fields.as_object_mut() {
        map.insert("event".into(), event.into());
        map.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{fields}");
    let _ = out.flush();
}

impl JsonProgress {
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            true
        } else {
            false
        }
    }
}

impl Progress for JsonProgress {
    fn step_started(&self, step: Step, detail: &str) {
        emit(
            "step_started",
            serde_json::json!({"step": step.name(), "number": step.number(), "detail": detail}),
        );
    }
    fn step_finished(&self, step: Step, elapsed: Duration, summary: &str) {
        emit(
            "step_finished",
            serde_json::json!({"step": step.name(), "number": step.number(), "seconds": elapsed.as_secs_f64(), "summary": summary}),
        );
    }
    fn step_failed(&self, step: Step, error: &str) {
        emit(
            "step_failed",
            serde_json::json!({"step": step.name(), "number": step.number(), "error": error}),
        );
    }
    fn waiting(&self, what: &str, status: &str, elapsed: Duration) {
        if self.due() {
            emit(
                "waiting",
                serde_json::json!({"instance": what, "status": status, "elapsed_seconds": elapsed.as_secs()}),
            );
        }
    }
    fn copy_started(&self, estimated_rows: Option<u64>) {
        emit("copy_started", serde_json::json!({"estimated_rows": estimated_rows}));
    }
    fn copy_progress(&self, rows_read: u64, rows_inserted: u64) {
        if self.due() {
            emit(
                "progress",
                serde_json::json!({"rows_read": rows_read, "rows_inserted": rows_inserted}),
            );
        }
    }
    fn note(&self, message: &str) {
        emit("note", serde_json::json!({"message": message}));
    }
    fn warn(&self, message: &str) {
        emit("warning", serde_json::json!({"message": message}));
    }
}

/// The wizard's questions on a terminal (dialoguer; lists can be filtered by typing).
pub struct TtyAsker;

impl crate::wizard::Asker for TtyAsker {
    fn choose(&self, prompt: &str, items: &[String]) -> Result<usize> {
        dialoguer::FuzzySelect::new()
            .with_prompt(prompt)
            .items(items)
            .default(0)
            .interact()
            .map_err(|e| Error::InvalidInput(format!("no answer: {e}")))
    }
    fn text(&self, prompt: &str) -> Result<String> {
        // Empty is an answer: it takes a proposal where one is offered, and is explained as
        // not valid elsewhere.
        dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text()
            .map_err(|e| Error::InvalidInput(format!("no answer: {e}")))
    }
    fn say(&self, line: &str) {
        eprintln!("  {line}");
    }
}

/// True when there is someone to ask: stdin and stderr are a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}
