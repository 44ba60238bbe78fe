"""Kernels: exact formulations of the layers the architectures use, chosen per backend."""
