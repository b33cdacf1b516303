"""Networks and inputs compared with neural-tangents (shared by the generator and the test).

Each case is ``(name, input_shape, seed, layers)`` with layers in a small grammar that
:mod:`make_nt_kernels` turns into ``neural_tangents.stax`` and the test into kernelshape:

* ``["dense", W, b]``, ``["conv", size, W, b, padding, stride]``, ``["delta", size, W, b]``
  (a 3x3 Delta-orthogonal conv with 'same' padding and stride 1 is neural-tangents' 1x1 conv);
* ``["act", name]`` with name in relu, erf, gelu (exact), sin, leaky:<slope>;
* ``["avg_pool", window, stride, padding]``, ``["global_avg_pool"]``, ``["flatten"]``,
  ``["layer_norm"]``;
* ``["residual", w, [layers]]``: ``w * x + sqrt(1 - w^2) * branch(x)`` (a parameter-free
  skip) followed by a layer norm: neural-tangents sums branches without weights, so the
  generator scales the branch's last dense/conv layer by ``sqrt(1 - w^2) / w`` and the layer
  norm removes the common factor ``1 / w^2``; the input and the branch must end in a dense
  or conv layer (neural-tangents sums Gaussian branches only).
"""

CASES = [
    ("dense_relu", (4, 5), 0,
     [["dense", 1.5, 0.1], ["act", "relu"], ["dense", 1.2, 0.2], ["act", "relu"],
      ["dense", 1.0, 0.0]]),
    ("dense_erf", (4, 5), 1,
     [["dense", 1.3, 0.2], ["act", "erf"], ["dense", 1.1, 0.1], ["act", "erf"],
      ["dense", 0.9, 0.3], ["act", "erf"], ["dense", 1.0, 0.0]]),
    ("dense_gelu_sin", (4, 5), 2,
     [["dense", 1.2, 0.1], ["act", "gelu"], ["dense", 1.0, 0.1], ["act", "sin"],
      ["dense", 1.0, 0.0]]),
    ("dense_leaky_layer_norm", (4, 5), 3,
     [["dense", 1.4, 0.3], ["layer_norm"], ["act", "leaky:0.2"], ["dense", 1.1, 0.0],
      ["layer_norm"], ["act", "erf"], ["dense", 1.0, 0.0]]),
    ("dense_residual", (4, 5), 4,
     [["dense", 1.0, 0.0],
      ["residual", 0.6, [["act", "relu"], ["dense", 1.4, 0.1], ["act", "relu"],
                         ["dense", 1.0, 0.0]]],
      ["act", "erf"], ["dense", 1.0, 0.0]]),
    ("conv_same_flatten", (3, 6, 6, 2), 5,
     [["conv", 3, 1.3, 0.1, "same", 1], ["act", "relu"], ["conv", 3, 1.4, 0.0, "same", 1],
      ["act", "relu"], ["flatten"], ["dense", 1.0, 0.0]]),
    ("conv_valid_stride", (3, 7, 7, 2), 6,
     [["conv", 3, 1.2, 0.2, "valid", 2], ["act", "relu"], ["conv", 2, 1.4, 0.0, "same", 1],
      ["act", "relu"], ["global_avg_pool"], ["dense", 1.0, 0.0]]),
    ("conv_pooling", (3, 6, 6, 2), 7,
     [["conv", 3, 1.3, 0.0, "same", 1], ["act", "relu"], ["avg_pool", 2, 2, "valid"],
      ["conv", 3, 1.4, 0.1, "same", 1], ["act", "relu"], ["avg_pool", 3, 1, "same"],
      ["global_avg_pool"], ["dense", 1.0, 0.0]]),
    ("conv_delta", (3, 5, 5, 2), 8,
     [["delta", 3, 1.3, 0.1], ["act", "relu"], ["delta", 3, 1.4, 0.0], ["act", "relu"],
      ["flatten"], ["dense", 1.0, 0.0]]),
    ("conv_layer_norm_erf_gelu", (3, 5, 5, 2), 9,
     [["conv", 3, 1.2, 0.1, "same", 1], ["layer_norm"], ["act", "erf"],
      ["conv", 3, 1.1, 0.0, "same", 1], ["layer_norm"], ["act", "gelu"],
      ["global_avg_pool"], ["dense", 1.0, 0.0]]),
    ("conv_erf_unequal_q", (2, 4, 4, 1), 10,
     [["conv", 3, 1.2, 0.1, "same", 1], ["act", "erf"], ["flatten"], ["dense", 1.0, 0.0]]),
    ("conv1d_pool", (3, 7, 2), 11,
     [["conv", 3, 1.3, 0.1, "same", 1], ["act", "relu"], ["avg_pool", 2, 2, "valid"],
      ["flatten"], ["dense", 1.0, 0.0]]),
    ("conv_residual", (3, 5, 5, 2), 12,
     [["conv", 3, 1.0, 0.0, "same", 1],
      ["residual", 0.7, [["act", "relu"], ["conv", 3, 1.4, 0.0, "same", 1]]],
      ["act", "relu"], ["global_avg_pool"], ["dense", 1.0, 0.0]]),
]
