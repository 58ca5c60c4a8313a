"""Image loading (DICOM/PNG/JPEG), input preparation, data sets and synthetic lesions."""

from ml.data.datasets import (
    IMAGE_EXTENSIONS,
    DatasetBundle,
    ImageDataset,
    Sample,
    build_datasets,
)
from ml.data.errors import DatasetError, ImageLoadError, ImageTooLargeError
from ml.data.image_io import LoadedImage, load_image, sniff_format
from ml.data.transforms import (
    AUGMENT_PRESETS,
    AugmentConfig,
    Letterbox,
    build_augment,
    prepare_input,
)

__all__ = [
    "AUGMENT_PRESETS",
    "IMAGE_EXTENSIONS",
    "AugmentConfig",
    "DatasetBundle",
    "DatasetError",
    "ImageDataset",
    "ImageLoadError",
    "ImageTooLargeError",
    "Letterbox",
    "LoadedImage",
    "Sample",
    "build_augment",
    "build_datasets",
    "load_image",
    "prepare_input",
    "sniff_format",
]
