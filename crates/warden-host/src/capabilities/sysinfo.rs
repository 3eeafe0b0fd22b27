//! `warden:plugin/sysinfo`: machine facts, one granted category per function. Portable through
//! the `sysinfo` crate (Linux, Windows, macOS).

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::sysinfo::{
    CpuInfo, DiskInfo, Host, MemoryInfo, NetworkInterface, OsInfo, ProcessInfo,
};
use sysinfo::{Disks, Networks, ProcessesToUpdate, System};
use warden_core::grant::Operation;
use warden_core::manifest::SysinfoCategory;

impl HostState {
    fn allow(
        &mut self,
        category: SysinfoCategory,
        function: &'static str,
    ) -> Result<(), CapFailure> {
        self.cx.authorize(
            Operation::Sysinfo { category },
            function,
            category.as_str(),
            &[],
        )
    }
}

fn failed(e: impl std::fmt::Display) -> CapFailure {
    CapError::Failed(e.to_string()).into()
}

fn new_system() -> Result<System, CapFailure> {
    System::new().map_err(failed)
}

impl Host for HostState {
    fn hostname(&mut self) -> Result<String, CapFailure> {
        self.allow(SysinfoCategory::Hostname, "hostname")?;
        System::host_name().map_err(failed)
    }

    fn os(&mut self) -> Result<OsInfo, CapFailure> {
        self.allow(SysinfoCategory::Os, "os")?;
        Ok(OsInfo {
            family: std::env::consts::OS.to_string(),
            name: System::name().unwrap_or_default(),
            version: System::os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
        })
    }

    fn cpu(&mut self) -> Result<CpuInfo, CapFailure> {
        self.allow(SysinfoCategory::Cpu, "cpu")?;
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

    fn memory(&mut self) -> Result<MemoryInfo, CapFailure> {
        self.allow(SysinfoCategory::Memory, "memory")?;
        let mut sys = new_system()?;
        sys.refresh_memory();
        Ok(MemoryInfo {
            total_bytes: sys.total_memory(),
            available_bytes: sys.available_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_free_bytes: sys.free_swap(),
        })
    }

    fn disks(&mut self) -> Result<Vec<DiskInfo>, CapFailure> {
        self.allow(SysinfoCategory::Disks, "disks")?;
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

    fn network_interfaces(&mut self) -> Result<Vec<NetworkInterface>, CapFailure> {
        self.allow(SysinfoCategory::Network, "network-interfaces")?;
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

    fn uptime_secs(&mut self) -> Result<u64, CapFailure> {
        self.allow(SysinfoCategory::Uptime, "uptime-secs")?;
        System::uptime().map_err(failed)
    }

    fn processes(&mut self) -> Result<Vec<ProcessInfo>, CapFailure> {
        self.allow(SysinfoCategory::Processes, "processes")?;
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
