"""heart-sr-tf: super-resolution of cardiac cine MRI with TensorFlow/Keras."""

__version__ = "0.1.0"
