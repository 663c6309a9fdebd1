"""Fidelity metrics: energy distance, same-noise distance, mode commitment."""

from __future__ import annotations

import pytest
import torch
from snapflow_training import fidelity


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_energy_distance_zero_for_identical_and_symmetric() -> None:
    x = torch.randn((5, 16, 3, 2), generator=_gen())
    y = torch.randn((5, 16, 3, 2), generator=_gen(1))
    assert torch.allclose(fidelity.energy_distance(x, x), torch.zeros(5, dtype=torch.float64))
    torch.testing.assert_close(fidelity.energy_distance(x, y), fidelity.energy_distance(y, x))
    assert (fidelity.energy_distance(x, y) > 0).all()  # V-statistic: two finite samples


def test_energy_distance_sees_averaged_modes() -> None:
    """Two modes +-2 vs. their average 0 (same mean, same first moment on each side)."""
    k = 64
    signs = torch.where(torch.rand((8, k, 1, 1), generator=_gen(2)) < 0.5, -1.0, 1.0)
    bimodal = 2.0 * signs + 0.1 * torch.randn((8, k, 1, 1), generator=_gen(3))
    bimodal_b = 2.0 * signs.flip(1) + 0.1 * torch.randn((8, k, 1, 1), generator=_gen(4))
    averaged = 0.1 * torch.randn((8, k, 1, 1), generator=_gen(5))
    floor = fidelity.energy_distance(bimodal_b, bimodal).mean()
    assert fidelity.energy_distance(averaged, bimodal).mean() > 10 * floor


def test_same_noise_rms_and_summary() -> None:
    a = torch.zeros((2, 3, 4, 5))
    b = torch.full((2, 3, 4, 5), 2.0)
    b[1] = 4.0
    rms = fidelity.same_noise_rms(a, b)
    assert rms.shape == (2, 3) and torch.allclose(rms[0], torch.full((3,), 2.0, dtype=rms.dtype))
    s = fidelity.summary(rms)
    assert s["mean"] == pytest.approx(3.0) and s["p90"] == pytest.approx(4.0)
    with pytest.raises(ValueError, match="shapes"):
        fidelity.same_noise_rms(a, b[:1])


def test_mode_metrics() -> None:
    valid = torch.ones((4, 3), dtype=torch.bool)
    valid[3, 2] = False  # padded step: not counted
    recorded = torch.zeros((4, 3, 2))
    recorded[..., 1] = torch.tensor([1.0, -1.0, 0.8, -0.8])[:, None]
    draws = torch.zeros((4, 2, 3, 2))
    draws[0, :, :, 1] = 1.0  # committed, right sign (twice)
    draws[1, 0, :, 1] = 1.0  # committed, wrong sign
    draws[1, 1, :, 1] = -0.1  # averaging: not committed, right sign
    draws[2, :, :, 1] = -0.9  # committed, wrong sign
    draws[3, :, :2, 1] = -0.8  # committed, right sign
    draws[3, :, 2, 1] = 50.0  # ... on a padded step, ignored
    scores = fidelity.mode_scores(draws, valid, 1)
    rec = fidelity.mode_scores(recorded, valid, 1)
    out = fidelity.mode_metrics(scores, rec, ["a", "a", "b", "b"])
    assert out["commitment"] == pytest.approx(7 / 8)
    assert out["right_sign"] == pytest.approx(5 / 8)
    # + mode: rows 0 (twice) and 1 (once); - mode: rows 2 (twice) and 3 (twice)
    assert out["plus_share"] == pytest.approx(3 / 8) and out["minus_share"] == pytest.approx(4 / 8)
    assert out["groups"]["a"] == {
        "commitment": 0.75,
        "right_sign": 0.75,
        "plus_share": 0.75,
        "minus_share": 0.0,
        "num_observations": 2,
    }
    assert out["groups"]["b"]["right_sign"] == pytest.approx(0.5)
    assert out["groups"]["b"]["minus_share"] == 1.0 and out["groups"]["b"]["plus_share"] == 0.0


def test_sample_spread() -> None:
    x = torch.zeros((3, 4, 2, 2))
    assert fidelity.sample_spread(x) == 0.0
    x[:, ::2] = 1.0
    assert fidelity.sample_spread(x) == pytest.approx(float(torch.tensor([1.0, 0, 1, 0]).std()))
