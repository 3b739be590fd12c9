#include "lorafa/python/step_planner.h"

#include <optional>
#include <tuple>
#include <utility>

#include <ATen/ops/zeros.h>
#include <c10/core/DefaultDtype.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>
#include <pybind11/stl.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include "lorafa/lora_pair.h"
#include "lorafa/python/dict_watch.h"

namespace lorafa::python {
namespace {

namespace py = pybind11;

Projection ParseProjection(const std::string& name) {
  if (name == "exact") return Projection::kExact;
  if (name == "peft_bf16") return Projection::kPeftBf16;
  TORCH_CHECK_VALUE(false, "projection must be \"exact\" or \"peft_bf16\", got \"", name, "\"");
}

// A state's step count is a one-element CPU tensor, float32, or float64 under a float64 default dtype,
// as torch's optimizers keep it (a checkpoint may hold either). Read and counted up through its
// pointer: an ATen call per tensor (item, add_) would cost more than the step itself.
void CheckStepCount(const at::Tensor& step) {
  TORCH_CHECK_VALUE(step.is_cpu() && (step.scalar_type() == at::kFloat || step.scalar_type() == at::kDouble) &&
                        step.numel() == 1,
                    "a state's step must be a one-element float32 or float64 CPU tensor, got ", step.scalar_type(),
                    " of ", step.numel(), " elements on ", step.device());
}

int64_t ReadStepCount(const at::Tensor& step) {
  return step.scalar_type() == at::kDouble ? static_cast<int64_t>(*step.const_data_ptr<double>())
                                           : static_cast<int64_t>(*step.const_data_ptr<float>());
}

void CountUp(const at::Tensor& step) {
  if (step.scalar_type() == at::kDouble) {
    *step.data_ptr<double>() += 1.0;
  } else {
    *step.data_ptr<float>() += 1.0f;
  }
}

std::vector<int64_t> NextSteps(const std::vector<at::Tensor>& counts) {
  std::vector<int64_t> next;
  next.reserve(counts.size());
  for (const at::Tensor& count : counts) next.push_back(ReadStepCount(count) + 1);
  return next;
}

// The dtype torch's optimizers give a new step count: float64 under a float64 default dtype, else float32.
at::ScalarType StepCountDtype() {
  return c10::typeMetaToScalarType(c10::get_default_dtype()) == at::kDouble ? at::kDouble : at::kFloat;
}

// Every key the planner reads or writes, as interned str objects made once: a lookup by a C string
// would make and hash a new str each time, a dozen times a step. Kept for the life of the process.
struct Keys {
  PyObject* const params = PyUnicode_InternFromString("params");
  PyObject* const lr = PyUnicode_InternFromString("lr");
  PyObject* const betas = PyUnicode_InternFromString("betas");
  PyObject* const eps = PyUnicode_InternFromString("eps");
  PyObject* const weight_decay = PyUnicode_InternFromString("weight_decay");
  PyObject* const correct_bias = PyUnicode_InternFromString("correct_bias");
  PyObject* const pinv_delta = PyUnicode_InternFromString("pinv_delta");
  PyObject* const skip_nonfinite = PyUnicode_InternFromString("skip_nonfinite");
  PyObject* const projection = PyUnicode_InternFromString("projection");
  // A parameter's state: "step", "exp_avg", "exp_avg_sq".
  PyObject* const state[3] = {PyUnicode_InternFromString("step"), PyUnicode_InternFromString("exp_avg"),
                              PyUnicode_InternFromString("exp_avg_sq")};
};
const Keys& InternedKeys() {
  static const Keys* const keys = new Keys();
  return *keys;
}

py::dict NewState(const py::object& step, const py::object& exp_avg, const py::object& exp_avg_sq) {
  const Keys& keys = InternedKeys();
  py::dict state;
  state[keys.state[0]] = step;
  state[keys.state[1]] = exp_avg;
  state[keys.state[2]] = exp_avg_sq;
  return state;
}

// dict[key]; a missing key raises KeyError naming it, as dict[key] does.
py::handle ValueAt(const py::dict& dict, PyObject* key) {
  PyObject* value = PyDict_GetItemWithError(dict.ptr(), key);
  if (value == nullptr) {
    if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, key);
    throw py::error_already_set();
  }
  return value;
}

// state[key], which must be a tensor.
py::object StateTensor(const py::dict& state, PyObject* key) {
  const std::string name = py::reinterpret_borrow<py::str>(key);
  TORCH_CHECK_VALUE(state.contains(key), "a parameter's state has no '", name, "'");
  py::object value = py::reinterpret_borrow<py::object>(ValueAt(state, key));
  TORCH_CHECK_TYPE(THPVariable_Check(value.ptr()), "a parameter's state '", name, "' is not a tensor");
  return value;
}

}  // namespace

LoraFAOptions OptionsOfGroup(const py::dict& group) {
  const Keys& keys = InternedKeys();
  PyObject* const skip_nonfinite = PyDict_GetItemWithError(group.ptr(), keys.skip_nonfinite);
  if (skip_nonfinite == nullptr && PyErr_Occurred()) throw py::error_already_set();
  LoraFAOptions options(ValueAt(group, keys.lr).cast<double>());
  options.betas(ValueAt(group, keys.betas).cast<std::tuple<double, double>>())
      .eps(ValueAt(group, keys.eps).cast<double>())
      .weight_decay(ValueAt(group, keys.weight_decay).cast<double>())
      .correct_bias(ValueAt(group, keys.correct_bias).cast<bool>())
      .pinv_delta(ValueAt(group, keys.pinv_delta).cast<double>())
      .skip_nonfinite(skip_nonfinite != nullptr && py::handle(skip_nonfinite).cast<bool>())
      .projection(ParseProjection(ValueAt(group, keys.projection).cast<std::string>()));
  ValidateOptions(options);
  return options;
}

StepPlanner::StepPlanner(const std::vector<std::string>& names, const std::vector<at::Tensor>& A,
                         const std::vector<at::Tensor>& B, const std::vector<double>& scalings,
                         const std::vector<at::Tensor>& others) {
  TORCH_CHECK_VALUE(names.size() == A.size() && A.size() == B.size() && B.size() == scalings.size(),
                    "pair lists differ in length: ", names.size(), " names, ", A.size(), " A, ", B.size(),
                    " B, ", scalings.size(), " scalings");
  std::vector<LoraPair> pairs;
  for (size_t i = 0; i < names.size(); ++i) pairs.push_back({names[i], A[i], B[i], scalings[i]});
  ValidatePairs(pairs, others);
  pairs_.reserve(pairs.size());
  const LocalView local;
  for (LoraPair& pair : pairs) {
    pair_of_B_[pair.B.unsafeGetTensorImpl()] = pairs_.size();
    frozen_A_.insert(pair.A.unsafeGetTensorImpl());
    py::object a_object = py::cast(pair.A);  // the Python tensor itself: a DTensor stays one
    pairs_.push_back({std::move(pair), {}, local.IsDTensor(a_object.ptr()) ? a_object : py::none()});
  }
  for (const at::Tensor& other : others) others_.insert(other.unsafeGetTensorImpl());
}

void StepPlanner::GatherShardedA(const LocalView& local) {
  for (Pair& entry : pairs_) {
    if (entry.sharded_A.is_none()) continue;
    const at::Tensor shard = local.Of(entry.sharded_A.ptr());
    if (shard.const_data_ptr() == entry.gathered_data && shard._version() == entry.gathered_version) continue;
    entry.pair.A = py::cast<at::Tensor>(entry.sharded_A.attr("full_tensor")());
    entry.projection = internal::CachedProjection();  // a new tensor, maybe at the old one's address
    entry.gathered_data = shard.const_data_ptr();
    entry.gathered_version = shard._version();
  }
}

py::list StepPlanner::Prepare(const py::list& groups, const py::dict& state) {
  c10::NoGradGuard no_grad;  // pseudo-inverses and new moments are not part of any graph
  const uint64_t changes = DictWatch::Changes();  // before anything is read: a later change counts after it
  const LocalView local;
  GatherShardedA(local);
  // No watched dict has changed since the state was last found as planned: it holds the same dicts,
  // which hold the same tensors, and nothing of it needs reading.
  const bool state_unchanged = state_checked_at_ == changes && state.ptr() == state_seen_object_.ptr();
  if ((state_unchanged || StateIsAsSeen(state)) && RefreshPlan(groups, nullptr, !state_unchanged, local)) {
    StateFoundAsPlanned(state, changes);
    return py::list();
  }
  std::vector<std::pair<PyObject*, PyObject*>> entries;
  const StateOf state_of = StateByParameter(state, &entries);
  if (RefreshPlan(groups, &state_of, true, local)) {
    state_seen_ = std::move(entries);
    StateFoundAsPlanned(state, changes);
    return py::list();
  }
  state_seen_.clear();
  state_checked_at_.reset();
  std::vector<GroupPlan> plans;
  py::list new_states;
  const Keys& keys = InternedKeys();
  const py::module_ torch = py::module_::import("torch");
  for (const py::handle group_handle : groups) {
    const py::dict group = py::reinterpret_borrow<py::dict>(group_handle);
    GroupPlan plan{OptionsOfGroup(group), {}, {}, {}};
    LoraFAStepLists& lists = plan.lists;
    for (const py::handle param_handle : ValueAt(group, keys.params)) {
      PyObject* object = param_handle.ptr();
      TORCH_CHECK_TYPE(THPVariable_Check(object), "a param group holds a ", Py_TYPE(object)->tp_name,
                       ", not a tensor");
      const at::Tensor param = THPVariable_Unpack(object);  // a DTensor's wrapper: who the parameter is
      const bool dtensor = local.IsDTensor(object);
      if (frozen_A_.count(param.unsafeGetTensorImpl()) != 0) {  // a pair's A: never stepped
        plan.visits.push_back({py::reinterpret_borrow<py::object>(object), param, {}, dtensor, Visit::kFrozenA});
        continue;
      }
      if (pair_of_B_.count(param.unsafeGetTensorImpl()) == 0 && others_.count(param.unsafeGetTensorImpl()) == 0) {
        throw UnknownParameter(c10::str("a param group holds a tensor of shape ", param.sizes(),
                                        " that the optimizer was not made with"));
      }
      const at::Tensor grad = local.GradientOf(object);
      if (!grad.defined()) {  // also a B without gradient in this step, where PEFT raises
        plan.visits.push_back({py::reinterpret_borrow<py::object>(object), param, {}, dtensor, Visit::kNoGradient});
        continue;
      }
      TORCH_CHECK_TYPE(!grad.is_sparse(), "LoraFAOptimizer does not support sparse gradients");
      const at::Tensor local_param = local.Of(object);

      py::object step_object, exp_avg_object, exp_avg_sq_object;
      const auto found = state_of.find(param.unsafeGetTensorImpl());
      const py::dict existing =
          found != state_of.end() ? py::reinterpret_borrow<py::dict>(found->second) : py::dict();
      py::object state_dict = existing;
      if (py::len(existing) == 0) {
        step_object = py::cast(at::zeros({}, at::TensorOptions().dtype(StepCountDtype())));
        // torch.zeros_like keeps a DTensor's mesh and placements: each rank holds its rows' moments.
        exp_avg_object = torch.attr("zeros_like")(param_handle, py::arg("memory_format") = torch.attr("preserve_format"));
        exp_avg_sq_object = torch.attr("zeros_like")(param_handle, py::arg("memory_format") = torch.attr("preserve_format"));
        state_dict = NewState(step_object, exp_avg_object, exp_avg_sq_object);
        new_states.append(py::make_tuple(param_handle, state_dict));
      } else {
        step_object = StateTensor(existing, keys.state[0]);
        exp_avg_object = StateTensor(existing, keys.state[1]);
        exp_avg_sq_object = StateTensor(existing, keys.state[2]);
        const at::Tensor moment = local.Of(exp_avg_object.ptr());
        if (moment.device() != local_param.device() || moment.scalar_type() != local_param.scalar_type()) {
          // The state follows its parameter.
          const py::object device = param_handle.attr("device"), dtype = param_handle.attr("dtype");
          step_object = py::cast(THPVariable_Unpack(step_object.ptr()).clone());
          exp_avg_object = exp_avg_object.attr("to")(device, dtype);
          exp_avg_sq_object = exp_avg_sq_object.attr("to")(device, dtype);
          state_dict = NewState(step_object, exp_avg_object, exp_avg_sq_object);
          new_states.append(py::make_tuple(param_handle, state_dict));
        }
      }
      const at::Tensor step = THPVariable_Unpack(step_object.ptr());
      CheckStepCount(step);
      const at::Tensor exp_avg = local.Of(exp_avg_object.ptr()), exp_avg_sq = local.Of(exp_avg_sq_object.ptr());
      Visit visit{py::reinterpret_borrow<py::object>(object),
                  param,
                  local_param,
                  dtensor,
                  Visit::kOther,
                  0,
                  0,
                  grad.scalar_type(),
                  std::move(state_dict),
                  {step_object, exp_avg_object, exp_avg_sq_object}};

      const auto pair = pair_of_B_.find(param.unsafeGetTensorImpl());
      if (pair == pair_of_B_.end()) {
        visit.slot = lists.params.size();
        plan.visits.push_back(std::move(visit));
        lists.params.push_back(local_param);
        lists.grads.push_back(grad);
        lists.exp_avg.push_back(exp_avg);
        lists.exp_avg_sq.push_back(exp_avg_sq);
        plan.step_counts.push_back(step);
        continue;
      }
      Pair& entry = pairs_[pair->second];
      visit.kind = Visit::kPair;
      visit.slot = lists.B.size();
      visit.pair = pair->second;
      plan.visits.push_back(std::move(visit));
      lists.B.push_back(local_param);
      lists.grad_B.push_back(grad);
      lists.exp_avg_B.push_back(exp_avg);
      lists.exp_avg_sq_B.push_back(exp_avg_sq);
      lists.projection.push_back(entry.projection.Matrix(entry.pair, grad.scalar_type(), plan.options.projection(),
                                                         plan.options.pinv_delta()));
      lists.scaling.push_back(entry.pair.scaling);
      plan.step_B_counts.push_back(step);
    }
    plans.push_back(std::move(plan));
  }
  plans_ = std::move(plans);  // only once every group is planned
  for (const GroupPlan& plan : plans_) {
    for (const Visit& visit : plan.visits) {
      if (visit.state) DictWatch::Watch(visit.state.ptr());
    }
  }
  return new_states;
}

StepPlanner::StateOf StepPlanner::StateByParameter(const py::dict& state,
                                                   std::vector<std::pair<PyObject*, PyObject*>>* entries) {
  // torch keys state by parameter, and a dict lookup by tensor calls Tensor.__hash__ in Python (about a
  // microsecond each); one walk over the dict, which hashes nothing, finds every parameter's state.
  StateOf state_of;
  state_of.reserve(static_cast<size_t>(PyDict_Size(state.ptr())));
  PyObject *key = nullptr, *value = nullptr;
  for (Py_ssize_t position = 0; PyDict_Next(state.ptr(), &position, &key, &value);) {
    entries->emplace_back(key, value);
    if (THPVariable_Check(key)) state_of[THPVariable_Unpack(key).unsafeGetTensorImpl()] = value;
  }
  return state_of;
}

bool StepPlanner::StateIsAsSeen(const py::dict& state) const {
  if (state_seen_.empty() || PyDict_Size(state.ptr()) != static_cast<Py_ssize_t>(state_seen_.size())) return false;
  PyObject *key = nullptr, *value = nullptr;
  size_t i = 0;
  for (Py_ssize_t position = 0; PyDict_Next(state.ptr(), &position, &key, &value); ++i) {
    if (key != state_seen_[i].first || value != state_seen_[i].second) return false;
  }
  return true;
}

void StepPlanner::StateFoundAsPlanned(const py::dict& state, uint64_t changes) {
  if (state.ptr() != state_seen_object_.ptr()) {  // the planned state dicts were watched when planned
    DictWatch::Watch(state.ptr());
    state_seen_object_ = state;
  }
  state_checked_at_ = changes;
}

bool StepPlanner::RefreshPlan(const py::list& groups, const StateOf* state_of, bool check_states,
                              const LocalView& local) {
  if (plans_.size() != groups.size()) return false;
  const Keys& keys = InternedKeys();
  // Everything is checked, and every new value computed, before the plan changes. This runs just after a
  // step has streamed the layers through the caches, so most objects it reads are cache misses, and what
  // it costs is how many objects it reads per parameter: a parameter is known by the address of the
  // object the plan holds (not read), and a state dict is read only when a watched dict has changed
  // (check_states). It writes no reference count (a write to a cold line) until every check has passed.

  // The options (a scheduler's lr), and the same parameter objects in the same places.
  std::vector<LoraFAOptions> options;
  options.reserve(plans_.size());
  size_t stepped = 0, sharded = 0;
  for (size_t g = 0; g < plans_.size(); ++g) {
    const std::vector<Visit>& visits = plans_[g].visits;
    PyObject* group = PyList_GET_ITEM(groups.ptr(), static_cast<Py_ssize_t>(g));
    if (!PyDict_Check(group)) return false;
    PyObject* params = PyDict_GetItemWithError(group, keys.params);
    if (params == nullptr || !PyList_Check(params) || PyList_GET_SIZE(params) != static_cast<Py_ssize_t>(visits.size()))
      return false;
    for (size_t i = 0; i < visits.size(); ++i) {
      if (PyList_GET_ITEM(params, static_cast<Py_ssize_t>(i)) != visits[i].object.ptr()) return false;
      const bool steps = visits[i].kind == Visit::kPair || visits[i].kind == Visit::kOther;
      stepped += steps;
      sharded += steps && visits[i].dtensor;
    }
    options.push_back(OptionsOfGroup(py::reinterpret_borrow<py::dict>(group)));  // may run Python code
  }

  // Each pair's matrix, current while its A's data, version and sizes are as when it was made.
  struct NewMatrix {
    size_t group, slot;
    const at::Tensor* matrix;
  };
  std::vector<NewMatrix> new_matrices;  // rare: an A changed
  for (size_t g = 0; g < plans_.size(); ++g) {
    for (const Visit& visit : plans_[g].visits) {
      if (visit.kind != Visit::kPair) continue;
      Pair& entry = pairs_[visit.pair];
      const at::Tensor& matrix = entry.projection.Matrix(entry.pair, visit.grad_dtype, options[g].projection(),
                                                         options[g].pinv_delta());
      if (!matrix.is_same(plans_[g].lists.projection[visit.slot])) new_matrices.push_back({g, visit.slot, &matrix});
    }
  }

  // Each parameter's state and gradient. A gradient is read where autograd keeps it, not yet copied: no
  // Python code runs until the copies are made below.
  std::vector<const at::Tensor*> found;  // each stepped parameter's gradient, in visit order
  std::vector<at::Tensor> sharded_grads;  // a DTensor's gradient's local shard, which found points into
  found.reserve(stepped);
  sharded_grads.reserve(sharded);  // never grows: found keeps pointers into it
  for (const GroupPlan& plan : plans_) {
    for (const Visit& visit : plan.visits) {
      if (visit.kind == Visit::kFrozenA) continue;
      const at::Tensor* grad = nullptr;
      if (!visit.dtensor) {
        grad = &visit.param.unsafeGetTensorImpl()->grad();  // read through the tensor the plan holds
      } else {
        if (local.Of(visit.object.ptr()).unsafeGetTensorImpl() != visit.local.unsafeGetTensorImpl()) return false;
        grad = &sharded_grads.emplace_back(local.GradientOf(visit.object.ptr()));
      }
      if (grad->defined() != (visit.kind != Visit::kNoGradient)) return false;
      if (!grad->defined()) continue;
      // Planning anew raises for a sparse gradient, and makes a pair's matrix for a new dtype.
      if (grad->is_sparse() || grad->scalar_type() != visit.grad_dtype) return false;
      // A parameter moved in place (module.to() sets .data) has its moments moved by planning anew.
      const at::Tensor& exp_avg =
          visit.kind == Visit::kPair ? plan.lists.exp_avg_B[visit.slot] : plan.lists.exp_avg[visit.slot];
      if (exp_avg.device() != visit.local.device() || exp_avg.scalar_type() != visit.local.scalar_type()) return false;
      found.push_back(grad);
      if (!check_states) continue;
      if (state_of != nullptr) {
        const auto state = state_of->find(visit.param.unsafeGetTensorImpl());
        if (state == state_of->end() || state->second != visit.state.ptr()) return false;
      }
      PyObject* const state = visit.state.ptr();
      if (!PyDict_Check(state)) return false;
      for (int k = 0; k < 3; ++k) {
        if (PyDict_GetItemWithError(state, keys.state[k]) != visit.state_values[k].ptr()) return false;
      }
    }
  }

  size_t next = 0;
  for (size_t g = 0; g < plans_.size(); ++g) {
    GroupPlan& plan = plans_[g];
    plan.options = options[g];
    for (const Visit& visit : plan.visits) {
      if (visit.kind == Visit::kPair) {
        plan.lists.grad_B[visit.slot] = *found[next++];
      } else if (visit.kind == Visit::kOther) {
        plan.lists.grads[visit.slot] = *found[next++];
      }
    }
  }
  for (const NewMatrix& changed : new_matrices) plans_[changed.group].lists.projection[changed.slot] = *changed.matrix;
  return true;
}

bool StepPlanner::GradientsAreFinite() const {
  std::vector<at::Tensor> guarded;
  for (const GroupPlan& plan : plans_) {
    if (!plan.options.skip_nonfinite()) continue;
    guarded.insert(guarded.end(), plan.lists.grad_B.begin(), plan.lists.grad_B.end());
    guarded.insert(guarded.end(), plan.lists.grads.begin(), plan.lists.grads.end());
  }
  return guarded.empty() || lorafa::GradientsAreFinite(guarded);
}

bool StepPlanner::Run(std::optional<bool> finite, bool keep_gradients) {
  if (!finite.has_value()) finite = GradientsAreFinite();
  if (*finite) {
    py::gil_scoped_release release;  // the step can take a while; other Python threads may run
    c10::NoGradGuard no_grad;         // in-place updates of leaves that require grad
    for (GroupPlan& plan : plans_) {
      plan.lists.step_B = NextSteps(plan.step_B_counts);
      plan.lists.step = NextSteps(plan.step_counts);
      LoraFAStep(plan.lists, plan.options);
      for (const auto* counts : {&plan.step_B_counts, &plan.step_counts}) {
        for (const at::Tensor& count : *counts) CountUp(count);
      }
    }
  }
  if (!keep_gradients) {
    // zero_grad() must free the gradients, as it does with torch's optimizers; the next Prepare finds
    // them anew.
    for (GroupPlan& plan : plans_) {
      for (auto* grads : {&plan.lists.grad_B, &plan.lists.grads}) {
        for (at::Tensor& grad : *grads) grad.reset();
      }
    }
  }
  return *finite;
}

}  // namespace lorafa::python
