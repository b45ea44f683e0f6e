"""Kernel times: a roofline per kernel with an efficiency per chip and kernel class.

time = max(FLOPs / (peak * efficiency * shape factor), bytes / (HBM bandwidth * memory
efficiency)) + a per-kernel overhead. The shape factor is what small GEMMs lose to tile and wave
quantization (a 128 x 128 output tile per compute unit, as CUTLASS-style kernels use) and to a
short reduction dimension. The efficiencies are chip properties (`kernel_efficiency` in the
chip catalog); where a chip gives none the defaults below apply. They are estimates calibrated
on the Megatron-LM and Korthikanti et al. A100 runs (tests/validation) and say so.
"""

import math
from dataclasses import dataclass

from podsim.specs.chips import Chip

TILE = 128  # output tile edge of a tensor-core GEMM
K_HALF = 64  # reduction length at which a GEMM reaches half its asymptotic efficiency

# Fraction of the dense peak (or of HBM bandwidth) a large kernel of each class sustains, for
# chips whose catalog entry gives none. ESTIMATES for current software (cuBLAS-class GEMMs,
# FlashAttention-2/3, grouped GEMMs for MoE); the A100 entry carries calibrated values.
DEFAULT_EFFICIENCY = {
    "gemm": 0.70,
    "grouped_gemm": 0.55,
    "attention": 0.45,
    "memory": 0.80,
}
KERNEL_OVERHEAD_S = 4e-6  # launch and tail per kernel (estimate)

# Where an efficiency comes from: "calibrated" (fitted on published runs of this chip by a
# script in tools/; the catalog's source for kernel_efficiency starts with CALIBRATED),
# "estimated" (a catalog entry from other public figures) or "default" (DEFAULT_EFFICIENCY:
# estimates for NVIDIA Hopper-class software, not measured on this chip).
PROVENANCES = ("calibrated", "estimated", "default")

ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1, "fp32": 4}


@dataclass(frozen=True)
class KernelModel:
    """Times kernels on one chip at one precision."""

    chip: Chip
    precision: str
    # SMs that overlapped communication kernels hold (DeepEP under DualPipe): GEMMs and
    # attention run on the rest, at that fraction of the peak and with fewer units per wave.
    reserved_units: int = 0

    @property
    def units(self) -> int:
        return max(self.chip.compute_units - self.reserved_units, 0)

    @property
    def unit_fraction(self) -> float:
        if not self.chip.compute_units or not self.reserved_units:
            return 1.0
        return self.units / self.chip.compute_units

    def efficiency(self, kernel: str, precision: str | None = None) -> float:
        """The chip's efficiency for a kernel class; a GEMM at FP8 first looks for a per-
        precision entry ("gemm_fp8", "grouped_gemm_fp8"), then falls back to the class's."""
        name = self.entry(kernel, precision)
        return DEFAULT_EFFICIENCY[kernel] if name is None else self.chip.kernel_efficiency[name]

    def entry(self, kernel: str, precision: str | None = None) -> str | None:
        """The catalog entry `efficiency` reads for a kernel class, or None for the default."""
        table = self.chip.kernel_efficiency
        if (precision or self.precision) == "fp8" and f"{kernel}_fp8" in table:
            return f"{kernel}_fp8"
        return kernel if kernel in table else None

    def provenance(self) -> dict[str, str]:
        """Each kernel class's efficiency at this precision: calibrated, estimated or default."""
        source = str(self.chip.sources.get("kernel_efficiency", "")).lstrip().upper()
        fitted = "calibrated" if source.startswith("CALIBRATED") else "estimated"
        return {k: fitted if self.entry(k) else "default" for k in DEFAULT_EFFICIENCY}

    @property
    def peak(self) -> float:
        return self.chip.peak(self.precision)

    @property
    def element_bytes(self) -> int:
        """Bytes per GEMM input element."""
        return ELEMENT_BYTES[self.precision]

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation element outside GEMMs (FP8 training keeps them in BF16)."""
        return 2

    def memory(self, nbytes: float) -> float:
        """A memory-bound kernel moving `nbytes` to or from HBM."""
        return nbytes / (self.chip.hbm_bandwidth * self.efficiency("memory")) + KERNEL_OVERHEAD_S

    def gemm(
        self,
        m: float,
        n: float,
        k: float,
        kernel: str = "gemm",
        count: float = 1,
        precision: str | None = None,
    ) -> float:
        """`count` GEMMs of (m x k) @ (k x n); FP8 GEMMs run at the chip's FP8 peak.
        precision overrides the model's for GEMMs FP8 training keeps in BF16 (the router)."""
        if min(m, n, k) <= 0:
            return 0.0
        precision = precision or self.precision
        flops = 2.0 * m * n * k * count
        efficiency = self.efficiency(kernel, precision) * self.shape_factor(m, n, k, count)
        rate = self.chip.peak(precision) * efficiency * self.unit_fraction
        nbytes = (m * k + k * n + m * n) * ELEMENT_BYTES[precision] * count
        memory = nbytes / (self.chip.hbm_bandwidth * self.efficiency("memory"))
        return max(flops / rate, memory) + KERNEL_OVERHEAD_S

    def shape_factor(self, m: float, n: float, k: float, count: float = 1) -> float:
        """What tile and wave quantization and a short reduction leave of the peak."""
        tiles_m, tiles_n = math.ceil(m / TILE), math.ceil(n / TILE)
        tile = (m * n) / (tiles_m * tiles_n * TILE * TILE)
        units = self.units
        wave = 1.0
        if units:
            tiles = tiles_m * tiles_n * count
            wave = tiles / (math.ceil(tiles / units) * units)
        return tile * wave * k / (k + K_HALF)

    def attention(self, flops: float, nbytes: float) -> float:
        """A fused (FlashAttention-style) attention kernel executing `flops`; FP8 training
        keeps attention in BF16, so it runs at the BF16 peak."""
        peak = self.chip.peak("bf16" if self.precision == "fp8" else self.precision)
        compute = flops / (peak * self.efficiency("attention") * self.unit_fraction)
        memory = nbytes / (self.chip.hbm_bandwidth * self.efficiency("memory"))
        return max(compute, memory) + KERNEL_OVERHEAD_S


def provenance_summary(provenance: dict[str, str]) -> str:
    """One line: "default", or "calibrated gemm, grouped_gemm; default attention, memory"."""
    words = [w for w in PROVENANCES if w in provenance.values()]
    if len(words) == 1:
        return words[0]
    return "; ".join(f"{w} " + ", ".join(k for k, v in provenance.items() if v == w) for w in words)
