#!/bin/bash
# bench train-clip_svd: images/s of the C++ worker's clip_svd train step (tiny config, CPU)
# against the same model in PyTorch; see bench/train/run_method.sh for the method and the knobs.
exec bash "$(dirname "${BASH_SOURCE[0]}")/train/run_method.sh" clip_svd
