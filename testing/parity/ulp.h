// Distances between two tensors of one floating dtype: largest absolute difference and largest
// distance in units in the last place (how many representable values lie between them).
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace lorafa::parity {

// max |a − b| over all elements, in float64. NaN anywhere gives +inf.
double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b);

// max over elements of the number of representable values of the dtype between a and b (0 when
// bitwise equal; +0 and −0 count as equal). float32, float64, bfloat16 and float16. NaN gives INT64_MAX.
int64_t MaxUlpDistance(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace lorafa::parity
