# Copyright (c) autoenc developers.
# Licensed under the MIT License.
"""Speckle from the SAR imaging chain: scattering, impulse response, detection, looks.

A SAR pixel is the coherent sum of many scatterers seen through the system's impulse response.
:func:`chain_speckle` simulates exactly that: a circular complex Gaussian field with variance
equal to the reflectivity (one independent scatterer sum per pixel), filtered by a separable
impulse response (a sinc weighted by a generalised Hamming window, band-limited to
``1 / oversampling`` of the sampling rate, as in IW GRDH where 10 m pixels carry about
20 x 22 m resolution), detected as ``|.|²`` and averaged over independent looks to the product's
equivalent number of looks (ENL). Filtering before detection keeps every look's marginal
exponential; neighbouring pixels share scatterers, so the speckle is spatially correlated with
the analytic intensity autocorrelation ``|rho_c(k)|²`` (Siegert relation) of
:meth:`SpeckleModel.intensity_autocorrelation`.

Invariants:
    * ``E[I] = reflectivity`` where the reflectivity is locally constant (the impulse response
      has unit energy, every look unit weight on average);
    * the pixel marginal of a homogeneous area has ``mean² / var = looks``;
    * ``white`` reproduces the historic generator: i.i.d. Gamma(L, 1/L) multiplicative noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Reflect-padding around the scene so the FFT's circular convolution never wraps edges.
_PAD = 32


@dataclass(frozen=True)
class SpeckleModel:
    """How a product's speckle is made.

    Attributes:
        name: product label recorded in manifests (``grdh``, ``slc-intensity``, ``white``).
        looks: product ENL (>= 1 for the imaging chain, > 0 for ``white``).
        oversampling: sampling rate over the processed bandwidth, per axis (azimuth, range);
            1 means critically sampled (nearly white speckle), 2 means a pixel is half the
            resolution cell.
        hamming: generalised Hamming coefficient of the spectral weighting, ``a + (1 - a)
            cos(2 pi f / B)``; 1 is no weighting. 0.6 at 2x oversampling reproduces the
            speckle correlation measured on IW GRDH (its processor weights with 0.75 and then
            multi-looks in space, which widens the response further).
        white: skip the chain and multiply by i.i.d. Gamma(looks) noise.
    """

    name: str
    looks: float = 4.4
    oversampling: tuple[float, float] = (2.0, 2.0)
    hamming: float = 0.6
    white: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.looks) and self.looks > 0):
            raise ValueError(f"looks must be a finite number > 0, got {self.looks!r}")
        if not self.white and self.looks < 1:
            raise ValueError(
                f"looks must be >= 1 for speckle from the imaging chain (an average of "
                f"independent looks), got {self.looks!r}; use the 'white' product below 1"
            )
        if len(self.oversampling) != 2 or not all(
            math.isfinite(o) and o >= 1 for o in self.oversampling
        ):
            raise ValueError(f"oversampling must be two numbers >= 1, got {self.oversampling!r}")
        if not 0 <= self.hamming <= 1:
            raise ValueError(f"hamming must be in [0, 1], got {self.hamming!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON record for manifests (``source.speckle``)."""
        return {
            "product": self.name,
            "looks": float(self.looks),
            "oversampling": [float(o) for o in self.oversampling],
            "hamming": float(self.hamming),
            "white": bool(self.white),
        }

    def look_weights(self) -> NDArray[np.float64]:
        """Weights of the independent looks, mean 1, whose average has ENL ``looks``.

        ``ceil(L) - 1`` full looks and one partial look of weight ``a`` with
        ``(n - 1 + a)² / (n - 1 + a²) = L`` (the ENL of a weighted sum of independent
        exponential looks); real processors weight their looks too.
        """
        n = math.ceil(self.looks - 1e-9)
        m = n - 1
        if m == 0 or abs(self.looks - n) < 1e-9:
            w = np.ones(n)
        else:
            # (m + a)² = L (m + a²)  ->  (L - 1) a² - 2 m a + (L m - m²) = 0, smaller root
            big_l = self.looks
            disc = math.sqrt(m * m - (big_l - 1) * (big_l * m - m * m))
            a = (m - disc) / (big_l - 1)
            w = np.append(np.ones(m), a)
        return w / w.mean()

    def transfer(self, n: int, axis: int) -> NDArray[np.float32]:
        """Amplitude transfer function of the impulse response on an ``n``-point FFT grid."""
        f = np.fft.fftfreq(n)
        band = 1.0 / self.oversampling[axis]
        a = self.hamming
        h = np.where(np.abs(f) <= band / 2, a + (1 - a) * np.cos(2 * np.pi * f / band), 0.0)
        # Unit energy of the impulse response: sum |h_k|² = mean |H(f)|² = 1.
        return (h / np.sqrt(np.mean(h**2))).astype(np.float32)

    def intensity_autocorrelation(self, lag: int, axis: int) -> float:
        """Analytic normalised autocovariance of the intensity at ``lag`` pixels along ``axis``.

        ``|rho_c(lag)|²`` (Siegert), where ``rho_c`` is the complex field's correlation. For
        ``white`` it is 0 at every lag >= 1.
        """
        if self.white:
            return 1.0 if lag == 0 else 0.0
        h = self.transfer(4096, axis).astype(np.float64)
        p = np.fft.ifft(h**2).real
        return float((p[lag % 4096] / p[0]) ** 2)


#: The named products of ``autoenc synth --product``.
PRODUCTS: dict[str, SpeckleModel] = {
    "grdh": SpeckleModel("grdh", looks=4.4, oversampling=(2.0, 2.0), hamming=0.6),
    "slc-intensity": SpeckleModel(
        "slc-intensity", looks=1.0, oversampling=(1.0, 1.0), hamming=0.75
    ),
    "white": SpeckleModel("white", looks=4.4, white=True),
}
DEFAULT_PRODUCT = "grdh"


def product(
    name: str = DEFAULT_PRODUCT,
    looks: float | None = None,
    oversampling: float | tuple[float, float] | None = None,
) -> SpeckleModel:
    """A named product, optionally with its ENL or oversampling replaced.

    Raises:
        ValueError: unknown name (the message lists the known ones) or bad values.
    """
    try:
        base = PRODUCTS[name]
    except KeyError:
        raise ValueError(f"unknown product {name!r}; choose one of {sorted(PRODUCTS)}") from None
    os_ = base.oversampling
    if oversampling is not None:
        os_ = (
            (float(oversampling), float(oversampling))
            if isinstance(oversampling, (int, float))
            else (float(oversampling[0]), float(oversampling[1]))
        )
    return replace(base, looks=base.looks if looks is None else float(looks), oversampling=os_)


def chain_speckle(
    reflectivity_linear: NDArray[np.floating[Any]],
    model: SpeckleModel,
    rng: np.random.Generator,
) -> NDArray[np.float32]:
    """Detected multi-look intensity of a scene of the given reflectivity, float32 (H, W).

    Raises:
        ValueError: a reflectivity that is not 2-D, finite and >= 0.
    """
    r = np.asarray(reflectivity_linear, dtype=np.float32)
    if r.ndim != 2:
        raise ValueError(f"reflectivity must be 2-D, got shape {r.shape}")
    if not np.isfinite(r).all() or (r < 0).any():
        raise ValueError("reflectivity must be finite and >= 0")
    if model.white:
        g = rng.standard_gamma(model.looks, size=r.shape, dtype=np.float32)
        out = r * (g / np.float32(model.looks))
    else:
        out = _looks(r, model, rng)
    # Gamma/exponential samples can underflow to 0 in float32; keep intensity positive.
    np.maximum(out, np.float32(1e-12), out=out)
    return out.astype(np.float32, copy=False)


def _looks(r: NDArray[np.float32], model: SpeckleModel, rng: np.random.Generator) -> Any:
    h, w = r.shape
    amp = np.sqrt(np.pad(r, _PAD, mode="reflect"))
    ph, pw = amp.shape
    transfer = model.transfer(ph, 0)[:, None] * model.transfer(pw, 1)[None, :]
    out = np.zeros((h, w), dtype=np.float32)
    weights = model.look_weights()
    for wk in weights:
        field = np.empty((ph, pw), dtype=np.complex64)
        field.real = rng.standard_normal((ph, pw), dtype=np.float32)
        field.imag = rng.standard_normal((ph, pw), dtype=np.float32)
        field *= amp * np.float32(math.sqrt(0.5))  # E|field|² = reflectivity
        spec = np.fft.fft2(field)
        spec *= transfer
        look = np.fft.ifft2(spec)[_PAD : _PAD + h, _PAD : _PAD + w]
        out += np.float32(wk / len(weights)) * (look.real**2 + look.imag**2).astype(np.float32)
    return out
