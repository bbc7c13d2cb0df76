//! What this CPU can run, asked once at run time, and which kernel tier runs.
//!
//! tarjama is built for the x86-64 baseline (or any other target) and picks its kernels
//! when it starts, as candle does for its own quantized kernels: one binary runs on every
//! x86-64 CPU, and each CPU gets the widest kernels it has. `TARJAMA_KERNELS` forces a
//! tier (to compare them, or to work around a CPU that misreports a feature).

use std::sync::OnceLock;

/// The environment variable that forces a tier.
pub const KERNELS_VAR: &str = "TARJAMA_KERNELS";

/// A family of kernels, from the widest to the most portable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// AVX-512 F, BW and VNNI (Ice Lake, Sapphire Rapids, Zen 4 and later): 512-bit
    /// registers, `vpdpbusd` for the int8 dot products.
    Avx512,
    /// AVX2, FMA, F16C and AVX-VNNI (Alder Lake, Zen 5 client parts...): 256-bit
    /// registers with the VEX-encoded `vpdpbusd`.
    AvxVnni,
    /// AVX2, FMA and F16C (Haswell, Zen 1-3 and later): 256-bit registers, int8 dot
    /// products through `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// Plain Rust over 16-lane arrays, which the compiler vectorizes for whatever the
    /// build targets (SSE2 on the x86-64 baseline, NEON on aarch64).
    Scalar,
}

impl Tier {
    /// Every tier, widest first.
    pub const ALL: [Tier; 4] = [Tier::Avx512, Tier::AvxVnni, Tier::Avx2, Tier::Scalar];

    /// Its name, as `TARJAMA_KERNELS` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Avx512 => "avx512",
            Tier::AvxVnni => "avxvnni",
            Tier::Avx2 => "avx2",
            Tier::Scalar => "scalar",
        }
    }

    /// The tier called `name`.
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU has what the tier needs.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = || has!("avx2") && has!("fma") && has!("f16c");
            match self {
                Tier::Avx512 => avx2() && has!("avx512f") && has!("avx512bw") && has!("avx512vnni"),
                Tier::AvxVnni => avx2() && has!("avxvnni"),
                Tier::Avx2 => avx2(),
                Tier::Scalar => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Tier::Scalar
        }
    }

    /// The widest tier this CPU has.
    pub fn detected() -> Tier {
        Tier::ALL
            .into_iter()
            .find(|t| t.available())
            .unwrap_or(Tier::Scalar)
    }

    /// The tier the kernels use: [`Tier::detected`], or what `TARJAMA_KERNELS` asks for.
    /// Decided once per process.
    pub fn active() -> Tier {
        static ACTIVE: OnceLock<Tier> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let asked = std::env::var(KERNELS_VAR).ok();
            let (tier, warning) = choose(asked.as_deref());
            if let Some(warning) = warning {
                eprintln!("warning: {warning}");
            }
            tier
        })
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The tier for a `TARJAMA_KERNELS` value (`None`: unset), and a warning when the value
/// cannot be honoured. A tier the CPU lacks is never chosen: it would die on the first
/// instruction it does not have.
fn choose(asked: Option<&str>) -> (Tier, Option<String>) {
    let detected = Tier::detected();
    let Some(asked) = asked.filter(|v| !v.trim().is_empty()) else {
        return (detected, None);
    };
    match Tier::from_name(asked) {
        Some(tier) if tier.available() => (tier, None),
        Some(tier) => (
            detected,
            Some(format!(
                "{KERNELS_VAR}={asked}: this CPU lacks what the {tier} kernels need; using {detected}"
            )),
        ),
        None => (
            detected,
            Some(format!(
                "{KERNELS_VAR}={asked} is not a kernel tier (avx512, avxvnni, avx2, scalar); \
                 using {detected}"
            )),
        ),
    }
}

/// Whether the CPU has AMX (tiles for int8 and bf16 products), which changes what
/// candle's Q4_K kernels do.
pub fn has_amx() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8 (as candle checks it).
        let info = std::arch::x86_64::__cpuid_count(7, 0);
        info.edx & (1 << 24) != 0 || info.edx & (1 << 25) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether candle 0.11 multiplies quantized weights with its VNNI kernels here (its
/// repacked Q4_K and Q8_0 paths, where padding Q8_0 rows to whole 256-value blocks pays).
/// It honours `MISTRALRS_FORCE_AVX2=1` (its switch to test the AVX2 path), so this does
/// too.
pub fn candle_uses_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1") {
            return false;
        }
        has!("avx512vnni") && has!("avx512f") || has!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The features the kernels of any tier look at that this CPU has, for reports.
pub fn features() -> Vec<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let all = [
            ("sse4.1", has!("sse4.1")),
            ("avx2", has!("avx2")),
            ("fma", has!("fma")),
            ("f16c", has!("f16c")),
            ("avxvnni", has!("avxvnni")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vnni", has!("avx512vnni")),
            ("amx", has_amx()),
        ];
        all.into_iter()
            .filter(|&(_, on)| on)
            .map(|(name, _)| name)
            .collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// What the kernels' tests share (here, and in the crates whose kernels run on these
/// tiers, through the `testing` feature).
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    /// The tiers to test: all of them where the test kit finds their features (each
    /// missing one is a note, or a failure under `TARJAMA_REQUIRE_CPU=1`).
    pub fn tiers() -> Vec<crate::cpu::Tier> {
        use super::Tier;
        let needs = |tier: Tier| -> &'static [&'static str] {
            match tier {
                Tier::Avx512 => &["avx512f", "avx512bw", "avx512vnni", "avx2", "fma", "f16c"],
                Tier::AvxVnni => &["avxvnni", "avx2", "fma", "f16c"],
                Tier::Avx2 => &["avx2", "fma", "f16c"],
                Tier::Scalar => &[],
            }
        };
        Tier::ALL
            .into_iter()
            .filter(|&tier| {
                let found = needs(tier)
                    .iter()
                    .all(|&f| tarjama_testkit::require_cpu_feature(f));
                assert!(
                    !found || tier.available(),
                    "the kit found the features of {tier} but `available()` says no: the \
                     list above has drifted from `Tier::available`"
                );
                found
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for tier in Tier::ALL {
            assert_eq!(Tier::from_name(tier.name()), Some(tier));
        }
        assert_eq!(Tier::from_name(" AVX2 "), Some(Tier::Avx2));
        assert_eq!(Tier::from_name("sse"), None);
    }

    #[test]
    fn a_forced_tier_is_honoured_only_where_it_runs() {
        assert_eq!(choose(None), (Tier::detected(), None));
        assert_eq!(choose(Some("")), (Tier::detected(), None));
        assert_eq!(choose(Some("scalar")), (Tier::Scalar, None));
        for tier in Tier::ALL {
            let (got, warning) = choose(Some(tier.name()));
            if tier.available() {
                assert_eq!((got, warning), (tier, None));
            } else {
                assert_eq!(got, Tier::detected());
                assert!(warning.unwrap().contains("lacks"));
            }
        }
        let (got, warning) = choose(Some("neon2"));
        assert_eq!(got, Tier::detected());
        assert!(warning.unwrap().contains("not a kernel tier"));
    }
}
