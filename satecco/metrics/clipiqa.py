"""CLIP-IQA (Wang, Chan and Loy 2023, "Exploring CLIP for assessing the look and feel of images"), with a
CLIP model read by ``transformers`` from a local folder.

Convention: the antonym prompt pair ``("Good photo.", "Bad photo.")``; the score of a frame is
``softmax(s * [cos(f, t_good), cos(f, t_bad)])[0]``, the probability of "Good photo.", with ``f`` the
image embedding, ``t`` the prompt embeddings and ``s`` the model's own ``logit_scale.exp()`` (100 for
OpenAI's checkpoints, the constant the CLIP-IQA paper uses). Higher is better, in (0, 1). Frames go
through the folder's ``CLIPImageProcessor`` (its resize, centre crop and normalisation), as in
torchmetrics' ``CLIPImageQualityAssessment``.

Where this differs from the paper: CLIP-IQA uses OpenAI's ResNet-50 CLIP with the attention pool's
positional embedding removed, so that it sees the whole image at native size; ``transformers`` has only
the ViT CLIPs, which need the processor's 224x224 centre crop. Scores are therefore those of the
torchmetrics variant with the given ViT checkpoint (e.g. ``openai/clip-vit-base-patch16``), not the
paper's RN50 numbers.

:func:`load_clipiqa` takes the folder (``config.json``, the weights, the tokenizer files and
``preprocessor_config.json``, as ``save_pretrained`` writes them); without it the result is
:class:`~satecco.metrics.common.Unavailable`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from satecco.metrics.common import Unavailable, as_uint8_clip

PROMPTS = ("Good photo.", "Bad photo.")
_NEEDED = ("config.json", "preprocessor_config.json")


class CLIPIQA:
    """CLIP-IQA scorer, built once from a local CLIP folder (weights and prompt embeddings in ``__init__``)."""

    def __init__(self, folder, device: str | torch.device = "cpu"):
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        self.folder = str(folder)
        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(self.folder).eval().to(self.device)
        self.processor = CLIPImageProcessor.from_pretrained(self.folder)
        tokenizer = AutoTokenizer.from_pretrained(self.folder)
        with torch.inference_mode():
            embeddings = []
            for prompt in PROMPTS:  # one at a time: no padding, so the pooled (end) token is the real one
                tokens = tokenizer([prompt], return_tensors="pt").to(self.device)
                pooled = self.model.text_model(**tokens).pooler_output
                embeddings.append(self.model.text_projection(pooled))
            text = torch.cat(embeddings)
            self.text = text / text.norm(dim=-1, keepdim=True)  # (2, D)
            self.scale = self.model.logit_scale.exp()

    @torch.inference_mode()
    def scores(self, frames, batch_size: int = 8) -> np.ndarray:
        """CLIP-IQA of each frame: ``(T, H, W, 3)`` uint8 RGB -> ``(T,)`` float64 in (0, 1)."""
        frames = as_uint8_clip(frames)
        out = []
        for start in range(0, len(frames), batch_size):
            batch = list(frames[start:start + batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            pooled = self.model.vision_model(pixel_values=pixels).pooler_output
            image = self.model.visual_projection(pooled)
            image = image / image.norm(dim=-1, keepdim=True)
            logits = self.scale * image @ self.text.T  # (b, 2)
            out.append(logits.softmax(dim=-1)[:, 0].double().cpu().numpy())
        return np.concatenate(out)

    def __call__(self, frame) -> float:
        """CLIP-IQA of one ``(H, W, 3)`` uint8 RGB frame."""
        return float(self.scores(frame)[0])

    def video(self, frames) -> float:
        """Mean over frames of CLIP-IQA of a ``(T, H, W, 3)`` uint8 clip."""
        return float(self.scores(frames).mean())


def load_clipiqa(folder, device: str | torch.device = "cpu") -> CLIPIQA | Unavailable:
    """A :class:`CLIPIQA` from a local CLIP folder; :class:`Unavailable` when ``folder`` is None, missing,
    or lacks ``config.json``/``preprocessor_config.json``."""
    if folder is None:
        return Unavailable("CLIP-IQA", "no CLIP model folder given")
    folder = Path(folder)
    if not folder.is_dir():
        return Unavailable("CLIP-IQA", f"no CLIP model folder at {folder}")
    missing = [name for name in _NEEDED if not (folder / name).is_file()]
    if missing:
        return Unavailable("CLIP-IQA", f"{folder} lacks {', '.join(missing)}")
    return CLIPIQA(folder, device=device)
