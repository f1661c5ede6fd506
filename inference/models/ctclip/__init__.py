"""CT-CLIP (Hamamci et al., arXiv 2403.17834): CTViT encoder, zero-shot and ClassFine models.

- ``model``: ``CTClipModel`` and ``CTClipClassFineModel``, the classes the ensemble's
  registry names (status, findings; no torch at import).
- ``clip`` and ``ctvit``: the networks (torch), imported when a checkpoint loads.
- ``preprocess``: the published CT-RATE preprocessing.

The package imports none of them itself, so naming ``model`` does not load torch.
"""
