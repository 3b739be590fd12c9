// main() for gtest binaries that embed Python: the interpreter is started before the first test and
// destroyed after the last, so every test in the binary shares one interpreter and one torch.
// If the environment lacks torch or peft, every test fails with the setup command in the message.
#include <iostream>
#include <memory>

#include <gtest/gtest.h>

#include "testing/python/embedded_python.h"

namespace {

class EmbeddedPythonEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto started = lorafa::testing::EmbeddedPython::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    python_ = *std::move(started);
  }
  void TearDown() override { python_.reset(); }

 private:
  std::unique_ptr<lorafa::testing::EmbeddedPython> python_;
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new EmbeddedPythonEnvironment);
  return RUN_ALL_TESTS();
}
