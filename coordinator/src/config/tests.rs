use super::*;
use gpuspot_common::Money;
use std::time::Duration;

#[test]
fn empty_config_gives_the_documented_defaults() {
    let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
    assert_eq!(settings.timers, Timers::default());
    assert_eq!(settings.timers.hold_period, Duration::from_secs(3600));
    assert!(settings.pools.is_empty());
}

#[test]
fn snapshot_files_live_in_the_data_dir_unless_a_shared_dir_is_named() {
    let default = RawConfig::from_toml("data_dir = \"/var/lib/g\"").unwrap().validate().unwrap();
    assert_eq!(default.snapshot_dir, PathBuf::from("/var/lib/g/snapshots"));
    let shared = "[snapshots]\ndir = \"/mnt/nfs/snapshots\"";
    let shared = RawConfig::from_toml(shared).unwrap().validate().unwrap();
    assert_eq!(shared.snapshot_dir, PathBuf::from("/mnt/nfs/snapshots"));
}

#[test]
fn pools_and_timers_parse() {
    let raw = RawConfig::from_toml(
        r#"
        [timers]
        notice_period = "3s"
        heartbeat = "1s"
        host_lost_after = "5s"
        [[pools]]
        model = "H100"
        list_price = "2.58"
        [[pools]]
        model = "A100"
        list_price = "1.50"
        notice_period = "5m"
        "#,
    )
    .unwrap();
    let settings = raw.validate().unwrap();
    assert_eq!(settings.pools[0].list_price, Money(2_580_000));
    assert_eq!(settings.pools[0].floor_ppm, 100_000);
    assert_eq!(settings.pools[0].notice_period, Duration::from_secs(3));
    assert_eq!(settings.pools[1].notice_period, Duration::from_secs(300));
}

#[test]
fn every_problem_is_reported_at_once() {
    let raw = RawConfig::from_toml(
        r#"
        [timers]
        heartbeat = "10s"
        host_lost_after = "5s"
        [[pools]]
        model = "H100"
        list_price = "abc"
        floor_ratio = 0.5
        busy_ratio = 0.2
        "#,
    )
    .unwrap();
    let ConfigError::Invalid(problems) = raw.validate().unwrap_err() else {
        panic!("expected Invalid")
    };
    assert_eq!(problems.len(), 3, "{problems:?}");
}

#[test]
fn ssh_is_off_unless_configured() {
    assert_eq!(RawConfig::from_toml("").unwrap().validate().unwrap().ssh, None);
    let raw = RawConfig::from_toml("[ssh]\nlisten = \"127.0.0.1:2222\"").unwrap();
    let ssh = raw.validate().unwrap().ssh.expect("ssh settings");
    assert_eq!(ssh.listen, "127.0.0.1:2222".parse().unwrap());
    assert!(RawConfig::from_toml("[ssh]\nlisten = \"x\"").is_err());
}

#[test]
fn account_quotas_default_to_unlimited() {
    let settings = RawConfig::from_toml("").unwrap().validate().unwrap();
    assert_eq!(settings.default_quota, Quota::UNLIMITED);
    let raw = RawConfig::from_toml("[accounts]\ndefault_max_gpus = 4").unwrap();
    let quota = raw.validate().unwrap().default_quota;
    assert_eq!(quota, Quota { max_gpus: Some(4), max_instances: None });
    assert!(RawConfig::from_toml("[accounts]\ndefault_max_gpus = -1").is_err());
    assert!(RawConfig::from_toml("[accounts]\nmax_gpus = 1").is_err());
    // The sample config's commented `[accounts]` lines are real keys.
    let sample = include_str!("../../../config/coordinator.toml");
    let section: String = sample
        .lines()
        .filter(|l| l.starts_with("# [accounts]") || l.starts_with("# default_max_"))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    let documented = RawConfig::from_toml(&section).unwrap().validate().unwrap();
    assert_eq!(documented.default_quota, Quota { max_gpus: Some(8), max_instances: Some(20) });
}

#[test]
fn the_sample_configs_smtp_lines_are_real_keys() {
    let sample = include_str!("../../../config/coordinator.toml");
    let start = sample.find("# [smtp]").expect("the sample documents [smtp]");
    let section: String = sample[start..]
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", l.trim_start_matches("# ")))
        .collect();
    let smtp = RawConfig::from_toml(&section).unwrap().validate().unwrap().smtp;
    let smtp = smtp.expect("smtp settings");
    assert_eq!(smtp.max_retry, Duration::from_secs(600));
    assert!(RawConfig::from_toml("").unwrap().validate().unwrap().smtp.is_none());
}

#[test]
fn unknown_keys_are_refused() {
    assert!(RawConfig::from_toml("[timers]\nhold = \"1h\"").is_err());
}
