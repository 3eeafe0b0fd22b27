//! A real full filesystem for the full-disk tests (the audit log's and the agent's): a small
//! tmpfs mounted over a test's data directory (the tests run as root, as CI does), filled to the
//! last page by a filler file and emptied again by removing it. Unmounted when dropped.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Big enough for the test plugins the tests install, small enough to fill in an instant.
pub const SIZE_BYTES: u64 = 64 << 20;

pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mount a tmpfs of [`SIZE_BYTES`] on `dir` (created first).
    pub fn mount(dir: &Path) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={SIZE_BYTES},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "these tests need a real full filesystem: mounting a tmpfs needs root \
             (CAP_SYS_ADMIN), as on the project's machines and CI: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Fill the filesystem: after this, no new page can be allocated on it.
    pub fn fill(&self) {
        let mut file = std::fs::File::create(self.filler()).expect("filler");
        let chunk = vec![0u8; 1 << 20];
        for size in [chunk.len(), 4096, 1] {
            while file.write_all(&chunk[..size]).is_ok() {}
        }
        let probe = std::fs::write(self.dir.join("probe"), b"x");
        let _ = std::fs::remove_file(self.dir.join("probe"));
        assert!(probe.is_err(), "the filesystem is full");
    }

    /// Give the space back.
    pub fn free(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process that still has a file open on it does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
