//! Headless Chromium for tests that look at what a page shows a person:
//! a screenshot at a given window size, the DOM after rendering, and the
//! screenshot's pixels. Each call uses a fresh profile directory (removed
//! afterwards), its own process group, and a timeout after which the whole
//! group is killed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The browser (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long one call may take.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Whether [`CHROMIUM`] is installed.
pub fn available() -> bool {
    Path::new(CHROMIUM).is_file()
}

/// A fresh directory for one browser run.
fn scratch_dir() -> Result<PathBuf, String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "chaos-chromium-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn file_url(html: &Path) -> Result<String, String> {
    let abs = std::fs::canonicalize(html).map_err(|e| format!("{}: {e}", html.display()))?;
    Ok(format!("file://{}", abs.display()))
}

/// Runs Chromium headless with `args` after the common flags, in `dir` (its
/// profile lives there); returns its standard output. Kills its process
/// group on [`TIMEOUT`].
fn run(dir: &Path, args: &[String]) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let open = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut cmd = Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .args(args)
    .stdin(Stdio::null())
    .stdout(open(&out_path)?)
    .stderr(open(&err_path)?)
    .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {CHROMIUM}: {e}"))?;
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!(
                    "{CHROMIUM} did not finish within {TIMEOUT:?}; killed. stderr: {}",
                    std::fs::read_to_string(&err_path).unwrap_or_default()
                ));
            }
            Err(e) => {
                let _ = killpg(group, Signal::SIGKILL);
                let _ = child.wait();
                return Err(format!("waiting for {CHROMIUM}: {e}"));
            }
        }
    };
    // Helpers it left behind (zygote, renderers) go with the group.
    let _ = killpg(group, Signal::SIGKILL);
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        return Err(format!(
            "{CHROMIUM} failed ({status}): {}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        ));
    }
    Ok(stdout)
}

/// Screenshots `html` in a `width` × `height` window; returns the PNG's path,
/// `html` with the extension `png`.
///
/// # Errors
/// Why Chromium could not make it (not installed, failed, timed out).
pub fn screenshot(html: &Path, width: u32, height: u32) -> Result<PathBuf, String> {
    let out = html.with_extension("png");
    let _ = std::fs::remove_file(&out);
    let dir = scratch_dir()?;
    let result = run(
        &dir,
        &[
            format!("--window-size={width},{height}"),
            format!("--screenshot={}", out.display()),
            file_url(html)?,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    if out.is_file() {
        Ok(out)
    } else {
        Err(format!(
            "{CHROMIUM} wrote no screenshot at {}",
            out.display()
        ))
    }
}

/// The DOM of `html` after Chromium has rendered it, serialised.
///
/// # Errors
/// Why Chromium could not make it.
pub fn dump_dom(html: &Path) -> Result<String, String> {
    let dir = scratch_dir()?;
    let result = run(&dir, &["--dump-dom".to_string(), file_url(html)?]);
    let _ = std::fs::remove_dir_all(&dir);
    let dom = result?;
    if dom.trim().is_empty() {
        return Err(format!("{CHROMIUM} dumped an empty DOM"));
    }
    Ok(dom)
}

/// An RGB image read from a PNG.
#[derive(Debug, Clone)]
pub struct Image {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Row-major pixels.
    pub pixels: Vec<[u8; 3]>,
}

/// `#rrggbb` as RGB.
///
/// # Panics
/// On text that is not `#` and six hex digits.
pub fn rgb(hex: &str) -> [u8; 3] {
    let h = hex.trim_start_matches('#');
    assert!(h.len() == 6, "not #rrggbb: {hex}");
    let byte = |i: usize| u8::from_str_radix(&h[i..i + 2], 16).expect("hex digits");
    [byte(0), byte(2), byte(4)]
}

impl Image {
    /// Reads the PNG at `path` (8-bit RGB or RGBA, or grey).
    ///
    /// # Errors
    /// Why it cannot be read or decoded.
    pub fn read(path: &Path) -> Result<Image, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder
            .read_info()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let size = reader
            .output_buffer_size()
            .ok_or_else(|| format!("{}: image too large", path.display()))?;
        let mut buf = vec![0; size];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let channels = info.color_type.samples();
        let data = &buf[..info.buffer_size()];
        let pixels = data
            .chunks_exact(channels)
            .map(|p| match channels {
                1 | 2 => [p[0], p[0], p[0]],
                _ => [p[0], p[1], p[2]],
            })
            .collect();
        Ok(Image {
            width: info.width,
            height: info.height,
            pixels,
        })
    }

    /// How many distinct colours it has.
    pub fn distinct_colours(&self) -> usize {
        let mut seen: std::collections::HashSet<[u8; 3]> = std::collections::HashSet::new();
        seen.extend(self.pixels.iter().copied());
        seen.len()
    }

    /// The share of pixels that are not (nearly) white.
    pub fn non_white_share(&self) -> f64 {
        let n = self
            .pixels
            .iter()
            .filter(|p| p.iter().any(|&c| c < 245))
            .count();
        n as f64 / self.pixels.len().max(1) as f64
    }

    /// How many pixels are exactly `colour`.
    pub fn count(&self, colour: [u8; 3]) -> usize {
        self.pixels.iter().filter(|&&p| p == colour).count()
    }
}
