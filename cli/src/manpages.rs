//! `gpuspot man`: manual pages from the command line's own definition (clap_mangen). With
//! `--dir`, one page per command (`gpuspot.1`, `gpuspot-instances.1`,
//! `gpuspot-instances-create.1`, …); without, the top page on stdout for
//! `gpuspot man | man -l -`. Every page ends with a SEE ALSO naming its parent's page and
//! its subcommands' pages: exactly the pages `--dir` writes.

use clap::Command;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The command tree as the pages show it: built (so subcommands carry their page names,
/// `gpuspot-instances`), without clap's `help` subcommand, which has no page.
fn tree(command: Command) -> Command {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    command
}

/// The commands that get a page: the visible subcommands.
fn pages_below(command: &Command) -> impl Iterator<Item = &Command> {
    command.get_subcommands().filter(|c| !c.is_hide_set())
}

fn page_name(command: &Command) -> &str {
    command.get_display_name().unwrap_or_else(|| command.get_name())
}

/// One page: clap_mangen's, then SEE ALSO.
fn render(command: &Command, parent: Option<&str>, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command.clone()).render(out)?;
    let mut names: Vec<&str> = parent.into_iter().collect();
    names.extend(pages_below(command).map(page_name));
    if names.is_empty() {
        return Ok(());
    }
    let refs: Vec<String> =
        names.iter().map(|n| format!("\\fB{}\\fR(1)", n.replace('-', "\\-"))).collect();
    writeln!(out, ".SH \"SEE ALSO\"\n{}", refs.join(", "))
}

/// The top page, on stdout.
pub fn print_top(command: Command) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    render(&tree(command), None, &mut stdout)?;
    stdout.flush()
}

/// Every page into `dir` (created if missing); the files written.
pub fn write_all(command: Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    write_tree(&tree(command), None, dir, &mut written)?;
    Ok(written)
}

fn write_tree(
    command: &Command,
    parent: Option<&str>,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{}.1", page_name(command)));
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    render(command, parent, &mut file)?;
    file.flush()?;
    written.push(path);
    for sub in pages_below(command) {
        write_tree(sub, Some(page_name(command)), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command's help, depth first.
    fn helps(command: &mut Command, out: &mut Vec<(String, String)>) {
        out.push((page_name(command).to_owned(), command.render_long_help().to_string()));
        for sub in command.get_subcommands_mut() {
            helps(sub, out);
        }
    }

    #[test]
    fn help_cites_no_design_sections() {
        let mut all = Vec::new();
        helps(&mut tree(crate::args::Cli::command()), &mut all);
        assert!(all.len() > 40, "every command: {}", all.len());
        for (name, help) in all {
            assert!(!help.contains("DESIGN"), "{name}: {help}");
        }
    }

    #[test]
    fn every_page_named_in_see_also_is_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let written = write_all(crate::args::Cli::command(), dir.path()).expect("pages");
        let names: Vec<String> = written
            .iter()
            .filter_map(|p| p.file_name()?.to_str()?.strip_suffix(".1").map(str::to_owned))
            .collect();
        for name in ["gpuspot", "gpuspot-instances", "gpuspot-instances-create", "gpuspot-dev"] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.ends_with("-help")), "no page for clap's help");
        for path in &written {
            let page = std::fs::read_to_string(path).expect("page");
            let plain = page.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "");
            for named in plain.split([' ', ',', '\n']).filter_map(|w| w.strip_suffix("(1)")) {
                assert!(names.iter().any(|n| n == named), "{path:?} names {named}(1)");
            }
        }
    }
}
