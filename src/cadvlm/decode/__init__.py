"""Writing answers with a trained model: generation, and decoding kept to valid programs.

- `generate`: greedy and sampled answers for pictures, batched (evaluate, predict and serve call it);
- `constrain`: the LogitsProcessor that keeps a compact model's greedy answer a program that parses
  and builds;
- `compact_prefix`: the check behind it, whether a prefix of a compact answer can still become one.

Why a package of its own: none of this runs in training, so the extract, convert and train stages
do not list it among their DVC deps, and changing how answers are decoded reruns only evaluate.
"""
