//! `inventory`: a discovery plugin that reports the host, its operating system, CPU, memory,
//! disks, network interfaces and uptime, plus the installed Debian packages read from the dpkg
//! status database (absent on other systems, which then simply report no packages), the local
//! accounts, the listening TCP and bound UDP ports with the processes that own them (where the
//! site policy allows `ss` and its user can see them, `owners.rs`) and the services enabled at
//! boot: what a baseline configuration records (docs/AUTOMATION.md, "Baselines and drift").

mod accounts;
mod dpkg;
mod owners;
mod ports;

use serde::Deserialize;
use warden_sdk::{CapError, Discovery, FactGroup, PluginError, exec, fs, log, sysinfo};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where dpkg keeps its status database.
    #[serde(default = "default_dpkg_status")]
    dpkg_status: String,
    /// Whether to list installed packages at all (the list is long).
    #[serde(default = "default_true")]
    packages: bool,
    /// Local accounts, listening TCP ports, services enabled at boot.
    #[serde(default = "default_true")]
    accounts: bool,
    #[serde(default = "default_true")]
    listening_ports: bool,
    /// The process owning each listening port, from `ss` (an optional grant).
    #[serde(default = "default_true")]
    port_owners: bool,
    #[serde(default = "default_true")]
    services: bool,
}

/// The account database.
const PASSWD: &str = "/etc/passwd";
/// The kernel's socket tables, by protocol name.
const SOCKET_TABLES: [(&str, &str, ports::Transport); 4] = [
    ("tcp", "/proc/net/tcp", ports::Transport::Tcp),
    ("tcp6", "/proc/net/tcp6", ports::Transport::Tcp),
    ("udp", "/proc/net/udp", ports::Transport::Udp),
    ("udp6", "/proc/net/udp6", ports::Transport::Udp),
];
/// Units systemd starts at boot for the normal (multi-user) target: the links `systemctl
/// enable` makes.
const ENABLED_UNITS: &str = "/etc/systemd/system/multi-user.target.wants";

fn default_dpkg_status() -> String {
    "/var/lib/dpkg/status".to_string()
}

fn default_true() -> bool {
    true
}

struct Inventory;

impl Discovery for Inventory {
    fn discover(config: &str) -> Result<Vec<FactGroup>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let mut groups = Vec::new();

        let mut host = FactGroup::new("host").fact("hostname", sysinfo::hostname()?);
        if let Some(uptime) = optional("uptime", sysinfo::uptime())? {
            host.push("uptime_secs", uptime.as_secs());
        }
        groups.push(host);

        if let Some(os) = optional("os", sysinfo::os())? {
            groups.push(
                FactGroup::new("os")
                    .fact("family", os.family)
                    .fact("name", os.name)
                    .fact("version", os.version)
                    .fact("kernel", os.kernel)
                    .fact("arch", os.arch),
            );
        }

        if let Some(cpu) = optional("cpu", sysinfo::cpu())? {
            let mut group = FactGroup::new("cpu")
                .fact("model", cpu.model)
                .fact("logical_cores", cpu.logical_cores);
            if let Some(physical) = cpu.physical_cores {
                group.push("physical_cores", physical);
            }
            groups.push(group);
        }

        if let Some(mem) = optional("memory", sysinfo::memory())? {
            groups.push(
                FactGroup::new("memory")
                    .fact("total_bytes", mem.total_bytes)
                    .fact("available_bytes", mem.available_bytes)
                    .fact("swap_total_bytes", mem.swap_total_bytes)
                    .fact("swap_free_bytes", mem.swap_free_bytes),
            );
        }

        for disk in optional("disks", sysinfo::disks())?.unwrap_or_default() {
            groups.push(
                FactGroup::new("disk")
                    .fact("mount_point", disk.mount_point)
                    .fact("device", disk.device)
                    .fact("filesystem", disk.filesystem)
                    .fact("total_bytes", disk.total_bytes)
                    .fact("available_bytes", disk.available_bytes)
                    .fact("removable", disk.removable),
            );
        }

        for nic in optional("network", sysinfo::network_interfaces())?.unwrap_or_default() {
            groups.push(
                FactGroup::new("network-interface")
                    .fact("name", nic.name)
                    .fact("mac_address", nic.mac_address)
                    .fact("addresses", nic.addresses),
            );
        }

        if config.packages {
            groups.extend(packages(&config.dpkg_status)?);
        }
        if config.accounts
            && let Some(text) = optional_read("accounts", PASSWD)?
        {
            groups.extend(accounts::accounts(&text).into_iter().map(|a| {
                FactGroup::new("user")
                    .fact("name", a.name)
                    .fact("uid", a.uid)
                    .fact("shell", a.shell)
            }));
        }
        if config.listening_ports {
            let mut listeners = Vec::new();
            for (protocol, path, transport) in SOCKET_TABLES {
                let Some(text) = optional_read("listening ports", path)? else {
                    continue;
                };
                listeners.extend(
                    ports::listeners(&text, transport)
                        .into_iter()
                        .map(|l| (protocol, l)),
                );
            }
            // Without a listener there is nothing to own: `ss` is not run at all.
            let owners = if config.port_owners && !listeners.is_empty() {
                port_owners()
            } else {
                owners::Owners::new()
            };
            groups.extend(listeners.into_iter().map(|(protocol, l)| {
                FactGroup::new("listening-port")
                    .fact("protocol", protocol)
                    .fact("address", l.address)
                    .fact("port", u32::from(l.port))
                    .fact("process", owners::names(&owners, &l.inodes))
            }));
        }
        if config.services {
            groups.extend(enabled_services()?);
        }
        Ok(groups)
    }
}

/// A category this host does not provide (say, on an exotic platform) is left out of the
/// inventory; any other failure, a denial above all, fails the run.
fn optional<T>(category: &str, result: Result<T, CapError>) -> Result<Option<T>, PluginError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(CapError::Unsupported(why)) => {
            log::warn(
                "sysinfo category unsupported on this host",
                &[("category", category), ("reason", &why)],
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Installed packages from the dpkg database. A missing database means a host without dpkg
/// (Windows, RHEL, ...): no packages and a warning. A denied read is a misconfiguration and fails.
fn packages(path: &str) -> Result<Vec<FactGroup>, PluginError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(CapError::NotFound(_)) => {
            log::warn(
                "no dpkg status database; reporting no packages",
                &[("path", path)],
            );
            return Ok(Vec::new());
        }
        Err(e) => return Err(e.into()),
    };
    // Descriptions may hold stray non-UTF-8 bytes; the fields we use are ASCII in practice.
    let text = String::from_utf8_lossy(&bytes);
    let packages = dpkg::installed_packages(&text);
    log::debug(
        "read dpkg status",
        &[("path", path), ("installed", &packages.len().to_string())],
    );
    Ok(packages
        .into_iter()
        .map(|p| {
            FactGroup::new("package")
                .fact("name", p.name)
                .fact("version", p.version)
                .fact("architecture", p.architecture)
        })
        .collect())
}

/// Where a category beyond the core inventory comes from, read as text; `None` (and a
/// warning) when the file does not exist on this system or the site policy does not grant it:
/// a site may leave accounts or sockets out of its inventory, and the rest still reports.
fn optional_read(category: &str, path: &str) -> Result<Option<String>, PluginError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(CapError::NotFound(_)) => {
            log::warn(
                "not on this system; left out",
                &[("category", category), ("path", path)],
            );
            Ok(None)
        }
        Err(CapError::Denied(why)) => {
            log::warn(
                "not granted by the site policy; left out",
                &[("category", category), ("path", path), ("reason", &why)],
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The owners of the listening sockets, by inode. Owners only enrich the ports: whatever goes
/// wrong (`ss` not allowed by the site policy, not installed, failing) is a warning, and every
/// port's process is then empty, never a failed inventory.
fn port_owners() -> owners::Owners {
    let out = exec::Command::new(owners::SS)
        .args(owners::SS_ARGS)
        .timeout(std::time::Duration::from_secs(10))
        .run();
    match out {
        Ok(out) if out.success() => {
            if out.truncated {
                log::warn(
                    "ss output cut at the host's cap; ports past it have no process",
                    &[("program", owners::SS)],
                );
            }
            owners::parse(&out.stdout_lossy())
        }
        Ok(out) => {
            let code = out
                .exit_code
                .map_or_else(|| "a signal".to_string(), |c| c.to_string());
            // Its first line, bounded: the run's log budget is not ss's to spend.
            let stderr = out.stderr_lossy();
            let first = stderr.lines().next().unwrap_or_default();
            let end = (0..=first.len().min(200))
                .rev()
                .find(|&i| first.is_char_boundary(i))
                .unwrap_or(0);
            log::warn(
                "ss failed; listening ports reported without their process",
                &[("exit", &code), ("stderr", &first[..end])],
            );
            owners::Owners::new()
        }
        Err(e) => {
            log::warn(
                "ss not available; listening ports reported without their process",
                &[("program", owners::SS), ("reason", &e.to_string())],
            );
            owners::Owners::new()
        }
    }
}

/// The systemd units enabled for the multi-user target (`ssh.service`, ...), `enabled`.
fn enabled_services() -> Result<Vec<FactGroup>, PluginError> {
    let entries = match fs::list_dir(ENABLED_UNITS) {
        Ok(entries) => entries,
        Err(CapError::NotFound(_) | CapError::Denied(_)) => {
            log::warn(
                "no enabled units readable; services left out",
                &[("path", ENABLED_UNITS)],
            );
            return Ok(Vec::new());
        }
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            FactGroup::new("service")
                .fact("name", name)
                .fact("state", "enabled")
        })
        .collect())
}

warden_sdk::discovery!(Inventory);
