"""jaxalign: a JAX/Flax trainer for pluralistic LLM alignment.

Importing the package is cheap: heavy libraries (jax, pandas, matplotlib) are
imported only by the subpackages that need them.
"""

__version__ = "0.1.0"
