import torch


class Scale(torch.nn.Module):
    """y = 2x + 1, and a method that says whether inference mode was on."""

    def forward(self, x):
        return x * 2 + 1

    def grad_mode(self):
        return {"inference_mode": torch.is_inference_mode_enabled()}


def build():
    return Scale().eval()
