//! The compliance check plugins (`disk-encryption`, `auto-logoff`, `screen-lock`,
//! `host-firewall`, `audit-daemon`) on fake machines: for each control a host that meets it, one that does not
//! and one where the evidence cannot be seen, each judged by status and by the evidence the
//! summary names (file and line, device, service state).

use warden_testkit::{Fixture, Harness, verdict};

fn case(plugin: &str, text: &str) {
    let cache = warden_tests::repo_root().join("target").join("test-cache");
    let h = Harness::new(&warden_tests::built_plugin(plugin), &cache).expect("harness");
    let f = Fixture::parse(text, "inline").expect("valid fixture");
    let v = verdict(&f, &h.run(&f).expect("case runs"));
    assert!(v.passed, "{plugin}: {v:#?}");
}

#[test]
pub(crate) fn disk_encryption_follows_lvm_down_to_luks() {
    case(
        "disk-encryption",
        r##"
run = "check"
[files]
"/proc/mounts" = "proc /proc proc rw 0 0\n/dev/mapper/vg-root / ext4 rw,relatime 0 0\n"
"/sys/devices/virtual/block/dm-0/dm/name" = "sda3_crypt\n"
"/sys/devices/virtual/block/dm-0/dm/uuid" = "CRYPT-LUKS2-0f1e2d3c-sda3_crypt\n"
"/sys/devices/virtual/block/dm-1/dm/name" = "vg-root\n"
"/sys/devices/virtual/block/dm-1/dm/uuid" = "LVM-abcdef\n"
"/sys/devices/virtual/block/dm-1/slaves/dm-0" = { dir = true }
[expect]
status = "ok"
summary = "/ on /dev/mapper/vg-root is encrypted (LUKS mapping sda3_crypt"
"##,
    );
}

#[test]
fn disk_encryption_is_critical_on_a_plain_partition_and_names_crypttab() {
    case(
        "disk-encryption",
        r##"
run = "check"
[config]
mounts = ["/", "/srv"]
[files]
"/proc/mounts" = "/dev/mapper/data /srv xfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\n"
"/sys/devices/virtual/block/dm-0/dm/name" = "data\n"
"/sys/devices/virtual/block/dm-0/dm/uuid" = "CRYPT-LUKS2-99-data\n"
"/etc/crypttab" = "# <target> <source> <key> <options>\ndata UUID=1234 none luks\n"
[expect]
status = "critical"
summary = "/ on /dev/sda1 has no dm-crypt layer (no CRYPT- dm uuid under it); /srv on /dev/mapper/data is encrypted (LUKS mapping data, dm uuid CRYPT-); configured: /etc/crypttab:2 data"
"##,
    );
}

#[test]
fn disk_encryption_is_unknown_in_a_container_overlay_or_on_a_device_alias() {
    case(
        "disk-encryption",
        r##"
run = "check"
[files]
"/proc/mounts" = "overlay / overlay rw,lowerdir=/l 0 0\n"
"/sys/devices/virtual/block/loop0" = { dir = true }
[expect]
status = "unknown"
summary = "/ is on overlay (overlay), not a block device"
"##,
    );
    case(
        "disk-encryption",
        r##"
run = "check"
[files]
"/proc/mounts" = "/dev/disk/by-uuid/0f1e /data ext4 rw 0 0\n"
"/sys/devices/virtual/block/loop0" = { dir = true }
[config]
mounts = ["/data"]
[expect]
status = "unknown"
summary = "/data is on /dev/disk/by-uuid/0f1e, which is not a device-mapper or kernel device name"
"##,
    );
}

#[test]
pub(crate) fn auto_logoff_names_the_file_and_line_that_sets_a_readonly_tmout() {
    case(
        "auto-logoff",
        r##"
run = "check"
[files]
"/etc/profile" = "PATH=/usr/bin\nTMOUT=3600\n"
"/etc/bash.bashrc" = "PS1='$ '\n"
"/etc/profile.d/50-tmout.sh" = "# idle shells end after 10 minutes\nTMOUT=600\nreadonly TMOUT\nexport TMOUT\n"
"/etc/profile.d/README" = "TMOUT=1\n"
[expect]
status = "ok"
summary = "TMOUT=600 at /etc/profile.d/50-tmout.sh:2, readonly at /etc/profile.d/50-tmout.sh:3"
"##,
    );
}

#[test]
fn auto_logoff_is_critical_when_absent_or_above_the_maximum_and_warns_when_not_readonly() {
    case(
        "auto-logoff",
        r##"
run = "check"
[files]
"/etc/profile" = "PATH=/usr/bin\n# TMOUT=600\n"
"/etc/bash.bashrc" = "PS1='$ '\n"
[expect]
status = "critical"
summary = "no TMOUT in /etc/profile, /etc/bash.bashrc"
"##,
    );
    case(
        "auto-logoff",
        r##"
run = "check"
[config]
max_seconds = 900
[files]
"/etc/profile" = "readonly TMOUT=3600\n"
[expect]
status = "critical"
summary = "TMOUT=3600 at /etc/profile:1 is above the maximum of 900 s"
"##,
    );
    case(
        "auto-logoff",
        r##"
run = "check"
[files]
"/etc/profile.d/tmout.sh" = "export TMOUT=\"300\"\n"
[expect]
status = "warning"
summary = "TMOUT=300 at /etc/profile.d/tmout.sh:1 is not readonly"
"##,
    );
}

#[test]
fn auto_logoff_is_unknown_without_startup_files_or_with_a_computed_value() {
    case(
        "auto-logoff",
        r##"
run = "check"
[files]
"/etc/hostname" = "web-01\n"
[expect]
status = "unknown"
summary = "none of /etc/profile, /etc/bash.bashrc, /etc/profile.d/*.sh exists"
"##,
    );
    case(
        "auto-logoff",
        r##"
run = "check"
[files]
"/etc/profile" = "TMOUT=$IDLE_LIMIT\nreadonly TMOUT\n"
[expect]
status = "unknown"
summary = "TMOUT=$IDLE_LIMIT at /etc/profile:1 is not a literal number"
"##,
    );
}

/// A GNOME desktop whose dconf `local` database sets what `extra` adds to it.
fn gnome_host(keyfile: &str, locks: &str) -> String {
    format!(
        r##"
run = "check"
[files]
"/usr/share/xsessions/gnome-xorg.desktop" = "[Desktop Entry]\nName=GNOME on Xorg\n"
"/usr/share/wayland-sessions/gnome.desktop" = "[Desktop Entry]\nName=GNOME\n"
"/etc/dconf/profile/user" = "user-db:user\nsystem-db:local\n"
"/etc/dconf/db/local.d/00-defaults" = "[org/gnome/desktop/session]\nidle-delay=uint32 1800\n"
"/etc/dconf/db/local.d/50-screenlock" = "{keyfile}"
"/etc/dconf/db/local.d/locks/screenlock" = "{locks}"
"##
    )
}

#[test]
pub(crate) fn screen_lock_names_each_value_and_lock_that_makes_a_gnome_session_lock() {
    let host = gnome_host(
        r"# CMMC AC.L2-3.1.10\n[org/gnome/desktop/session]\nidle-delay=uint32 600\n\n[org/gnome/desktop/screensaver]\nlock-enabled=true\nlock-delay=uint32 30\n",
        r"/org/gnome/desktop/session/idle-delay\n/org/gnome/desktop/screensaver/lock-enabled\n",
    );
    case(
        "screen-lock",
        &format!(
            "{host}[expect]\nstatus = \"ok\"\nsummary = \"the screen locks after 630 s idle (idle-delay=600 at /etc/dconf/db/local.d/50-screenlock:3, lock-enabled=true at /etc/dconf/db/local.d/50-screenlock:6, lock-delay=30 at /etc/dconf/db/local.d/50-screenlock:7); locked at /etc/dconf/db/local.d/locks/screenlock:1, /etc/dconf/db/local.d/locks/screenlock:2\"\n"
        ),
    );
}

#[test]
fn screen_lock_is_critical_unset_disabled_or_too_late_and_warns_when_a_user_can_change_it() {
    // The later file of the database overrides the earlier one's 1800 s.
    let too_late = gnome_host(
        r"[org/gnome/desktop/session]\nidle-delay=uint32 900\n[org/gnome/desktop/screensaver]\nlock-enabled=true\nlock-delay=uint32 60\n",
        "",
    );
    case(
        "screen-lock",
        &format!(
            "{too_late}[expect]\nstatus = \"critical\"\nsummary = \"the screen locks after 960 s idle, above the maximum of 900 s\"\n"
        ),
    );
    let disabled = gnome_host(r"[org/gnome/desktop/screensaver]\nlock-enabled=false\n", "");
    case(
        "screen-lock",
        &format!(
            "{disabled}[expect]\nstatus = \"critical\"\nsummary = \"lock-enabled=false at /etc/dconf/db/local.d/50-screenlock:2: an idle session blanks but does not lock\"\n"
        ),
    );
    let unset = gnome_host(r"# nothing yet\n", "");
    case(
        "screen-lock",
        &format!(
            "{unset}[expect]\nstatus = \"critical\"\nsummary = \"org/gnome/desktop/screensaver lock-enabled is set in no system dconf database (local)\"\n"
        ),
    );
    let unlocked = gnome_host(
        r"[org/gnome/desktop/session]\nidle-delay=uint32 300\n[org/gnome/desktop/screensaver]\nlock-enabled=true\n",
        r"/org/gnome/desktop/session/idle-delay\n",
    );
    case(
        "screen-lock",
        &format!(
            "{unlocked}[expect]\nstatus = \"warning\"\nsummary = \"but lock-enabled is not in a locks file: a user can change it\"\n"
        ),
    );
    case(
        "screen-lock",
        r##"
run = "check"
[files]
"/usr/share/wayland-sessions/ubuntu.desktop" = "[Desktop Entry]\n"
"/etc/dconf/db/local.d/50-screenlock" = "[org/gnome/desktop/screensaver]\nlock-enabled=true\n"
[expect]
status = "critical"
summary = "GNOME is installed (ubuntu) and there is no /etc/dconf/profile/user"
"##,
    );
}

#[test]
fn screen_lock_is_ok_without_a_desktop_and_unknown_for_another_one() {
    case(
        "screen-lock",
        r##"
run = "check"
[files]
"/etc/hostname" = "db-01\n"
[expect]
status = "ok"
summary = "no graphical session type is installed"
"##,
    );
    case(
        "screen-lock",
        r##"
run = "check"
[files]
"/usr/share/xsessions/plasma.desktop" = "[Desktop Entry]\n"
"/usr/share/xsessions/xfce.desktop" = "[Desktop Entry]\n"
[expect]
status = "unknown"
summary = "the installed sessions (plasma, xfce) are not GNOME's"
"##,
    );
}

#[test]
pub(crate) fn host_firewall_is_ok_with_nftables_running() {
    case(
        "host-firewall",
        r##"
run = "check"
[files]
"/etc/nftables.conf" = "table inet filter {\n}\n"
[services]
nftables = "running"
[expect]
status = "ok"
summary = "firewall enabled: nftables running (/etc/nftables.conf present); ufw not installed; firewalld not installed"
calls = ["service.status nftables", "service.status ufw", "service.status firewalld"]
"##,
    );
}

#[test]
fn host_firewall_is_critical_when_ufw_runs_disabled_and_nothing_else_runs() {
    case(
        "host-firewall",
        r##"
run = "check"
[files]
"/etc/ufw/ufw.conf" = "# /etc/ufw/ufw.conf\n#\nENABLED=no\nLOGLEVEL=low\n"
[services]
nftables = "stopped"
ufw = "running"
firewalld = "failed"
[expect]
status = "critical"
summary = "no host firewall enabled: nftables stopped; ufw service running but ENABLED=no at /etc/ufw/ufw.conf:3; firewalld failed"
"##,
    );
}

#[test]
fn host_firewall_is_unknown_when_the_service_manager_cannot_tell() {
    case(
        "host-firewall",
        r##"
run = "check"
[services]
nftables = "unknown"
ufw = "unknown"
firewalld = "unknown"
[expect]
status = "unknown"
summary = "no host firewall enabled: nftables unknown; ufw unknown; firewalld unknown"
"##,
    );
}

#[test]
pub(crate) fn audit_daemon_is_ok_running_and_enabled_with_its_rules() {
    case(
        "audit-daemon",
        r##"
run = "check"
[files]
"/etc/systemd/system/multi-user.target.wants/auditd.service" = ""
"/etc/audit/rules.d/audit.rules" = "-w /etc/passwd -p wa -k identity\n"
[services]
auditd = "running"
[expect]
status = "ok"
summary = "auditd running; enabled at boot (/etc/systemd/system/multi-user.target.wants/auditd.service); rules /etc/audit/rules.d/audit.rules"
"##,
    );
}

#[test]
fn audit_daemon_is_critical_stopped_or_missing_and_warns_when_not_enabled_at_boot() {
    case(
        "audit-daemon",
        r##"
run = "check"
[services]
auditd = "stopped"
[expect]
status = "critical"
summary = "auditd stopped"
"##,
    );
    case(
        "audit-daemon",
        r##"
run = "check"
[expect]
status = "critical"
summary = "auditd is not installed"
"##,
    );
    case(
        "audit-daemon",
        r##"
run = "check"
[files]
"/etc/systemd/system/multi-user.target.wants/cron.service" = ""
[services]
auditd = "running"
[expect]
status = "warning"
summary = "auditd running; not enabled at boot"
"##,
    );
}

#[test]
fn audit_daemon_is_unknown_when_the_service_manager_cannot_tell() {
    case(
        "audit-daemon",
        r##"
run = "check"
[services]
auditd = "unknown"
[expect]
status = "unknown"
summary = "auditd unknown; boot enablement not judged"
"##,
    );
}

#[test]
fn the_example_monitors_load_as_an_agent_config_and_cover_the_five_controls() {
    let path = warden_tests::repo_root().join("examples/compliance-monitors.toml");
    // The example is the monitors to add to an agent config; this is the rest of one.
    let api = "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"noc\"\nrole = \"viewer\"\n\
               sha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";
    let text = format!("{api}{}", std::fs::read_to_string(&path).expect("example"));
    let config = warden_agent::daemon::config::AgentConfig::parse(
        &text,
        "examples/compliance-monitors.toml",
        path.parent().expect("examples dir"),
    )
    .expect("the example is a valid agent config");
    let plugins: Vec<&str> = config.monitors.iter().map(|m| m.plugin.as_str()).collect();
    assert_eq!(
        plugins,
        [
            "disk-encryption",
            "auto-logoff",
            "screen-lock",
            "host-firewall",
            "audit-daemon"
        ]
    );
}
