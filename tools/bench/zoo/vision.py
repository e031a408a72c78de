"""The zoo's torchvision models (Debian stack: torch 1.13 + torchvision 0.14), random
weights (weights=None, weights_backbone=None: nothing downloads), one factory per model
and one example-inputs function per input kind, batch 1, for `coil pack --example NAME`.

Detection models take a list of images and return a list of dicts, one per image;
`FirstImage` takes a batch tensor and returns the first image's dict, so a call takes
and returns tensors only, as served models do."""
import torch
import torchvision
from torchvision import models


def _built(builder, **kwargs):
    torch.manual_seed(0)
    return builder(weights=None, **kwargs).eval()


class FirstImage(torch.nn.Module):
    """A detection model's result for the first (only) image of the batch."""

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, images):
        # A list of images, as the detectors take them; scripted, they return (losses, detections).
        result = self.detector([image for image in images.unbind(0)])
        if torch.jit.is_scripting():
            return result[1][0]
        return result[0]


# --- classification (224x224) ----------------------------------------------------------

def resnet18():
    return _built(models.resnet18)


def resnet50():
    return _built(models.resnet50)


def mobilenet_v3_small():
    return _built(models.mobilenet_v3_small)


def mobilenet_v2():
    return _built(models.mobilenet_v2)


def squeezenet1_1():
    return _built(models.squeezenet1_1)


def shufflenet_v2_x0_5():
    return _built(models.shufflenet_v2_x0_5)


def efficientnet_b0():
    return _built(models.efficientnet_b0)


def regnet_y_400mf():
    return _built(models.regnet_y_400mf)


def densenet121():
    return _built(models.densenet121)


def googlenet():
    return _built(models.googlenet, aux_logits=False, init_weights=True)


def mnasnet0_5():
    return _built(models.mnasnet0_5)


def convnext_tiny():
    return _built(models.convnext_tiny)


def vit_b_16():
    return _built(models.vit_b_16)


# --- detection (320x320), segmentation (224x224), video, optical flow -----------------

def fasterrcnn_mobilenet_v3_large_320_fpn():
    return FirstImage(_built(models.detection.fasterrcnn_mobilenet_v3_large_320_fpn, weights_backbone=None))


def ssdlite320_mobilenet_v3_large():
    return FirstImage(_built(models.detection.ssdlite320_mobilenet_v3_large, weights_backbone=None))


def lraspp_mobilenet_v3_large():
    return _built(models.segmentation.lraspp_mobilenet_v3_large, weights_backbone=None)


def deeplabv3_mobilenet_v3_large():
    return _built(models.segmentation.deeplabv3_mobilenet_v3_large, weights_backbone=None, aux_loss=False)


def r3d_18():
    return _built(models.video.r3d_18)


def raft_small():
    return _built(models.optical_flow.raft_small)


# --- inputs ----------------------------------------------------------------------------

def _images(*shape, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=generator)


def image_inputs():
    """One 224x224 RGB image."""
    return (_images(1, 3, 224, 224),)


def detection_inputs():
    """One 320x320 RGB image, values in [0, 1]."""
    return (_images(1, 3, 320, 320),)


def video_inputs():
    """One clip: 3 channels, 4 frames of 64x64."""
    return (_images(1, 3, 4, 64, 64),)


def flow_inputs():
    """Two 128x128 frames (RAFT needs sides divisible by 8)."""
    return _images(1, 3, 128, 128, seed=1), _images(1, 3, 128, 128, seed=2)
