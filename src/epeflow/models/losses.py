"""The R1 penalty on real crops (the GAN losses are in `gan_losses`).

The reference's choices (train_pfd2cs.yaml): least-squares GAN losses summed over the discriminator's
realness maps, LPIPS-VGG between the source frame and its enhancement (weight 5) so the content stays,
and a gradient penalty on real crops (weight 0.03) that keeps the discriminator smooth. The perceptual
distance is `epeflow.common.lpips` (shared with evaluation).
"""

from __future__ import annotations

import torch
from torch import autograd


def r1_penalty(real_loss: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Squared gradient norm of the discriminator's real loss w.r.t. the real images, per image, averaged.

    Like the reference, the gradient of the loss (not of the raw output) is penalised. `real_images` must
    have had `requires_grad_()` before the discriminator saw them; the graph is kept for the backward pass.
    """
    (grad,) = autograd.grad(real_loss, real_images, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(dim=1).mean()
