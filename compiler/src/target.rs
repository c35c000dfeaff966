//! Target profiles: data in `targets/*.toml`, deserialised with serde. `--target NAME`
//! picks a shipped profile; `--target path/to/file.toml` loads a user's own.
#![deny(clippy::indexing_slicing)]
use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// The shipped profiles, embedded so the binary works from any directory.
const SHIPPED: &[(&str, &str)] = &[
    ("x86", include_str!("../../targets/x86.toml")),
    ("x86-avx512", include_str!("../../targets/x86-avx512.toml")),
    ("rpi4", include_str!("../../targets/rpi4.toml")),
    ("jetson", include_str!("../../targets/jetson.toml")),
    ("cortex-m55", include_str!("../../targets/cortex-m55.toml")),
];

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TargetProfile {
    pub name: String,
    pub description: String,
    /// Rust target triple of the generated crate's intended build.
    pub triple: String,
    /// `-C target-cpu` for that build.
    pub cpu: String,
    /// Target features the kernels may assume.
    #[serde(default)]
    pub features: Vec<String>,
    /// Width of one SIMD register in bits (0: scalar only).
    pub vector_bits: u32,
    /// Number of SIMD (or FP) registers.
    pub vector_registers: u32,
    pub cache: Cache,
    pub memory: Memory,
    /// SHA-256 of the profile's TOML text (for the integrity manifest).
    #[serde(skip)]
    pub source_sha256: String,
    /// Optional overrides of the derived GEMM tiles (see [`TargetProfile::gemm_tiling`]).
    #[serde(default)]
    pub gemm: GemmOverrides,
    /// How `slm-aot verify` emulates the target when this machine cannot run it.
    #[serde(default)]
    pub emulator: Emulator,
    /// The default `--quantize` of builds for this profile.
    #[serde(default)]
    pub quantize: QuantDefault,
}

/// `[quantize]` in a profile: what a build without `--quantize` does (`--quantize MODE`
/// overrides it, `--quantize none` builds float).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuantDefault {
    /// Any `--quantize` mode but `int8-static` (`int8`, `int4`, `f16`, or `none`: float, as
    /// when absent); `int8-static` needs a calibration set, which a profile cannot name.
    pub mode: Option<String>,
    /// int4: the default `--group-size` (32, 64 or 128).
    pub group_size: Option<usize>,
    /// int4: the default `--scales` (`f16` or `f32`).
    pub scales: Option<String>,
}

/// `[emulator]` in a profile: the QEMU model `slm-aot verify --target` runs the build on.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Emulator {
    /// `-cpu` of QEMU's user-mode emulator (`qemu-aarch64`) for a Linux triple; `max` when
    /// absent.
    pub cpu: Option<String>,
    /// `-machine` of `qemu-system-arm` for a bare-metal triple (only `mps3-an547`, whose
    /// memory map the firmware runner knows, is supported).
    pub machine: Option<String>,
}

/// `[gemm]` in a profile: any of `mr`, `kc`, `mc` replaces the derived value.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GemmOverrides {
    pub mr: Option<usize>,
    pub kc: Option<usize>,
    pub mc: Option<usize>,
}

/// The GEMM kernel and tiles chosen for a target.
/// The quantized kernels a profile selects (`TargetProfile::quant_tiling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantTiling {
    /// `avx512vnni`, `avx2`, `dotprod`, `neon` or `portable`, for reports.
    pub kernel: &'static str,
    /// Panel width of int8 weight blobs.
    pub i8_nr: usize,
    /// Panel width of int4 weight blobs.
    pub q4_nr: usize,
    pub tiles: runtime_core::kernels::gemm::Tiles,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmTiling {
    /// The micro-kernel family: `avx512`, `avx2`, `neon` or `portable`.
    pub kernel: &'static str,
    /// Register block: `mr` rows × `nr` columns of the output.
    pub mr: usize,
    pub nr: usize,
    /// Depth of a cache block: a `kc×nr` panel of the weight stays in L1.
    pub kc: usize,
    /// Rows of a cache block: an `mc×kc` block of the activations stays in L2.
    pub mc: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    pub l1d_bytes: usize,
    pub l2_bytes: usize,
    #[serde(default)]
    pub l3_bytes: usize,
    pub line_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM available to the arena (and state).
    pub ram_bytes: usize,
    /// Read-only storage available to weights and code.
    pub flash_bytes: usize,
    /// Where weights live: "ram" (loaded with the program) or "flash" (read in place).
    pub weights_in: String,
    /// Linker section for the weight blob ("" keeps the default `.rodata`).
    #[serde(default)]
    pub weights_section: String,
    /// Alignment in bytes the target's vector loads want for weights and arena buffers (a
    /// power of two, at most [`PLAN_ALIGNMENT`]: the planner places every tensor on a
    /// 64-byte boundary, which satisfies any such value).
    #[serde(default = "default_alignment")]
    pub alignment_bytes: usize,
    /// How the generated crate carries its weight blob (`--weights-embed`).
    #[serde(default)]
    pub weights_embed: WeightsEmbed,
}

/// How a generated crate carries its weight blob: `include_bytes!` into a static (rustc
/// holds ≈ 15× the blob while compiling it), or a static library that the crate's `build.rs`
/// streams from `weights.bin` and `lib.rs` declares with `rt::weights_in_object!` (rustc
/// never reads the blob; ELF targets only). `auto` picks the library from
/// [`WeightsEmbed::OBJECT_MIN_BYTES`] up.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WeightsEmbed {
    #[default]
    Auto,
    Bytes,
    Object,
}

impl WeightsEmbed {
    /// Blobs from this size up are linked as a library under `auto`.
    pub const OBJECT_MIN_BYTES: usize = 16 << 20;

    /// Parse a `--weights-embed` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "bytes" => Some(Self::Bytes),
            "object" => Some(Self::Object),
            _ => None,
        }
    }

    /// Whether a blob of `weight_bytes` is linked as a library.
    pub fn uses_object(self, weight_bytes: usize) -> bool {
        match self {
            Self::Auto => weight_bytes >= Self::OBJECT_MIN_BYTES,
            Self::Bytes => false,
            Self::Object => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Bytes => "bytes",
            Self::Object => "object",
        }
    }
}

/// The alignment of every weight and arena offset in a plan.
pub const PLAN_ALIGNMENT: usize = crate::plan::ALIGN;

fn default_alignment() -> usize {
    PLAN_ALIGNMENT
}

impl TargetProfile {
    /// Resolve `--target`: a shipped name or a path to a `.toml` profile.
    pub fn load(spec: &str) -> Result<TargetProfile> {
        if let Some((_, text)) = SHIPPED.iter().find(|(name, _)| *name == spec) {
            return Self::parse(text, spec);
        }
        let path = Path::new(spec);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            return Self::parse(&text, spec);
        }
        let names: Vec<&str> = SHIPPED.iter().map(|(n, _)| *n).collect();
        Err(Error::Usage(format!(
            "unknown target `{spec}`: use one of {names:?} or a path to a profile .toml"
        )))
    }

    fn parse(text: &str, origin: &str) -> Result<TargetProfile> {
        let mut profile: TargetProfile = toml::from_str(text)
            .map_err(|e| Error::Usage(format!("target profile `{origin}` is invalid: {e}")))?;
        profile.source_sha256 = crate::manifest::hex_digest(text.as_bytes());
        let align = profile.memory.alignment_bytes;
        if !align.is_power_of_two() || align > PLAN_ALIGNMENT {
            return Err(Error::Usage(format!(
                "target profile `{origin}`: memory.alignment_bytes = {align} must be a power of \
                 two no larger than {PLAN_ALIGNMENT} (the planner's alignment)"
            )));
        }
        let q = &profile.quantize;
        let mode_ok = match q.mode.as_deref() {
            None | Some("none") => true,
            Some(m) => crate::quantize::QuantMode::parse(m)
                .is_some_and(|m| m != crate::quantize::QuantMode::Int8Static),
        };
        if !mode_ok
            || !matches!(q.group_size, None | Some(32 | 64 | 128))
            || !matches!(q.scales.as_deref(), None | Some("f16" | "f32"))
        {
            return Err(Error::Usage(format!(
                "target profile `{origin}`: [quantize] {q:?}: mode must be \"int8\", \"int4\", \"f16\" \
                 or \"none\" (int8-static needs --calibration, so it cannot be a default), \
                 group_size 32, 64 or 128, scales \"f16\" or \"f32\""
            )));
        }
        if !matches!(profile.memory.weights_in.as_str(), "ram" | "flash") {
            return Err(Error::Usage(format!(
                "target profile `{origin}`: memory.weights_in = {:?} must be \"ram\" or \"flash\"",
                profile.memory.weights_in
            )));
        }
        Ok(profile)
    }

    fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// The GEMM micro-kernel this profile's features select, and tiles derived from its
    /// registers and caches: `nr` is two vectors; `mr` uses the registers left after two
    /// `B` vectors and one broadcast (capped by the kernel); `kc` keeps a `kc×nr` weight panel
    /// in half of L1; `mc` keeps an `mc×kc` activation block in half of L2. `[gemm]` in the
    /// profile overrides any of `mr`, `kc`, `mc`.
    pub fn gemm_tiling(&self) -> GemmTiling {
        let x86 = self.triple.starts_with("x86_64");
        let arm64 = self.triple.starts_with("aarch64");
        let (kernel, nr, max_mr): (&'static str, usize, usize) = if x86 && self.has("avx512f") {
            ("avx512", 32, 14)
        } else if x86 && self.has("avx2") && self.has("fma") {
            ("avx2", 16, 6)
        } else if arm64 && self.has("neon") {
            ("neon", 8, 12)
        } else {
            ("portable", 8, 4)
        };
        let vectors_per_row = (nr * 32).div_ceil(self.vector_bits.max(32) as usize);
        let free = (self.vector_registers as usize).saturating_sub(vectors_per_row + 1);
        let derived_mr = (free / vectors_per_row).clamp(1, max_mr);
        let mr = self.gemm.mr.unwrap_or(derived_mr).clamp(1, max_mr);
        let l1 = if self.cache.l1d_bytes == 0 {
            16384
        } else {
            self.cache.l1d_bytes
        };
        let l2 = if self.cache.l2_bytes == 0 {
            4 * l1
        } else {
            self.cache.l2_bytes
        };
        let derived_kc = ((l1 / 2) / (nr * 4)) / 8 * 8;
        let kc = self.gemm.kc.unwrap_or(derived_kc.clamp(16, 1024)).max(1);
        let derived_mc = ((l2 / 2) / (kc * 4)) / mr * mr;
        let mc = self.gemm.mc.unwrap_or(derived_mc.clamp(mr, 4096)).max(1);
        GemmTiling {
            kernel,
            mr,
            nr,
            kc,
            mc,
        }
    }

    /// The quantized GEMM kernels this profile's features select and the panel widths their
    /// weight blobs are packed for (int8, int4: runtime-core's `qgemm_nr_for`/`q4_nr_for`
    /// rule); the register and cache tiles are the f32 GEMM's (`gemm_tiling`).
    pub fn quant_tiling(&self) -> QuantTiling {
        use runtime_core::kernels::qgemm;
        let arch = self.triple.split('-').next().unwrap_or("");
        let features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        let (x86, arm64) = (arch == "x86_64", arch == "aarch64");
        let kernel = if x86 && self.has("avx512vnni") && self.has("avx512bw") {
            "avx512vnni"
        } else if x86 && (self.has("avx2") || self.has("avx512f")) {
            "avx2"
        } else if arm64 && self.has("dotprod") {
            "dotprod"
        } else if arm64 {
            "neon"
        } else {
            "portable"
        };
        let (i8_nr, q4_nr) = (
            qgemm::qgemm_nr_for(arch, &features),
            qgemm::q4_nr_for(arch, &features),
        );
        let g = self.gemm_tiling();
        QuantTiling {
            kernel,
            i8_nr,
            q4_nr,
            tiles: runtime_core::kernels::gemm::Tiles {
                mr: g.mr,
                kc: g.kc,
                mc: g.mc,
            },
        }
    }

    pub fn shipped_names() -> Vec<&'static str> {
        SHIPPED.iter().map(|(n, _)| *n).collect()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn quantized_panel_widths_follow_the_isa() {
        let q = |name: &str| {
            let t = TargetProfile::load(name).unwrap().quant_tiling();
            (t.kernel, t.i8_nr, t.q4_nr)
        };
        assert_eq!(q("x86"), ("avx2", 8, 16));
        assert_eq!(q("x86-avx512"), ("avx512vnni", 32, 32));
        assert_eq!(q("jetson"), ("dotprod", 16, 16));
        assert_eq!(q("rpi4"), ("neon", 8, 16));
        assert_eq!(q("cortex-m55"), ("portable", 16, 16));
    }

    #[test]
    fn every_shipped_profile_parses() {
        for name in TargetProfile::shipped_names() {
            let p = TargetProfile::load(name).unwrap();
            assert_eq!(p.name, name);
        }
        assert!(TargetProfile::load("no-such-target").is_err());
    }

    #[test]
    fn alignment_and_weights_in_are_checked_and_emulators_named() {
        let m55 = TargetProfile::load("cortex-m55").unwrap();
        assert_eq!(m55.memory.alignment_bytes, 16);
        assert_eq!(m55.emulator.machine.as_deref(), Some("mps3-an547"));
        assert_eq!(
            TargetProfile::load("rpi4").unwrap().emulator.cpu.as_deref(),
            Some("cortex-a72")
        );
        let text = include_str!("../../targets/rpi4.toml");
        let without = text.replace("alignment_bytes = 16\n", "");
        let p = TargetProfile::parse(&without, "t").unwrap();
        assert_eq!(p.memory.alignment_bytes, PLAN_ALIGNMENT);
        for bad in ["alignment_bytes = 128", "alignment_bytes = 24"] {
            let e = TargetProfile::parse(&text.replace("alignment_bytes = 16", bad), "t");
            assert!(e.unwrap_err().to_string().contains("power of"), "{bad}");
        }
        let e = TargetProfile::parse(&text.replace("\"ram\"", "\"rom\""), "t");
        assert!(e.unwrap_err().to_string().contains("weights_in"));
    }

    #[test]
    fn quantize_defaults_are_checked() {
        assert_eq!(
            TargetProfile::load("cortex-m55")
                .unwrap()
                .quantize
                .mode
                .as_deref(),
            Some("int8")
        );
        assert_eq!(TargetProfile::load("x86").unwrap().quantize.mode, None);
        let text = include_str!("../../targets/rpi4.toml");
        let with = |q: &str| TargetProfile::parse(&format!("{text}\n[quantize]\n{q}\n"), "t");
        let p = with("mode = \"int4\"\ngroup_size = 64\nscales = \"f32\"").unwrap();
        assert_eq!(p.quantize.group_size, Some(64));
        // Every mode `--quantize` takes but int8-static (which needs a calibration set).
        for mode in ["int8", "int4", "f16", "none"] {
            let p = with(&format!("mode = \"{mode}\"")).unwrap();
            assert_eq!(p.quantize.mode.as_deref(), Some(mode));
        }
        for bad in [
            "mode = \"int8-static\"",
            "mode = \"fp16\"",
            "mode = \"int4\"\ngroup_size = 48",
            "scales = \"bf16\"",
            "bits = 4",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn gemm_tiles_follow_registers_and_caches() {
        let t = |name: &str| TargetProfile::load(name).unwrap().gemm_tiling();
        let avx512 = t("x86-avx512");
        assert_eq!((avx512.kernel, avx512.mr, avx512.nr), ("avx512", 14, 32));
        assert_eq!(avx512.kc, 192);
        let avx2 = t("x86");
        assert_eq!(
            (avx2.kernel, avx2.mr, avx2.nr, avx2.kc),
            ("avx2", 6, 16, 256)
        );
        assert_eq!(t("rpi4").kernel, "neon");
        assert_eq!(t("cortex-m55").kernel, "portable");
        let mut p = TargetProfile::load("x86").unwrap();
        p.gemm.kc = Some(64);
        assert_eq!(p.gemm_tiling().kc, 64);
    }
}
