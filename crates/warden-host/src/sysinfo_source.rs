//! Where `sysinfo` facts come from: the real machine ([`RealSysinfo`], through the portable
//! `sysinfo` crate on Linux, Windows and macOS) or a test fixture standing in for it (`testkit`).
//! The capability (`capabilities::sysinfo`) checks the grant and records the call before it asks
//! the source, so both are asked only what the grant allows.
//!
//! The types are the facts themselves, not the WIT bindings: they are what a fixture writes
//! (`Deserialize`, kebab-case keys, unknown keys refused) and what the capability hands the plugin.

use serde::{Deserialize, Serialize};
use sysinfo::{Disks, Networks, ProcessesToUpdate, System};

/// Why a source cannot give a category's facts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SysinfoError {
    /// This host does not provide the category (the plugin sees `cap-error::unsupported`).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The host tried and failed (the plugin sees `cap-error::failed`).
    #[error("{0}")]
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> SysinfoError {
    SysinfoError::Failed(e.to_string())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OsInfo {
    /// `linux`, `windows`, `macos`, ...
    #[serde(default)]
    pub family: String,
    /// Distribution or product name, e.g. `Debian GNU/Linux`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kernel: String,
    #[serde(default)]
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CpuInfo {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub physical_cores: Option<u32>,
    pub logical_cores: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MemoryInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    #[serde(default)]
    pub swap_total_bytes: u64,
    #[serde(default)]
    pub swap_free_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DiskInfo {
    /// Mount point (`/`, `/var`) or drive root (`C:\`).
    pub mount_point: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub filesystem: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
    #[serde(default)]
    pub removable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkInterface {
    pub name: String,
    #[serde(default)]
    pub mac_address: String,
    /// Addresses in CIDR notation.
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub cpu_percent: f32,
}

/// The machine's facts, one method per granted category (`SysinfoCategory`). Called only after
/// the grant allowed the category.
pub trait SysinfoSource: Send + Sync {
    fn hostname(&self) -> Result<String, SysinfoError>;
    fn os(&self) -> Result<OsInfo, SysinfoError>;
    fn cpu(&self) -> Result<CpuInfo, SysinfoError>;
    fn memory(&self) -> Result<MemoryInfo, SysinfoError>;
    /// The mounted filesystems.
    fn disks(&self) -> Result<Vec<DiskInfo>, SysinfoError>;
    /// The network interfaces, sorted by name.
    fn network_interfaces(&self) -> Result<Vec<NetworkInterface>, SysinfoError>;
    fn uptime_secs(&self) -> Result<u64, SysinfoError>;
    /// The running processes, sorted by pid.
    fn processes(&self) -> Result<Vec<ProcessInfo>, SysinfoError>;
}

/// The real machine, read afresh on every call (facts change between calls: memory, processes).
#[derive(Debug, Default)]
pub struct RealSysinfo;

fn new_system() -> Result<System, SysinfoError> {
    System::new().map_err(failed)
}

impl SysinfoSource for RealSysinfo {
    fn hostname(&self) -> Result<String, SysinfoError> {
        System::host_name().map_err(failed)
    }

    fn os(&self) -> Result<OsInfo, SysinfoError> {
        Ok(OsInfo {
            family: std::env::consts::OS.to_string(),
            name: System::name().unwrap_or_default(),
            version: System::os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
        })
    }

    fn cpu(&self) -> Result<CpuInfo, SysinfoError> {
        let mut sys = new_system()?;
        sys.refresh_cpu_all();
        let model = sys
            .cpus()
            .first()
            .map(|c| c.brand().to_string())
            .unwrap_or_default();
        Ok(CpuInfo {
            model,
            physical_cores: System::physical_core_count()
                .ok()
                .and_then(|n| u32::try_from(n).ok()),
            logical_cores: u32::try_from(sys.cpus().len()).unwrap_or(u32::MAX),
        })
    }

    fn memory(&self) -> Result<MemoryInfo, SysinfoError> {
        let mut sys = new_system()?;
        sys.refresh_memory();
        Ok(MemoryInfo {
            total_bytes: sys.total_memory(),
            available_bytes: sys.available_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_free_bytes: sys.free_swap(),
        })
    }

    fn disks(&self) -> Result<Vec<DiskInfo>, SysinfoError> {
        let disks = Disks::new_with_refreshed_list().map_err(failed)?;
        Ok(disks
            .iter()
            .map(|d| DiskInfo {
                mount_point: d.mount_point().to_string_lossy().into_owned(),
                device: d.name().to_string_lossy().into_owned(),
                filesystem: d.file_system().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                available_bytes: d.available_space(),
                removable: d.is_removable(),
            })
            .collect())
    }

    fn network_interfaces(&self) -> Result<Vec<NetworkInterface>, SysinfoError> {
        let nets = Networks::new_with_refreshed_list().map_err(failed)?;
        let mut out: Vec<NetworkInterface> = nets
            .iter()
            .map(|(name, data)| NetworkInterface {
                name: name.to_string_lossy().into_owned(),
                mac_address: data.mac_address().to_string(),
                addresses: data
                    .ip_networks()
                    .iter()
                    .map(|n| format!("{}/{}", n.addr, n.prefix))
                    .collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn uptime_secs(&self) -> Result<u64, SysinfoError> {
        System::uptime().map_err(failed)
    }

    fn processes(&self) -> Result<Vec<ProcessInfo>, SysinfoError> {
        let mut sys = new_system()?;
        sys.refresh_processes(ProcessesToUpdate::All, true);
        let mut out: Vec<ProcessInfo> = sys
            .processes()
            .iter()
            .map(|(pid, p)| ProcessInfo {
                pid: pid.as_u32(),
                name: p.name().to_string_lossy().into_owned(),
                memory_bytes: p.memory(),
                cpu_percent: p.cpu_usage(),
            })
            .collect();
        out.sort_by_key(|p| p.pid);
        Ok(out)
    }
}
