"""The model families: one public module per family, named as the family (`resnet.py` is `resnet`).

Each public module defines `FAMILY = seekdeploy.nn.family.Family(...)`; the registry lists the
public modules of this folder without importing them (so `seekdeploy --help` stays free of torch)
and imports one when its family is first used. Underscore modules are a family's private parts
(its torch-free spec, layers and grid; a static model kept apart for size).
"""
