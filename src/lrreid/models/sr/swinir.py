"""SwinIR: Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021.
``swinir_s`` is the lightweight x2 model S3-CLIP puts in front of its re-ID encoder.

::

    LR [0,1] - mean -> conv_first 3x3 (3 -> C)                               shallow features F0
      -> RSTB_1 ... RSTB_K, each:                                            deep features
           STL x depth (LayerNorm -> (shifted) window attention -> +,
                        LayerNorm -> MLP -> +; every second STL shifts windows by half)
           -> conv 3x3 -> + RSTB input
      -> LayerNorm -> conv_after_body 3x3 -> + F0
      -> upsample: conv 3x3 (C -> 3*s*s) -> pixel shuffle s  ("pixelshuffledirect")
      -> + mean -> SR

SwinIR-S: C = 60, K = 4 RSTBs of depth 6, 6 heads, window 8, MLP ratio 2, one-conv residual
connection.  The image is padded (reflect) to a multiple of the window and the output cropped.

Parameter and buffer names are the official ones (JingyunLiang/SwinIR ``network_swinir.py``), so
``002_lightweightSR_DIV2K_s64w8_SwinIR-S_x2.pth`` loads strictly.  That file also stores two kinds
of derived buffers, kept here with the same names and shapes: ``relative_position_index`` (which
entry of the bias table each token pair uses) and, for shifted blocks, ``attn_mask`` computed for
the 64x64 training patches (``img_size``).  Other input sizes use masks computed on the fly and
cached per size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.models.sr.base import SRModel, output_size

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * nW, window*window, C]`` (windows in row-major order)."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)


def window_reverse(windows: torch.Tensor, window: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``[B * nW, window*window, C]`` -> ``[B, H, W, C]``."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window, W // window, window, window, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


def relative_position_index(window: int) -> torch.Tensor:
    """``[window^2, window^2]``: index into the ``(2w-1)^2`` bias table for each token pair."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]


def shifted_window_mask(H: int, W: int, window: int, shift: int) -> torch.Tensor:
    """``[nW, window^2, window^2]`` additive mask (0 or -100): after the cyclic shift, tokens of a
    window that came from different image regions must not attend to each other."""
    region = torch.zeros(1, H, W, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for hs in cuts:
        for ws in cuts:
            region[:, hs, ws, :] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # nW, window^2
    diff = labels[:, None, :] - labels[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Multi-head self-attention inside a window, with a learned relative-position bias."""

    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.window, self.num_heads = window, num_heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``x [B*nW, N, C]``; ``mask [nW, N, N]`` or None."""
        Bw, N, C = x.shape
        qkv = self.qkv(x).view(Bw, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each [B*nW, heads, N, d]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(N, N, self.num_heads).permute(2, 0, 1)  # heads, N, N
        if mask is None:
            attn_bias = bias.unsqueeze(0).to(q.dtype)
        else:
            nW = mask.shape[0]
            q, k, v = (t.view(Bw // nW, nW, self.num_heads, N, -1) for t in (q, k, v))
            attn_bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).unsqueeze(0).to(q.dtype)  # 1, nW, heads, N, N
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)
        out = out.reshape(Bw, self.num_heads, N, -1).transpose(1, 2).reshape(Bw, N, C)
        return self.proj(out)


class SwinTransformerLayer(nn.Module):
    """STL: LayerNorm -> (shifted-)window attention -> residual; LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, img_size: int):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.img_size = img_size
        if shift > 0:  # stored like the official release (see the module docstring)
            self.register_buffer("attn_mask", shifted_window_mask(img_size, img_size, window, shift))
        else:
            self.attn_mask = None
        self._masks: dict[tuple, torch.Tensor] = {}

    def mask_for(self, H: int, W: int, device: torch.device) -> torch.Tensor | None:
        if self.shift == 0:
            return None
        if (H, W) == (self.img_size, self.img_size):
            return self.attn_mask
        key = (H, W, device)
        if key not in self._masks:
            self._masks[key] = shifted_window_mask(H, W, self.window, self.shift).to(device)
        return self._masks[key]

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        H, W = hw
        B, L, C = x.shape
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(x, self.window), self.mask_for(H, W, x.device))
        x = window_reverse(windows, self.window, H, W)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.reshape(B, L, C)
        return x + self.mlp(self.norm2(x))


class STLGroup(nn.Module):
    """The STLs of one RSTB (the official ``residual_group``; windows shift in every second one)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, img_size: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                SwinTransformerLayer(dim, num_heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio, img_size)
                for i in range(depth)
            ]
        )

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, hw)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: STLs -> conv 3x3 -> + input (paper Fig. 2)."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: int, mlp_ratio: float, img_size: int):
        super().__init__()
        self.residual_group = STLGroup(dim, depth, num_heads, window, mlp_ratio, img_size)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        B, L, C = x.shape
        y = self.residual_group(x, hw).transpose(1, 2).reshape(B, C, *hw)
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    """``[B, C, H, W]`` -> tokens ``[B, H*W, C]``, then LayerNorm (patch size 1)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIR(SRModel):
    """SwinIR with the lightweight ``pixelshuffledirect`` reconstruction (SwinIR-S by default).

    ``upscale`` is the network's fixed scale (``supported_scales = (upscale,)``; the released
    SwinIR-S weights are x2).  With ``pre_upsample=True`` the network accepts any scale >= 1: the
    input is first resized bicubically to ``ceil(round(h*scale)/upscale)`` rows (same for
    columns), then super-resolved by ``upscale`` and cropped to ``round(h*scale)``.  This is the
    "bicubic pre-interpolation" S3-CLIP discusses: it lets a fixed-x2 model reach any target size
    (e.g. 256x128 for the re-ID encoder), at the price of interpolation artefacts the SR network
    then sees as content.  ``img_size`` only sets the stored ``attn_mask`` buffers (see the
    module docstring); inputs of any size work.

    Example::

        net = SwinIR()                                    # SwinIR-S x2, 0.91M parameters
        net(torch.rand(1, 3, 30, 13), 2).shape            # torch.Size([1, 3, 60, 26])
    """

    importer = "swinir_release"
    name = "swinir_s"

    def __init__(
        self,
        embed_dim: int = 60,
        depths: tuple[int, ...] = (6, 6, 6, 6),
        num_heads: tuple[int, ...] = (6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upscale: int = 2,
        img_range: float = 1.0,
        img_size: int = 64,
        pre_upsample: bool = False,
    ):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} differ in length")
        self.window_size, self.upscale, self.img_range = window_size, int(upscale), float(img_range)
        self.pre_upsample = pre_upsample
        self.supported_scales = None if pre_upsample else (float(upscale),)
        self.register_buffer("mean", torch.tensor(DIV2K_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim)
        self.layers = nn.ModuleList(
            [RSTB(embed_dim, d, h, window_size, mlp_ratio, img_size) for d, h in zip(depths, num_heads)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(nn.Conv2d(embed_dim, 3 * self.upscale**2, 3, 1, 1), nn.PixelShuffle(self.upscale))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def deep_features(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, (H, W))
        return self.norm(tokens).transpose(1, 2).reshape(B, C, H, W)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        self.check_input(x)
        s = self.check_scale(scale)
        target = output_size(x.shape[-2], x.shape[-1], s)
        if self.pre_upsample:
            r = self.upscale
            mid = (-(-target[0] // r), -(-target[1] // r))
            if mid != tuple(x.shape[-2:]):
                x = F.interpolate(x, size=mid, mode="bicubic", align_corners=False, antialias=True)
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.window_size, (-w) % self.window_size
        x = (x - self.mean) * self.img_range
        if pad_h or pad_w:
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        f0 = self.conv_first(x)
        out = self.upsample(self.conv_after_body(self.deep_features(f0)) + f0)
        out = out / self.img_range + self.mean
        out = out[:, :, : h * self.upscale, : w * self.upscale][:, :, : target[0], : target[1]]
        return self.finish(out)
