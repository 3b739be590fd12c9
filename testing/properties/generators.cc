#include "testing/properties/generators.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

namespace lorafa::testing {
namespace {

const char* NameOf(Conditioning conditioning) {
  switch (conditioning) {
    case Conditioning::kWell:
      return "well";
    case Conditioning::kIll:
      return "ill(1e6)";
    case Conditioning::kRankDeficient:
      return "rank-deficient";
    case Conditioning::kZero:
      return "zero";
    case Conditioning::kTiny:
      return "tiny(1e-5)";
  }
  return "?";
}

// n ∈ [1, limit], growing with RapidCheck's size (0..100) so early and shrunk cases are small.
rc::Gen<int64_t> genExtent(int64_t limit) {
  return rc::gen::withSize([limit](int size) {
    const int64_t top = std::max<int64_t>(1, std::min<int64_t>(limit, 1 + limit * size / 100));
    return rc::gen::inRange<int64_t>(1, top + 1);
  });
}

// 10^x for x uniform in [low, high], through an integer grid so it shrinks towards 10^low.
rc::Gen<double> genLogUniform(double low, double high) {
  return rc::gen::map(rc::gen::inRange(0, 1001), [low, high](int k) { return std::pow(10.0, low + (high - low) * k / 1000.0); });
}

torch::Tensor Orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  // Q of a Gaussian matrix's QR: Haar-distributed orthonormal columns.
  return std::get<0>(torch::linalg_qr(RandomMatrix(rows, cols, 1.0, seed, torch::kFloat64)));
}

std::vector<double> SingularValues(Conditioning conditioning, int64_t k, uint64_t seed) {
  torch::Tensor u = torch::rand({k}, at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5151), torch::kFloat64);
  std::vector<double> sigma(k);
  for (int64_t i = 0; i < k; ++i) {
    const double unit = u[i].item<double>();
    switch (conditioning) {
      case Conditioning::kWell:
        sigma[i] = 1.0 + unit;
        break;
      case Conditioning::kIll:
        sigma[i] = k == 1 ? 1.0 : std::pow(10.0, -6.0 * static_cast<double>(i) / static_cast<double>(k - 1));
        break;
      case Conditioning::kRankDeficient:
        sigma[i] = i < std::max<int64_t>(1, k / 2) && k > 1 ? 1.0 + unit : 0.0;
        break;
      case Conditioning::kZero:
        sigma[i] = 0.0;
        break;
      case Conditioning::kTiny:
        sigma[i] = 1e-5 * (0.5 + 1.5 * unit);
        break;
    }
  }
  return sigma;
}

rc::Gen<PairSpec> genSpec(rc::Gen<Conditioning> conditioning, bool full_rank) {
  return rc::gen::exec([conditioning, full_rank] {
    PairSpec spec;
    spec.r = *genExtent(64);
    spec.in = *genExtent(256);
    if (full_rank) spec.in = std::max(spec.in, spec.r);
    spec.out = *genExtent(256);
    spec.conditioning = *conditioning;
    const double alpha = *rc::gen::inRange(1, 65);
    spec.scaling = *rc::gen::arbitrary<bool>() ? alpha / std::sqrt(static_cast<double>(spec.r)) : alpha / spec.r;
    spec.grad_scale = *genLogUniform(-8.0, 4.0);
    spec.seed = *rc::gen::inRange<uint64_t>(0, 1u << 20);
    return spec;
  });
}

}  // namespace

void showValue(Conditioning conditioning, std::ostream& os) { os << NameOf(conditioning); }

void showValue(const PairSpec& spec, std::ostream& os) {
  os << "{r=" << spec.r << ", in=" << spec.in << ", out=" << spec.out << ", A " << NameOf(spec.conditioning)
     << ", s=" << spec.scaling << ", |g|~" << spec.grad_scale << ", seed=" << spec.seed << "}";
}

}  // namespace lorafa::testing

namespace lorafa {

void showValue(const LoraFAOptions& o, std::ostream& os) {
  os << "{lr=" << o.lr() << ", betas=(" << std::get<0>(o.betas()) << ", " << std::get<1>(o.betas())
     << "), eps=" << o.eps() << ", wd=" << o.weight_decay() << ", correct_bias=" << o.correct_bias() << "}";
}

}  // namespace lorafa

namespace lorafa::testing {

rc::Gen<Conditioning> genConditioning() {
  return rc::gen::element(Conditioning::kWell, Conditioning::kIll, Conditioning::kRankDeficient, Conditioning::kZero,
                          Conditioning::kTiny);
}

rc::Gen<PairSpec> genPairSpec() { return genSpec(genConditioning(), /*full_rank=*/false); }

rc::Gen<PairSpec> genWellConditionedPairSpec() { return genSpec(rc::gen::just(Conditioning::kWell), true); }

rc::Gen<LoraFAOptions> genOptions() {
  return rc::gen::exec([] {
    LoraFAOptions options(*genLogUniform(-5.0, -1.0));
    options.betas({*rc::gen::inRange(0, 100) / 100.0, 1.0 - *genLogUniform(-4.0, std::log10(0.5))});
    options.eps(*rc::gen::arbitrary<bool>() ? 0.0 : *genLogUniform(-10.0, -4.0));
    options.weight_decay(*rc::gen::arbitrary<bool>() ? 0.0 : *genLogUniform(-4.0, -1.0));
    options.correct_bias(*rc::gen::arbitrary<bool>());
    return options;
  });
}

rc::Gen<torch::ScalarType> genDtype() {
  return rc::gen::element(torch::kFloat32, torch::kFloat64, torch::kBFloat16);
}

torch::Tensor RandomMatrix(int64_t rows, int64_t cols, double scale, uint64_t seed, torch::ScalarType dtype) {
  return (scale * torch::randn({rows, cols}, at::make_generator<at::CPUGeneratorImpl>(seed), torch::kFloat64)).to(dtype);
}

torch::Tensor MakeA(const PairSpec& spec, torch::ScalarType dtype) {
  const int64_t k = std::min(spec.r, spec.in);
  std::vector<double> sigma = SingularValues(spec.conditioning, k, spec.seed);
  torch::Tensor u = Orthonormal(spec.r, k, spec.seed * 2 + 1);
  torch::Tensor v = Orthonormal(spec.in, k, spec.seed * 2 + 2);
  torch::Tensor a = torch::matmul(u * torch::tensor(sigma, torch::kFloat64), v.t());
  return a.to(dtype);
}

}  // namespace lorafa::testing
