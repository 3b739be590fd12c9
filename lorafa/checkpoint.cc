#include "lorafa/checkpoint.h"

#include <exception>
#include <fstream>
#include <istream>
#include <iterator>
#include <ostream>

#include <c10/util/Exception.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

namespace lorafa {
namespace {

// Runs `read`; a c10 error passes through, any other exception becomes one that names it.
template <typename Read>
void AsC10Error(const char* what, Read read) {
  try {
    read();
  } catch (const c10::Error&) {
    throw;
  } catch (const std::exception& error) {
    TORCH_CHECK_VALUE(false, what, ": ", error.what());
  }
}

}  // namespace

void SaveCheckpoint(const LoraFAOptimizer& optimizer, std::ostream& out) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  archive.save_to(out);
  TORCH_CHECK(out.good(), "writing the optimizer checkpoint failed");
}

void SaveCheckpoint(const LoraFAOptimizer& optimizer, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  TORCH_CHECK(out.is_open(), "cannot open ", path, " for writing");
  SaveCheckpoint(optimizer, out);
}

void LoadCheckpoint(LoraFAOptimizer& optimizer, std::istream& in) {
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  torch::serialize::InputArchive archive;
  AsC10Error("not a readable optimizer checkpoint", [&] { archive.load_from(bytes.data(), bytes.size()); });
  AsC10Error("the optimizer checkpoint does not fit this optimizer", [&] { optimizer.load(archive); });
}

void LoadCheckpoint(LoraFAOptimizer& optimizer, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK_VALUE(in.is_open(), "cannot open the optimizer checkpoint ", path);
  LoadCheckpoint(optimizer, in);
}

}  // namespace lorafa
