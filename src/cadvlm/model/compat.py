"""Processors with a video slot (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, SmolVLM) without torchvision.

transformers 5 gives these processors a `video_processor` besides the image processor, and every
video processor class needs torchvision. Without torchvision (a CPU build of torch with no matching
torchvision wheel, as on this project's CPU machines), such a processor can be neither built,
saved nor loaded, although pictures never touch the video part: the constructor's class check
looks the video class up in a registry that is a placeholder without torchvision
(AttributeError: 'VIDEO_PROCESSOR_MAPPING' has no attribute '_extra_content'), and
`from_pretrained` asks `AutoVideoProcessor`, which refuses.

`allow_pictures_without_torchvision()` (idempotent; nothing is changed when torchvision imports)
lets the video slot hold a plain `BaseVideoProcessor` (no torchvision needed to build or save it)
and has `from_pretrained` put one there. Handing such a processor a video fails inside that
placeholder; pictures are processed by the family's own image processor, as with torchvision
(its PIL backend: transformers picks that by itself when torchvision is absent).
"""

from __future__ import annotations

import importlib.util

_PATCHED = False


def torchvision_usable() -> bool:
    """torchvision is installed and imports (a wheel built for another torch fails at import)."""
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # e.g. "operator torchvision::nms does not exist": built against another torch
        return False
    return True


class _PlaceholderVideoLoader:
    """Stands in for AutoVideoProcessor when a processor with a video slot is loaded."""

    @staticmethod
    def from_pretrained(*args, **kwargs):
        from transformers.video_processing_utils import BaseVideoProcessor

        return BaseVideoProcessor()


def allow_pictures_without_torchvision() -> bool:
    """Let picture-only use of processors with a video slot work without torchvision; True when patched."""
    global _PATCHED
    if _PATCHED:
        return True
    if torchvision_usable():
        return False
    from transformers import processing_utils
    from transformers.video_processing_utils import VideoProcessorMixin

    check = processing_utils.ProcessorMixin.check_argument_for_proper_class

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and isinstance(argument, VideoProcessorMixin):
            return VideoProcessorMixin
        return check(self, argument_name, argument)

    processing_utils.ProcessorMixin.check_argument_for_proper_class = check_argument_for_proper_class
    loaders = processing_utils.MODALITY_TO_AUTOPROCESSOR_MAPPING  # a lazy dict of (module, class name)
    loaders._MAPPING_NAMES = {**loaders._MAPPING_NAMES, "video_processor": (__name__, "_PlaceholderVideoLoader")}
    _PATCHED = True
    return True


def placeholder_video_processor():
    """What to pass as `video_processor=` when building such a processor without torchvision."""
    from transformers.video_processing_utils import BaseVideoProcessor

    allow_pictures_without_torchvision()
    return BaseVideoProcessor()
