//! `disk-encryption`: a compliance check that each configured mount point (default `/`) is on a
//! LUKS device: the mount's device, or a device-mapper device it is stacked on (LVM on LUKS),
//! has a dm uuid starting with `CRYPT-`. Everything is read from files (`/proc/mounts`,
//! `/sys/devices/virtual/block/dm-*/dm/{name,uuid}`, `.../slaves`), so no program runs. Evidence for HIPAA
//! 164.312(a)(2)(iv) and CMMC SC.L2-3.13.16 (CUI at rest).
//!
//! A mount on a plain partition is `critical`; one on something that is not a block device
//! (overlay, tmpfs, NFS: a container or a diskless host) is `unknown`, because the disk that
//! really holds the data is not visible from here.

use serde::Deserialize;
use warden_sdk::{CapError, Check, CheckResult, PluginError, Status, fs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_mounts")]
    mounts: Vec<String>,
}

fn default_mounts() -> Vec<String> {
    vec!["/".to_string()]
}

/// Where the kernel keeps device-mapper devices. Not `/sys/block`: its entries are symlinks
/// into `/sys/devices`, which the host's fs capability does not follow out of a granted root.
const SYS_BLOCK: &str = "/sys/devices/virtual/block";

/// How deep device-mapper stacks are followed (LUKS under LVM under a cache is 3).
const MAX_DEPTH: usize = 8;

/// What holds one mount point.
enum Finding {
    /// On a dm-crypt device: the mount's device and the LUKS mapping's name.
    Encrypted { device: String, mapping: String },
    /// On a block device with no dm-crypt layer.
    Plain { device: String },
    /// Not on a block device, or not mounted: the disk is not visible from here.
    Unknown(String),
}

impl Finding {
    fn status(&self) -> Status {
        match self {
            Finding::Encrypted { .. } => Status::Ok,
            Finding::Plain { .. } => Status::Critical,
            Finding::Unknown(_) => Status::Unknown,
        }
    }
}

/// The device-mapper devices: kernel name (`dm-0`) and mapping name.
struct Mapper {
    devices: Vec<(String, String)>,
}

impl Mapper {
    fn read() -> Result<Mapper, CapError> {
        let mut devices = Vec::new();
        for entry in fs::list_dir(SYS_BLOCK)? {
            if !entry.name.starts_with("dm-") {
                continue;
            }
            let name = fs::read_to_string(&format!("{SYS_BLOCK}/{}/dm/name", entry.name))
                .map(|n| n.trim().to_string())
                .unwrap_or_default();
            devices.push((entry.name, name));
        }
        Ok(Mapper { devices })
    }

    /// The kernel name of `/dev/dm-N` or `/dev/mapper/NAME`.
    fn kernel_name(&self, device: &str) -> Option<String> {
        if let Some(dm) = device.strip_prefix("/dev/")
            && dm.starts_with("dm-")
        {
            return Some(dm.to_string());
        }
        let name = device.strip_prefix("/dev/mapper/")?;
        self.devices
            .iter()
            .find(|(_, n)| n == name)
            .map(|(k, _)| k.clone())
    }

    /// The name of the LUKS mapping `dm` is, or is stacked on.
    fn crypt_layer(&self, dm: &str, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        let uuid = fs::read_to_string(&format!("{SYS_BLOCK}/{dm}/dm/uuid")).ok()?;
        if uuid.trim().starts_with("CRYPT-") {
            return Some(self.name_of(dm));
        }
        let slaves = fs::list_dir(&format!("{SYS_BLOCK}/{dm}/slaves")).ok()?;
        slaves
            .iter()
            .filter(|s| s.name.starts_with("dm-"))
            .find_map(|s| self.crypt_layer(&s.name, depth + 1))
    }

    fn name_of(&self, dm: &str) -> String {
        self.devices
            .iter()
            .find(|(k, n)| k == dm && !n.is_empty())
            .map_or_else(|| dm.to_string(), |(_, n)| n.clone())
    }
}

/// `/proc/mounts` fields are octal-escaped (`\040` for a space).
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The device and filesystem type of `mount`, from the last entry for it (the one on top).
fn mounted_on(mounts: &str, mount: &str) -> Option<(String, String)> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, point, fstype) = (f.next()?, f.next()?, f.next()?);
            (unescape(point) == mount).then(|| (unescape(device), fstype.to_string()))
        })
        .next_back()
}

fn find(mapper: &Mapper, mounts: &str, mount: &str) -> Finding {
    let Some((device, fstype)) = mounted_on(mounts, mount) else {
        return Finding::Unknown(format!("{mount} is not in /proc/mounts"));
    };
    if !device.starts_with("/dev/") {
        return Finding::Unknown(format!(
            "{mount} is on {device} ({fstype}), not a block device: check the host that holds its disk"
        ));
    }
    if let Some(dm) = mapper.kernel_name(&device) {
        return match mapper.crypt_layer(&dm, 0) {
            Some(mapping) => Finding::Encrypted { device, mapping },
            None => Finding::Plain { device },
        };
    }
    // A kernel device name (`/dev/sda1`, `/dev/nvme0n1p2`) is a plain partition or disk; a
    // symlink or alias (`/dev/disk/by-uuid/...`, `/dev/root`, an unknown mapper name) is not
    // judged by its name.
    let kernel_device = device
        .strip_prefix("/dev/")
        .is_some_and(|name| !name.contains('/') && name != "root");
    if kernel_device {
        Finding::Plain { device }
    } else {
        Finding::Unknown(format!(
            "{mount} is on {device}, which is not a device-mapper or kernel device name"
        ))
    }
}

fn describe(mount: &str, finding: &Finding) -> String {
    match finding {
        Finding::Encrypted { device, mapping } => {
            format!("{mount} on {device} is encrypted (LUKS mapping {mapping}, dm uuid CRYPT-)")
        }
        Finding::Plain { device } => {
            format!("{mount} on {device} has no dm-crypt layer (no CRYPT- dm uuid under it)")
        }
        Finding::Unknown(why) => why.clone(),
    }
}

/// The non-comment lines of `/etc/crypttab`, as `/etc/crypttab:N <name>` evidence.
fn crypttab() -> Vec<String> {
    let Ok(text) = fs::read_to_string("/etc/crypttab") else {
        return Vec::new();
    };
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let name = line.split_whitespace().next()?;
            (!name.starts_with('#')).then(|| format!("/etc/crypttab:{} {name}", i + 1))
        })
        .collect()
}

struct DiskEncryption;

impl Check for DiskEncryption {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let (mounts, mapper) = match (fs::read_to_string("/proc/mounts"), Mapper::read()) {
            (Ok(m), Ok(d)) => (m, d),
            (Err(e), _) | (_, Err(e)) => {
                return Ok(CheckResult::unknown(format!(
                    "cannot read the mount table or {SYS_BLOCK}: {e}"
                )));
            }
        };
        let findings: Vec<(String, Finding)> = config
            .mounts
            .iter()
            .map(|m| (m.clone(), find(&mapper, &mounts, m)))
            .collect();
        let status = findings
            .iter()
            .fold(Status::Ok, |s, (_, f)| s.worst(f.status()));
        let mut summary: Vec<String> = findings.iter().map(|(m, f)| describe(m, f)).collect();
        if status != Status::Ok {
            let configured = crypttab();
            if !configured.is_empty() {
                summary.push(format!("configured: {}", configured.join(", ")));
            }
        }
        let mut result = CheckResult::new(status, summary.join("; "));
        for (mount, finding) in &findings {
            let encrypted = matches!(finding, Finding::Encrypted { .. });
            result = result.metric(
                format!("encrypted:{mount}"),
                f64::from(u8::from(encrypted)),
                "",
            );
        }
        Ok(result)
    }
}

warden_sdk::check!(DiskEncryption);
