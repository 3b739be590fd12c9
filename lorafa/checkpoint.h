// Optimizer checkpoints as files or streams, with every failure a c10 error.
//
// torch::save / torch::load work too, but torch's archive reader throws plain C++ exceptions
// (std::out_of_range, TorchScript parse errors) for some damaged files; these functions turn them into
// c10::ValueError naming the cause, and leave the optimizer exactly as it was (LoraFAOptimizer::load).
//
//   lorafa::SaveCheckpoint(optimizer, "optimizer.pt");
//   lorafa::LoadCheckpoint(optimizer, "optimizer.pt");
#pragma once

#include <iosfwd>
#include <string>

#include "lorafa/optimizer.h"

namespace lorafa {

void SaveCheckpoint(const LoraFAOptimizer& optimizer, std::ostream& out);
void SaveCheckpoint(const LoraFAOptimizer& optimizer, const std::string& path);

void LoadCheckpoint(LoraFAOptimizer& optimizer, std::istream& in);
void LoadCheckpoint(LoraFAOptimizer& optimizer, const std::string& path);

}  // namespace lorafa
