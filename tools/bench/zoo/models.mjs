// The zoo's suite: which models, on which Python stack, from which file. Each model's
// factory (its name) and example-inputs function are in vision.py (Debian: torch 1.13 +
// torchvision 0.14) or hf.py (the venv: torch 2.x + transformers); random weights,
// nothing downloads. `quick` marks the handful --quick runs.
import { join } from "node:path";

import { BENCH_DIR, REPO_ROOT } from "../lib/paths.mjs";

const ZOO_DIR = join(BENCH_DIR, "zoo");

export const STACKS = {
  debian: { file: join(ZOO_DIR, "vision.py"), python: "/usr/bin/python3", what: "Debian torch 1.13 + torchvision 0.14" },
  venv: { file: join(ZOO_DIR, "hf.py"), python: join(REPO_ROOT, ".venv-torch2", "bin", "python"), what: "venv torch 2.x + transformers" },
};

/** [name (= factory), family, example-inputs function, quick?] per stack. */
const SUITE = {
  debian: [
    ["resnet18", "classification", "image_inputs", true],
    ["resnet50", "classification", "image_inputs"],
    ["mobilenet_v3_small", "classification", "image_inputs", true],
    ["mobilenet_v2", "classification", "image_inputs"],
    ["squeezenet1_1", "classification", "image_inputs"],
    ["shufflenet_v2_x0_5", "classification", "image_inputs"],
    ["efficientnet_b0", "classification", "image_inputs"],
    ["regnet_y_400mf", "classification", "image_inputs"],
    ["densenet121", "classification", "image_inputs"],
    ["googlenet", "classification", "image_inputs"],
    ["mnasnet0_5", "classification", "image_inputs"],
    ["convnext_tiny", "classification", "image_inputs"],
    ["vit_b_16", "classification", "image_inputs"],
    ["ssdlite320_mobilenet_v3_large", "detection", "detection_inputs", true],
    ["fasterrcnn_mobilenet_v3_large_320_fpn", "detection", "detection_inputs"],
    ["lraspp_mobilenet_v3_large", "segmentation", "image_inputs", true],
    ["deeplabv3_mobilenet_v3_large", "segmentation", "image_inputs"],
    ["r3d_18", "video", "video_inputs"],
    ["raft_small", "optical flow", "flow_inputs"],
  ],
  venv: [
    ["bert", "encoder", "encoder_inputs", true],
    ["roberta", "encoder", "encoder_inputs"],
    ["deberta_v2", "encoder", "encoder_inputs"],
    ["distilbert", "encoder", "encoder_inputs"],
    ["albert", "encoder", "encoder_inputs"],
    ["electra", "encoder", "encoder_inputs"],
    ["xlm_roberta", "encoder", "encoder_inputs"],
    ["mpnet", "encoder", "encoder_inputs"],
    ["gpt2", "decoder", "ids_inputs", true],
    ["gpt_neo", "decoder", "ids_inputs"],
    ["opt", "decoder", "decoder_inputs"],
    ["bloom", "decoder", "ids_inputs"],
    ["llama", "decoder", "decoder_inputs"],
    ["mistral", "decoder", "decoder_inputs"],
    ["qwen2", "decoder", "decoder_inputs"],
    ["phi", "decoder", "decoder_inputs"],
    ["gemma", "decoder", "decoder_inputs"],
    ["t5", "encoder-decoder", "seq2seq_inputs", true],
    ["bart", "encoder-decoder", "seq2seq_inputs"],
    ["marian", "encoder-decoder", "seq2seq_inputs"],
    ["pegasus", "encoder-decoder", "seq2seq_inputs"],
    ["vit", "vision", "image_inputs", true],
    ["deit", "vision", "image_inputs"],
    ["convnext", "vision", "image_inputs"],
    ["resnet", "vision", "image_inputs"],
    ["swin", "vision", "image_inputs"],
    ["wav2vec2", "audio", "audio_inputs", true],
    ["hubert", "audio", "audio_inputs"],
    ["whisper", "audio", "whisper_inputs"],
  ],
};

/** Every model: { name, stack, family, file, factory, example, quick }. */
export const MODELS = Object.entries(SUITE).flatMap(([stack, models]) =>
  models.map(([name, family, example, quick = false]) => ({ name, stack, family, file: STACKS[stack].file, factory: name, example, quick })),
);
