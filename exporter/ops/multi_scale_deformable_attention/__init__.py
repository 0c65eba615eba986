"""dcn::MultiScaleDeformableAttention (Deformable DETR's core): spec, reference, custom (torch op), modules
(mmcv's layer, Hugging Face's core, RT-DETRv2's attention), swap (mmcv, transformers), onnx (translation,
shape inference, reference evaluator node, the opt-in GridSample fusion). Calling the package runs the
float64 reference (``exporter.ops.multi_scale_deformable_attention(value, shapes, starts, loc, weights)``)."""
from exporter.ops._package import op_package

PUBLIC = {
    "multi_scale_deformable_attention": "reference",
    "grid_sample_formulation": "reference",
    "multi_scale_deformable_attention_op": "custom",
    "MultiScaleDeformableAttention": "modules",
    "MsdaCore": "modules",
    "RTDetrV2Attention": "modules",
}
REFERENCE = "multi_scale_deformable_attention"
op_package(__name__)
