//! The README's walk-through as the scripts CI runs (issue 25.3): the ```sh blocks of its
//! section, exactly as written, split between two terminals as a reader uses them. Terminal
//! 1 runs every block up to and including the one that starts with `# Terminal 1` (the one
//! that starts `gpuspot dev`); terminal 2 runs the rest. Blocks that start with
//! `# Containers` run only where a container engine can be started.

/// The heading of the section.
pub const HEADING: &str = "## A walk-through";

/// The first line of the block that starts the cluster.
const TERMINAL_1: &str = "# Terminal 1";
/// The first line of a block that needs containers.
const CONTAINERS: &str = "# Containers";

/// What each terminal runs, blocks joined in the README's order.
#[derive(Debug, PartialEq, Eq)]
pub struct Scripts {
    pub terminal1: String,
    pub terminal2: String,
    /// How many blocks were left out (containers ones, without an engine).
    pub skipped: usize,
}

/// The section under `heading` (a whole line), up to the next `## ` heading.
pub fn section<'a>(markdown: &'a str, heading: &str) -> Option<&'a str> {
    let line = format!("{heading}\n");
    let (at, _) = markdown
        .match_indices(&line)
        .find(|(i, _)| *i == 0 || markdown.as_bytes()[i - 1] == b'\n')?;
    let rest = &markdown[at + line.len()..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    Some(&rest[..end])
}

/// The bodies of the ```sh blocks of `text`, in order.
pub fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(body), "```") => {
                blocks.push(body.join("\n") + "\n");
                current = None;
            }
            (Some(body), _) => body.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// The two terminals' scripts of the walk-through in `readme`; `containers` says whether
/// the `# Containers` blocks run. An error when the section or its terminal-1 block is gone
/// (a walk-through that runs nothing must not pass).
pub fn scripts(readme: &str, containers: bool) -> Result<Scripts, String> {
    let text = section(readme, HEADING).ok_or_else(|| format!("no {HEADING:?} section"))?;
    let blocks = sh_blocks(text);
    let start = blocks
        .iter()
        .position(|b| b.starts_with(TERMINAL_1))
        .ok_or_else(|| format!("no ```sh block of the walk-through starts with {TERMINAL_1:?}"))?;
    let runs = |b: &&String| containers || !b.starts_with(CONTAINERS);
    let join =
        |blocks: &[String]| blocks.iter().filter(runs).cloned().collect::<Vec<_>>().join("\n");
    let (terminal1, terminal2) = (join(&blocks[..=start]), join(&blocks[start + 1..]));
    if terminal2.trim().is_empty() {
        return Err("the walk-through has nothing after its terminal-1 block".into());
    }
    let skipped = blocks.iter().filter(|b| !runs(b)).count();
    Ok(Scripts { terminal1, terminal2, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = "# x\n\n## A walk-through\n\ntext\n\n```sh\n# Containers: setup\nstart-engine\n```\n\n\
        ```sh\n# Terminal 1: dev\ngpuspot dev\n```\n\n```sh\ngpuspot hosts\n```\n\n```text\nnot run\n```\n\n\
        ```sh\n# Containers: use\ngpuspot instances create --image x\n```\n\n## Next\n\n```sh\nnot mine\n```\n";

    #[test]
    fn blocks_split_between_the_terminals() {
        let all = scripts(README, true).expect("scripts");
        assert_eq!(
            all.terminal1,
            "# Containers: setup\nstart-engine\n\n# Terminal 1: dev\ngpuspot dev\n"
        );
        assert_eq!(
            all.terminal2,
            "gpuspot hosts\n\n# Containers: use\ngpuspot instances create --image x\n"
        );
        assert_eq!(all.skipped, 0);
        let bare = scripts(README, false).expect("scripts");
        assert_eq!(bare.terminal1, "# Terminal 1: dev\ngpuspot dev\n");
        assert_eq!(bare.terminal2, "gpuspot hosts\n");
        assert_eq!(bare.skipped, 2);
    }

    #[test]
    fn a_walkthrough_without_its_parts_is_an_error() {
        assert!(scripts("# x\n", true).is_err());
        let no_dev = "## A walk-through\n```sh\ngpuspot hosts\n```\n";
        assert!(scripts(no_dev, true).unwrap_err().contains("Terminal 1"));
        let nothing_after = "## A walk-through\n```sh\n# Terminal 1\ngpuspot dev\n```\n";
        assert!(scripts(nothing_after, true).is_err());
    }
}
