//! The wasmtime engine shared by every run: component model, epoch interruption driven by a
//! ticker thread (so deadlines interrupt running wasm), bounded wasm stack, and the on-disk
//! precompiled cache keyed by component sha256 and the engine's compatibility hash.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use warden_core::limits::DEFAULT_WASM_STACK_BYTES;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; deadlines are checked at this granularity.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Core instances, memories and tables the pool holds per allowed component instance: a wasip2
/// Rust component instantiates 3 core modules with 1 memory, a componentize-py one a few more.
const CORE_INSTANCES_PER_INSTANCE: u32 = 16;
const MEMORIES_PER_INSTANCE: u32 = 4;
const TABLES_PER_INSTANCE: u32 = 8;

/// How hard Cranelift works on a component's code. Agents run optimized code; the plugin test
/// harness compiles a 12-18 MB interpreter component about a third faster unoptimized, with the
/// same behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeQuality {
    #[default]
    Optimized,
    QuickCompile,
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(DEFAULT_WASM_STACK_BYTES);
    config
}

/// Build the engine with wasmtime's on-demand instance allocator (each run maps and unmaps its
/// linear memory).
pub fn new_engine() -> wasmtime::Result<Engine> {
    new_engine_with(CodeQuality::Optimized)
}

/// Same, with the given code quality.
pub fn new_engine_with(quality: CodeQuality) -> wasmtime::Result<Engine> {
    Engine::new(&config_with(quality))
}

fn config_with(quality: CodeQuality) -> Config {
    let mut config = base_config();
    if quality == CodeQuality::QuickCompile {
        config.cranelift_opt_level(wasmtime::OptLevel::None);
    }
    config
}

/// Build the engine with the pooling instance allocator sized from the policy: slots for
/// `max-instances` concurrent plugin instances, each memory slot as large as `max-memory-mb`
/// (the `MemoryLimiter` still enforces each plugin's own grant, so the errors stay typed).
/// Reusing slots saves the mmap/munmap of linear memory per run. The pool reserves its virtual
/// address space up front (about 4 GiB per memory slot); when that reservation fails (a
/// `ulimit -v`, many runners in one process), the runner falls back to [`new_engine`].
pub fn new_pooled_engine(
    max_instances: u32,
    max_memory_bytes: u64,
    quality: CodeQuality,
) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE))
        .total_memories(max_instances.saturating_mul(MEMORIES_PER_INSTANCE))
        .total_tables(max_instances.saturating_mul(TABLES_PER_INSTANCE))
        // Fiber stacks serve async calls only (the runner's are sync); the default of 1000
        // costs a guard-page `mprotect` each when the engine is built (~5 ms).
        .total_stacks(max_instances)
        .max_memory_size(usize::try_from(max_memory_bytes).unwrap_or(usize::MAX));
    let mut config = config_with(quality);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine's epoch until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("warden-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map(drop)
            .unwrap_or_else(|e| {
                tracing::error!(
                    "cannot start the epoch ticker, deadlines will not interrupt wasm: {e}"
                )
            });
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Feeds `Hash` into sha256, for a key that is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Precompiled components on disk.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

pub use warden_core::report::CacheOutcome;

impl CompileCache {
    pub fn new(dir: &Path, engine: &Engine) -> CompileCache {
        let mut h = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = hex::encode(&h.0.finalize()[..8]);
        CompileCache {
            dir: dir.to_path_buf(),
            engine_key,
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// Load the precompiled component, or compile `bytes()` and store it for next time.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        bytes: impl FnOnce() -> Result<Vec<u8>, warden_core::error::RunError>,
    ) -> Result<(Component, CacheOutcome), warden_core::error::RunError> {
        let path = self.path(sha256);
        if path.exists() {
            match deserialize(engine, &path) {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!("discarding unusable precompiled {}: {e:#}", path.display())
                }
            }
        }
        let bytes = bytes()?;
        let compiled = engine.precompile_component(&bytes).map_err(|e| {
            warden_core::error::RunError::InvalidComponent {
                reason: format!("{e:#}"),
            }
        })?;
        if let Err(e) = warden_core::fsutil::write_atomic(&path, &compiled) {
            tracing::warn!(
                "cannot cache precompiled component at {}: {e}",
                path.display()
            );
        }
        let component = deserialize_fresh(engine, &compiled).map_err(|e| {
            warden_core::error::RunError::InvalidComponent {
                reason: format!("{e:#}"),
            }
        })?;
        Ok((component, CacheOutcome::Compiled))
    }
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is one this runner wrote (atomically) into its own data dir, named by the
    // component's sha256 and the engine's compatibility hash; wasmtime also checks the header.
    // Whoever can write the data dir can already replace the runner's own state.
    unsafe { Component::deserialize_file(engine, path) }
}

#[allow(unsafe_code)]
fn deserialize_fresh(engine: &Engine, compiled: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `compiled` was produced a moment ago by `precompile_component` on this engine.
    unsafe { Component::deserialize(engine, compiled) }
}
