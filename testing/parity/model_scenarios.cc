// Model level: a PEFT-wrapped model (TinyNet or a randomly initialised tiny Llama) trained by PEFT's
// create_lorafa_optimizer, and its twin trained by lorafa on the same batches; per-step losses and
// every parameter compared by name after every step.
//
// TinyNet's twin is lorafa's own C++ model (LoraEmbedding, LoraLinear) that receives the weights by
// name and runs its own forward and backward. The Llama twin is a deep copy of the PEFT model whose
// forward and backward stay in Python, and whose tensors lorafa pairs by name (PairByName) and steps.
#include <map>
#include <string>
#include <vector>

#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/torch.h>

#include "lorafa/create.h"
#include "lorafa/pairing.h"
#include "testing/parity/comparison.h"
#include "testing/parity/peft_bridge.h"
#include "testing/parity/precision.h"
#include "testing/parity/scenario.h"
#include "testing/parity/tiny_net.h"

namespace lorafa::parity {
namespace {

namespace py = pybind11;

struct ModelCase {
  std::string name;
  std::string kind;  // "mlp" (C++ TinyNet) or "llama" (hybrid)
  torch::ScalarType dtype = torch::kFloat32;
  int64_t r = 4;
  double lora_alpha = 8.0;
  bool use_rslora = false;
  py::dict (*extra_lora_kwargs)() = nullptr;  // rank/alpha patterns, bias, modules_to_save
  double weight_decay = 0.0;
  bool correct_bias = true;
  int micro_batches = 1;
  bool closure = false;
  int batch_size = 4;
};

py::dict LoraKwargs(const ModelCase& c) {
  py::dict kwargs = c.extra_lora_kwargs ? c.extra_lora_kwargs() : py::dict();
  kwargs["r"] = c.r;
  kwargs["lora_alpha"] = c.lora_alpha;
  kwargs["use_rslora"] = c.use_rslora;
  kwargs["lora_dropout"] = 0.0;
  if (!kwargs.contains("target_modules")) {
    kwargs["target_modules"] = c.kind == "mlp" ? std::vector<std::string>{"emb", "fc1", "fc2"}
                                               : std::vector<std::string>{"q_proj", "k_proj", "v_proj", "o_proj",
                                                                          "gate_proj", "up_proj", "down_proj"};
  }
  return kwargs;
}

// Compares every parameter of PEFT's model with lorafa's, by name.
void CompareParameters(Comparison& comparison, int step, const std::map<std::string, torch::Tensor>& lorafa,
                       const std::map<std::string, torch::Tensor>& peft) {
  for (const auto& [name, tensor] : peft) {
    auto mine = lorafa.find(name);
    if (mine == lorafa.end()) {
      comparison.Miss("lorafa has no parameter " + name);
      continue;
    }
    comparison.Add(name, step, mine->second, tensor);
  }
}

ScenarioResult RunModelCase(const ModelCase& c, int steps) {
  const LoraFAOptions options =
      LoraFAOptions(1e-2).weight_decay(c.weight_decay).correct_bias(c.correct_bias).projection(Projection::kPeftBf16);
  py::dict overrides;
  overrides["correct_bias"] = c.correct_bias;
  py::object run = PeftBridge().attr("ModelRun")(c.kind, 7, DtypeName(c.dtype), LoraKwargs(c), options.lr(),
                                                 c.weight_decay, overrides);
  auto peft_parameters = [&run] { return run.attr("peft_parameters")().cast<std::map<std::string, torch::Tensor>>(); };

  // lorafa's twin and its optimizer.
  TinyNet tiny_net{nullptr};
  std::unique_ptr<LoraFAOptimizer> optimizer;
  std::function<std::map<std::string, torch::Tensor>()> lorafa_parameters;
  if (c.kind == "mlp") {
    tiny_net = TinyNet(TinyNetShape{}, c.r, c.lora_alpha, c.use_rslora);
    tiny_net->LoadByName(run.attr("base_model_state")().cast<std::map<std::string, torch::Tensor>>(),
                         run.attr("base_model_trainable")().cast<std::map<std::string, bool>>());
    optimizer = create_lorafa_optimizer(*tiny_net, options);
    lorafa_parameters = [&tiny_net] {
      std::map<std::string, torch::Tensor> by_name;
      for (const auto& item : tiny_net->named_parameters()) by_name[item.key()] = item.value();
      return by_name;
    };
  } else {
    auto named = run.attr("lorafa_parameters")().cast<std::vector<std::pair<std::string, torch::Tensor>>>();
    PairedParameters paired = PairByName(named, [&run](const std::string& module, const std::string& adapter) {
      return run.attr("scaling")(module, adapter).cast<double>();
    });
    optimizer = std::make_unique<LoraFAOptimizer>(paired.pairs, paired.others, options);
    lorafa_parameters = [&run] { return run.attr("base_model_state")().cast<std::map<std::string, torch::Tensor>>(); };
  }

  Comparison comparison(Comparison::Target::kBitwise);
  for (int t = 1; t <= steps; ++t) {
    py::tuple batch = run.attr("batch")(c.batch_size);
    const double peft_loss = run.attr("peft_step")(batch, c.micro_batches, c.closure).cast<double>();
    double lorafa_loss = 0.0;
    if (c.kind == "mlp") {
      auto tokens = batch[0].cast<torch::Tensor>();
      auto labels = batch[1].cast<torch::Tensor>();
      // lorafa's own model: C++ autograd runs without the interpreter lock, as LibTorch requires.
      py::gil_scoped_release release;
      // peft_bridge.ModelRun._loss, for lorafa's twin.
      auto loss_of = [&tiny_net](const torch::Tensor& x, const torch::Tensor& y) {
        return torch::cross_entropy_loss(tiny_net(x).to(torch::kFloat), y);
      };
      auto closure = [&] {
        optimizer->zero_grad();
        torch::Tensor loss = loss_of(tokens, labels);
        loss.backward();
        return loss.detach();
      };
      if (c.closure) {
        lorafa_loss = optimizer->step(closure).item<double>();
      } else {
        optimizer->zero_grad();
        for (int k = 0; k < c.micro_batches; ++k) {
          torch::Tensor chunk_tokens = tokens.chunk(c.micro_batches)[k], chunk_labels = labels.chunk(c.micro_batches)[k];
          torch::Tensor loss = loss_of(chunk_tokens, chunk_labels) / c.micro_batches;
          loss.backward();
          lorafa_loss += loss.item<double>();
        }
        optimizer->step();
      }
    } else if (c.closure) {
      py::object closure = run.attr("lorafa_closure")(batch);
      lorafa_loss = optimizer->step([&closure] { return closure().cast<torch::Tensor>(); }).item<double>();
    } else {
      lorafa_loss = run.attr("lorafa_forward_backward")(batch, c.micro_batches).cast<double>();
      optimizer->step();
    }
    comparison.AddScalar("loss", t, lorafa_loss, peft_loss);
    CompareParameters(comparison, t, lorafa_parameters(), peft_parameters());
  }
  return ResultOf(comparison, DtypeName(c.dtype), steps);
}

Scenario MakeModelScenario(ModelCase c) {
  return {c.name, 5, [c](int steps) { return RunModelCase(c, steps); }};
}

}  // namespace

std::vector<Scenario> ModelScenarios() {
  std::vector<ModelCase> cases;
  cases.push_back({"model/tinynet/float32", "mlp"});
  {
    ModelCase c{"model/tinynet/bfloat16", "mlp"};
    c.dtype = torch::kBFloat16;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/tinynet/bias-all", "mlp"};
    c.extra_lora_kwargs = [] {
      py::dict kwargs;
      kwargs["bias"] = "all";
      return kwargs;
    };
    cases.push_back(c);
  }
  {
    ModelCase c{"model/tinynet/grad-accumulation", "mlp"};
    c.micro_batches = 2;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/tinynet/closure", "mlp"};
    c.closure = true;
    cases.push_back(c);
  }
  cases.push_back({"model/llama/float32", "llama"});
  {
    ModelCase c{"model/llama/bfloat16", "llama"};
    c.dtype = torch::kBFloat16;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/rslora", "llama"};
    c.use_rslora = true;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/rank-alpha-pattern", "llama"};
    c.extra_lora_kwargs = [] {
      py::dict kwargs, ranks, alphas;
      ranks["q_proj"] = 2;
      ranks["down_proj"] = 8;
      alphas["v_proj"] = 32;
      kwargs["rank_pattern"] = ranks;
      kwargs["alpha_pattern"] = alphas;
      return kwargs;
    };
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/modules-to-save", "llama"};
    c.extra_lora_kwargs = [] {
      py::dict kwargs;
      kwargs["modules_to_save"] = std::vector<std::string>{"lm_head"};
      return kwargs;
    };
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/decay-no-bias-correction", "llama"};
    c.weight_decay = 0.05;
    c.correct_bias = false;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/grad-accumulation", "llama"};
    c.micro_batches = 2;
    cases.push_back(c);
  }
  {
    ModelCase c{"model/llama/closure", "llama"};
    c.closure = true;
    cases.push_back(c);
  }
  std::vector<Scenario> scenarios;
  for (const ModelCase& c : cases) scenarios.push_back(MakeModelScenario(c));
  return scenarios;
}

}  // namespace lorafa::parity
