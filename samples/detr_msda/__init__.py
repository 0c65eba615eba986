"""Deformable DETR family end to end: an mmdetection DINO / Deformable DETR and a transformers RT-DETR
(random init) on dcn::MultiScaleDeformableAttention; see README.md."""
