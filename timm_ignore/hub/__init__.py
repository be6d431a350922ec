"""From a finished training run to a Hugging Face Hub model folder: checkpoints, model cards, publishing, upload.

Not imported by ``import timm_ignore``; the ``timm-ignore publish`` command uses it.
"""
