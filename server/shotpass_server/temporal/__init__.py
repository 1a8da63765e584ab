"""Temporal consistency: optical flow between source frames, flow-guided propagation, flicker QC.

Modules: ``vectors`` (motion-vector channels of a plate), ``flow`` (DIS flow, consistency, warping),
``frames`` (plates on a common canvas), ``options`` (the ``temporal`` render options every per-frame model
gets), ``plan`` (frame order of a temporal render), ``propagate`` (one temporal frame), ``qc`` (the
flicker figure and the other per-render checks).
"""
