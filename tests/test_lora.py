"""LoRA attachment: folded convolutions compute what PEFT's own forward computes."""

from __future__ import annotations

import torch
from peft.tuners.lora.layer import Conv2d as LoraConv2d
from transformers import AutoModelForImageClassification

from rfau_cli.lora import attach_lora, find_lora_targets


def _trained_adapter(ckpt, rank: int):
    """The digits ResNet with a LoRA adapter whose B factors are no longer zero (as after training)."""
    model = AutoModelForImageClassification.from_pretrained(ckpt).eval()
    peft_model = attach_lora(model, find_lora_targets(model), rank, 2.0 * rank, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return peft_model


def _logits_and_grads(model, pixels, labels):
    model.zero_grad(set_to_none=True)
    logits = model(pixel_values=pixels).logits
    torch.nn.functional.cross_entropy(logits, labels).backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_folded_convolutions_match_peft_forward_and_gradients(resnet_ckpt) -> None:
    model = _trained_adapter(resnet_ckpt, rank=8)
    convs = [m for m in model.modules() if isinstance(m, LoraConv2d)]
    assert convs and all("forward" in m.__dict__ for m in convs)  # 16-32 channels <= 4 x rank 8: all folded
    generator = torch.Generator().manual_seed(2)
    pixels = torch.randn(48, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 10, (48,), generator=generator)
    folded, folded_grads = _logits_and_grads(model, pixels, labels)
    with torch.no_grad(), model.disable_adapter():
        teacher_folded = model(pixel_values=pixels).logits
    for module in convs:  # back to PEFT's own forward: conv(x, W) + s * B(A(x))
        del module.forward
    plain, plain_grads = _logits_and_grads(model, pixels, labels)
    with torch.no_grad(), model.disable_adapter():
        teacher = model(pixel_values=pixels).logits
    assert not torch.allclose(plain, teacher)  # the adapter does change the outputs
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-4)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(folded_grads[name], grad, rtol=1e-4, atol=1e-6)
    assert torch.equal(teacher_folded, teacher)  # the teacher is the base model, untouched


def test_wide_convolutions_keep_peft_forward(resnet_ckpt) -> None:
    """At rank 2 the 16-32-channel convolutions are more than 4x the rank wide: not folded."""
    model = _trained_adapter(resnet_ckpt, rank=2)
    convs = [m for m in model.modules() if isinstance(m, LoraConv2d)]
    assert convs and not any("forward" in m.__dict__ for m in convs)
