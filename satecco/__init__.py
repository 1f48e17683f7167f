"""satecco: SATeCo video super-resolution (CVPR 2024) as a modular dataflow pipeline on Ray.

Shape glossary, used in every docstring:

- model side: ``(B, T, C, H, W)`` float in [-1, 1] (``B`` clips, ``T`` frames);
- I/O side: ``(T, H, W, C)`` uint8 RGB;
- :mod:`satecco.layout` owns the conversion between the two.

``import satecco`` stays light: heavy libraries are imported by the modules that use them.
"""

__version__ = "0.1.0"
