//! Minimal wasmtime hosts for the same trivial component: the floor the runner is compared with,
//! and variants that add, one at a time, the wasmtime-level work `PluginManager::run` does per run, so
//! the difference between two variants is what that piece costs.
//!
//! They use the runner's generated bindings (`warden_host::bindings`, plain `wasmtime::bindgen!`
//! output) to call `check`, which is what any typed host would do. The trivial component imports
//! only the type-only `warden:plugin/types` instance and WASI, so no runner code is linked.

use anyhow::{Context, bail};
use std::path::Path;
use warden_host::bindings::check;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Which of the runner's per-run wasmtime work a bare host does.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub name: &'static str,
    pub engine: EngineKind,
    /// WASI context like the runner's: captured stdout/stderr pipes, no network.
    pub runner_wasi: bool,
    /// A `ResourceLimiter` and an epoch-deadline callback on the store, like the runner's.
    pub limiter_and_epoch: bool,
    /// Look the `check` export up on every run (`GuestIndices::new`) instead of once.
    pub indices_per_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// `Config::new()`: wasmtime's defaults (on-demand allocator, no epoch interruption).
    Default,
    /// `warden_host::engine::new_engine()`: epoch interruption and the runner's stack limit.
    Warden,
    /// The runner's engine settings plus the pooling instance allocator.
    WardenPooling,
}

/// The floor: wasmtime's defaults, a WASI context granting nothing, the export looked up once.
pub const FLOOR: Variant = Variant {
    name: "bare wasmtime (floor)",
    engine: EngineKind::Default,
    runner_wasi: false,
    limiter_and_epoch: false,
    indices_per_run: false,
};

/// The index in [`ABLATION`] of the bare host doing all of the runner's per-run wasmtime work
/// (with the pooling allocator, as the runner's engine has it).
pub const RUNNER_WORK: usize = 4;

/// From the floor to the runner's wasmtime work, one piece at a time.
pub const ABLATION: [Variant; 5] = [
    FLOOR,
    Variant {
        name: "+ runner's engine config (epoch interruption, stack limit)",
        engine: EngineKind::Warden,
        ..FLOOR
    },
    Variant {
        name: "+ runner's WASI ctx (stdout/stderr pipes)",
        engine: EngineKind::Warden,
        runner_wasi: true,
        ..FLOOR
    },
    Variant {
        name: "+ memory limiter, epoch callback, export lookup per run",
        engine: EngineKind::Warden,
        runner_wasi: true,
        limiter_and_epoch: true,
        indices_per_run: true,
    },
    Variant {
        name: "+ pooling instance allocator (as in the runner)",
        engine: EngineKind::WardenPooling,
        runner_wasi: true,
        limiter_and_epoch: true,
        indices_per_run: true,
    },
];

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The runner's own limiter, so the call overhead is comparable.
type Limiter = warden_host::capabilities::MemoryLimiter;

/// A compiled component ready to instantiate under one variant. Shareable across threads.
pub struct BareHost {
    variant: Variant,
    engine: Engine,
    pre: InstancePre<BareState>,
    indices: check::GuestIndices,
}

fn engine(kind: EngineKind) -> anyhow::Result<Engine> {
    match kind {
        EngineKind::Default => Engine::new(&Config::new()),
        EngineKind::Warden => warden_host::engine::new_engine(),
        EngineKind::WardenPooling => {
            // Same settings as `warden_host::engine::new_engine`, plus the pool. Slots are sized for
            // the runner's largest memory grant; the counts bound concurrent instances.
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(256)
                .total_core_instances(256)
                .total_memories(256)
                .total_tables(256)
                .max_memory_size((warden_core::limits::DEFAULT_MAX_MEMORY_BYTES) as usize);
            let mut config = Config::new();
            config
                .wasm_component_model(true)
                .epoch_interruption(true)
                .max_wasm_stack(warden_core::limits::DEFAULT_WASM_STACK_BYTES)
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            Engine::new(&config)
        }
    }
    .map_err(anyhow::Error::from)
}

impl BareHost {
    pub fn new(variant: Variant, component_file: &Path) -> anyhow::Result<BareHost> {
        let engine =
            engine(variant.engine).with_context(|| format!("engine for `{}`", variant.name))?;
        let component = Component::from_file(&engine, component_file)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("compiling {}", component_file.display()))?;
        let mut linker = Linker::<BareState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // The trivial guest imports `types` for its record types only: an empty instance
        // satisfies it. A guest that calls a capability would fail here, which is intended.
        let types = format!(
            "{}/types@{}",
            warden_core::contract::PACKAGE,
            warden_core::contract::PACKAGE_VERSION
        );
        linker.instance(&types)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the bare host links only WASI: the guest must import no capability")?;
        let indices = check::GuestIndices::new(&pre)?;
        Ok(BareHost {
            variant,
            engine,
            pre,
            indices,
        })
    }

    pub fn name(&self) -> &'static str {
        self.variant.name
    }

    /// Instantiate in a fresh store, call `check("{}")`, drop everything.
    pub fn run_once(&self) -> anyhow::Result<()> {
        let v = &self.variant;
        let wasi = if v.runner_wasi {
            let cap = warden_core::limits::DEFAULT_LOG_BYTES;
            WasiCtxBuilder::new()
                .stdout(MemoryOutputPipe::new(cap))
                .stderr(MemoryOutputPipe::new(cap))
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        } else {
            WasiCtx::builder().build()
        };
        let state = BareState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                limit_bytes: warden_core::limits::DEFAULT_MEMORY_BYTES,
                hit: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        if v.limiter_and_epoch {
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            // Nothing advances this engine's epoch, so the callback never runs; what is measured
            // is the cost of having it, as in the runner between its 5 ms ticks.
            store.epoch_deadline_callback(|_| Ok(wasmtime::UpdateDeadline::Continue(1)));
        } else if v.engine != EngineKind::Default {
            // Epoch interruption is compiled in; the deadline just never passes.
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let instance = self.pre.instantiate(&mut store)?;
        let guest = if v.indices_per_run {
            check::GuestIndices::new(&self.pre)?.load(&mut store, &instance)?
        } else {
            self.indices.load(&mut store, &instance)?
        };
        let result = guest.call_check(&mut store, "{}")?;
        match result {
            Ok(r) if r.status == check::Status::Ok => Ok(()),
            Ok(r) => bail!("trivial check returned {:?}: {}", r.status, r.summary),
            Err(e) => bail!("trivial check failed: {}: {}", e.code, e.message),
        }
    }
}
