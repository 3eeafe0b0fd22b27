//! Facts about the machine (WIT `sysinfo`). Each category (hostname, os, cpu, memory, disks,
//! network, uptime, processes) is granted separately in the manifest's `capabilities.sysinfo`.

use std::time::Duration;

use crate::__private::bindings::warden::plugin::sysinfo as wit;
use crate::CapError;

/// The operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsInfo {
    /// `linux`, `windows`, `macos`, ...
    pub family: String,
    /// Distribution or product name, e.g. `Debian GNU/Linux`.
    pub name: String,
    /// Distribution or product version.
    pub version: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
}

/// The processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// Model name.
    pub model: String,
    /// Physical cores, when known.
    pub physical_cores: Option<u32>,
    /// Logical cores (hardware threads).
    pub logical_cores: u32,
}

/// Memory and swap, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Installed memory.
    pub total_bytes: u64,
    /// Memory available to new programs.
    pub available_bytes: u64,
    /// Swap size.
    pub swap_total_bytes: u64,
    /// Unused swap.
    pub swap_free_bytes: u64,
}

/// One mounted filesystem or drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    /// Mount point (`/`, `/var`) or drive root (`C:\`).
    pub mount_point: String,
    /// Device name.
    pub device: String,
    /// Filesystem type, e.g. `ext4`.
    pub filesystem: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Free bytes available to unprivileged users.
    pub available_bytes: u64,
    /// True for removable media.
    pub removable: bool,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// MAC address.
    pub mac_address: String,
    /// Addresses in CIDR notation.
    pub addresses: Vec<String>,
}

/// One running process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// Resident memory in bytes.
    pub memory_bytes: u64,
    /// CPU usage in percent of one core.
    pub cpu_percent: f32,
}

/// The machine's host name.
pub fn hostname() -> Result<String, CapError> {
    Ok(wit::hostname()?)
}

/// The operating system.
pub fn os() -> Result<OsInfo, CapError> {
    let o = wit::os()?;
    Ok(OsInfo {
        family: o.family,
        name: o.name,
        version: o.version,
        kernel: o.kernel,
        arch: o.arch,
    })
}

/// The processor.
pub fn cpu() -> Result<CpuInfo, CapError> {
    let c = wit::cpu()?;
    Ok(CpuInfo {
        model: c.model,
        physical_cores: c.physical_cores,
        logical_cores: c.logical_cores,
    })
}

/// Memory and swap.
pub fn memory() -> Result<MemoryInfo, CapError> {
    let m = wit::memory()?;
    Ok(MemoryInfo {
        total_bytes: m.total_bytes,
        available_bytes: m.available_bytes,
        swap_total_bytes: m.swap_total_bytes,
        swap_free_bytes: m.swap_free_bytes,
    })
}

/// Mounted filesystems.
pub fn disks() -> Result<Vec<DiskInfo>, CapError> {
    Ok(wit::disks()?
        .into_iter()
        .map(|d| DiskInfo {
            mount_point: d.mount_point,
            device: d.device,
            filesystem: d.filesystem,
            total_bytes: d.total_bytes,
            available_bytes: d.available_bytes,
            removable: d.removable,
        })
        .collect())
}

/// Network interfaces.
pub fn network_interfaces() -> Result<Vec<NetworkInterface>, CapError> {
    Ok(wit::network_interfaces()?
        .into_iter()
        .map(|n| NetworkInterface {
            name: n.name,
            mac_address: n.mac_address,
            addresses: n.addresses,
        })
        .collect())
}

/// Time since the machine booted.
pub fn uptime() -> Result<Duration, CapError> {
    Ok(Duration::from_secs(wit::uptime_secs()?))
}

/// Running processes.
pub fn processes() -> Result<Vec<ProcessInfo>, CapError> {
    Ok(wit::processes()?
        .into_iter()
        .map(|p| ProcessInfo {
            pid: p.pid,
            name: p.name,
            memory_bytes: p.memory_bytes,
            cpu_percent: p.cpu_percent,
        })
        .collect())
}
