"""lorafa inside transformers' Trainer: 6 steps straight, and the same run stopped at step 3,
checkpointed, and resumed by a new Trainer, model and optimizer: identical weights and optimizer state."""

import os

import torch
import transformers
from peft import LoraConfig, get_peft_model

import lorafa

STEPS, CHECKPOINT_STEP, SEQUENCE, VOCAB = 6, 3, 8, 64


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, size=32):
        generator = torch.Generator().manual_seed(5)
        self.tokens = torch.randint(0, VOCAB, (size, SEQUENCE), generator=generator)

    def __len__(self):
        return len(self.tokens)

    def __getitem__(self, index):
        return {"input_ids": self.tokens[index], "labels": self.tokens[index]}


def make_model():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    model = transformers.LlamaForCausalLM(config)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=["q_proj", "v_proj", "up_proj", "down_proj"]))


def make_trainer(output_dir, model):
    optimizer = lorafa.create_lorafa_optimizer(model, lr=5e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / (2 * STEPS))
    args = transformers.TrainingArguments(
        output_dir=output_dir, max_steps=STEPS, per_device_train_batch_size=4, save_strategy="steps",
        save_steps=CHECKPOINT_STEP, logging_steps=1, report_to=[], use_cpu=True, seed=0, data_seed=0,
        dataloader_num_workers=0, disable_tqdm=True)
    return transformers.Trainer(model=model, args=args, train_dataset=RandomTokens(),
                                optimizers=(optimizer, scheduler)), optimizer


def trained_state(model, optimizer):
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
    return weights, optimizer.state_dict()


def test_resume_from_checkpoint_is_exact(tmp_path):
    straight_model = make_model()
    trainer, optimizer = make_trainer(str(tmp_path / "straight"), straight_model)
    trainer.train()
    straight_weights, straight_state = trained_state(straight_model, optimizer)
    assert optimizer.state_dict()["param_groups"][0]["lr"] < 5e-3  # the scheduler ran

    resumed_model = make_model()
    trainer, optimizer = make_trainer(str(tmp_path / "resumed"), resumed_model)
    checkpoint = os.path.join(str(tmp_path / "straight"), f"checkpoint-{CHECKPOINT_STEP}")
    trainer.train(resume_from_checkpoint=checkpoint)
    resumed_weights, resumed_state = trained_state(resumed_model, optimizer)

    assert straight_weights.keys() == resumed_weights.keys()
    moved = 0
    for name, value in straight_weights.items():
        assert torch.equal(value, resumed_weights[name]), name
        moved += "lora_B" in name
    assert moved > 0
    assert straight_state["param_groups"] == resumed_state["param_groups"]
    for key, entry in straight_state["state"].items():
        assert entry["step"].item() == STEPS
        for name, tensor in entry.items():
            assert torch.equal(tensor, resumed_state["state"][key][name]), (key, name)
