// Typed errors of the engine. The Python bindings map each to podsim.errors.
#pragma once

#include <stdexcept>
#include <string>

namespace podsim {

// A topology or parameter value that is not allowed.
struct SpecError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A malformed program: an index out of range, mismatched collective members, ...
struct ProgramError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A program that can never finish.
struct DeadlockError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace podsim
