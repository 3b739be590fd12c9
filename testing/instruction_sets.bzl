"""One cc_test per instruction set, each with ATen (and so lorafa's CPU kernels) and MKL told to run
that set, as a machine without the wider sets runs them. Each test checks that they do
(testing/instruction_set.h) before it tests anything."""

# The set's name in the test's name ("" for the machine's best) → the environment that asks for it.
INSTRUCTION_SETS = {
    "": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    },
    "default": {
        "ATEN_CPU_CAPABILITY": "default",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    },
}

def instruction_set_tests(name, sets, **kwargs):
    """<name>_test, <name>_<set>_test, …: one cc_test for each of `sets` (keys of INSTRUCTION_SETS)."""
    for instruction_set in sets:
        native.cc_test(
            name = name + ("_" + instruction_set if instruction_set else "") + "_test",
            env = INSTRUCTION_SETS[instruction_set],
            **kwargs
        )
