"""CE-CLIP's losses against hand-computed values on a 2×2 batch, and the adaptive margin θ."""

from __future__ import annotations

import math

import pytest
import torch

from taxvlm.compositional import losses as L

# cosines: s(I1,T1)=s(I2,T2)=.6, s(I1,T2)=s(I2,T1)=.8; negative N_i1 matches I_i exactly.
IMAGE = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
TEXT = torch.tensor([[0.6, 0.8], [0.8, 0.6]])
NEG = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # [B=2, K=1, D=2]
ALL = torch.ones(2, 1, dtype=torch.bool)
SCALE = 2.0
e = math.exp


def test_itc_plain_and_with_hard_negative_columns() -> None:
    clip = -1.2 + math.log(e(1.2) + e(1.6))
    assert float(L.itc_loss(IMAGE, TEXT, SCALE)) == pytest.approx(clip, abs=1e-5)
    i2t = -1.2 + math.log(e(1.2) + e(1.6) + e(2.0) + e(0.0))  # both negatives of the batch are columns
    assert float(L.itc_loss(IMAGE, TEXT, SCALE, NEG, ALL)) == pytest.approx((i2t + clip) / 2, abs=1e-5)
    valid = torch.tensor([[True], [False]])
    rows = [-1.2 + math.log(e(1.2) + e(1.6) + e(2.0)), -1.2 + math.log(e(1.6) + e(1.2) + e(0.0))]
    assert float(L.itc_loss(IMAGE, TEXT, SCALE, NEG, valid)) == pytest.approx((sum(rows) / 2 + clip) / 2, abs=1e-5)


def test_imc_fix_bugs_form() -> None:
    # s(T1,N11)=1.2, s(T1,N21)=1.6; s(T2,N11)=1.6, s(T2,N21)=1.2; positive s(I_i,T_i)=1.2
    expected = -1.2 + math.log(e(1.2) + e(1.2) + e(1.6))
    assert float(L.imc_loss(IMAGE, TEXT, NEG, ALL, SCALE)) == pytest.approx(expected, abs=1e-5)
    only_first = -1.2 + math.log(e(1.2) + e(1.2))  # T1 vs N11 (1.2), T2 vs N11 (1.6) → rows differ
    row2 = -1.2 + math.log(e(1.2) + e(1.6))
    got = L.imc_loss(IMAGE, TEXT, NEG, torch.tensor([[True], [False]]), SCALE)
    assert float(got) == pytest.approx((only_first + row2) / 2, abs=1e-5)


def test_cmr_hinge_with_margin_and_mask() -> None:
    theta = torch.tensor([0.5])
    assert float(L.cmr_loss(IMAGE, TEXT, NEG, ALL, theta, SCALE)) == pytest.approx(0.5 + 2.0 - 1.2, abs=1e-5)
    half = L.cmr_loss(IMAGE, TEXT, NEG, torch.tensor([[True], [False]]), theta, SCALE)
    assert float(half) == pytest.approx(1.3 / 2, abs=1e-5)  # mean over all (i, k), masked terms are 0
    assert float(L.cmr_loss(IMAGE, TEXT, NEG, ALL, torch.tensor([-1.0]), SCALE)) == pytest.approx(0.0)


def test_margin_update_per_type_clamped_and_kept_when_no_valid_negative() -> None:
    far = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])  # s(I_i, N_i2) = 0
    negatives = torch.cat([NEG, far, far], dim=1)  # K = 3
    valid = torch.tensor([[True, True, False], [True, False, False]])
    theta = torch.tensor([3.0, 3.0, 7.0])
    new = L.update_margins(IMAGE, TEXT, negatives, valid, theta, SCALE)
    assert new.tolist() == pytest.approx([0.0, 1.2, 7.0])  # 1.2 − 2 clamps to 0; type 3 keeps θ
    assert not new.requires_grad
    opposite = torch.tensor([[[-1.0, 0.0]], [[0.0, -1.0]]])
    big = L.update_margins(IMAGE, IMAGE, opposite, ALL, torch.zeros(1), 100.0)
    assert big.tolist() == [L.THETA_MAX]


def test_total_weights_terms_and_theta_feeds_next_step() -> None:
    image = IMAGE.clone().requires_grad_(True)
    theta = torch.zeros(1)
    total, parts, theta1 = L.ce_clip_loss(image, TEXT, NEG, ALL, theta, SCALE, L.ABLATIONS["all"], 0.3, 0.2)
    assert float(total.detach()) == pytest.approx(parts["itc"] + 0.3 * parts["imc"] + 0.2 * parts["cmr"], abs=1e-6)
    assert parts["cmr"] == pytest.approx(2.0 - 1.2, abs=1e-5)  # θ = 0 on the first step
    total.backward()
    assert image.grad is not None and theta1.grad_fn is None
    _, only, _ = L.ce_clip_loss(IMAGE, TEXT, NEG, ALL, theta, SCALE, L.ABLATIONS["itc"], 0.3, 0.2)
    assert set(only) == {"itc"} and only["itc"] == pytest.approx(float(L.itc_loss(IMAGE, TEXT, SCALE)))
