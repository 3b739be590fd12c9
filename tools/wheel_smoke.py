"""What a user does first with an installed lorafa wheel, run inside a fresh venv by tools/wheels.py:
import it, train a tiny PEFT Llama for a few steps with create_lorafa_optimizer, read __version__.
Prints one JSON line; exits non-zero, saying why, when anything is not as it should be."""

import argparse
import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

import lorafa

STEPS = 5


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--expect_version", required=True)
    args = parser.parse_args()

    # The installed package, not a source folder that happens to be on sys.path.
    if "site-packages" not in lorafa.__file__:
        sys.exit(f"lorafa was imported from {lorafa.__file__}, not from the venv")
    if lorafa.__version__ != args.expect_version:
        sys.exit(f"lorafa.__version__ is {lorafa.__version__}, expected {args.expect_version}")

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    optimizer = lorafa.create_lorafa_optimizer(model, r=4, lora_alpha=8, lr=1e-2)
    lora = {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}
    tokens = torch.randint(0, config.vocab_size, (4, 16))

    losses = []
    for _ in range(STEPS):
        loss = model(input_ids=tokens, labels=tokens).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())

    after = dict(model.named_parameters())
    frozen_a = all(torch.equal(after[name], before) for name, before in lora.items() if "lora_A" in name)
    moved_b = all(not torch.equal(after[name], before) for name, before in lora.items() if "lora_B" in name)
    result = {"lorafa": lorafa.__version__, "torch": torch.__version__, "python": sys.version.split()[0],
              "losses": losses, "a_frozen": frozen_a, "b_trained": moved_b}
    print(json.dumps(result))
    if not (losses[-1] < losses[0] and frozen_a and moved_b):
        sys.exit("training did not behave as LoRA-FA: the loss must fall, every A stay and every B move")


if __name__ == "__main__":
    main()
