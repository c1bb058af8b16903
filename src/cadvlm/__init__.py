"""cadvlm: teach vision-language models to write CAD code from pictures of a part."""

__version__ = "0.1.0"
