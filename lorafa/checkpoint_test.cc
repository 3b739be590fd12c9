// Checkpoints (lorafa/checkpoint.h): the format version and the lorafa version travel with them, an
// unknown format is a clear error, and a damaged archive — cut short, or with one byte flipped — either
// fails to load with a c10 error and leaves the optimizer exactly as it was, or loads a state that
// validates. Never a crash, never a partial state.
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include "lorafa/checkpoint.h"
#include "lorafa/optimizer.h"
#include "lorafa/version.h"

namespace lorafa {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

struct Trained {
  std::vector<LoraPair> pairs;
  torch::Tensor other;
  std::unique_ptr<LoraFAOptimizer> optimizer;

  Trained() {
    torch::manual_seed(31);
    pairs = {{"q.default", torch::randn({2, 12}), torch::randn({5, 2}).requires_grad_(), 2.0},
             {"v.default", torch::randn({3, 12}), torch::randn({4, 3}).requires_grad_(), 0.5}};
    other = torch::randn({6}).requires_grad_();
    optimizer = std::make_unique<LoraFAOptimizer>(pairs, std::vector<torch::Tensor>{other},
                                                  LoraFAOptions(1e-2).skip_nonfinite(true));
    for (int t = 0; t < 3; ++t) {
      for (LoraPair& pair : pairs) pair.B.mutable_grad() = torch::randn_like(pair.B);
      other.mutable_grad() = torch::randn_like(other);
      optimizer->step();
    }
  }

  std::string Saved() const {
    std::ostringstream bytes;
    SaveCheckpoint(*optimizer, bytes);
    return bytes.str();
  }
};

void Load(LoraFAOptimizer& optimizer, const std::string& bytes) {
  std::istringstream in(bytes);
  LoadCheckpoint(optimizer, in);
}

// Everything load() can change: each state's moments and step, the options, the skipped-step count.
struct Snapshot {
  std::vector<torch::Tensor> tensors;
  std::vector<int64_t> steps;
  LoraFAOptions options;
  int64_t skipped = 0;

  explicit Snapshot(const LoraFAOptimizer& optimizer)
      : options(static_cast<const LoraFAOptions&>(optimizer.param_groups()[0].options())),
        skipped(optimizer.skipped_steps()) {
    for (const torch::Tensor& p : optimizer.param_groups()[0].params()) {
      const auto& state = static_cast<const LoraFAParamState&>(*optimizer.state().at(p.unsafeGetTensorImpl()));
      tensors.push_back(state.exp_avg().clone());
      tensors.push_back(state.exp_avg_sq().clone());
      steps.push_back(state.step());
    }
  }
  bool operator==(const Snapshot& other) const {
    if (!(options == other.options) || skipped != other.skipped || steps != other.steps) return false;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!torch::equal(tensors[i], other.tensors[i])) return false;
    }
    return true;
  }
};

TEST(Checkpoint, CarriesFormatVersionLorafaVersionAndSkippedSteps) {
  Trained trained;
  const std::string bytes = trained.Saved();
  torch::serialize::InputArchive archive;
  archive.load_from(bytes.data(), bytes.size());
  c10::IValue format, version, skipped;
  ASSERT_TRUE(archive.try_read("lorafa/format_version", format));
  ASSERT_TRUE(archive.try_read("lorafa/version", version));
  ASSERT_TRUE(archive.try_read("lorafa/skipped_steps", skipped));
  EXPECT_EQ(format.toInt(), kCheckpointFormat);
  EXPECT_EQ(version.toStringRef(), std::string(kVersion));
  EXPECT_EQ(skipped.toInt(), 0);
}

TEST(Checkpoint, UnknownFormatVersionIsAnErrorNamingBothVersions) {
  Trained trained;
  const Snapshot before(*trained.optimizer);
  torch::serialize::OutputArchive future;
  future.write("lorafa/format_version", c10::IValue(int64_t{kCheckpointFormat + 1}));
  future.write("lorafa/version", c10::IValue(std::string("9.9.9")));
  std::ostringstream bytes;
  future.save_to(bytes);
  try {
    Load(*trained.optimizer, bytes.str());
    FAIL() << "a checkpoint of an unknown format was loaded";
  } catch (const c10::ValueError& error) {
    EXPECT_THAT(error.what(), AllOf(HasSubstr("format version " + std::to_string(kCheckpointFormat + 1)),
                                    HasSubstr("lorafa 9.9.9"), HasSubstr(std::string("lorafa ") + kVersion)));
  }
  EXPECT_TRUE(Snapshot(*trained.optimizer) == before);
}

TEST(Checkpoint, ArchiveWithoutVersionIsFormatZeroAndLoads) {
  Trained trained;
  torch::serialize::OutputArchive old;  // what save() wrote before it wrote versions
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(old, *trained.optimizer);
  std::ostringstream bytes;
  old.save_to(bytes);
  LoraFAOptimizer fresh(trained.pairs, {trained.other}, LoraFAOptions(1.0));  // no state, other options
  Load(fresh, bytes.str());
  EXPECT_TRUE(Snapshot(fresh) == Snapshot(*trained.optimizer));
}

TEST(Checkpoint, StateThatDoesNotMatchItsChecksumIsRejected) {
  Trained trained;
  c10::IValue checksum;
  {
    const std::string good = trained.Saved();
    torch::serialize::InputArchive archive;
    archive.load_from(good.data(), good.size());
    ASSERT_TRUE(archive.try_read("lorafa/checksum", checksum));
  }
  trained.optimizer->step();  // the state moves on; the old checksum no longer describes it
  torch::serialize::OutputArchive forged;
  forged.write("lorafa/format_version", c10::IValue(kCheckpointFormat));
  forged.write("lorafa/checksum", checksum);
  torch::optim::serialize<LoraFAParamState, LoraFAOptions>(forged, *trained.optimizer);
  std::ostringstream bytes;
  forged.save_to(bytes);

  LoraFAOptimizer fresh(trained.pairs, {trained.other}, LoraFAOptions(1.0));
  try {
    Load(fresh, bytes.str());
    FAIL() << "a state that does not match its checksum was loaded";
  } catch (const c10::ValueError& error) {
    EXPECT_THAT(error.what(), HasSubstr("checksum"));
  }
  EXPECT_TRUE(fresh.state().empty());
}

// Loads `bytes` into `optimizer`: a c10 error must leave it as `before`; a success must validate (load
// runs the checks) and is then undone by reloading `good`. Anything else fails the test.
void ExpectLoadIsAllOrNothing(LoraFAOptimizer& optimizer, const std::string& bytes, const Snapshot& before,
                              const std::string& good, const std::string& what, int* loaded) {
  try {
    Load(optimizer, bytes);
  } catch (const c10::Error&) {
    EXPECT_TRUE(Snapshot(optimizer) == before) << what << ": a failed load changed the optimizer";
    return;
  } catch (const std::exception& error) {
    ADD_FAILURE() << what << ": threw a non-c10 exception: " << error.what();
    return;
  }
  ++*loaded;
  Load(optimizer, good);
}

TEST(Checkpoint, TruncatedArchivesFailCleanly) {
  Trained trained;
  const std::string good = trained.Saved();
  const Snapshot before(*trained.optimizer);
  int loaded = 0;
  constexpr int kCuts = 200;
  for (int i = 0; i < kCuts; ++i) {
    const size_t length = good.size() * i / kCuts;  // 0, …, just short of the whole
    ExpectLoadIsAllOrNothing(*trained.optimizer, good.substr(0, length), before, good,
                             "cut at " + std::to_string(length), &loaded);
  }
  EXPECT_EQ(loaded, 0) << "a truncated archive loaded";
  EXPECT_TRUE(Snapshot(*trained.optimizer) == before);
}

TEST(Checkpoint, ArchivesWithOneFlippedByteLoadCleanlyOrFail) {
  Trained trained;
  const std::string good = trained.Saved();
  const Snapshot before(*trained.optimizer);
  std::mt19937 random(2026);
  std::uniform_int_distribution<size_t> position(0, good.size() - 1);
  std::uniform_int_distribution<int> flip(1, 255);
  int loaded = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string damaged = good;
    const size_t at = position(random);
    damaged[at] = static_cast<char>(damaged[at] ^ flip(random));
    ExpectLoadIsAllOrNothing(*trained.optimizer, damaged, before, good, "byte " + std::to_string(at), &loaded);
  }
  std::cout << "of 1000 one-byte flips, " << loaded << " loaded a state that validates; the rest failed cleanly\n";
  EXPECT_TRUE(Snapshot(*trained.optimizer) == before);
}

}  // namespace
}  // namespace lorafa
