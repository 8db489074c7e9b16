"""bmtpt: Bayesian Multi-Task Prompt Tuning on a frozen T5.

Importing the package is cheap: heavy libraries are imported inside the modules that use them.
"""

__version__ = "0.1.0"
