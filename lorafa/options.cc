#include "lorafa/options.h"

#include <cmath>

#include <c10/util/Exception.h>
#include <torch/serialize/archive.h>

namespace lorafa {

LoraFAOptions::LoraFAOptions(double lr) : lr_(lr) {}

double LoraFAOptions::get_lr() const { return lr(); }

void LoraFAOptions::set_lr(double lr) { this->lr(lr); }

bool operator==(const LoraFAOptions& lhs, const LoraFAOptions& rhs) {
  return lhs.lr() == rhs.lr() && lhs.betas() == rhs.betas() && lhs.eps() == rhs.eps() &&
         lhs.weight_decay() == rhs.weight_decay() && lhs.correct_bias() == rhs.correct_bias() &&
         lhs.pinv_delta() == rhs.pinv_delta() && lhs.projection() == rhs.projection() &&
         lhs.skip_nonfinite() == rhs.skip_nonfinite();
}

void LoraFAOptions::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("lr", lr());
  archive.write("beta1", std::get<0>(betas()));
  archive.write("beta2", std::get<1>(betas()));
  archive.write("eps", eps());
  archive.write("weight_decay", weight_decay());
  archive.write("correct_bias", correct_bias());
  archive.write("pinv_delta", pinv_delta());
  archive.write("projection", static_cast<int64_t>(projection()));
  archive.write("skip_nonfinite", skip_nonfinite());
}

void LoraFAOptions::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue value;
  archive.read("lr", value);
  lr(value.toDouble());
  archive.read("beta1", value);
  double beta1 = value.toDouble();
  archive.read("beta2", value);
  betas(std::make_tuple(beta1, value.toDouble()));
  archive.read("eps", value);
  eps(value.toDouble());
  archive.read("weight_decay", value);
  weight_decay(value.toDouble());
  archive.read("correct_bias", value);
  correct_bias(value.toBool());
  archive.read("pinv_delta", value);
  pinv_delta(value.toDouble());
  archive.read("projection", value);
  int64_t projection_code = value.toInt();
  TORCH_CHECK_VALUE(projection_code == 0 || projection_code == 1,
                    "Invalid projection code in archive: ", projection_code);
  projection(static_cast<Projection>(projection_code));
  // Absent from archives written before the option existed: PEFT's behaviour, as then.
  skip_nonfinite(archive.try_read("skip_nonfinite", value) ? value.toBool() : false);
}

void ValidateOptions(const LoraFAOptions& options) {
  // Written as !(x >= 0) so that NaN is rejected too.
  TORCH_CHECK_VALUE(options.lr() >= 0.0, "Invalid learning rate: ", options.lr());
  auto [beta1, beta2] = options.betas();
  TORCH_CHECK_VALUE(beta1 >= 0.0 && beta1 < 1.0, "Invalid beta parameter at index 0: ", beta1);
  TORCH_CHECK_VALUE(beta2 >= 0.0 && beta2 < 1.0, "Invalid beta parameter at index 1: ", beta2);
  TORCH_CHECK_VALUE(options.eps() >= 0.0, "Invalid epsilon value: ", options.eps());
  TORCH_CHECK_VALUE(options.weight_decay() >= 0.0, "Invalid weight_decay value: ", options.weight_decay());
  TORCH_CHECK_VALUE(options.pinv_delta() >= 0.0 && std::isfinite(options.pinv_delta()),
                    "Invalid pinv_delta value: ", options.pinv_delta());
  TORCH_CHECK_VALUE(std::isfinite(options.lr()), "Invalid learning rate: ", options.lr());
}

}  // namespace lorafa
