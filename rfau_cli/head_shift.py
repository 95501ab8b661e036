"""A concentrated request's class prior, moved into the classifier head's bias.

A retrain that lost much of a class learns the whole class worse: its logit for the class sits
lower on every row, kept, unseen or forgotten, by s_c log(1 - f_c) in sample mode's model
(`margin_targets.class_log_prior`). The forgotten rows' targets include that fall, but a LoRA
residual on the body, held to the original's features on the kept rows, can only bring it about
row by row, against the class's kept rows that the retain loss holds in place; and the class's
kept and unseen rows keep the original's prior, which a membership attack trained on the
unlearned model's own kept and test rows reads. Adding the vector to the head's bias moves the
class at once, for every row, as a retrain's prior moves; the residual is left the rows' own
part. Measured on the bench's requests concentrated in one class (README, "The bench as
measured"; docs/results.md, "The class prior in the head").

The head is not a LoRA target, so an adapter output carries the shifted head as PEFT
`modules_to_save` (`checkpoint.save_model`): `PeftModel.from_pretrained` puts it in place of the base
model's head, `merge_and_unload` keeps it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def shift_head(head: Any, shift: np.ndarray, teacher_head: Any | None = None) -> bool:
    """Add `shift` (one value a class, logits) to the head's bias, and to `teacher_head`'s, given
    only when the teacher is a separate copy (full-weight methods), so that the kept rows' margin hinge
    compares the student with a teacher that has the same prior. False (nothing changed) for a
    head without a bias: then the targets alone carry the class's fall."""
    import torch

    if getattr(head, "bias", None) is None:
        return False
    with torch.no_grad():
        for module in filter(None, (head, teacher_head)):
            module.bias += torch.as_tensor(shift, dtype=module.bias.dtype, device=module.bias.device)
    return True
