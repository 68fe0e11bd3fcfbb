# Copyright (c) autoenc developers.
# Licensed under the MIT License.

"""Codec: the ``.aec`` file format and the scene compress/decompress pipeline.

Submodules are not imported here, so reading a container never pulls in torch.
"""
