//! `warden:plugin/sysinfo`: machine facts, one granted category per function. The grant is
//! checked (and the call recorded) here, at the chokepoint; the facts come from the host
//! environment's [`SysinfoSource`](crate::sysinfo_source::SysinfoSource): the real machine, or a
//! test fixture.

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::sysinfo::{
    CpuInfo, DiskInfo, Host, MemoryInfo, NetworkInterface, OsInfo, ProcessInfo,
};
use crate::sysinfo_source::{self as source, SysinfoError};
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

impl From<SysinfoError> for CapFailure {
    fn from(e: SysinfoError) -> Self {
        CapFailure::Cap(match e {
            SysinfoError::Unsupported(why) => CapError::Unsupported(why),
            SysinfoError::Failed(why) => CapError::Failed(why),
        })
    }
}

impl From<source::OsInfo> for OsInfo {
    fn from(o: source::OsInfo) -> Self {
        OsInfo {
            family: o.family,
            name: o.name,
            version: o.version,
            kernel: o.kernel,
            arch: o.arch,
        }
    }
}

impl From<source::CpuInfo> for CpuInfo {
    fn from(c: source::CpuInfo) -> Self {
        CpuInfo {
            model: c.model,
            physical_cores: c.physical_cores,
            logical_cores: c.logical_cores,
        }
    }
}

impl From<source::MemoryInfo> for MemoryInfo {
    fn from(m: source::MemoryInfo) -> Self {
        MemoryInfo {
            total_bytes: m.total_bytes,
            available_bytes: m.available_bytes,
            swap_total_bytes: m.swap_total_bytes,
            swap_free_bytes: m.swap_free_bytes,
        }
    }
}

impl From<source::DiskInfo> for DiskInfo {
    fn from(d: source::DiskInfo) -> Self {
        DiskInfo {
            mount_point: d.mount_point,
            device: d.device,
            filesystem: d.filesystem,
            total_bytes: d.total_bytes,
            available_bytes: d.available_bytes,
            removable: d.removable,
        }
    }
}

impl From<source::NetworkInterface> for NetworkInterface {
    fn from(n: source::NetworkInterface) -> Self {
        NetworkInterface {
            name: n.name,
            mac_address: n.mac_address,
            addresses: n.addresses,
        }
    }
}

impl From<source::ProcessInfo> for ProcessInfo {
    fn from(p: source::ProcessInfo) -> Self {
        ProcessInfo {
            pid: p.pid,
            name: p.name,
            memory_bytes: p.memory_bytes,
            cpu_percent: p.cpu_percent,
        }
    }
}

fn all<T, U: From<T>>(items: Vec<T>) -> Vec<U> {
    items.into_iter().map(U::from).collect()
}

impl Host for HostState {
    fn hostname(&mut self) -> Result<String, CapFailure> {
        self.allow(SysinfoCategory::Hostname, "hostname")?;
        Ok(self.cx.env.sysinfo.hostname()?)
    }

    fn os(&mut self) -> Result<OsInfo, CapFailure> {
        self.allow(SysinfoCategory::Os, "os")?;
        Ok(self.cx.env.sysinfo.os()?.into())
    }

    fn cpu(&mut self) -> Result<CpuInfo, CapFailure> {
        self.allow(SysinfoCategory::Cpu, "cpu")?;
        Ok(self.cx.env.sysinfo.cpu()?.into())
    }

    fn memory(&mut self) -> Result<MemoryInfo, CapFailure> {
        self.allow(SysinfoCategory::Memory, "memory")?;
        Ok(self.cx.env.sysinfo.memory()?.into())
    }

    fn disks(&mut self) -> Result<Vec<DiskInfo>, CapFailure> {
        self.allow(SysinfoCategory::Disks, "disks")?;
        Ok(all(self.cx.env.sysinfo.disks()?))
    }

    fn network_interfaces(&mut self) -> Result<Vec<NetworkInterface>, CapFailure> {
        self.allow(SysinfoCategory::Network, "network-interfaces")?;
        Ok(all(self.cx.env.sysinfo.network_interfaces()?))
    }

    fn uptime_secs(&mut self) -> Result<u64, CapFailure> {
        self.allow(SysinfoCategory::Uptime, "uptime-secs")?;
        Ok(self.cx.env.sysinfo.uptime_secs()?)
    }

    fn processes(&mut self) -> Result<Vec<ProcessInfo>, CapFailure> {
        self.allow(SysinfoCategory::Processes, "processes")?;
        Ok(all(self.cx.env.sysinfo.processes()?))
    }
}
