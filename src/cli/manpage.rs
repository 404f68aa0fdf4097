//! The man page (`rds-table-restore man`): clap_mangen's rendering of the command line, plus
//! what a man page reader looks for and the top-level help cannot hold: the options of
//! `restore` (which `plan` and `drill` share), the exit codes, and every environment variable.

use std::collections::BTreeMap;
use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, EXIT_CODES};

/// Variables the tool reads that are not the environment twin of a flag.
const OTHER_ENV: &[(&str, &str)] = &[
    (
        "RDS_TABLE_RESTORE_DB_PASSWORD",
        "The database password. Never taken on the command line; --db-password-file and a prompt on a terminal are the other ways.",
    ),
    ("AWS_REGION", "The AWS region, when --region is not given (the AWS SDK's usual chain)."),
    ("AWS_PROFILE", "The AWS profile to take credentials and region from."),
    (
        "AWS_ENDPOINT_URL",
        "Another AWS endpoint (the sandbox's AWS twin, a VPC endpoint).",
    ),
    (
        "MYSQL_ASYNC_BUFFER_POOL_CAP",
        "How many I/O buffers the database driver keeps (8 unless set).",
    ),
];

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would read as a request.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e");
    match text.chars().next() {
        Some('.') | Some('\'') => format!("\\&{text}"),
        _ => text,
    }
}

fn one_paragraph(text: &str) -> String {
    roff(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Every `RDS_TABLE_RESTORE_*` variable a flag reads, with the flag and its help.
fn flag_env() -> BTreeMap<String, (String, String)> {
    fn walk(cmd: &clap::Command, out: &mut BTreeMap<String, (String, String)>) {
        for a in cmd.get_arguments() {
            if let (Some(env), Some(long)) = (a.get_env(), a.get_long()) {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                out.entry(env.to_string_lossy().into_owned())
                    .or_insert((format!("--{long}"), help));
            }
        }
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = BTreeMap::new();
    walk(&Cli::command(), &mut out);
    out
}

/// The exit codes, from the same text `--help` shows: `(code, meaning)`.
fn exit_codes() -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = Vec::new();
    for line in EXIT_CODES.lines().skip_while(|l| !l.starts_with("Exit codes:")).skip(1) {
        if line.trim().is_empty() {
            break;
        }
        let trimmed = line.trim_start();
        match trimmed.split_once(char::is_whitespace) {
            Some((code, text)) if code.chars().all(|c| c.is_ascii_digit()) => {
                codes.push((code.to_string(), text.trim().to_string()))
            }
            _ => {
                if let Some(last) = codes.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(trimmed);
                }
            }
        }
    }
    codes
}

pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    if let Some(restore) = cmd.find_subcommand("restore") {
        let mut section = Vec::new();
        clap_mangen::Man::new(restore.clone()).render_options_section(&mut section)?;
        let section = String::from_utf8_lossy(&section).replacen(".SH OPTIONS", ".SH \"RESTORE OPTIONS\"", 1);
        writeln!(out, "{}", section.trim_end())?;
        writeln!(out, ".PP\n\\fBplan\\fR and \\fBdrill\\fR take the same options.")?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in exit_codes() {
        writeln!(out, ".TP\n\\fB{code}\\fR\n{}", one_paragraph(&meaning))?;
    }
    writeln!(out, ".SH ENVIRONMENT")?;
    writeln!(
        out,
        ".PP\nEvery flag can also come from an \\fBRDS_TABLE_RESTORE_*\\fR variable; a flag on the command line wins \
         over the variable, which wins over --config."
    )?;
    for (name, text) in OTHER_ENV {
        writeln!(out, ".TP\n\\fB{name}\\fR\n{}", one_paragraph(text))?;
    }
    for (name, (flag, help)) in flag_env() {
        writeln!(
            out,
            ".TP\n\\fB{name}\\fR\n{} (\\fB{}\\fR)",
            one_paragraph(&help),
            flag.replace('-', "\\-")
        )?;
    }
    man.render_version_section(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_codes_come_from_the_help_text_whole() {
        let codes = exit_codes();
        let numbers: Vec<&str> = codes.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(numbers, ["0", "1", "2", "3", "4", "5", "130"]);
        assert!(
            codes[4].1.contains("resume"),
            "continuation lines are kept: {:?}",
            codes[4]
        );
    }

    #[test]
    fn the_page_names_every_variable_and_the_restore_options() {
        let mut page = Vec::new();
        render(&mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        for name in Cli::env_names() {
            assert!(page.contains(&name), "{name} missing from the man page");
        }
        for wanted in [
            "RDS_TABLE_RESTORE_DB_PASSWORD",
            "RESTORE OPTIONS",
            "EXIT STATUS",
            "\\-\\-client\\-cidr",
        ] {
            assert!(page.contains(wanted), "{wanted} missing from the man page");
        }
    }
}
