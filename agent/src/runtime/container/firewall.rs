//! The host's packet filter rules that keep guests out of containers' networks
//! (docs/contracts.md#limits): a new connection into a container's bridge (`gpuspot+`, see
//! [`super::network`]) is rejected unless it was DNATed to a published port. Two rules, inserted
//! first in their chains by `iptables` (the tool the engine's own rules use) and kept across
//! restarts:
//! - FORWARD: from another container's network (or anywhere routed through the host);
//! - OUTPUT, for the process guests' group ids only (their uids, and their network helpers):
//!   from the host itself.
//!
//! Replies and connections a container opens are untouched (conntrack state NEW only).

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run iptables: {0}")]
    Run(std::io::Error),
    #[error("iptables {args} failed: {stderr}")]
    Failed { args: String, stderr: String },
}

/// The rules for bridges named `prefix+` and, when given, the guests' uid range.
fn rules(prefix: &str, guest_uids: Option<(u32, u32)>) -> Vec<(&'static str, Vec<String>)> {
    let bridges = format!("{prefix}+");
    let only_new_unpublished =
        ["-m", "conntrack", "--ctstate", "NEW", "-m", "conntrack", "!", "--ctstate", "DNAT"];
    let tail = |comment: &str| {
        let mut tail: Vec<String> = only_new_unpublished.iter().map(|s| (*s).to_owned()).collect();
        tail.extend(["-m", "comment", "--comment", comment, "-j", "REJECT"].map(str::to_owned));
        tail
    };
    let mut forward = vec!["-o".to_owned(), bridges.clone()];
    forward.extend(tail("gpuspot: containers are reached on published ports only"));
    let mut rules = vec![("FORWARD", forward)];
    if let Some((first, last)) = guest_uids {
        let mut output = vec!["-o".to_owned(), bridges, "-m".to_owned(), "owner".to_owned()];
        // By group: a process guest's gid is its uid, and its network helper (slirp4netns,
        // root) runs in that group too, so its connections are the guest's.
        output.extend(["--gid-owner".to_owned(), format!("{first}-{last}")]);
        output.extend(tail("gpuspot: process guests reach containers on published ports only"));
        rules.push(("OUTPUT", output));
    }
    rules
}

/// Makes sure the rules are in place (each is added once, first in its chain).
pub fn install(prefix: &str, guest_uids: Option<(u32, u32)>) -> Result<(), FirewallError> {
    for (chain, rule) in rules(prefix, guest_uids) {
        if iptables("-C", chain, &rule).is_ok() {
            continue;
        }
        iptables("-I", chain, &rule)?;
    }
    Ok(())
}

/// `iptables -w <op> <chain> [1] <rule…>`: -w waits for the lock the engine holds while it
/// adds its own rules.
fn iptables(op: &str, chain: &str, rule: &[String]) -> Result<(), FirewallError> {
    let mut args = vec!["-w".to_owned(), op.to_owned(), chain.to_owned()];
    if op == "-I" {
        args.push("1".to_owned());
    }
    args.extend(rule.iter().cloned());
    let output = Command::new("iptables").args(&args).output().map_err(FirewallError::Run)?;
    if output.status.success() {
        return Ok(());
    }
    Err(FirewallError::Failed {
        args: args.join(" "),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_get_an_output_rule_and_everyone_a_forward_rule() {
        let rules = rules("gpuspot", Some((200_000, 299_999)));
        assert_eq!(rules.len(), 2);
        let output = rules[1].1.join(" ");
        assert!(output.starts_with("-o gpuspot+ -m owner --gid-owner 200000-299999"), "{output}");
        for (_, rule) in &rules {
            let text = rule.join(" ");
            assert!(text.contains("--ctstate NEW -m conntrack ! --ctstate DNAT"), "{text}");
            assert!(text.ends_with("-j REJECT"), "{text}");
        }
        assert_eq!(super::rules("gpuspot", None).len(), 1, "no guests, no output rule");
    }
}
