"""The projector's feature standardisation: fitted on training features, saved with the weights."""

from __future__ import annotations

import pytest
import torch

from taxvlm.models.projector import build_projector


def _projector(feature_norm: str) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = {"projector": "mlp", "prefix_tokens": 2, "features": "pooled", "feature_norm": feature_norm}
    return build_projector(spec, 8, 16)


def test_standardize_fits_training_statistics_and_survives_a_reload() -> None:
    train = torch.rand(50, 8) * 5 + 10  # far from centred, like non-negative CNN features
    projector = _projector("standardize")
    projector.fit_feature_norm(train.half())
    torch.testing.assert_close(projector.feature_mean, train.mean(0), atol=1e-2, rtol=1e-3)
    x = torch.rand(3, 8) * 5 + 10
    standardized = (x - projector.feature_mean) / projector.feature_std
    plain = _projector("none")
    plain.load_state_dict({k: v for k, v in projector.state_dict().items() if not k.startswith("feature_")}, strict=False)
    torch.testing.assert_close(projector(x), plain(standardized))
    reloaded = _projector("standardize")
    reloaded.load_state_dict(projector.state_dict())
    torch.testing.assert_close(reloaded(x), projector(x))


def test_none_ignores_the_fit_and_keeps_features_raw() -> None:
    projector = _projector("none")
    projector.fit_feature_norm(torch.rand(20, 8) + 3)
    assert torch.equal(projector.feature_mean, torch.zeros(8)) and torch.equal(projector.feature_std, torch.ones(8))


def test_unknown_feature_norm_names_the_field() -> None:
    with pytest.raises(ValueError, match="'feature_norm' is 'zscore'"):
        _projector("zscore")
