"""Ximilar's image recognition API (``/recognition/v2``): tasks, labels, training images, training on the
VLM training path, and ``/v2/classify`` with label probabilities and descriptors."""
