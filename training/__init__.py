"""Contrastive pretraining (MoCo v2) of the encoder, with astronomy augmentations on the device."""
