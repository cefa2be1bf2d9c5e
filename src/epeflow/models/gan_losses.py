"""GAN losses over a discriminator's realness maps: least squares, hinge and non-saturating, as the reference.

Each loss has `real(maps)`, `fake(maps)` and `generator(maps)`. Like the reference, each map is averaged over
its batch and locations and the maps' averages are summed; None maps (heads skipped this step) are left out.
(The reference's generator loss reads only the first image of the batch; ours averages over all of them.)

The formulas are the reference's (`objectives.gan: ls | hinge | ns`), chosen so that 0.5 separates "fake" from
"real" for all three, as the reference's accuracy and adaptive backprop assume:
- ls: real and generator (1 - x)^2, fake x^2.
- hinge: real and generator relu(1 - x), fake relu(x); the textbook hinge has fake relu(1 + x) and generator -x.
- ns: real and generator softplus(1 - x), fake softplus(x); the textbook version has softplus(-x) for real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Maps = Sequence[torch.Tensor | None]


def sum_of_means(maps: Maps, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """sum over present maps of mean(f(map)), in fp32 (maps may come out of autocast)."""
    terms = [f(m.float()).mean() for m in maps if m is not None]
    return torch.stack(terms).sum() if terms else torch.zeros(())


class LSLoss:
    """Least squares: real maps towards 1, fake ones towards 0; the generator wants its fakes at 1."""

    def real(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: (1 - x).pow(2))

    def fake(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: x.pow(2))

    def generator(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: (1 - x).pow(2))


class HingeLoss:
    """Hinge: no loss once a real map is at or above 1 and a fake one at or below 0."""

    def real(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: F.relu(1 - x))

    def fake(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, F.relu)

    def generator(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: F.relu(1 - x))


class NSLoss:
    """Non-saturating (logistic): softplus keeps the generator's gradient alive where its fakes look fake."""

    def real(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: F.softplus(1 - x))

    def fake(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, F.softplus)

    def generator(self, maps: Maps) -> torch.Tensor:
        return sum_of_means(maps, lambda x: F.softplus(1 - x))


GAN_LOSSES: dict[str, type[LSLoss] | type[HingeLoss] | type[NSLoss]] = {"ls": LSLoss, "hinge": HingeLoss, "ns": NSLoss}
