"""The detectors of the sample, random init, nothing downloaded.

* DINO and Deformable DETR from mmdetection 3.3's own configs (``dino-4scale_r50_8xb2-12e_coco``,
  ``deformable-detr_r50_16xb2-50e_coco``): ResNet-50, ChannelMapper, 6 encoder and 6 decoder layers of
  mmcv's ``MultiScaleDeformableAttention`` (4 levels, 8 heads, 4 points), 900 (DINO) / 300 queries, built
  by mmdet's registry; the backbone's ImageNet checkpoint is not loaded. ``tiny``: ResNet-18, one encoder
  and two decoder layers, 64-wide FFNs, 30 queries (embed_dims stays 256: DINO's decoder assumes it).
* Deformable DETR from transformers' classes (``deformable-detr-hf``: ResNet-50, 4 levels, 6 + 6 layers, 300
  learned queries, single stage: no top-k query selection, so it is also the sample's float16 model);
  ``tiny`` as RT-DETR's.
* RT-DETR from transformers' classes (``RTDetrConfig()``: ResNet-50-vd, hybrid encoder, 6 decoder layers,
  300 queries, 3 levels, 8 heads, 4 points; anchors from the input's size); ``tiny``: a small ResNet,
  64-wide, 2 decoder layers. transformers' own init (normal, std 0.01, small batch-norm scales) shrinks
  a random network's activations to ~1e-10 before the query selection, so the sample re-initialises it
  to keep them near unit scale (``unit_init``; sampling offsets included: the sample really deforms).

Each is wrapped as the exporter sees a detector: ``images [N, 3, H, W] -> (scores, boxes)`` of the last
decoder layer (class logits [N, Q, classes], normalised (cx, cy, w, h) [N, Q, 4]). ``dcn-export`` swaps
mmcv's / transformers' attention modules for ours (exporter.ops.multi_scale_deformable_attention).

The two-stage detectors (DINO, RT-DETR) pick their queries by top-k of the encoder's class scores; with a
random init those nearly tie, and runtimes then pick different queries for reasons that are not the op.
The sample spreads that score head (``spread_scores``) so that the selection is stable in float32; in
float16 (relative steps of 1e-3) a random network's selection still changes -- PyTorch's own float16 run
included -- so the float16 export is compared on the single-stage Deformable DETR.

mmdet 3.3 asserts ``mmcv < 2.2.0`` at import while the mmcv wheel with CPU ops is 2.2.0: ``import_mmdet``
lowers mmcv's version string while mmdet is imported and restores it (nothing else is patched).
mmdet computes level reference points and proposals by iterating over a tensor of level shapes, which
``torch.export`` cannot trace (the sizes are data); :class:`MmdetDetr` hands mmdet's own functions the
levels' sizes as Python ints while it runs (``_python_level_shapes``), as mmdeploy's rewriters do.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

MMDET_CONFIGS = {"dino": "dino/dino-4scale_r50_8xb2-12e_coco.py",
                 "deformable-detr": "deformable_detr/deformable-detr_r50_16xb2-50e_coco.py"}
MODELS = ("dino", "deformable-detr", "rtdetr", "deformable-detr-hf")
OUTPUT_NAMES = ("scores", "boxes")


# --------------------------------------------------------------------------- mmdetection
def import_mmdet():
    """mmdet's registry (all modules registered) and its configs folder."""
    import mmcv

    real = mmcv.__version__
    mmcv.__version__ = "2.1.0"  # mmdet 3.3.0's import-time check wants mmcv < 2.2.0 (see the module doc)
    try:
        import mmdet
        from mmdet.utils import register_all_modules
    finally:
        mmcv.__version__ = real
    register_all_modules()
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # no per-parameter init report
    from mmdet.registry import MODELS as REGISTRY

    return REGISTRY, Path(mmdet.__file__).parent / ".mim" / "configs"


def mmdet_config(name: str, tiny: bool):
    from mmengine.config import Config

    _, configs = import_mmdet()
    cfg = Config.fromfile(str(configs / MMDET_CONFIGS[name])).model
    cfg.backbone.init_cfg = None  # random init: no ImageNet checkpoint download
    if tiny:
        cfg.backbone.update(depth=18, frozen_stages=-1)
        cfg.neck.in_channels = [128, 256, 512]
        cfg.encoder.num_layers, cfg.decoder.num_layers = 1, 2
        cfg.encoder.layer_cfg.ffn_cfg.feedforward_channels = 64
        cfg.decoder.layer_cfg.ffn_cfg.feedforward_channels = 64
        cfg.num_queries = 30
        if "dn_cfg" in cfg:
            cfg.dn_cfg.group_cfg.num_dn_queries = 10
    return cfg


_LEVELS = threading.local()


@contextlib.contextmanager
def _python_level_shapes(shapes: list[tuple[int, int]]) -> Iterator[None]:
    """While mmdet runs: its reference-point and proposal functions get the levels' (H, W) as Python ints
    (or torch.export's symbols), and ``torch._shape_as_tensor`` a tensor built from the shape."""
    from mmdet.models.detectors.deformable_detr import DeformableDETR
    from mmdet.models.layers.transformer.deformable_detr_layers import DeformableDetrTransformerEncoder

    enc, props, shape_as_tensor = (DeformableDetrTransformerEncoder.__dict__["get_encoder_reference_points"],
                                   DeformableDETR.gen_encoder_output_proposals, torch._shape_as_tensor)

    def reference_points(spatial_shapes, valid_ratios, device):
        return enc.__func__(shapes, valid_ratios, device)

    def proposals(self, memory, memory_mask, spatial_shapes):
        return props(self, memory, memory_mask, shapes)

    DeformableDetrTransformerEncoder.get_encoder_reference_points = staticmethod(reference_points)
    DeformableDETR.gen_encoder_output_proposals = proposals
    torch._shape_as_tensor = lambda t: torch.tensor(list(t.shape))
    try:
        yield
    finally:
        DeformableDetrTransformerEncoder.get_encoder_reference_points = enc
        DeformableDETR.gen_encoder_output_proposals = props
        torch._shape_as_tensor = shape_as_tensor


class MmdetDetr(nn.Module):
    """An mmdet DETR-style detector: ``images -> (scores, boxes)`` of its last decoder layer."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        from mmdet.structures import DetDataSample

        h, w = images.shape[-2:]
        # every image fills the batch (no padding masks); one sample says so for all (a list as long as the
        # batch would fix the batch size in the traced graph)
        samples = [DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(h, w)))]
        feats = self.detector.extract_feat(images)
        with _python_level_shapes([(f.shape[-2], f.shape[-1]) for f in feats]):
            head_inputs = self.detector.forward_transformer(feats, samples)
        scores, boxes = self.detector.bbox_head.forward(**head_inputs)
        return scores[-1], boxes[-1]


def build_mmdet(name: str = "dino", tiny: bool = False, seed: int = 0) -> nn.Module:
    registry, _ = import_mmdet()
    torch.manual_seed(seed)
    detector = registry.build(mmdet_config(name, tiny))
    detector.init_weights()
    spread_scores(detector, seed, ("cls_branches",))
    return MmdetDetr(detector).eval()


# --------------------------------------------------------------------------- transformers
class HFDetr(nn.Module):
    """A transformers detector: ``images -> (logits, pred_boxes)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        out = self.model(pixel_values=images)
        return out.logits, out.pred_boxes


def rtdetr_config(tiny: bool):
    from transformers import RTDetrConfig

    if not tiny:  # anchors from the input's own size (the default precomputes them for 640x640 only)
        return RTDetrConfig(use_pretrained_backbone=False, anchor_image_size=None)
    backbone = {"model_type": "rt_detr_resnet", "depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 64],
                "embedding_size": 16, "out_features": ["stage2", "stage3", "stage4"]}
    return RTDetrConfig(d_model=64, encoder_hidden_dim=64, encoder_ffn_dim=64, decoder_ffn_dim=64, decoder_layers=2,
                        num_queries=30, backbone_config=backbone, encoder_in_channels=[32, 64, 64],
                        decoder_in_channels=[64] * 3, use_pretrained_backbone=False, anchor_image_size=None)


def build_rtdetr(tiny: bool = False, seed: int = 0) -> nn.Module:
    from transformers import RTDetrForObjectDetection

    torch.manual_seed(seed)
    model = RTDetrForObjectDetection(rtdetr_config(tiny))
    torch.manual_seed(seed)
    unit_init(model)
    spread_scores(model, seed, ("enc_score_head",))
    return HFDetr(model).eval()


def unit_init(model: nn.Module) -> nn.Module:
    """An init that keeps a random network's activations near unit scale (see the module doc): convs
    He-normal, Linear layers PyTorch's default, batch norms the identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()
            elif hasattr(m, "running_var") and hasattr(m, "running_mean"):  # BatchNorm2d, frozen batch norms
                m.running_var.fill_(1.0)
                m.running_mean.zero_()
                if getattr(m, "weight", None) is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
    return model


def deformable_detr_hf_config(tiny: bool):
    from transformers import DeformableDetrConfig

    if not tiny:  # Deformable DETR as published: ResNet-50, 4 levels, 6 + 6 layers, 300 queries, single stage
        backbone = {"model_type": "resnet", "depths": [3, 4, 6, 3], "out_features": ["stage2", "stage3", "stage4"]}
        return DeformableDetrConfig(use_timm_backbone=False, backbone_config=backbone, use_pretrained_backbone=False)
    backbone = {"model_type": "resnet", "depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 64], "embedding_size": 16,
                "out_features": ["stage2", "stage3", "stage4"]}
    return DeformableDetrConfig(d_model=64, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                num_queries=30, use_timm_backbone=False, backbone_config=backbone,
                                use_pretrained_backbone=False)


def build_deformable_detr_hf(tiny: bool = False, seed: int = 0) -> nn.Module:
    from transformers import DeformableDetrForObjectDetection

    torch.manual_seed(seed)
    model = DeformableDetrForObjectDetection(deformable_detr_hf_config(tiny))
    torch.manual_seed(seed)
    unit_init(model)
    return HFDetr(model).eval()


def spread_scores(model: nn.Module, seed: int, names: tuple[str, ...]) -> nn.Module:
    """The last Linear of the encoder's class-score head(s) ~ N(0, 9 / fan_in): scores apart by far more
    than any runtime's rounding, as a trained model's are (see the module doc)."""
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear) and any(n in name for n in names):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 3.0 / mod.in_features ** 0.5)
    return model


def build(name: str, tiny: bool = False, seed: int = 0) -> nn.Module:
    if name not in MODELS:
        raise ValueError(f"model {name!r}: expected one of {', '.join(MODELS)}")
    if name == "rtdetr":
        return build_rtdetr(tiny, seed)
    return build_deformable_detr_hf(tiny, seed) if name == "deformable-detr-hf" else build_mmdet(name, tiny, seed)


def attention_modules(model: nn.Module) -> list[str]:
    """Paths of the multi-scale deformable attention modules (mmcv's, transformers', or ours)."""
    kinds = ("MultiScaleDeformableAttention", "MsdaCore", "RTDetrV2MultiscaleDeformableAttention")
    return [n for n, m in model.named_modules() if type(m).__name__ in kinds]


def describe(model: nn.Module, name: str, tiny: bool) -> str:
    what = {"dino": "DINO (mmdetection config)", "deformable-detr": "Deformable DETR (mmdetection config)",
            "rtdetr": "RT-DETR (transformers)", "deformable-detr-hf": "Deformable DETR (transformers)"}[name]
    return (f"{what}{' tiny' if tiny else ''}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
            f"{len(attention_modules(model))} multi-scale deformable attention layers")


# zero-argument factories for ``dcn-export weights.pth --factory samples.detr_msda.model:NAME``
def dino() -> nn.Module:
    return build("dino")


def tiny_dino() -> nn.Module:
    return build("dino", tiny=True)


def deformable_detr() -> nn.Module:
    return build("deformable-detr")


def tiny_deformable_detr() -> nn.Module:
    return build("deformable-detr", tiny=True)


def deformable_detr_hf() -> nn.Module:
    return build("deformable-detr-hf")


def tiny_deformable_detr_hf() -> nn.Module:
    return build("deformable-detr-hf", tiny=True)


def rtdetr() -> nn.Module:
    return build("rtdetr")


def tiny_rtdetr() -> nn.Module:
    return build("rtdetr", tiny=True)
