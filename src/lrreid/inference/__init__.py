"""Using a trained model: LR probes -> predicted scale -> super-resolution -> re-ID features.

``LRReIDPipeline`` runs the three networks on images (paths, PIL images, numpy arrays, tensors)
with the fast path (batched by scale, channels_last, bf16/fp16 autocast) or in plain fp32;
``load_pipeline`` builds one from a training run.
"""
from lrreid.inference.pipeline import LRReIDPipeline, ProbeFeatures, load_images, to_image_tensor

__all__ = ["LRReIDPipeline", "ProbeFeatures", "load_images", "to_image_tensor"]
