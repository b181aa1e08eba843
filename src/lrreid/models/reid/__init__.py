"""Re-ID modules: networks that map a person image to an identity feature.

- ``ReIDNet``: PRI's F, a backbone (timm CNN or a re-ID encoder) with a BN-neck classifier head;
- re-ID encoders (``encoder.REID_ENCODERS``): whole pretrained re-ID networks, built by name:
  OSNet x1.0-x0.25 and OSNet-IBN (``osnet``), OSNet-AIN (``osnet_ain``), Intel's OMZ OSNet
  (``osnet_omz``); their weight files are read by :func:`lrreid.models.reid.load.load_encoder`.
"""
from lrreid.models.reid import osnet, osnet_ain, osnet_omz  # noqa: F401 - register the encoders
from lrreid.models.reid.encoder import REID_ENCODERS, InputSpec, build_encoder
from lrreid.models.reid.reid_net import ReIDNet

__all__ = ["REID_ENCODERS", "InputSpec", "ReIDNet", "build_encoder"]
