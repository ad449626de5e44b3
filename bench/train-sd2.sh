#!/bin/bash
# bench train-sd2: images/s of the C++ worker's SD² train step (tiny config, CPU) against the same
# model in PyTorch; see bench/train/run_method.sh for the method and the environment knobs.
exec bash "$(dirname "${BASH_SOURCE[0]}")/train/run_method.sh" sd2
