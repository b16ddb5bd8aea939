"""The mathematics of SFRIK, with torch (and numpy) only: Legendre polynomials, rotation-invariant
kernels, the MMD to the uniform distribution on the sphere, the losses and their distributed
reductions. Nothing here imports another part of the package, so the loss works in any framework.
The public names are re-exported by :mod:`sfrik_plugin`.
"""
