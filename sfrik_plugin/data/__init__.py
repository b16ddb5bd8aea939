"""Images in and out, shared by the demo, the launchers and the benchmark (no solo-learn here):
Fashion-MNIST from wherever it is available, ImageFolder checks and per-class splits, evaluation and
classifier transforms, and batched augmentation of uint8 tensors for fast CPU pretraining.
"""
