// The Python optimizer's step, planned in C++: for every param group, which tensors the one functional
// step (lorafa/step.h) updates, with which moments, step counts and projection matrices. Planning in
// Python cost about 4 µs a parameter (dict lookups, device checks, a call per pair for its matrix),
// more than a step of small layers itself; here it is one call per step.
//
//   planner = _C.StepPlanner(names, A, B, scalings, others)   # the optimizer's LoRA pairs, checked
//   new_states = planner.prepare(param_groups, state)    # validates and plans; changes nothing
//   stepped = planner.run()                               # the guard, then every group's step
//   for param, s in new_states: state[param] = s
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <pybind11/pybind11.h>

#include "lorafa/lora_pair.h"
#include "lorafa/options.h"
#include "lorafa/projection.h"
#include "lorafa/python/sharded.h"
#include "lorafa/step.h"

namespace lorafa::python {

// A param group's hyperparameters as LoraFAOptions, checked (ValidateOptions names the bad value).
LoraFAOptions OptionsOfGroup(const pybind11::dict& group);

// Raised by Prepare for a tensor in a param group that the planner was not made with, e.g. after a
// framework replaced the parameters (FSDP2's fully_shard, then accelerate swapping the references in
// param_groups): the Python optimizer then pairs the groups' tensors anew, by position.
struct UnknownParameter : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Hidden, as pybind11's own types are: it holds Python objects, and lives only inside lorafa._C.
class __attribute__((visibility("hidden"))) StepPlanner {
 public:
  // The optimizer's LoRA pairs, checked with lorafa::ValidatePairs against the other trained tensors:
  // a c10::ValueError naming the bad pair.
  StepPlanner(const std::vector<std::string>& names, const std::vector<at::Tensor>& A,
              const std::vector<at::Tensor>& B, const std::vector<double>& scalings,
              const std::vector<at::Tensor>& others);

  // Plans one step of every group in `groups` against torch's `state` (param → {"step", "exp_avg",
  // "exp_avg_sq"}): a parameter without gradient is left out, as is a pair's A (PEFT's layout lists it);
  // a parameter without state gets new zero moments, one whose moments are on another device or dtype
  // gets them moved. Every check and every pseudo-inverse happens here, for every group, before
  // anything changes. Returns the states to store once the step has run: [(param, state)].
  pybind11::list Prepare(const pybind11::list& groups, const pybind11::dict& state);

  // The skip_nonfinite guard over the gradients of the groups that ask for it (true when none does).
  bool GradientsAreFinite() const;

  // Steps every planned group and counts its step tensors up, unless the guard finds a NaN or Inf
  // (`finite`: the verdict of every rank, when the caller has it; else GradientsAreFinite()). Returns
  // whether it stepped. The plan then lets the gradients go, so that zero_grad() frees them, unless
  // `keep_gradients`: then running it again steps the same tensors again (what the benchmark of the C++
  // step alone times).
  bool Run(std::optional<bool> finite = std::nullopt, bool keep_gradients = false);

 private:
  struct Pair {
    LoraPair pair;  // A: the whole A, gathered from its shards when it is a DTensor
    internal::CachedProjection projection;
    pybind11::object sharded_A;  // the DTensor A, or None
    const void* gathered_data = nullptr;  // the local shard, data and version, when it was gathered
    int64_t gathered_version = -1;
  };
  // What the plan found for one entry of a group's params, in order: enough to tell that the next step
  // finds the same (the same objects by identity), and where its gradient goes in the lists.
  // Objects are held, so that their addresses cannot be other objects' at the next step.
  struct Visit {
    enum Kind { kFrozenA, kNoGradient, kPair, kOther };
    pybind11::object object;  // the parameter as the group holds it (a DTensor's wrapper)
    // Its tensor, and what the step updates (a DTensor's local shard). `param` and `dtensor` follow from
    // `object`, and are kept so that a refresh reads neither the object nor its type.
    at::Tensor param, local;
    bool dtensor;  // its gradient and local shard are read through Python
    Kind kind;
    size_t slot;  // its index in lists.B/grad_B (kPair) or lists.params/grads (kOther)
    size_t pair;  // kPair: its index in pairs_
    at::ScalarType grad_dtype;  // what its gradient was, and a pair's matrix is made for
    pybind11::object state;  // its state dict, state[param]
    // What that dict holds under "step", "exp_avg" and "exp_avg_sq", held: while the dict holds the very
    // same objects, the state is as planned, told by comparing addresses without touching the objects.
    std::array<pybind11::object, 3> state_values;
  };
  struct GroupPlan {
    LoraFAOptions options;
    LoraFAStepLists lists;  // step_B and step filled from the counts at Run
    std::vector<at::Tensor> step_B_counts, step_counts;
    std::vector<Visit> visits;
  };
  using StateOf = std::unordered_map<const c10::TensorImpl*, PyObject*>;
  // Each parameter's state dict in torch's `state` (keyed by the parameter), and `state`'s entries in
  // order, as they are.
  static StateOf StateByParameter(const pybind11::dict& state, std::vector<std::pair<PyObject*, PyObject*>>* entries);
  // Whether `state`'s entries are by identity, in order, those the last refreshed plan found
  // (state_seen_): then each visit's state dict is the one it holds, and no parameter needs looking up.
  bool StateIsAsSeen(const pybind11::dict& state) const;
  // Records `state` and every planned state dict as found as planned when DictWatch counted `changes`.
  void StateFoundAsPlanned(const pybind11::dict& state, uint64_t changes);

  // The previous step's plan, brought up to date where only what changes from step to step has changed:
  // the options (a scheduler's lr), the gradients (new tensors after zero_grad) and the cached matrices
  // (a new A). False, with the plan as it was, if anything else differs; Prepare then plans anew.
  // `state_of` null: the state is as seen, and each visit's own state dict is current.
  // `check_states` false: no state dict changed since the plan last found them as planned (DictWatch).
  bool RefreshPlan(const pybind11::list& groups, const StateOf* state_of, bool check_states, const LocalView& local);

  // Gathers each sharded A whose local shard changed since its last gathering (the first time, every
  // one): a collective, which every rank makes for the same pairs in the same order.
  void GatherShardedA(const LocalView& local);

  std::vector<Pair> pairs_;
  std::unordered_map<const c10::TensorImpl*, size_t> pair_of_B_;
  std::unordered_set<const c10::TensorImpl*> frozen_A_, others_;
  std::vector<GroupPlan> plans_;
  // Compared, never dereferenced: the keys are held by the plan's visits, the values too where they matter.
  std::vector<std::pair<PyObject*, PyObject*>> state_seen_;
  // The state dict whose entries those are, and DictWatch::Changes() when it and every planned
  // parameter's state dict were last found as planned; every one of them is watched.
  pybind11::object state_seen_object_;
  std::optional<uint64_t> state_checked_at_;
};

}  // namespace lorafa::python
