#include "testing/properties/problem.h"

#include <torch/torch.h>

namespace lorafa::testing {

rc::Gen<std::vector<PairSpec>> genPairSpecs(rc::Gen<PairSpec> spec) {
  return rc::gen::withSize([spec](int size) {
    return rc::gen::mapcat(rc::gen::inRange(1, 2 + 5 * size / 100), [spec](int count) {
      return rc::gen::container<std::vector<PairSpec>>(static_cast<size_t>(count), spec);
    });
  });
}

Problem MakeProblem(const std::vector<PairSpec>& specs, int others, torch::ScalarType dtype) {
  Problem problem;
  problem.specs = specs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const PairSpec& spec = specs[i];
    torch::Tensor B = RandomMatrix(spec.out, spec.r, 0.1, spec.seed + 3, dtype).requires_grad_();
    problem.pairs.push_back({"pair" + std::to_string(i), MakeA(spec, dtype), B, spec.scaling});
  }
  for (int j = 0; j < others; ++j) {
    problem.others.push_back(RandomMatrix(1, 3 + j, 1.0, 1000 + j, dtype).requires_grad_());
  }
  return problem;
}

Problem CloneProblem(const Problem& problem) {
  Problem copy;
  copy.specs = problem.specs;
  for (const LoraPair& pair : problem.pairs) {
    copy.pairs.push_back({pair.name, pair.A.clone(), pair.B.detach().clone().requires_grad_(), pair.scaling});
  }
  for (const torch::Tensor& other : problem.others) copy.others.push_back(other.detach().clone().requires_grad_());
  return copy;
}

void SetGradients(Problem& problem, uint64_t seed) {
  for (size_t i = 0; i < problem.pairs.size(); ++i) {
    const PairSpec& spec = problem.specs[i];
    LoraPair& pair = problem.pairs[i];
    pair.B.mutable_grad() = RandomMatrix(spec.out, spec.r, spec.grad_scale, seed * 131 + i, pair.B.scalar_type());
  }
  for (size_t j = 0; j < problem.others.size(); ++j) {
    torch::Tensor& other = problem.others[j];
    other.mutable_grad() = RandomMatrix(1, other.size(1), 1.0, seed * 131 + 97 + j, other.scalar_type());
  }
}

}  // namespace lorafa::testing
