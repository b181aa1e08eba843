"""CLIP ViT re-ID encoder for video tracklets, with light adapters and CLIP-ReID identity prompts.

The encoder S3-CLIP puts behind its super-resolution network (Endredi and Cserey, arXiv 2601.08807,
"VSLA-CLIP": a CLIP ViT-B/16 image tower with light video adapters), built from open_clip's own
modules so that OpenAI's CLIP checkpoints load key for key::

    frames [B, T, 3, H, W]
      -> patch embedding + class token + positional embedding (interpolated 14x14 -> 16x8 for 256x128)
      -> L x [ temporal adapter (mixes each token across the T frames)
               attention -> bottleneck adapter -> + residual
               MLP       -> bottleneck adapter -> + residual ]
      -> ln_post(class token) = frame feature [B*T, width]; @ proj = projected feature [B*T, embed_dim]
      -> temporal pooling over T (mean, or learned attention weights)
      -> VideoFeatures(feature [B, width], projected [B, embed_dim])

Adapter design (ours; the paper names the VSLA-CLIP baseline but not its internals): every adapter
is a bottleneck ``x + up(act(down(x)))`` whose up-projection starts at zero, so at initialisation
the adapted encoder computes exactly what the pretrained CLIP computes and training only has to
learn a small correction (about 3.5M parameters for ViT-B/16 against 86M frozen ones).

* a spatial adapter on the output of each attention and each MLP branch (Houlsby-style);
* a temporal adapter before each block: down-projection, a depthwise 1-D convolution over the
  frame axis (kernel 3, zero padding, so a one-frame tracklet works), GELU, up-projection.  It lets
  a frame's tokens see the same token of its neighbour frames, which a per-frame CLIP cannot.

The text side is CLIP-ReID's (Li et al., AAAI 2023) stage-1 prompt learning: the frozen CLIP text
tower reads "A photo of a X X X X person." where the four X tokens are replaced by learnable vectors
of each training identity (:class:`IdentityPrompts`).

Sizes: :data:`CLIP_ARCHS` has the paper's ``"ViT-B-16"`` and a ``"tiny"`` one with the same
structure (width 64, 2 layers) for tests and CPU runs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping, NamedTuple

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, QuickGELU, Transformer, VisionTransformer
from torch import nn

from lrreid.errors import CheckpointError

# Image and text tower sizes.  ``ViT-B-16`` is OpenAI's; ``tiny`` keeps every module (and the BPE
# vocabulary, so the real tokenizer works) but is ~100x cheaper.
CLIP_ARCHS: dict[str, dict] = {
    "ViT-B-16": dict(patch_size=16, width=768, layers=12, heads=12, embed_dim=512,
                     text_width=512, text_layers=12, text_heads=8, context_length=77, vocab_size=49408),
    "tiny": dict(patch_size=16, width=64, layers=2, heads=2, embed_dim=32,
                 text_width=64, text_layers=2, text_heads=2, context_length=16, vocab_size=49408),
}

# OpenAI's released image towers, by the shapes that identify them (for error messages).
_OPENAI_VIT_NAMES = {(768, 12, 32): "ViT-B/32", (768, 12, 16): "ViT-B/16", (1024, 24, 14): "ViT-L/14"}
_OPENAI_RESNET_NAMES = {((3, 4, 6, 3), 64): "RN50", ((3, 4, 23, 3), 64): "RN101", ((4, 6, 10, 6), 80): "RN50x4",
                        ((6, 8, 18, 8), 96): "RN50x16", ((3, 15, 36, 10), 128): "RN50x64"}

PROMPT_TEMPLATE = "A photo of a X X X X person."
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------ helpers
def interpolate_positional_embedding(pos_embed: torch.Tensor, new_grid: tuple[int, int],
                                     old_grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Resize a ViT positional embedding ``[1 + gh*gw, D]`` to a new patch grid, keeping the class token.

    The patch part is reshaped to its grid and resized with bicubic interpolation (antialiased, as
    open_clip does when it resizes a checkpoint); the class-token row is copied unchanged.
    ``old_grid`` defaults to a square grid (OpenAI's 14x14 for 224x224 at patch 16).

    Example::

        pos = interpolate_positional_embedding(openai_pos, (16, 8))   # [197, 768] -> [129, 768]
    """
    n, dim = pos_embed.shape
    if old_grid is None:
        side = math.isqrt(n - 1)
        if side * side != n - 1:
            raise CheckpointError(f"positional embedding of {n} rows is not 1 class token + a square grid")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] + 1 != n:
        raise CheckpointError(f"positional embedding of {n} rows does not match grid {old_grid} + class token")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed.clone()
    cls_row, patches = pos_embed[:1], pos_embed[1:]
    grid = patches.reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False, antialias=True)
    patches = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([cls_row, patches], dim=0)


class BottleneckAdapter(nn.Module):
    """``x + up(GELU(down(x)))`` with ``up`` zero-initialised: the identity until trained."""

    def __init__(self, width: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))


class TemporalAdapter(nn.Module):
    """Mixes each token with the same token in neighbouring frames (depthwise conv over time).

    Input ``[B*T, N, D]`` with frames of one tracklet consecutive; ``num_frames`` is T.
    Zero-initialised up-projection, so it starts as the identity.
    """

    def __init__(self, width: int, bottleneck: int, kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel size must be odd, got {kernel_size}")
        self.down = nn.Linear(width, bottleneck)
        self.temporal = nn.Conv1d(bottleneck, bottleneck, kernel_size, padding=kernel_size // 2, groups=bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bt, n, _ = x.shape
        b = bt // num_frames
        h = self.down(x)  # [B*T, N, r]
        r = h.shape[-1]
        h = h.reshape(b, num_frames, n, r).permute(0, 2, 3, 1).reshape(b * n, r, num_frames)
        h = self.temporal(h)
        h = h.reshape(b, n, r, num_frames).permute(0, 3, 1, 2).reshape(bt, n, r)
        return x + self.up(self.act(h))


class BlockAdapters(nn.Module):
    """The three adapters of one transformer block."""

    def __init__(self, width: int, bottleneck: int, temporal: bool, kernel_size: int):
        super().__init__()
        self.temporal = TemporalAdapter(width, bottleneck, kernel_size) if temporal else None
        self.attn = BottleneckAdapter(width, bottleneck)
        self.mlp = BottleneckAdapter(width, bottleneck)


class TemporalPooling(nn.Module):
    """Frame features ``[B, T, D]`` -> tracklet feature ``[B, D]``: ``"mean"`` or ``"attention"``.

    Attention pooling scores each frame feature with a linear layer (zero-initialised, so it starts
    as the mean) and returns the softmax-weighted sum; :meth:`weights` returns the weights, so the
    projected features can be pooled with the same ones.
    """

    def __init__(self, width: int, mode: str = "mean"):
        super().__init__()
        if mode not in ("mean", "attention"):
            raise ValueError(f"temporal pooling must be 'mean' or 'attention', got {mode!r}")
        self.mode = mode
        self.score = nn.Linear(width, 1) if mode == "attention" else None
        if self.score is not None:
            nn.init.zeros_(self.score.weight)
            nn.init.zeros_(self.score.bias)

    def weights(self, frame_features: torch.Tensor) -> torch.Tensor:
        b, t, _ = frame_features.shape
        if self.score is None:
            return frame_features.new_full((b, t), 1.0 / t)
        return self.score(frame_features).squeeze(-1).float().softmax(dim=1).to(frame_features.dtype)

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        return (self.weights(frame_features).unsqueeze(-1) * frame_features).sum(dim=1)


class VideoFeatures(NamedTuple):
    """Tracklet features: ``feature`` (ln_post class token, width) and ``projected`` (CLIP space)."""

    feature: torch.Tensor
    projected: torch.Tensor


# ------------------------------------------------------------------------------ image tower
class ClipVideoEncoder(nn.Module):
    """CLIP ViT image tower with bottleneck and temporal adapters and temporal pooling.

    ``visual`` is open_clip's :class:`VisionTransformer`, so its parameters are named as in OpenAI's
    checkpoints (``visual.conv1.weight`` ...); ``adapters`` and ``pooling`` are new.

    Example::

        enc = ClipVideoEncoder(**arch_kwargs("tiny"), image_size=(64, 32))
        out = enc(torch.rand(2, 4, 3, 64, 32))          # 2 tracklets of 4 frames
        out.feature.shape, out.projected.shape           # [2, 64], [2, 32]
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (256, 128),
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        embed_dim: int = 512,
        adapter_dim: int = 64,
        adapter_layers: int | None = None,
        temporal_adapter: bool = True,
        temporal_kernel: int = 3,
        pooling: str = "mean",
        quick_gelu: bool = True,
    ):
        super().__init__()
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if self.image_size[0] % patch_size or self.image_size[1] % patch_size:
            raise ValueError(f"image size {self.image_size} is not a multiple of the patch size {patch_size}")
        self.visual = VisionTransformer(
            image_size=self.image_size, patch_size=patch_size, width=width, layers=layers, heads=heads,
            mlp_ratio=4.0, output_dim=embed_dim, act_layer=QuickGELU if quick_gelu else nn.GELU,
            norm_layer=LayerNorm,
        )
        self.width, self.embed_dim = width, embed_dim
        # Adapters in the last ``adapter_layers`` blocks (all by default); 0 disables them.
        n_adapted = layers if adapter_layers is None else max(0, min(layers, adapter_layers))
        self.first_adapted = layers - n_adapted
        self.adapters = nn.ModuleList(
            BlockAdapters(width, adapter_dim, temporal_adapter, temporal_kernel) for _ in range(n_adapted)
        )
        self.pooling = TemporalPooling(width, pooling)
        self.register_buffer("mean", torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(OPENAI_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.visual.grid_size)

    def _embed_patches(self, images: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)  # [N, grid, width]
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(v.patch_dropout(x))

    def encode_frames(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame features of ``frames [B, T, 3, H, W]`` in [0, 1]: ``([B, T, width], [B, T, embed_dim])``."""
        if frames.dim() != 5:
            raise ValueError(f"expected frames [B, T, 3, H, W], got shape {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        if tuple(frames.shape[-2:]) != self.image_size:
            raise ValueError(f"frames are {tuple(frames.shape[-2:])}, the encoder expects {self.image_size}")
        images = (frames.flatten(0, 1) - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        x = self._embed_patches(images)
        for i, block in enumerate(self.visual.transformer.resblocks):
            adapter = self.adapters[i - self.first_adapted] if i >= self.first_adapted else None
            if adapter is None:
                x = block(x)
                continue
            if adapter.temporal is not None:
                x = adapter.temporal(x, t)
            x = x + adapter.attn(block.ls_1(block.attention(block.ln_1(x))))
            x = x + adapter.mlp(block.ls_2(block.mlp(block.ln_2(x))))
        cls = self.visual.ln_post(x[:, 0])
        projected = cls @ self.visual.proj
        return cls.reshape(b, t, -1), projected.reshape(b, t, -1)

    def forward(self, frames: torch.Tensor) -> VideoFeatures:
        """``frames [B, T, 3, H, W]`` in [0, 1] -> pooled :class:`VideoFeatures`."""
        feature, projected = self.encode_frames(frames)
        w = self.pooling.weights(feature).unsqueeze(-1)
        return VideoFeatures((w * feature).sum(1), (w * projected).sum(1))

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The new parameters (adapters and pooling); the rest is the pretrained CLIP tower."""
        return list(self.adapters.parameters()) + list(self.pooling.parameters())


# ------------------------------------------------------------------------------- text tower
class ClipTextEncoder(nn.Module):
    """CLIP's text tower; parameter names as OpenAI's top-level keys (``token_embedding.weight`` ...).

    :meth:`forward` reads token *embeddings* (so learnt prompt vectors can be spliced in) and
    returns the projected feature at the end-of-text position.  ``logit_scale`` is kept as a buffer
    (CLIP's learnt temperature, ``exp(logit_scale) = 100`` in OpenAI's models).

    Example::

        text = ClipTextEncoder(**text_kwargs("tiny"))
        prompts = IdentityPrompts(num_classes=10, width=64, context_length=16)
        feats = text(prompts.embed(torch.tensor([3, 7]), text.token_embedding))   # [2, 32]
    """

    def __init__(self, embed_dim: int = 512, context_length: int = 77, vocab_size: int = 49408,
                 width: int = 512, layers: int = 12, heads: int = 8, quick_gelu: bool = True):
        super().__init__()
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.transformer = Transformer(width, layers, heads, act_layer=QuickGELU if quick_gelu else nn.GELU,
                                       norm_layer=LayerNorm)
        self.ln_final = LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed_dim) * width ** -0.5)
        self.register_buffer("logit_scale", torch.tensor(math.log(1 / 0.07)))
        causal = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("attn_mask", causal, persistent=False)

    def forward(self, token_embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """``token_embeddings [K, L, width]``, ``eot_index [K]`` -> text features ``[K, embed_dim]``."""
        x = token_embeddings + self.positional_embedding.to(token_embeddings.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        return x @ self.text_projection

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain CLIP text features of BPE ``tokens [K, L]`` (end-of-text is the largest id)."""
        return self(self.token_embedding(tokens), tokens.argmax(dim=-1))


class IdentityPrompts(nn.Module):
    """CLIP-ReID's learnable identity prompts: "A photo of a X X X X person." per training identity.

    The template is tokenized once with CLIP's BPE tokenizer; the ``X`` placeholder tokens are
    replaced by ``context[pid]`` (``[num_classes, n_ctx, width]``, normal init std 0.02), the other
    tokens keep the text encoder's (frozen) word embeddings, looked up at call time so they always
    match the loaded weights.

    Example::

        prompts = IdentityPrompts(num_classes=100, width=512)
        emb, eot = prompts.embed(batch_pids, text_encoder.token_embedding)
        text_features = text_encoder(emb, eot)
    """

    def __init__(self, num_classes: int, width: int, context_length: int = 77,
                 template: str = PROMPT_TEMPLATE, placeholder: str = "X"):
        super().__init__()
        from open_clip.tokenizer import SimpleTokenizer

        tokenizer = SimpleTokenizer(context_length=context_length)
        ids = tokenizer([template])[0]
        placeholder_id = tokenizer.encode(placeholder)
        if len(placeholder_id) != 1:
            raise ValueError(f"placeholder {placeholder!r} is not a single BPE token")
        positions = (ids == placeholder_id[0]).nonzero().flatten().tolist()
        if not positions or positions != list(range(positions[0], positions[0] + len(positions))):
            raise ValueError(f"template {template!r} needs one run of consecutive {placeholder!r} placeholders")
        if ids.argmax().item() == context_length - 1 and ids[-1].item() != tokenizer.eot_token_id:
            raise ValueError(f"template {template!r} is longer than the context length {context_length}")
        self.template = template
        self.context_start, self.num_context = positions[0], len(positions)
        self.register_buffer("template_ids", ids.long(), persistent=False)
        self.context = nn.Parameter(torch.randn(num_classes, self.num_context, width) * 0.02)

    @property
    def num_classes(self) -> int:
        return self.context.shape[0]

    def embed(self, pids: torch.Tensor, token_embedding: nn.Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings ``[B, L, width]`` of the prompts of ``pids`` and their end-of-text index ``[B]``."""
        words = token_embedding(self.template_ids).to(self.context.dtype)  # [L, width]
        b = pids.shape[0]
        prefix = words[: self.context_start].expand(b, -1, -1)
        suffix = words[self.context_start + self.num_context:].expand(b, -1, -1)
        emb = torch.cat([prefix, self.context[pids], suffix], dim=1)
        eot = self.template_ids.argmax().expand(b)
        return emb, eot


class ClipReidHead(nn.Module):
    """CLIP-ReID's BNNeck: BatchNorm (no bias) + identity classifier on both feature kinds.

    ``embedding`` (retrieval) concatenates the two normalised-by-BN features, as CLIP-ReID tests.
    """

    def __init__(self, width: int, embed_dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(width)
        self.bn_proj = nn.BatchNorm1d(embed_dim)
        for bn in (self.bn, self.bn_proj):
            bn.bias.requires_grad_(False)  # BNNeck: no shift, so the classifier sees centred features
        self.classifier = nn.Linear(width, num_classes, bias=False)
        self.classifier_proj = nn.Linear(embed_dim, num_classes, bias=False)
        for fc in (self.classifier, self.classifier_proj):
            nn.init.normal_(fc.weight, std=0.001)

    def forward(self, features: VideoFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity logits ``([B, C], [B, C])`` of the two feature kinds."""
        return self.classifier(self.bn(features.feature)), self.classifier_proj(self.bn_proj(features.projected))

    def embedding(self, features: VideoFeatures) -> torch.Tensor:
        return torch.cat([self.bn(features.feature), self.bn_proj(features.projected)], dim=1)


# ---------------------------------------------------------------------------- construction
def arch_kwargs(arch: str | Mapping) -> dict:
    """Image-tower constructor arguments of a named size (or a dict of sizes)."""
    a = _arch(arch)
    return {k: a[k] for k in ("patch_size", "width", "layers", "heads", "embed_dim")}


def text_kwargs(arch: str | Mapping) -> dict:
    """Text-tower constructor arguments of a named size (or a dict of sizes)."""
    a = _arch(arch)
    return dict(embed_dim=a["embed_dim"], context_length=a["context_length"], vocab_size=a["vocab_size"],
                width=a["text_width"], layers=a["text_layers"], heads=a["text_heads"])


def _arch(arch: str | Mapping) -> dict:
    if isinstance(arch, Mapping):
        missing = set(CLIP_ARCHS["tiny"]) - set(arch)
        if missing:
            raise ValueError(f"CLIP size dict lacks {sorted(missing)}")
        return dict(arch)
    if arch not in CLIP_ARCHS:
        raise ValueError(f"unknown CLIP size {arch!r} (known: {', '.join(CLIP_ARCHS)})")
    return dict(CLIP_ARCHS[arch])


# ----------------------------------------------------------------------- OpenAI checkpoints
@dataclass(frozen=True)
class OpenAIArchitecture:
    """What an OpenAI-layout CLIP state dict contains, read from its tensor shapes."""

    vision: str  # "vit" | "resnet"
    width: int
    layers: int | tuple[int, ...]
    patch_size: int | None
    embed_dim: int
    text_width: int
    text_layers: int
    context_length: int

    @property
    def name(self) -> str:
        if self.vision == "resnet":
            return _OPENAI_RESNET_NAMES.get((self.layers, self.width), f"ResNet(layers={self.layers}, width={self.width})")
        return _OPENAI_VIT_NAMES.get((self.width, self.layers, self.patch_size),
                                     f"ViT(width={self.width}, layers={self.layers}, patch={self.patch_size})")

    def describe(self) -> str:
        if self.vision == "resnet":
            return f"{self.name} (ResNet image tower, stage depths {self.layers}, width {self.width})"
        return f"{self.name} (ViT image tower, width {self.width}, {self.layers} layers, patch {self.patch_size})"


def openai_architecture(state_dict: Mapping[str, torch.Tensor]) -> OpenAIArchitecture:
    """Read the architecture of an OpenAI-layout CLIP state dict from its shapes (as open_clip does)."""
    try:
        if "visual.proj" in state_dict:
            vision, width = "vit", state_dict["visual.conv1.weight"].shape[0]
            layers = len([k for k in state_dict if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
            patch = state_dict["visual.conv1.weight"].shape[-1]
        else:
            vision, width = "resnet", state_dict["visual.layer1.0.conv1.weight"].shape[0]
            layers = tuple(len({k.split(".")[2] for k in state_dict if k.startswith(f"visual.layer{b}.")})
                           for b in (1, 2, 3, 4))
            patch = None
        return OpenAIArchitecture(
            vision=vision, width=int(width), layers=layers, patch_size=None if patch is None else int(patch),
            embed_dim=int(state_dict["text_projection"].shape[1]),
            text_width=int(state_dict["ln_final.weight"].shape[0]),
            text_layers=len({k.split(".")[2] for k in state_dict if k.startswith("transformer.resblocks.")}),
            context_length=int(state_dict["positional_embedding"].shape[0]),
        )
    except (KeyError, IndexError) as exc:
        raise CheckpointError(f"not an OpenAI CLIP state dict: missing key {exc}") from None


def _expected_architecture(image: ClipVideoEncoder, text: ClipTextEncoder | None) -> OpenAIArchitecture:
    v = image.visual
    return OpenAIArchitecture(
        vision="vit", width=image.width, layers=len(v.transformer.resblocks), patch_size=int(v.patch_size[0]),
        embed_dim=image.embed_dim,
        text_width=text.ln_final.weight.shape[0] if text is not None else -1,
        text_layers=len(text.transformer.resblocks) if text is not None else -1,
        context_length=text.context_length if text is not None else -1,
    )


def read_openai_state_dict(source: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """State dict of an OpenAI CLIP file (TorchScript ``ViT-B-16.pt``, plain, safetensors ...) or dict."""
    if isinstance(source, Mapping):
        return dict(source)
    from lrreid.models.weights import read_state_dict

    return dict(read_state_dict(source))


def load_openai_clip(source: str | os.PathLike | Mapping[str, torch.Tensor], image_encoder: ClipVideoEncoder,
                     text_encoder: ClipTextEncoder | None = None) -> None:
    """Load OpenAI CLIP weights (e.g. the local ``ViT-B-16.pt``) into the encoders, in place.

    open_clip's own converter (:func:`open_clip.model.build_model_from_openai_state_dict`) turns the
    OpenAI layout into an open_clip CLIP, whose parameter names our towers share; its positional
    embedding is then interpolated to the encoder's patch grid (14x14 -> 16x8 for 256x128).  Adapters
    and pooling keep their (identity) initialisation.  A checkpoint of another architecture (e.g.
    ViT-B/32 or RN50 when ViT-B/16 is expected) raises a one-line :class:`CheckpointError`.

    Example::

        image = ClipVideoEncoder(image_size=(256, 128))
        text = ClipTextEncoder()
        load_openai_clip("../shared/weights/ViT-B-16.pt", image, text)
    """
    from open_clip.model import build_model_from_openai_state_dict

    where = os.fspath(source) if not isinstance(source, Mapping) else "state dict"
    state = read_openai_state_dict(source)
    # Entries that are not weights: OpenAI's archive stores its hyper-parameters as tensors, and a
    # traced open_clip model keeps its causal ``attn_mask`` (rebuilt by the text encoder anyway).
    for key in ("input_resolution", "context_length", "vocab_size", "attn_mask"):
        state.pop(key, None)
    if any(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    found = openai_architecture(state)
    expected = _expected_architecture(image_encoder, text_encoder)
    image_fields = ("vision", "width", "layers", "patch_size", "embed_dim")
    if any(getattr(found, f) != getattr(expected, f) for f in image_fields):
        raise CheckpointError(f"{where}: OpenAI CLIP checkpoint is {found.describe()}, "
                              f"this encoder expects {expected.describe()}")
    if text_encoder is not None and (found.text_width, found.text_layers) != (expected.text_width, expected.text_layers):
        raise CheckpointError(f"{where}: OpenAI CLIP text tower is width {found.text_width}, {found.text_layers} layers, "
                              f"this encoder expects width {expected.text_width}, {expected.text_layers} layers")
    try:
        # open_clip's converter checks the file is a complete CLIP (it loads strictly) and names its
        # parameters; it casts to fp16 on the way, so the values themselves are taken from the file
        # (OpenAI's releases are fp16 anyway, fine-tuned files may be fp32 and stay exact).
        reference = build_model_from_openai_state_dict(dict(state), quick_gelu=True, cast_dtype=None)
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: not a loadable OpenAI CLIP checkpoint ({_first_line(exc)})") from None
    converted = {k: state[k].float() for k in reference.state_dict()}
    del reference

    visual = {k.removeprefix("visual."): v for k, v in converted.items() if k.startswith("visual.")}
    visual["positional_embedding"] = interpolate_positional_embedding(visual["positional_embedding"],
                                                                      image_encoder.grid_size)
    try:
        image_encoder.visual.load_state_dict(visual, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: image tower does not fit: {_first_line(exc)}") from None
    if text_encoder is not None:
        text = {k: v for k, v in converted.items() if not k.startswith("visual.")}
        if text["positional_embedding"].shape[0] != text_encoder.context_length:
            raise CheckpointError(f"{where}: text context length {text['positional_embedding'].shape[0]}, "
                                  f"this encoder expects {text_encoder.context_length}")
        text["logit_scale"] = text["logit_scale"].reshape(())
        try:
            text_encoder.load_state_dict(text, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{where}: text tower does not fit: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def openai_state_dict(image_encoder: ClipVideoEncoder, text_encoder: ClipTextEncoder,
                      image_size: int = 224) -> dict[str, torch.Tensor]:
    """The towers' CLIP weights in OpenAI's layout, at a square ``image_size`` (the inverse of loading).

    Used to write test checkpoints and to export a fine-tuned encoder for other CLIP code.
    """
    state = {f"visual.{k}": v.detach().clone() for k, v in image_encoder.visual.state_dict().items()}
    grid = image_size // int(image_encoder.visual.patch_size[0])
    state["visual.positional_embedding"] = interpolate_positional_embedding(
        state["visual.positional_embedding"], (grid, grid), old_grid=image_encoder.grid_size)
    for k, v in text_encoder.state_dict().items():
        state[k] = v.detach().clone()
    return state


def build_clip_reid_encoders(
    arch: str | Mapping = "ViT-B-16",
    image_size: tuple[int, int] = (256, 128),
    pretrained: str | os.PathLike | None = None,
    with_text: bool = True,
    **image_kwargs,
) -> tuple[ClipVideoEncoder, ClipTextEncoder | None]:
    """Image (and text) towers of a named size, optionally with OpenAI CLIP weights.

    ``image_kwargs`` go to :class:`ClipVideoEncoder` (adapter_dim, adapter_layers, temporal_adapter,
    temporal_kernel, pooling).

    Example::

        image, text = build_clip_reid_encoders("tiny", image_size=(64, 32))
        image, text = build_clip_reid_encoders("ViT-B-16", pretrained="../shared/weights/ViT-B-16.pt")
    """
    image = ClipVideoEncoder(image_size=image_size, **arch_kwargs(arch), **image_kwargs)
    text = ClipTextEncoder(**text_kwargs(arch)) if with_text else None
    if pretrained:
        load_openai_clip(pretrained, image, text)
    return image, text
