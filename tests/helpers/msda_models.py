"""Small models on multi-scale deformable attention for the export tests and the sample (random
init, no download): an mmcv ``MultiScaleDeformableAttention`` layer, Hugging Face DeformableDetr,
RT-DETR and RT-DETRv2 built from their config classes with a tiny ResNet backbone."""
from __future__ import annotations

import torch
from torch import nn


class MmcvLayer(nn.Module):
    """One mmcv MultiScaleDeformableAttention (DINO / Deformable DETR decoder cross-attention) with its
    inputs as model inputs: query [N, Lq, E], value [N, S, E], reference_points [N, Lq, L, 2|4],
    spatial_shapes [L, 2], level_start_index [L]."""

    def __init__(self, embed_dims=32, num_heads=4, num_levels=2, num_points=2):
        super().__init__()
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention

        self.attn = MultiScaleDeformableAttention(embed_dims, num_heads, num_levels, num_points, batch_first=True)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.attn.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.2)

    def forward(self, query, value, reference_points, spatial_shapes, level_start_index):
        return self.attn(query, value=value, reference_points=reference_points, spatial_shapes=spatial_shapes,
                         level_start_index=level_start_index)


def _backbone(levels: int) -> dict:
    outs = ["stage2", "stage3", "stage4"][-levels:]
    return {"model_type": "resnet", "depths": [1, 1, 1, 1], "hidden_sizes": [16, 16, 32, 32], "embedding_size": 16,
            "out_features": outs}


def deformable_detr(d_model=64, levels=2, queries=20):
    from transformers import DeformableDetrConfig, DeformableDetrForObjectDetection

    cfg = DeformableDetrConfig(d_model=d_model, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64,
                               decoder_ffn_dim=64, encoder_attention_heads=4, decoder_attention_heads=4,
                               num_queries=queries, num_feature_levels=levels, encoder_n_points=2, decoder_n_points=2,
                               use_timm_backbone=False, backbone_config=_backbone(levels), use_pretrained_backbone=False,
                               num_labels=5)
    torch.manual_seed(0)
    return DeformableDetrForObjectDetection(cfg).eval()


def rt_detr(version: int = 1, d_model=64, queries=30):
    from transformers import RTDetrConfig, RTDetrForObjectDetection, RTDetrV2Config, RTDetrV2ForObjectDetection

    kw = dict(d_model=d_model, encoder_hidden_dim=d_model, encoder_ffn_dim=64, decoder_ffn_dim=64, decoder_layers=2,
              decoder_attention_heads=4, encoder_attention_heads=4, num_queries=queries, decoder_n_points=2,
              backbone_config=_backbone(3), encoder_in_channels=[16, 32, 32], decoder_in_channels=[d_model] * 3, num_labels=5, use_pretrained_backbone=False)
    torch.manual_seed(0)
    m = (RTDetrV2ForObjectDetection(RTDetrV2Config(**kw)) if version == 2 else RTDetrForObjectDetection(RTDetrConfig(**kw)))
    return separate_scores(m.eval())


def separate_scores(m: nn.Module) -> nn.Module:
    """RT-DETR picks its queries by top-k of the encoder's class scores: with a random init the scores
    nearly tie, and float32 / float64 / another runtime pick different queries (outputs differ for a
    reason that is not the op). Spread the score head's weights so that the selection is stable."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, mod in m.named_modules():
            if name.endswith("enc_score_head") and isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 3.0)
    return m


class Detections(nn.Module):
    """A Hugging Face detector as the exporter sees it: pixel_values -> (logits, pred_boxes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values)
        return out.logits, out.pred_boxes
