"""The hub-trained attribution encoder (issue 26): a small convolutional network that the hub
trains on its own models' images (labels = models) to tell its models apart where a frozen
ImageNet backbone's block statistics cannot (a stroke's width, grain, dot size).

    network.py   the network: full-resolution convolutions, per-stage channel statistics
    views.py     what an upload does to an image (crop, resize, JPEG) and the canonical size
    training.py  the training loop: balanced batches, upload-like views, a cosine-margin loss
    weights.py   the trained weights as hub state: safetensors + JSON, named by their digest
"""
