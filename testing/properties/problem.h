// A random LoRA-FA problem for the properties: 1–6 pairs built from PairSpecs, 0–3 other parameters,
// in one dtype, with gradients drawn from a seed.
//
//   Problem problem = MakeProblem(*genPairSpecs(genWellConditionedPairSpec()), /*others=*/2, torch::kFloat64);
//   SetGradients(problem, /*seed=*/step);
#pragma once

#include <cstdint>
#include <vector>

#include <rapidcheck.h>
#include <torch/types.h>

#include "lorafa/lora_pair.h"
#include "testing/properties/generators.h"

namespace lorafa::testing {

struct Problem {
  std::vector<PairSpec> specs;
  std::vector<LoraPair> pairs;        // A from the spec's conditioning, B = 0.1·N(0, 1)
  std::vector<torch::Tensor> others;  // (1, n) rows, N(0, 1)
};

// 1 to 6 pair specs; shrinks towards one pair.
rc::Gen<std::vector<PairSpec>> genPairSpecs(rc::Gen<PairSpec> spec);

Problem MakeProblem(const std::vector<PairSpec>& specs, int others, torch::ScalarType dtype);

// A fresh problem with the same values (tensors cloned), for running two optimizers side by side.
Problem CloneProblem(const Problem& problem);

// Writes gradients into every B (|g| ~ the spec's grad_scale) and other parameter (|g| ~ 1).
void SetGradients(Problem& problem, uint64_t seed);

}  // namespace lorafa::testing
