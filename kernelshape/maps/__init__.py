"""Q and C maps of an activation: closed forms, mpmath at N digits, numba float64."""
