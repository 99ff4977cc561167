"""ProtoPNet ("This Looks Like That", Chen et al., NeurIPS 2019).

=================================  ===============================================
:class:`ProtoPNet`                 trunk + add-on + prototypes + last layer
:class:`ProtoPNetOutput`           logits, distances, similarity maps, latent
:class:`LossWeights`               CE, cluster, separation and L1 weights
:func:`protopnet_loss`             the paper's objective for one batch
:func:`add_on_layers`              the "regular" or the original's "bottleneck" add-on
:class:`ReceptiveField`            geometry of a latent map in image space
:func:`push`                       project prototypes onto own-class training patches
:func:`explain`                    scoring sheets: similarity x weight = points
:func:`nearest_patches`            the k nearest training patches of each prototype
:func:`prune`                      remove prototypes whose neighbours are off-class
:func:`retrain_last_layer`         the last-layer stage alone (after pruning)
:func:`pretrain_backbone`          warm-start a trunk offline (global pool + linear)
:func:`seed_prototypes`            start prototypes where the warm head sees the class
:func:`evidence_share`             share of a decision's positive points from own prototypes
:func:`prototype_placement`        the part under each prototype, against part-area chance
:func:`prototype_part_metrics`     consistency, stability and purity from part masks, with
                                   :func:`random_box_part_metrics` and
                                   :func:`untrained_protopnet` as chance levels
:func:`patch_visualisation_check`  the upsampling box against a gradient relevance box
                                   (Xu-Darme et al. 2023)
:func:`prototype_characteristics`  how similarity responds to hue, shape, texture, contrast
                                   and saturation changes (Nauta et al. 2021)
=================================  ===============================================

Evaluation lives in :mod:`~interp_lib.protopnet.placement`,
:mod:`~interp_lib.protopnet.evidence`, :mod:`~interp_lib.protopnet.prototype_metrics`,
:mod:`~interp_lib.protopnet.patch_check`, :mod:`~interp_lib.protopnet.characteristics`
and :mod:`~interp_lib.protopnet.boxes_eval`; none of them trains, so none is part of the
zoo's code hash.

The pure math (distances, similarities, costs) lives in
:mod:`interp_lib.protopnet.functional` and :mod:`interp_lib.protopnet.losses`; the trunks
(:func:`~interp_lib.networks.build_backbone`: small CNN, VGG, ResNet and DenseNet) in
:mod:`interp_lib.networks`.
"""

from .._plumbing import NonFiniteLossError
from .boxes import boxes_to_masks
from .characteristics import CharacteristicImportance, prototype_characteristics
from .checkpoint import CorruptCheckpointError, load_checkpoint, save_checkpoint
from .evidence import EvidenceShare, evidence_share, off_class_weight_stats
from .explain import (
    Explanation,
    NearestPatches,
    PrototypeEvidence,
    explain,
    nearest_patches,
)
from .history import EpochRecord, History
from .losses import (
    LossWeights,
    average_separation,
    cluster_cost,
    l1_cost,
    protopnet_loss,
    separation_cost,
)
from .model import ProtoPNet, ProtoPNetOutput, add_on_layers, is_protopnet
from .patch_check import PatchCheck, patch_visualisation_check
from .placement import Placement, prototype_placement
from .prototype_metrics import prototype_part_metrics, random_box_part_metrics, untrained_protopnet
from .prune import PruneResult, prune, retrain_last_layer
from .push import PushResult, push
from .receptive_field import ReceptiveField, module_receptive_field, receptive_field_box
from .stages import Schedule, Stage
from .train import fit
from .warmstart import PretrainedBackbone, pretrain_backbone, seed_prototypes

__all__ = [
    "CharacteristicImportance",
    "CorruptCheckpointError",
    "EpochRecord",
    "EvidenceShare",
    "Explanation",
    "History",
    "LossWeights",
    "NearestPatches",
    "NonFiniteLossError",
    "PatchCheck",
    "Placement",
    "PretrainedBackbone",
    "ProtoPNet",
    "ProtoPNetOutput",
    "PrototypeEvidence",
    "PruneResult",
    "PushResult",
    "ReceptiveField",
    "Schedule",
    "Stage",
    "add_on_layers",
    "average_separation",
    "boxes_to_masks",
    "cluster_cost",
    "evidence_share",
    "explain",
    "fit",
    "is_protopnet",
    "l1_cost",
    "load_checkpoint",
    "module_receptive_field",
    "nearest_patches",
    "off_class_weight_stats",
    "patch_visualisation_check",
    "pretrain_backbone",
    "protopnet_loss",
    "prototype_characteristics",
    "prototype_part_metrics",
    "prototype_placement",
    "prune",
    "push",
    "random_box_part_metrics",
    "receptive_field_box",
    "retrain_last_layer",
    "save_checkpoint",
    "seed_prototypes",
    "separation_cost",
    "untrained_protopnet",
]
