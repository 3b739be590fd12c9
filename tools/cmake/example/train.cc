// Trains a LoraLinear for a few steps with create_lorafa_optimizer, saves and reloads the optimizer, and
// checks that the reloaded optimizer steps exactly as the original. Exit code 0 when all of it holds.
#include <cstdio>
#include <string>

#include <torch/torch.h>

#include "lorafa/lorafa.h"

namespace {

lorafa::LoraLinear MakeLayer() {
  torch::manual_seed(0);
  return lorafa::LoraLinear(lorafa::LoraLinearOptions(64, 32, /*r=*/8).lora_alpha(16));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string checkpoint = argc > 1 ? argv[1] : "optimizer.pt";
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({128, 64});
  const torch::Tensor target = x.matmul(torch::randn({64, 32})) * 0.1;

  lorafa::LoraLinear layer = MakeLayer();
  auto optimizer = lorafa::create_lorafa_optimizer(*layer, lorafa::LoraFAOptions(1e-2));
  auto train_step = [&](lorafa::LoraLinear& model, lorafa::LoraFAOptimizer& opt) {
    opt.zero_grad();
    torch::Tensor loss = torch::mse_loss(model(x), target);
    loss.backward();
    opt.step();
    return loss.item<double>();
  };
  const double first = train_step(layer, *optimizer);
  double last = first;
  for (int step = 1; step < 30; ++step) last = train_step(layer, *optimizer);
  std::printf("loss %.6f -> %.6f after 30 steps\n", first, last);
  if (!(last < 0.9 * first)) {
    std::fprintf(stderr, "FAIL: the loss did not go down\n");
    return 1;
  }

  // Save, then resume in a fresh layer and optimizer: one more step must match the original's exactly.
  torch::save(*optimizer, checkpoint);
  lorafa::LoraLinear resumed = MakeLayer();
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : layer->named_parameters()) resumed->named_parameters()[item.key()].copy_(item.value());
  }
  auto reloaded = lorafa::create_lorafa_optimizer(*resumed, lorafa::LoraFAOptions(1e-2));
  torch::load(*reloaded, checkpoint);
  train_step(layer, *optimizer);
  train_step(resumed, *reloaded);
  for (const auto& item : layer->named_parameters()) {
    if (!torch::equal(item.value(), resumed->named_parameters()[item.key()])) {
      std::fprintf(stderr, "FAIL: %s differs after the save/load round trip\n", item.key().c_str());
      return 1;
    }
  }
  std::printf("save/load round trip: the resumed optimizer steps bit for bit like the original\n");
  return 0;
}
